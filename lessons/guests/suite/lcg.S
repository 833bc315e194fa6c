# lcg: scaled-index read-modify-writes at pseudo-random places (a linear
# congruential generator picks the index), each followed by a dependent
# load: multiplies, SIB addressing, a 16 KiB table. 8 instructions an
# iteration, 600 M in all.
    .include "boot.inc"
    .code16
    .global start
    .equ DATA, 0x20000
    .ifndef ITERATIONS
    .equ ITERATIONS, 75000000
    .endif
start:
    ENTER_PM
    mov edi, DATA               # the table starts zeroed
    mov ecx, 4096
    xor eax, eax
    rep stosd
    mov esi, DATA
    mov ecx, ITERATIONS
    mov eax, 12345
    xor edi, edi
1:  imul eax, eax, 1103515245
    add eax, 12345
    mov ebx, eax
    shr ebx, 20                 # 0..4095
    add [esi + ebx*4], eax
    xor edi, [esi + ebx*4]
    dec ecx
    jnz 1b
    mov eax, edi
    FINISH
    TAIL
