# bios-sys-serial.S: INT 14h on COM1, ringlab's standard output: send
# (the lines that say "through INT 14h" are sent that way), initialise,
# status, receive what the test's setup queued ("ok"), a receive that times
# out, and ports that are not there.
    .include "bios-sys.inc"

main:
    PRINT "BDA COM ports"
    mov si, 0x400
1:  call space
    mov ax, [si]
    call puthex16
    add si, 2
    cmp si, 0x408
    jb 1b
    PRINT ", timeouts"
2:  call space
    mov al, [si + 0x7C - 0x8]
    call puthex8
    inc si
    cmp si, 0x40C
    jb 2b
    call newline

    PRINT "init 9600 8N1"
    mov ax, 0x00E3                  # 111 9600 baud, 00 no parity, 0 one stop, 11 8 bits
    xor dx, dx
    int 0x14
    call putcf
    PRINT " ax "
    call puthex16
    call newline

    mov si, offset hello
3:  mov al, [si]
    test al, al
    jz 4f
    mov ah, 0x01
    xor dx, dx
    int 0x14
    mov [status], ah
    inc si
    jmp 3b
4:  PRINT "last send ah "
    mov al, [status]
    call puthex8
    call newline

    PRINT "status"
    mov ah, 0x03
    xor dx, dx
    int 0x14
    call putcf
    PRINT " ax "
    call puthex16
    call newline

    mov cx, 2
5:  PRINT "receive"
    mov ah, 0x02
    xor dx, dx
    int 0x14
    call putcf
    PRINT " ah "
    push ax
    mov al, ah
    call puthex8
    PRINT " al '"
    pop ax
    call putc
    PRINT "'"
    call newline
    loop 5b

    PRINT "receive, nothing there"
    mov ah, 0x02
    xor dx, dx
    int 0x14
    call putcf
    PRINT " ah "
    mov al, ah
    call puthex8
    call newline

    mov si, offset cases
6:  mov dx, [si]
    cmp dx, 0xFFFF
    je 7f
    mov ah, [si + 2]
    PRINT "dx "
    mov ax, dx
    call puthex16
    PRINT " ah "
    mov al, [si + 2]
    call puthex8
    mov ah, [si + 2]
    mov al, '?'
    int 0x14
    call putcf
    PRINT ": ah "
    mov al, ah
    call puthex8
    call newline
    add si, 3
    jmp 6b
7:  EXIT 0

hello:
    .asciz "hello, stdout, through INT 14h\n"
status:
    .byte 0

# DX, AH: COM2 and a fifth port are not there; AH=04h is not supported.
cases:
    .word 1
    .byte 0x01
    .word 4
    .byte 0x03
    .word 0
    .byte 0x04
    .word 0xFFFF

    SYS_END
