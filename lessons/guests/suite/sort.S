# sort: insertion sort of 2048 pseudo-random dwords, again and again from
# fresh numbers: data-dependent branches, loads and stores walking the
# array. The checksum adds up one element of each sorted array.
    .include "boot.inc"
    .code16
    .global start
    .equ DATA, 0x20000
    .equ COUNT, 2048
    .ifndef ROUNDS
    .equ ROUNDS, 60
    .endif
start:
    ENTER_PM
    mov ebp, ROUNDS
    xor edx, edx
    mov eax, 1
0:  mov edi, DATA               # fill with the LCG's numbers
    mov ecx, COUNT
1:  imul eax, eax, 1103515245
    add eax, 12345
    stosd
    dec ecx
    jnz 1b
    push eax
    mov esi, 1                  # for i = 1 .. COUNT-1
2:  mov ebx, [DATA + esi*4]     # key
    mov edi, esi
3:  mov ecx, [DATA - 4 + edi*4]
    cmp ecx, ebx
    jbe 4f
    mov [DATA + edi*4], ecx
    dec edi
    jnz 3b
4:  mov [DATA + edi*4], ebx
    inc esi
    cmp esi, COUNT
    jb 2b
    pop eax
    add edx, [DATA + (COUNT / 3) * 4]
    dec ebp
    jnz 0b
    mov eax, edx
    FINISH
    TAIL
