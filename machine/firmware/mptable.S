# mptable.S: the MultiProcessor Specification 1.4 tables (to be
# completed).

mptable_init:
    ret
