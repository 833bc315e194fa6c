# callret: the nanobench call/ret row as a loop of its own, for
# scripts/bench-callret.sh: ITERATIONS times a near CALL to a RET and a
# LOOP back, in flat 32-bit protected mode (the suite's boot sector, which
# needs no BIOS). callret-native.S is the same loop as an x86-64 Linux
# program.
    .include "boot.inc"
    .code16
    .global start
    .ifndef ITERATIONS
    .equ ITERATIONS, 20000000
    .endif
start:
    ENTER_PM
    mov ecx, ITERATIONS
    test ecx, ecx
    jz 2f
1:  call just_ret
    loop 1b
2:  mov eax, ITERATIONS
    FINISH
just_ret:
    ret
    TAIL
