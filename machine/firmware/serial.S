# serial.S: INT 14h, the serial ports (RBIL INT 14; IBM PC AT Technical
# Reference, "RS232_IO"), on 8250-family UARTs (16550A datasheet, TI
# SNLS378: registers at base + 0-7).
#
# DX selects the port, 0-3 for COM1-COM4; its I/O base is the word at BDA
# 40:00h + 2 * DX, which POST fills with the UARTs it finds (serial_init).
# A port that is not there (DX > 3, or a zero base) answers AH = 80h, the
# timeout bit, with CF set.
#
#   AH=00h  initialise: AL = bits 7-5 baud rate (110, 150, 300, 600, 1200,
#           2400, 4800, 9600), bits 4-3 parity (x0 none, 01 odd, 11 even),
#           bit 2 stop bits (0: one, 1: two), bits 1-0 word length (10: 7
#           bits, 11: 8 bits). Returns the status, as AH=03h.
#   AH=01h  send AL. AH = line status; bit 7 set if the transmitter did not
#           empty in time (the byte was not sent).
#   AH=02h  receive: AL = the byte, AH = its error bits (line status 1Eh:
#           overrun, parity, framing, break), 0 if clean; AH bit 7 set
#           (with the line status) if nothing came in time.
#   AH=03h  status: AH = line status register, AL = modem status register.
#   other   CF set, AH = 86h.
#
# ringlab's COM1 is its standard output: a boot sector that prints with
# AH=01h prints to the terminal ringlab runs in.
#
# Timeouts. BDA 40:7Ch-7Fh hold each port's timeout in timer ticks (18.2 a
# second); POST sets 10 (about half a second), SeaBIOS's value. 0 means: look
# once, do not wait. Time is the BDA tick count, so INT 14h runs with
# interrupts enabled, as IBM's did; while waiting it halts until the next
# interrupt (at least the next tick) when IRQ 0 can wake it. No modem
# handshake (DTR/RTS out, DSR/CTS in) is done, as in SeaBIOS: the line
# status says when the UART can take or has a byte.

    .set UART_DATA, 0                # RBR / THR; divisor low with DLAB
    .set UART_IER, 1                 # interrupt enable; divisor high with DLAB
    .set UART_LCR, 3                 # line control; bit 7 DLAB
    .set UART_SCR, 7                 # scratch
    .set UART_LSR, 5                 # line status
    .set UART_MSR, 6                 # modem status
    .set LSR_DR, 0x01                # a byte received
    .set LSR_ERRORS, 0x1E            # overrun, parity, framing, break
    .set LSR_THRE, 0x20              # the transmitter holding register is empty
    .set SERIAL_TIMEOUT, 10          # ticks
    .set SERIAL_TIMED_OUT, 0x80      # AH bit 7

# serial_init (POST): finds the UARTs at the four standard bases, lists
# them in the BDA in that order (the first found is COM1), puts their count
# in the equipment word (bits 11-9) and sets their timeouts. A UART is there
# if its scratch register keeps what is written (an empty ISA port reads
# FFh); the test leaves the UART's interrupt lines alone.
serial_init:
    push ds
    push ax
    push bx
    push cx
    push dx
    push si
    mov ax, BDA_SEG
    mov ds, ax
    xor bx, bx                      # ports found, times 2
    mov si, offset serial_bases
1:  mov dx, cs:[si]
    add dx, UART_SCR
    mov al, 0x5A
    out dx, al
    in al, dx
    cmp al, 0x5A
    jne 2f
    mov al, 0xA5
    out dx, al
    in al, dx
    cmp al, 0xA5
    jne 2f
    mov ax, cs:[si]
    mov [BDA_COM_PORTS + bx], ax
    shr bx, 1
    mov byte ptr [BDA_COM_TIMEOUT + bx], SERIAL_TIMEOUT
    shl bx, 1
    add bx, 2
2:  add si, 2
    cmp si, offset serial_bases + 8
    jb 1b
    mov cx, bx                      # the count, in bits 11-9
    shl cx, 8
    and word ptr [BDA_EQUIPMENT], 0xF1FF
    or [BDA_EQUIPMENT], cx
    pop si
    pop dx
    pop cx
    pop bx
    pop ax
    pop ds
    ret

serial_bases:
    .word 0x3F8, 0x2F8, 0x3E8, 0x2E8

# AH=00h's divisors of the UART's 1.8432 MHz / 16 = 115200 Hz clock, for
# AL bits 7-5.
serial_divisors:
    .word 1047, 768, 384, 192, 96, 48, 24, 12

int14_handler:
    sti
    push ds
    push bx
    push cx
    push dx
    mov bx, BDA_SEG
    mov ds, bx
    cmp dx, 3
    ja 8f
    mov bx, dx
    mov cl, [BDA_COM_TIMEOUT + bx]  # CL = the timeout, for AH=01h/02h
    shl bx, 1
    mov dx, [BDA_COM_PORTS + bx]    # DX = the UART's base
    test dx, dx
    jz 8f
    cmp ah, 0x00
    je int14_init
    cmp ah, 0x01
    je int14_send
    cmp ah, 0x02
    je int14_receive
    cmp ah, 0x03
    je int14_status
    mov ah, 0x86                    # unknown function
    jmp 9f
8:  mov ah, SERIAL_TIMED_OUT        # no such port
9:  pop dx
    pop cx
    pop bx
    pop ds
    stc
    jmp iret_cf

# int14_done: the common return, CF clear.
int14_done:
    pop dx
    pop cx
    pop bx
    pop ds
    clc
    jmp iret_cf

int14_init:
    mov ch, al                      # the format: LCR bits 4-0 as they are
    movzx bx, al                    # the rate: AL bits 7-5
    shr bx, 5
    shl bx, 1
    mov bx, cs:[serial_divisors + bx]
    add dx, UART_LCR
    mov al, 0x80                    # DLAB: ports 0-1 are the divisor
    out dx, al
    sub dx, UART_LCR
    mov al, bl
    out dx, al
    inc dx
    mov al, bh
    out dx, al
    add dx, UART_LCR - 1
    mov al, ch
    and al, 0x1F
    out dx, al
    sub dx, UART_LCR - UART_IER
    xor al, al                      # no UART interrupts (IBM's INT 14h)
    out dx, al
    dec dx
    # the status, as AH=03h

int14_status:
    add dx, UART_MSR
    in al, dx
    dec dx                          # UART_LSR
    mov ah, al
    in al, dx
    xchg al, ah
    jmp int14_done

int14_send:
    push ax
    mov ah, LSR_THRE
    call serial_wait
    mov ah, al                      # AH = the line status
    pop cx                          # CL = the byte (CH's timeout is spent)
    jc 1f
    and ah, 0x7F                    # bit 7 says "timed out" here
    mov al, cl
    sub dx, UART_LSR
    out dx, al                      # UART_DATA
    jmp int14_done
1:  mov al, cl
    or ah, SERIAL_TIMED_OUT
    jmp int14_done

int14_receive:
    mov ah, LSR_DR
    call serial_wait
    jc 1f
    mov ah, al
    and ah, LSR_ERRORS
    sub dx, UART_LSR
    in al, dx                       # UART_DATA
    jmp int14_done
1:  mov ah, al
    or ah, SERIAL_TIMED_OUT
    jmp int14_done

# serial_wait: waits until the line status of the UART at DX has one of
# the bits in AH, for at most CL ticks.
#   Out: DX = the line status port, AL = the line status; CF set on
#   timeout. DS = BDA_SEG. Trashes AH, CL.
#   Ticks are counted as changes of the BDA count (midnight's wrap to 0
#   is a change like any other).
serial_wait:
    push bx
    add dx, UART_LSR
    mov bx, [BDA_TICKS]             # the count last seen
1:  in al, dx
    test al, ah
    jnz 3f
    cmp [BDA_TICKS], bx
    je 2f
    mov bx, [BDA_TICKS]             # a tick went by
    dec cl
2:  test cl, cl
    jz 4f
    push ax                         # IRQ 0 unmasked at the master 8259A:
    in al, PIC1 + 1                 # halt until it (or any interrupt)
    test al, 0x01                   # comes; else keep polling
    pop ax
    jnz 1b
    hlt
    jmp 1b
3:  pop bx
    clc
    ret
4:  pop bx
    stc
    ret
