# bios-boot.S: the simplest boot sector: booted by the BIOS at 0000:7C00,
# it reports the boot drive (DL), INT 11h's equipment word and INT 12h's
# base memory, and exits.
    .code16
    jmp start
    .include "bios-boot.inc"
start:
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7C00
    mov [drive], dl
    mov si, offset m_drive
    call puts
    movzx ax, byte ptr [drive]
    call puthex16
    call newline
    mov si, offset m_equip
    call puts
    int 0x11
    call puthex16
    call newline
    mov si, offset m_mem
    call puts
    int 0x12
    call puthex16
    call newline
    EXIT 0
drive: .byte 0
m_drive: .asciz "boot drive "
m_equip: .asciz "INT 11h "
m_mem: .asciz "INT 12h "
    .org 510
    .word 0xAA55
