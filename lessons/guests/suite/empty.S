# empty: enters protected mode and stops at once: each emulator's own
# start-up (its firmware, for QEMU and Bochs), measured beside the
# workloads so the script can tell it apart.
    .include "boot.inc"
    .code16
    .global start
start:
    ENTER_PM
    xor eax, eax
    FINISH
    TAIL
