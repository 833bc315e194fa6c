# util.S: small helpers the rest of the firmware shares.

# iret_cf: return from an interrupt handler with the carry flag as a
# result. The caller's FLAGS were pushed by its INT at [sp+4] (after IP and
# CS); CF there is replaced by the current CF, so the caller sees the
# result and keeps its own IF, DF, TF.
#   Use: `jmp iret_cf` (not call) as the handler's last instruction.
iret_cf:
    push bp
    mov bp, sp
    jc 1f
    and byte ptr [bp + 6], 0xFE     # [bp+2] IP, [bp+4] CS, [bp+6] FLAGS
    pop bp
    iret
1:  or byte ptr [bp + 6], 0x01
    pop bp
    iret

# iret_zf: the same for the zero flag (INT 16h AH=01h: ZF set, no key).
#   Use: `jmp iret_zf` as the handler's last instruction.
iret_zf:
    push bp
    mov bp, sp
    jz 1f
    and byte ptr [bp + 6], 0xBF     # ZF is bit 6
    pop bp
    iret
1:  or byte ptr [bp + 6], 0x40
    pop bp
    iret

# fw_putc: AL to the debug console (port 0xE9) and the screen (teletype).
fw_putc:
    push ax
    push bx
    out DEBUGCON, al
    mov ah, 0x0E
    xor bx, bx
    int 0x10
    pop bx
    pop ax
    ret

# fw_puts: the NUL-terminated string at CS:SI (firmware messages live in
# the ROM) to the debug console and the screen.
fw_puts:
    push ax
    push si
1:  mov al, cs:[si]
    test al, al
    jz 2f
    call fw_putc
    inc si
    jmp 1b
2:  pop si
    pop ax
    ret

# fw_putdec: AX in decimal.
fw_putdec:
    push ax
    push cx
    push dx
    push bx
    mov bx, 10
    xor cx, cx
1:  xor dx, dx
    div bx
    push dx
    inc cx
    test ax, ax
    jnz 1b
2:  pop ax
    add al, '0'
    call fw_putc
    loop 2b
    pop bx
    pop dx
    pop cx
    pop ax
    ret

# cmos_read: AL = CMOS register AL (the NMI mask bit is kept clear).
# Interrupts are off between selecting the register and reading it, so an
# interrupt handler that uses the CMOS cannot select another in between
# (the AT BIOS's CMOS_READ does the same).
cmos_read:
    pushf
    cli
    and al, 0x7F
    out RTC_INDEX, al
    in al, RTC_DATA
    popf
    ret

# cmos_write: CMOS register AL = AH (interrupts off meanwhile, as above).
cmos_write:
    pushf
    cli
    and al, 0x7F
    out RTC_INDEX, al
    mov al, ah
    out RTC_DATA, al
    popf
    ret

# io_delay: a short pause between accesses to slow ISA chips (a write to
# an unused port, as PC BIOSes do with port 80h).
io_delay:
    out 0xED, al
    ret
