# bios-sys-misc.S: INT 11h, INT 15h AH=C0h (the configuration table),
# AH=C1h (the EBDA), AH=4Fh (the keyboard intercept) and what INT 15h does
# not support.
    .include "bios-sys.inc"

main:
    PRINT "INT 11h "
    int 0x11
    call puthex16
    call newline

    PRINT "C0h"
    mov ah, 0xC0
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    PRINT " table at "
    mov ax, es
    call puthex16
    mov al, ':'
    call putc
    mov ax, bx
    call puthex16
    PRINT ":"
    mov cx, es:[bx]                 # the length, then the bytes it counts
    mov ax, cx
    call space
    call puthex16
    add cx, 2
1:  cmp cx, 2
    je 2f
    call space
    mov al, es:[bx + 2]
    call puthex8
    inc bx
    dec cx
    jmp 1b
2:  call newline
    push ds
    pop es

    PRINT "C1h"
    mov ah, 0xC1
    int 0x15
    call putcf
    PRINT " es "
    mov ax, es
    call puthex16
    call newline
    push ds
    pop es

    PRINT "4Fh"
    mov ax, 0x4F1E                  # the scan code of A
    clc
    int 0x15
    call putcf
    PRINT " al "
    call puthex8
    call newline

    mov si, offset unsupported
3:  mov ah, [si]
    test ah, ah
    jz 4f
    PRINT "AH="
    mov al, ah
    call puthex8
    mov al, [si + 1]
    clc                             # each must set CF itself
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    call newline
    add si, 2
    jmp 3b
4:  EXIT 0

# AH, AL pairs INT 15h must refuse with CF set and AH = 86h.
unsupported:
    .byte 0x87, 0x00                # copy extended memory
    .byte 0x89, 0x00                # switch to protected mode
    .byte 0xC2, 0x00                # PS/2 mouse
    .byte 0xE8, 0x81                # E881h
    .byte 0x00

    SYS_END
