# boot.S: INT 19h, the bootstrap loader, and INT 18h, where a PC goes when
# nothing boots (BIOS Boot Specification 1.01, "IPL devices"; IBM PC AT
# Technical Reference, INT 19h).
#
# INT 19h reads sector 0 of the first hard disk (drive 80h) to 0000:7C00
# with INT 13h, checks the boot signature 55h AAh at its end, and jumps to
# it with DL = the drive number, as every PC BIOS does. Drive 00h (a
# floppy) does not exist on this PC. A read that fails is tried three
# times, with a reset (AH=00h) in between, as RBIL advises for INT 13h.
# When nothing boots, the reason goes to the screen and to port 0xE9, and
# the machine stops with POST code EBh.

int19_handler:
    sti
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, BOOT_OFF
    mov dl, 0x80
    cmp byte ptr [BDA_SEG * 16 + BDA_HARD_DISKS], 0
    je boot_no_disk
    mov si, 3                       # tries, as BIOSes retry a read
1:  mov ax, 0x0201                  # read 1 sector
    mov cx, 0x0001                  # cylinder 0, sector 1
    xor dh, dh                      # head 0
    mov bx, BOOT_OFF
    int 0x13
    jnc 2f
    mov bh, ah                      # the status, for the message
    xor ah, ah                      # reset the drive, try again
    int 0x13
    dec si
    jnz 1b
    mov si, offset msg_read_error
    call fw_puts
    mov al, bh                      # the status of the last try
    call boot_puthex
    mov si, offset msg_read_error_end
    jmp boot_fail
2:  cmp word ptr [BOOT_OFF + 510], 0xAA55
    je 3f
    mov si, offset msg_no_signature
    jmp boot_fail
3:  POST POST_BOOT_SECTOR
    mov dl, 0x80
    ljmp BOOT_SEG, BOOT_OFF

boot_no_disk:
    mov si, offset msg_no_disk
    jmp boot_fail

# INT 18h: no bootable device (on the IBM PC, ROM BASIC).
int18_handler:
    mov si, offset msg_int18
    # fall through

# boot_fail: the message at CS:SI, then a final stop: interrupts off and
# HLT, which ringlab reports as the end of the run (and shows the POST
# code EBh, "nothing bootable").
boot_fail:
    call fw_puts
    mov si, offset msg_halt
    call fw_puts
    POST POST_NO_BOOT
    cli
1:  hlt
    jmp 1b

msg_no_disk:
    .asciz "No bootable device: no hard disk.\r\n"
# boot_puthex: AL as two hex digits (the screen and port 0xE9).
boot_puthex:
    push ax
    push cx
    mov cx, 2
1:  rol al, 4
    push ax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 2f
    add al, 'A' - '0' - 10
2:  call fw_putc
    pop ax
    loop 1b
    pop cx
    pop ax
    ret

msg_read_error:
    .asciz "Boot failed: disk 80h could not be read (INT 13h status "
msg_read_error_end:
    .asciz "h).\r\n"
msg_no_signature:
    .asciz "Boot failed: disk 80h has no boot signature (55 AA at byte 510).\r\n"
msg_int18:
    .asciz "No bootable device.\r\n"
msg_halt:
    .asciz "System halted.\r\n"
