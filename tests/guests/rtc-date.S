# rtc-date.S: reads the CMOS clock's date as a BIOS does (wait for the
# update-in-progress bit to clear, then registers 9, 8, 7 and the century
# byte 0x32, in BCD as register B says) and prints it.
    .include "platform.inc"

main:
    mov esi, offset msg
    call puts
1:  mov al, 0x0A                # register A: UIP clear?
    out 0x70, al
    in al, 0x71
    test al, 0x80
    jnz 1b
    mov al, 0x32
    call cmos_bcd_byte
    mov al, 0x09
    call cmos_bcd_byte
    mov al, '-'
    call putc
    mov al, 0x08
    call cmos_bcd_byte
    mov al, '-'
    call putc
    mov al, 0x07
    call cmos_bcd_byte
    call newline
    ret

# cmos_bcd_byte: prints CMOS register AL, a BCD byte, as two digits.
cmos_bcd_byte:
    out 0x70, al
    in al, 0x71
    push eax
    shr al, 4
    add al, '0'
    call putc
    pop eax
    and al, 0x0F
    add al, '0'
    call putc
    ret

msg:
    .asciz "rtc date: "
