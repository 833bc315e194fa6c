# bios-sys-a20.S: INT 15h AX=2400h-2403h, the A20 gate. With A20 off,
# FFFF:0510 is 0000:0500 again (the 8086's wraparound at 1 MiB); with it
# on, FFFF:0510 is 100500h, a byte of its own.
    .include "bios-sys.inc"

main:
    PRINT "2403h"
    mov ax, 0x2403
    xor bx, bx
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    PRINT " bx "
    mov ax, bx
    call puthex16
    call newline

    PRINT "at boot"
    call state
    mov ax, 0x2401
    PRINT "2401h"
    call switch
    call state
    mov ax, 0x2400
    PRINT "2400h"
    call switch
    call state
    mov ax, 0x2401
    PRINT "2401h"
    call switch
    call state

    PRINT "2404h"
    mov ax, 0x2404
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    call newline
    EXIT 0

# switch: INT 15h with AX; prints CF and AH.
switch:
    int 0x15
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    call newline
    ret

# state: what AX=2402h says, and whether memory wraps at 1 MiB.
state:
    PRINT ": 2402h"
    mov ax, 0x2402
    int 0x15
    call putcf
    PRINT " al "
    call puthex8
    push es
    mov ax, 0xFFFF
    mov es, ax
    mov byte ptr [0x0500], 0x11
    mov byte ptr es:[0x0510], 0x22
    cmp byte ptr [0x0500], 0x22
    pop es
    je 1f
    PRINT ", no wraparound"
    jmp 2f
1:  PRINT ", wraps at 1 MiB"
2:  call newline
    ret

    SYS_END
