# bios-sys-rtc.S: the RTC through INT 1Ah AH=02h-05h. The machine's clock
# starts at 2026-01-01T00:00:00 when it is built; on the interpreter and
# the translator virtual time makes every reading exact, on KVM the clock
# runs in host time, so seconds are only checked against a range.
# Then the conversions: the RTC counting in binary, then in 12-hour mode,
# read and written with the BCD, 24-hour numbers INT 1Ah speaks; a stopped
# clock; daylight saving; the tick count after setting the time.
    .include "bios-sys.inc"

main:
    call get_date
    PRINT "boot: "
    call get_time_hhmm
    PRINT ", seconds below 30: "
    cmp dh, 0x30
    jb 1f
    PRINT "no"
    jmp 2f
1:  PRINT "yes"
2:  call newline
    call ticks
    PRINT "ticks below 30 s: "
    cmp eax, 30 * 182 / 10
    jb 1f
    PRINT "no"
    jmp 2f
1:  PRINT "yes"
2:  call newline

    PRINT "set 12:34:56"
    mov cx, 0x1234
    mov dx, 0x5600
    mov ah, 0x03
    int 0x1A
    call putcf_ah
    call newline
    call get_time_hhmm
    PRINT ", seconds 56-59: "
    cmp dh, 0x56
    jb 1f
    cmp dh, 0x59
    ja 1f
    PRINT "yes"
    jmp 2f
1:  PRINT "no"
2:  call newline
# 12:34:56 is 45296 s, 824681 ticks (45296 * 1193182 / 65536).
    call ticks
    PRINT "ticks from 12:34:56: "
    sub eax, 824681
    cmp eax, 3 * 19
    jbe 1f
    PRINT "no"
    jmp 2f
1:  PRINT "yes"
2:  call newline

    PRINT "set 2027-12-31"
    mov cx, 0x2027
    mov dx, 0x1231
    mov ah, 0x05
    int 0x1A
    call putcf_ah
    call newline
    call get_date

# Binary mode (register B bit 2): INT 1Ah still speaks BCD. (As on the
# chip, a change of mode is followed by setting the clock in that mode.)
    PRINT "binary mode"
    mov al, 0x0B
    call cmos_get
    or al, 0x04
    mov ah, al
    mov al, 0x0B
    call cmos_set
    call newline
    PRINT "set 2027-12-31"
    mov cx, 0x2027
    mov dx, 0x1231
    mov ah, 0x05
    int 0x1A
    call putcf_ah
    PRINT "raw year "
    mov al, 0x09
    call cmos_get
    call puthex8
    PRINT ", day "
    mov al, 0x07
    call cmos_get
    call puthex8
    call newline
    call get_date
    PRINT "set 10:20:30"
    mov cx, 0x1020
    mov dx, 0x3000
    mov ah, 0x03
    int 0x1A
    call putcf_ah
    PRINT "raw hours "
    mov al, 0x04
    call cmos_get
    call puthex8
    PRINT ", minutes "
    mov al, 0x02
    call cmos_get
    call puthex8
    call newline
    call get_time_hhmm
    call newline

# 12-hour BCD mode (register B bits 2 and 1 clear): PM is bit 7 of the
# hours, noon and midnight are 12.
    PRINT "12-hour mode"
    mov al, 0x0B
    call cmos_get
    and al, 0xF9
    mov ah, al
    mov al, 0x0B
    call cmos_set
    call newline
    mov cx, 0x1305
    call set_and_show
    mov cx, 0x0030
    call set_and_show
    mov cx, 0x1200
    call set_and_show
    mov al, 0x0B                    # 24-hour BCD again
    call cmos_get
    or al, 0x02
    mov ah, al
    mov al, 0x0B
    call cmos_set

# A stopped clock (register A's divider in reset): CF set; setting the
# time starts it again.
    PRINT "divider stopped:"
    mov ax, 0x760A
    call cmos_set
    mov ah, 0x02
    int 0x1A
    call putcf_ah
    mov ah, 0x04
    int 0x1A
    call putcf_ah
    call newline
    PRINT "set 01:02:03 DST"
    mov cx, 0x0102
    mov dx, 0x0301
    mov ah, 0x03
    int 0x1A
    call putcf_ah
    PRINT "register A "
    mov al, 0x0A
    call cmos_get
    and al, 0x7F                    # (UIP may be set)
    call puthex8
    call newline
    call get_time_hhmm
    PRINT " DST "
    mov al, dl
    call puthex8
    call newline

    PRINT "AH=06h"
    mov ah, 0x06
    int 0x1A
    call putcf_ah
    call newline
    EXIT 0

# set_and_show: INT 1Ah AH=03h with CX (seconds 0); the raw hours register
# and AH=02h's answer.
set_and_show:
    PRINT "set "
    mov al, ch
    call puthex8
    mov al, ':'
    call putc
    mov al, cl
    call puthex8
    xor dx, dx
    mov ah, 0x03
    int 0x1A
    call putcf_ah
    PRINT "raw hours "
    mov al, 0x04
    call cmos_get
    call puthex8
    PRINT ", INT 1Ah "
    call get_time_hhmm
    call newline
    ret

# get_date: prints "date CCYY-MM-DD" (AH=04h) and CF.
get_date:
    PRINT "date "
    mov ah, 0x04
    int 0x1A
    pushf
    mov al, ch
    call puthex8
    mov al, cl
    call puthex8
    mov al, '-'
    call putc
    mov al, dh
    call puthex8
    mov al, '-'
    call putc
    mov al, dl
    call puthex8
    popf
    call putcf
    call newline
    ret

# get_time_hhmm: prints "HH:MM" (AH=02h) and CF; DH = the seconds, DL =
# the DST flag.
get_time_hhmm:
    mov ah, 0x02
    int 0x1A
    pushf
    mov al, ch
    call puthex8
    mov al, ':'
    call putc
    mov al, cl
    call puthex8
    popf
    call putcf
    ret

# putcf_ah: CF and AH after a call (keeps AX and the flags).
putcf_ah:
    call putcf
    push ax
    pushf
    PRINT " ah "
    mov al, ah
    call puthex8
    call space
    popf
    pop ax
    ret

# ticks: EAX = the BIOS tick count (INT 1Ah AH=00h).
ticks:
    push cx
    push dx
    xor ah, ah
    int 0x1A
    mov ax, cx
    shl eax, 16
    mov ax, dx
    pop dx
    pop cx
    ret

# cmos_get: AL = CMOS register AL. cmos_set: CMOS register AL = AH.
cmos_get:
    out 0x70, al
    in al, 0x71
    ret
cmos_set:
    out 0x70, al
    mov al, ah
    out 0x71, al
    ret

    SYS_END
