# real16: 16-bit real-mode code, as boot sectors and firmware run: a
# checksum over 64 KiB with LODSW through a segment that moves on each
# pass, 16-bit arithmetic and rotates, a far call per pass. Only the
# printing is done in protected mode.
    .include "boot.inc"
    .code16
    .global start
    .ifndef PASSES
    .equ PASSES, 2000
    .endif
start:
    cli
    xor ax, ax
    mov ss, ax
    mov sp, 0x7000
    cld
    PATTERN16                   # a known pattern over 10000h..2010Fh
    mov bp, PASSES
    xor dx, dx
    xor di, di
1:  mov ax, bp
    and ax, 0x0F
    add ax, 0x1000              # segments 1000h..100Fh
    mov ds, ax
    PASS16
    lcall 0, offset mark
    dec bp
    jnz 1b
    xor ax, ax
    mov ds, ax
    mov [result], dx
    mov [result + 2], di
    ENTER_PM
    mov eax, [result]
    FINISH
mark:                           # a far call and return per pass
    add di, bp
    lret
result:
    .long 0
    TAIL
