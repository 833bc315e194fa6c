# bios-sys-wait.S: INT 15h AH=86h, wait CX:DX microseconds, measured two
# ways: with interrupts on, against the BIOS tick count (18.2 Hz); with
# interrupts off, against the PIT's counter 2 (1.193182 MHz), which this
# guest starts itself. Only pass or fail is printed: on KVM virtual time
# is host time.
    .include "bios-sys.inc"

main:
# 500 ms = 9.10 ticks: from a tick edge, 9 ticks have been counted when
# the wait ends (10 if it overshoots by 50 ms) on interp and bt. KVM runs in
# host time, and on a busy host the count is off both ways: IRQ 0 edges
# the vCPU could not take in time are merged (the 8254 model sends one
# pulse for edges it was late for: 7-8 measured), and polling slower than
# the RTC's 1024 Hz merges periodic flags, so the wait runs long (15
# measured with both cores loaded). 6-40 passes: the wait neither ended
# early by much nor never.
    PRINT "500 ms with IF=1:"
    sti
    call next_tick
    mov esi, eax
    mov cx, 0x0007                  # 500000 us = 0007A120h
    mov dx, 0xA120
    mov ah, 0x86
    int 0x15
    call putcf_ah
    call ticks
    sub eax, esi
    cmp eax, 6
    jb 8f
    cmp eax, 40
    ja 8f
    PRINT "6-40 ticks, ok"
    jmp 9f
8:  PRINT "FAIL: "
    call puthex32
9:  call newline

# 20 ms with IF=0 = 23864 PIT clocks at least. Counter 2 in mode 0 counts
# down from FFFFh while port 61h's GATE2 is on, and its OUT goes high at
# 0, 54.9 ms later: the wait must end before (it overshoots by two RTC
# periods, 2 ms, on an idle host).
    PRINT "20 ms with IF=0:"
    cli
    in al, 0x61
    and al, 0xFC                    # GATE2 off, speaker off
    out 0x61, al
    mov al, 0xB0                    # counter 2, LSB then MSB, mode 0, binary
    out 0x43, al
    mov al, 0xFF
    out 0x42, al
    out 0x42, al
    in al, 0x61
    or al, 0x01                     # GATE2 on: counting
    out 0x61, al
    mov cx, 0
    mov dx, 20000
    mov ah, 0x86
    int 0x15
    pushf
    push ax
    mov al, 0xC8                    # read-back: status and count of counter 2
    out 0x43, al
    in al, 0x42
    mov cl, al                      # status: bit 7 OUT
    in al, 0x42
    mov bl, al
    in al, 0x42
    mov bh, al
    pop ax
    popf
    sti
    call putcf_ah
    mov ax, 0xFFFF
    sub ax, bx
    mov bx, ax                      # clocks elapsed
    test cl, 0x80
    jnz 8f
    cmp bx, 23864
    jb 8f
    PRINT "ok"
    jmp 9f
8:  PRINT "FAIL: "
    mov ax, bx
    call puthex16
9:  call newline

    PRINT "0 us"
    xor cx, cx
    xor dx, dx
    mov ah, 0x86
    int 0x15
    call putcf_ah
    call newline

# With the RTC's divider stopped there is nothing to count.
    PRINT "RTC stopped"
    mov al, 0x0A
    out 0x70, al
    mov al, 0x76                    # DV = 111: divider reset
    out 0x71, al
    mov cx, 0
    mov dx, 1000
    mov ah, 0x86
    int 0x15
    call putcf_ah
    call newline
    mov al, 0x0A
    out 0x70, al
    mov al, 0x26
    out 0x71, al
    EXIT 0

# putcf_ah: CF and AH after a call (keeps AX).
putcf_ah:
    call putcf
    push ax
    PRINT " ah "
    mov al, ah
    call puthex8
    call space
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

# next_tick: waits for the tick count to change; EAX = the new count.
next_tick:
    call ticks
    mov ebx, eax
1:  hlt
    call ticks
    cmp eax, ebx
    je 1b
    ret

    SYS_END
