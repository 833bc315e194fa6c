# time.S: the PC's clock. IRQ 0 (INT 08h) counts ticks since midnight in
# the BDA, 18.2 a second, and calls INT 1Ch, the user's tick hook; INT 1Ah
# reads and sets that count and the RTC's time and date (RBIL INT 1A).

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

# ticks_from_rtc: the tick count for the RTC's time of day, at POST:
# seconds since midnight * 1193182 / 65536.
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
    mov al, 0x04                    # hours
    call rtc_value
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
    test bl, 0x04
    jnz 1f
    call bcd_to_bin
1:  ret

# bcd_to_bin: AL from BCD to binary.
bcd_to_bin:
    push cx
    mov cl, al
    shr al, 4
    mov ch, 10
    mul ch
    and cl, 0x0F
    add al, cl
    pop cx
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

# AH=02h-05h: the RTC's time and date (to be completed: time-rtc).
int1a_rtc:
    stc
    mov ah, 0x86                    # function not supported
    jmp iret_cf
