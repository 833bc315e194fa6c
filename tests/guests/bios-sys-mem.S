# bios-sys-mem.S: the memory sizes the BIOS reports: INT 12h, INT 15h
# AH=88h, AX=E801h and the E820 map (every range, then the calls it must
# refuse). firmware_system.rs checks them against the machine's RAM.
    .include "bios-sys.inc"

    .set SMAP, 0x534D4150

main:
    PRINT "INT 12h "
    int 0x12
    call puthex16
    call newline

    PRINT "88h "
    mov ah, 0x88
    int 0x15
    call puthex16
    call putcf
    call newline

    PRINT "E801h"
    mov ax, 0xE801
    int 0x15
    call putcf
    PRINT " ax "
    call puthex16
    PRINT " bx "
    mov ax, bx
    call puthex16
    PRINT " cx "
    mov ax, cx
    call puthex16
    PRINT " dx "
    mov ax, dx
    call puthex16
    call newline

# The map: EBX from 0 until the BIOS returns 0. A buffer of 24 bytes
# (ACPI 3.0's size) still gets 20.
    xor ebx, ebx
1:  mov eax, 0xE820
    mov edx, SMAP
    mov ecx, 24
    mov di, offset buffer
    int 0x15
    jc 8f
    cmp eax, SMAP
    jne 8f
    PRINT "e820 "
    mov eax, [buffer + 4]
    call puthex32
    mov eax, [buffer]
    call puthex32
    call space
    mov eax, [buffer + 12]
    call puthex32
    mov eax, [buffer + 8]
    call puthex32
    call space
    mov eax, [buffer + 16]
    call puthex32
    PRINT " size "
    mov ax, cx
    call puthex8
    call newline
    test ebx, ebx
    jnz 1b
    jmp 2f
8:  PRINT "E820 failed"
    call newline

# What E820 refuses: a wrong signature, a small buffer, a continuation it
# never gave.
2:  PRINT "no SMAP"
    mov eax, 0xE820
    xor ebx, ebx
    xor edx, edx
    mov ecx, 20
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    call newline
    PRINT "16 bytes"
    mov eax, 0xE820
    xor ebx, ebx
    mov edx, SMAP
    mov ecx, 16
    int 0x15
    call putcf
    call newline
    PRINT "ebx 99"
    mov eax, 0xE820
    mov ebx, 99
    mov edx, SMAP
    mov ecx, 20
    int 0x15
    call putcf
    call newline
    EXIT 0

buffer:
    .fill 24, 1, 0xEE

    SYS_END
