# strcopy: block copies with REP MOVSD (64 KiB at a time, forward, between
# two buffers) and the same bytes again with a byte loop (MOV, MOV, INC,
# INC, DEC, JNZ), each round changing one dword so the copies carry it.
    .include "boot.inc"
    .code16
    .global start
    .equ A, 0x100000
    .equ B, 0x200000
    .equ BYTES, 0x10000
    .ifndef ROUNDS
    .equ ROUNDS, 2000
    .endif
start:
    ENTER_PM
    cld
    mov edi, A                  # the source starts zeroed
    mov ecx, BYTES / 4
    xor eax, eax
    rep stosd
    mov ebp, ROUNDS
    xor edx, edx
1:  add dword ptr [A + 0x100], ebp   # the round leaves its mark
    mov esi, A
    mov edi, B
    mov ecx, BYTES / 4
    rep movsd
    mov esi, B
    mov edi, A
    mov ecx, BYTES / 16         # a quarter of it with a byte loop
2:  mov al, [esi]
    mov [edi], al
    inc esi
    inc edi
    dec ecx
    jnz 2b
    add edx, [B + 0x100]
    dec ebp
    jnz 1b
    mov eax, edx
    FINISH
    TAIL
