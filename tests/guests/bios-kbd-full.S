# bios-kbd-full.S: the keyboard buffer's limit. Twenty keys were typed; the
# buffer (16 words, one always free) kept the first 15. INT 16h AH=05h
# cannot add one while it is full (AL=01h); the boot sector reads the 15
# (AH=00h, printing the characters), then AH=05h stores 1234h (AL=00h),
# which AH=10h returns.
    .intel_syntax noprefix
    .code16                         # before the first instruction: the
    jmp start                       # jump must be 16-bit code too
    .include "bios-boot.inc"
    .include "bios-console.inc"
start:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7C00
    cld
    call settle
    mov ax, 0x0003                  # a clear screen: the POST banner
    int 0x10                        # is not part of these tests
    SAY "full "
    mov ah, 0x05
    mov cx, 0x1234
    int 0x16
    call putw
1:  mov ah, 0x01
    int 0x16
    jz 2f
    mov ah, 0x00
    int 0x16
    call putc
    jmp 1b
2:  mov al, ' '
    call putc
    mov ah, 0x05
    mov cx, 0x1234
    int 0x16
    call putw
    mov ah, 0x10
    int 0x16
    call putw
    call newline
    EXIT 0
    .org 510
    .word 0xAA55
