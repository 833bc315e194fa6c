# Lesson 1, hello: a boot sector in real mode.
#
# The machine starts us at 0000:7C00 in real mode, like a PC BIOS would,
# with no BIOS services to call: we talk to the hardware directly.
# We print a line on COM1 (the 16550A UART at port 0x3F8) and on the VGA
# text screen (memory at 0xB8000), then halt with interrupts disabled,
# which ends the run with exit status 0.

.intel_syntax noprefix
.code16
.global start

.equ COM1, 0x3F8
.equ LSR_THRE, 0x20          # line status: transmit holding register empty

start:
    cli                      # no interrupt handlers installed: keep IF=0
    xor ax, ax
    mov ds, ax               # DS = 0: our data is addressed from 0000:7C00
    mov ss, ax
    mov sp, 0x7C00           # stack grows down from just below us
    cld                      # string instructions count upwards

    # Program COM1: 8 data bits, no parity, 1 stop bit (8N1) at 115200
    # baud. Setting LCR bit 7 (DLAB) exposes the divisor latch at 0x3F8.
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 1                # divisor 1 = 115200 baud
    out dx, al
    inc dx
    xor al, al
    out dx, al               # divisor high byte; also IER = 0 afterwards
    mov dx, COM1 + 3
    mov al, 0x03             # 8N1, DLAB off
    out dx, al

    # Serial: send each byte of the message.
    mov si, offset message
1:  lodsb                    # AL = [DS:SI], SI += 1
    test al, al
    jz 2f
    call serial_putc
    jmp 1b

    # VGA: character and attribute pairs at B800:0000. Attribute 0x1F is
    # bright white on blue.
2:  mov ax, 0xB800
    mov es, ax
    xor di, di
    mov si, offset message
    mov ah, 0x1F
3:  lodsb
    test al, al
    jz 4f
    cmp al, 10               # the newline is for the serial line only
    je 3b
    stosw                    # [ES:DI] = AX, DI += 2
    jmp 3b

4:  cli
    hlt                      # halted with IF=0: the run ends (status 0)
    jmp 4b

# Wait until the UART can take a byte, then send AL.
serial_putc:
    push ax
    mov dx, COM1 + 5         # line status register
5:  in al, dx
    test al, LSR_THRE
    jz 5b
    pop ax
    mov dx, COM1
    out dx, al
    ret

message:
    .asciz "Hello from real mode!\n"

    .org 510
    .word 0xAA55             # the boot signature a BIOS looks for
