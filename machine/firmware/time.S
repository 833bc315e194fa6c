# time.S: the PC's clock. IRQ 0 (INT 08h) counts ticks since midnight in
# the BDA, 18.2 a second, and calls INT 1Ch, the user's tick hook; INT 1Ah
# reads and sets that count and the RTC's time and date (RBIL INT 1A; IBM
# PC AT Technical Reference, "TIME_OF_DAY"; the MC146818A datasheet for
# the RTC's registers).
#
#   AH=00h  CX:DX = ticks since midnight, AL = midnight passed (cleared)
#   AH=01h  ticks since midnight = CX:DX
#   AH=02h  RTC time: CH hours, CL minutes, DH seconds (BCD, 24-hour), DL
#           1 if daylight saving is on (register B's DSE)
#   AH=03h  set the RTC time from CH, CL, DH (BCD, 24-hour); DSE = DL bit 0
#   AH=04h  RTC date: CH century, CL year, DH month, DL day (BCD)
#   AH=05h  set the RTC date from CH, CL, DH, DL (BCD)
#   other   CF set, AH = 86h
#
# AH=02h-05h return CF clear and AH = 0, or CF set (registers unchanged)
# when the clock is not running: its divider stopped (register A), its
# updates held (register B's SET), or an update cycle that never ends.
# They wait out an update in progress (UIP, register A bit 7): the time
# registers are stable from UIP's fall until 244 us after its next rise.
# The callers' numbers are always BCD and 24-hour; the RTC may count in
# binary (register B's DM) or 12-hour mode (PM in bit 7 of the hours), and
# is read and written in its own format. The time and date are written with
# SET on (updates stopped), as the datasheet describes. Setting the time
# or date starts a stopped divider (register A's DV = 010), as the AT's
# BIOS does. Setting the time also recomputes the BDA tick count from the
# new time (as POST does: ticks_from_rtc), so AH=00h and AH=02h agree;
# setting the date does not touch the ticks.

    .set RTC_SECONDS, 0x00
    .set RTC_MINUTES, 0x02
    .set RTC_HOURS, 0x04
    .set RTC_DAY, 0x07               # day of the month
    .set RTC_MONTH, 0x08
    .set RTC_YEAR, 0x09
    .set RTC_A, 0x0A
    .set RTC_B, 0x0B
    .set RTC_CENTURY, 0x32           # the IBM AT's century byte
    .set RTC_A_UIP, 0x80             # update in progress
    .set RTC_A_DV_MASK, 0x70         # divider: 010 = 32.768 kHz, running
    .set RTC_A_DV_RUN, 0x20
    .set RTC_B_SET, 0x80             # updates stopped
    .set RTC_B_BINARY, 0x04          # DM: 1 = binary, 0 = BCD
    .set RTC_B_24H, 0x02             # 1 = 24-hour, 0 = 12-hour
    .set RTC_B_DSE, 0x01             # daylight saving enable
    .set RTC_HOURS_PM, 0x80          # 12-hour mode: PM
    .set RTC_UIP_POLLS, 1000000      # UIP lasts 2.228 ms at most

# IRQ 0: one tick. At TICKS_PER_DAY the count wraps to 0 and the midnight
# flag is set (AH=00h reads and clears it).
irq0_handler:
    push ds
    push eax
    mov ax, BDA_SEG
    mov ds, ax
    mov eax, [BDA_TICKS]
    inc eax
    cmp eax, TICKS_PER_DAY
    jb 1f
    xor eax, eax
    mov byte ptr [BDA_MIDNIGHT], 1
1:  mov [BDA_TICKS], eax
    int 0x1C                        # the user tick hook (an iret by default)
    mov al, 0x20
    out PIC1, al
    pop eax
    pop ds
    iret

# ticks_from_rtc: the tick count for the RTC's time of day, at POST and
# after INT 1Ah AH=03h sets the time: seconds since midnight * 1193182 /
# 65536 (the midnight flag cleared).
ticks_from_rtc:
    push eax
    push ebx
    push ecx
    push edx
1:  mov al, 0x0A                    # wait out an update (UIP, register A)
    call cmos_read
    test al, 0x80
    jnz 1b
    mov al, 0x0B
    call cmos_read
    mov bl, al                      # register B: DM (bit 2) says binary
    call rtc_hours
    movzx ecx, al
    imul ecx, ecx, 60
    mov al, 0x02                    # minutes
    call rtc_value
    movzx eax, al
    add ecx, eax
    imul ecx, ecx, 60
    xor al, al                      # seconds
    call rtc_value
    movzx eax, al
    add eax, ecx                    # seconds since midnight
    mov ecx, 1193182
    mul ecx                         # EDX:EAX = seconds * 1193182
    shrd eax, edx, 16               # / 65536
    push ds
    push ax
    mov ax, BDA_SEG
    mov ds, ax
    pop ax
    mov [BDA_TICKS], eax
    mov byte ptr [BDA_MIDNIGHT], 0
    pop ds
    pop edx
    pop ecx
    pop ebx
    pop eax
    ret

# rtc_value: CMOS register AL as a binary number, from BCD unless register
# B (in BL) says the clock counts in binary.
rtc_value:
    call cmos_read
    # fall through

# rtc_decode: AL from the RTC's format (register B in BL) to binary.
rtc_decode:
    test bl, RTC_B_BINARY
    jnz 1f
    call bcd_to_bin
1:  ret

# rtc_encode: AL from binary to the RTC's format (register B in BL).
rtc_encode:
    test bl, RTC_B_BINARY
    jnz 1f
    call bin_to_bcd
1:  ret

# rtc_hours: AL = the RTC's hours, 0-23 in binary (register B in BL). In
# 12-hour mode the register holds 1-12 with PM in bit 7: 12 AM is 0.
rtc_hours:
    mov al, RTC_HOURS
    call cmos_read
    test bl, RTC_B_24H
    jnz rtc_decode
    push cx
    mov cl, al
    and al, ~RTC_HOURS_PM
    call rtc_decode
    cmp al, 12
    jne 1f
    xor al, al
1:  test cl, RTC_HOURS_PM
    jz 2f
    add al, 12
2:  pop cx
    ret

# rtc_set_hours: the RTC's hours = AL (0-23, binary), in its format
# (register B in BL).
rtc_set_hours:
    push ax
    mov ah, 0
    test bl, RTC_B_24H
    jnz 2f
    cmp al, 12                      # 12-hour: 13:00 is 1 PM, 0:00 12 AM
    jb 1f
    sub al, 12
    mov ah, RTC_HOURS_PM
1:  test al, al
    jnz 2f
    mov al, 12
2:  call rtc_encode
    or ah, al
    mov al, RTC_HOURS
    call cmos_write
    pop ax
    ret

# rtc_set: CMOS register AL = AH, a BCD number from a caller, in the RTC's
# format (register B in BL).
rtc_set:
    push ax
    xchg al, ah
    call bcd_to_bin
    call rtc_encode
    xchg al, ah
    call cmos_write
    pop ax
    ret

# rtc_get: AL = CMOS register AL as BCD, whatever the RTC's format
# (register B in BL).
rtc_get:
    call rtc_value
    jmp bin_to_bcd

# bcd_to_bin: AL from BCD to binary.
bcd_to_bin:
    push cx
    mov cl, al
    and cl, 0x0F                    # units
    shr al, 4                       # tens...
    mov ch, al
    shl al, 2
    add al, ch                      # ...times 5...
    shl al, 1                       # ...times 2
    add al, cl
    pop cx
    ret

# bin_to_bcd: AL (0-99) from binary to BCD.
bin_to_bcd:
    push cx
    mov ch, ah
    aam                             # AH = AL / 10, AL = AL mod 10
    shl ah, 4
    or al, ah
    mov ah, ch
    pop cx
    ret

# rtc_ready: waits until the RTC's time registers can be read or written.
# Out: BL = register B; CF set if the clock is not running (the divider
# stopped, SET on, or UIP never falls).
rtc_ready:
    push ax
    push ecx
    mov al, RTC_A
    call cmos_read
    and al, RTC_A_DV_MASK
    cmp al, RTC_A_DV_RUN
    jne 8f
    mov ecx, RTC_UIP_POLLS
1:  mov al, RTC_A
    call cmos_read
    test al, RTC_A_UIP
    jz 2f
    dec ecx
    jnz 1b
    jmp 8f
2:  mov al, RTC_B
    call cmos_read
    mov bl, al
    test al, RTC_B_SET
    jnz 8f
    pop ecx
    pop ax
    clc
    ret
8:  pop ecx
    pop ax
    stc
    ret

# rtc_ready_to_set: rtc_ready, and a clock whose divider is stopped
# started first (DV = 010, the periodic rate kept), as the AT's BIOS does
# before it sets the time or date. Out: BL = register B.
rtc_ready_to_set:
    call rtc_ready
    jnc 2f
    push ax
    mov al, RTC_A
    call cmos_read
    mov ah, al
    and al, RTC_A_DV_MASK
    cmp al, RTC_A_DV_RUN
    je 1f
    and ah, ~(RTC_A_UIP | RTC_A_DV_MASK)
    or ah, RTC_A_DV_RUN
    mov al, RTC_A
    call cmos_write
1:  mov al, RTC_B
    call cmos_read
    mov bl, al
    pop ax
2:  ret

# rtc_hold: prepares a write of the clock (register B in BL, from
# rtc_ready): SET on, so no update happens while the registers are
# written. rtc_release: SET off again, the clock runs from what was
# written.
rtc_hold:
    push ax
    mov ah, bl
    or ah, RTC_B_SET
    mov al, RTC_B
    call cmos_write
    pop ax
    ret

rtc_release:
    push ax
    mov ah, bl
    and ah, ~RTC_B_SET
    mov al, RTC_B
    call cmos_write
    pop ax
    ret

# INT 1Ah: time of day.
int1a_handler:
    sti
    cmp ah, 0x00
    je int1a_get_ticks
    cmp ah, 0x01
    je int1a_set_ticks
    jmp int1a_rtc                   # AH=02h-05h and the rest: the RTC

# AH=00h: CX:DX = ticks since midnight, AL = midnight flag (cleared).
int1a_get_ticks:
    push ds
    push bx
    mov bx, BDA_SEG
    mov ds, bx
    cli
    mov dx, [BDA_TICKS]
    mov cx, [BDA_TICKS + 2]
    mov al, [BDA_MIDNIGHT]
    mov byte ptr [BDA_MIDNIGHT], 0
    sti
    pop bx
    pop ds
    clc
    jmp iret_cf

# AH=01h: ticks since midnight = CX:DX.
int1a_set_ticks:
    push ds
    push bx
    mov bx, BDA_SEG
    mov ds, bx
    cli
    mov [BDA_TICKS], dx
    mov [BDA_TICKS + 2], cx
    mov byte ptr [BDA_MIDNIGHT], 0
    sti
    pop bx
    pop ds
    clc
    jmp iret_cf

# AH=02h-05h: the RTC's time and date.
int1a_rtc:
    cmp ah, 0x02
    je int1a_get_time
    cmp ah, 0x03
    je int1a_set_time
    cmp ah, 0x04
    je int1a_get_date
    cmp ah, 0x05
    je int1a_set_date
    stc
    mov ah, 0x86                    # function not supported
    jmp iret_cf

# int1a_rtc_done / int1a_rtc_fail: the RTC functions' returns, with AX and
# BX pushed.
int1a_rtc_done:
    pop bx
    pop ax
    xor ah, ah
    clc
    jmp iret_cf
int1a_rtc_fail:
    pop bx
    pop ax
    stc
    jmp iret_cf

# AH=02h: CH:CL:DH = hours:minutes:seconds (BCD), DL = DST flag.
int1a_get_time:
    push ax
    push bx
    call rtc_ready
    jc int1a_rtc_fail
    mov al, RTC_SECONDS
    call rtc_get
    mov dh, al
    mov al, RTC_MINUTES
    call rtc_get
    mov cl, al
    call rtc_hours
    call bin_to_bcd
    mov ch, al
    mov dl, bl
    and dl, RTC_B_DSE
    jmp int1a_rtc_done

# AH=03h: the time = CH:CL:DH (BCD); daylight saving on if DL bit 0.
int1a_set_time:
    push ax
    push bx
    call rtc_ready_to_set
    call rtc_hold
    mov ah, dh
    mov al, RTC_SECONDS
    call rtc_set
    mov ah, cl
    mov al, RTC_MINUTES
    call rtc_set
    mov al, ch
    call bcd_to_bin
    call rtc_set_hours
    and bl, ~RTC_B_DSE
    mov al, dl
    and al, RTC_B_DSE
    or bl, al
    call rtc_release
    call ticks_from_rtc             # the BDA count follows the new time
    jmp int1a_rtc_done

# AH=04h: CH = century, CL = year, DH = month, DL = day (BCD).
int1a_get_date:
    push ax
    push bx
    call rtc_ready
    jc int1a_rtc_fail
    mov al, RTC_CENTURY
    call rtc_get
    mov ch, al
    mov al, RTC_YEAR
    call rtc_get
    mov cl, al
    mov al, RTC_MONTH
    call rtc_get
    mov dh, al
    mov al, RTC_DAY
    call rtc_get
    mov dl, al
    jmp int1a_rtc_done

# AH=05h: the date = century CH, year CL, month DH, day DL (BCD). The day
# of the week (register 6) is not written, as in SeaBIOS: ringlab's RTC
# derives it from the date until software writes it (the MC146818A itself
# just counts it on).
int1a_set_date:
    push ax
    push bx
    call rtc_ready_to_set
    call rtc_hold
    mov ah, ch
    mov al, RTC_CENTURY
    call rtc_set
    mov ah, cl
    mov al, RTC_YEAR
    call rtc_set
    mov ah, dh
    mov al, RTC_MONTH
    call rtc_set
    mov ah, dl
    mov al, RTC_DAY
    call rtc_set
    call rtc_release
    jmp int1a_rtc_done
