# post.S: the power-on self test. From the reset vector to INT 19h, each
# step puts one part of the PC where software expects a BIOS to leave it.

post:
    cli
    cld
    POST POST_START
    # A stack in free conventional memory, below the boot sector's 7C00.
    xor ax, ax
    mov ss, ax
    mov sp, 0x7000
    mov ds, ax
    mov es, ax

# -- The interrupt controllers (8259A datasheet, "Initialization Command
# Words"). The PC/AT's layout: the master's IRQ 0-7 at vectors 08h-0Fh, the
# slave's IRQ 8-15 at 70h-77h, the slave cascaded on the master's IR2.
# Everything masked until its handler is in the IVT.
    POST POST_PIC
    mov al, 0x11                    # ICW1: edge, cascade, ICW4 follows
    out PIC1, al
    call io_delay
    out PIC2, al
    call io_delay
    mov al, 0x08                    # ICW2: vector bases
    out PIC1 + 1, al
    call io_delay
    mov al, 0x70
    out PIC2 + 1, al
    call io_delay
    mov al, 0x04                    # ICW3: slave on IR2 / slave ID 2
    out PIC1 + 1, al
    call io_delay
    mov al, 0x02
    out PIC2 + 1, al
    call io_delay
    mov al, 0x01                    # ICW4: 8086 mode, normal EOI
    out PIC1 + 1, al
    call io_delay
    out PIC2 + 1, al
    call io_delay
    mov al, 0xFF                    # OCW1: all masked for now
    out PIC1 + 1, al
    out PIC2 + 1, al

# -- The timer (8254 datasheet): channel 0 in mode 3 (square wave) with the
# largest count, 65536: 1193182 / 65536 = 18.2065 interrupts a second, the
# PC's "tick". Channel 2 (the speaker) stays off (port 61h).
    POST POST_PIT
    mov al, 0x36                    # channel 0, lobyte/hibyte, mode 3, binary
    out PIT + 3, al
    xor al, al                      # count 0 = 65536
    out PIT, al
    out PIT, al

# -- The real-time clock (MC146818A datasheet, registers A-D): the divider
# running at 32.768 kHz, the 1024 Hz periodic rate, 24-hour BCD time, no
# interrupts enabled; register C read to clear any pending flag; the
# shutdown status byte 0Fh cleared (a normal power-on).
    POST POST_RTC
    mov ax, 0x260A                  # register A = 26h
    call cmos_write
    mov al, 0x0B                    # register B: keep SET/DSE off, 24 h, BCD
    call cmos_read
    and al, 0x06                    # keep DM (binary) and 24/12 as set
    or al, 0x02                     # 24-hour
    mov ah, al
    mov al, 0x0B
    call cmos_write
    mov al, 0x0C
    call cmos_read
    mov ax, 0x000F                  # shutdown status = 0
    call cmos_write

# -- The keyboard controller (IBM PC AT Technical Reference, "Keyboard
# Controller"): self test, interface test, the command byte, then the
# keyboard's own reset and enabling (keyboard.S).
    POST POST_KBC
    call kbc_init

# -- A20 off: the 8086's wraparound at 1 MiB, as a PC's firmware hands the
# machine to DOS-era software (port 92h bit 1; the 8042's output port
# shares the one gate).
    in al, FAST_A20
    and al, 0xFC
    out FAST_A20, al

# -- The interrupt vector table: every vector to a handler that does
# nothing (`iret`), the hardware IRQs to one that acknowledges the
# interrupt controller, then each service installed.
    POST POST_IVT
    xor di, di
    mov cx, 256
1:  mov word ptr [di], offset default_handler
    mov word ptr [di + 2], 0xF000
    add di, 4
    loop 1b
    mov si, offset ivt_hw
2:  mov bl, cs:[si]                 # table entries: vector, handler
    cmp bl, 0xFF
    je 3f
    movzx di, bl
    shl di, 2
    mov ax, cs:[si + 1]
    mov [di], ax
    mov word ptr [di + 2], 0xF000
    add si, 3
    jmp 2b
3:

# -- The BIOS data area (RBIL "MEMORY.LST", segment 0040h).
    POST POST_BDA
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    xor di, di                      # clear 0040:0000-0040:00FF
    push es
    mov es, ax
    xor ax, ax
    mov cx, 128
    rep stosw
    pop es
    mov word ptr [BDA_COM_PORTS], COM1
    mov word ptr [BDA_EBDA_SEG], EBDA_SEG
    # Equipment word (INT 11h): bit 1 no 8087, bits 5-4 = 10b 80x25
    # colour, bits 11-9 = one serial port, no floppy, no printer.
    mov word ptr [BDA_EQUIPMENT], 0x0220
    mov ax, 640 - EBDA_KB
    mov word ptr [BDA_MEM_KB], ax
    mov word ptr [BDA_KBD_HEAD], BDA_KBD_BUF
    mov word ptr [BDA_KBD_TAIL], BDA_KBD_BUF
    mov word ptr [BDA_KBD_BUF_START], BDA_KBD_BUF
    mov word ptr [BDA_KBD_BUF_LIMIT], BDA_KBD_BUF_END
    mov byte ptr [BDA_KBD_FLAGS3], 0x10 # a 101-key keyboard (INT 16h 10h-12h)
    mov word ptr [BDA_CRTC_PORT], CRTC_INDEX
    pop ds

# -- The serial ports: which of COM1-COM4 answer, listed in the BDA for
# INT 14h (serial.S).
    call serial_init

# -- The EBDA: its size in KiB in its first byte.
    push es
    mov ax, EBDA_SEG
    mov es, ax
    xor di, di
    xor ax, ax
    mov cx, EBDA_KB * 512
    rep stosw
    mov byte ptr es:[0], EBDA_KB
    pop es

# -- Memory, from the CMOS (IBM AT CMOS map): extended memory (above
# 1 MiB, KiB, at most 63 MiB) at 30h-31h, memory above 16 MiB in 64 KiB
# units at 34h-35h (as QEMU and SeaBIOS keep it). system.S keeps the size
# and the E820 map in the EBDA (so after it is cleared) for INT 15h
# E820/E801/88h.
    POST POST_MEMORY
    call memory_init

# -- The tick count from the RTC's time of day (time.S), so INT 1Ah AH=00h
# agrees with the clock.
    call ticks_from_rtc

# -- The screen: text mode 3 (video.S sets the BDA's video fields).
    POST POST_VIDEO
    mov ax, 0x0003
    int 0x10

# -- The disks: which ATA drives answer IDENTIFY (disk.S).
    POST POST_DISKS
    call disk_init

# -- The MultiProcessor tables for kernels that use the APICs (mptable.S).
    POST POST_MPTABLE
    call mptable_init

# -- Interrupts on: the timer, the keyboard, the cascade.
    in al, PIC1 + 1
    and al, 0xF8                    # IRQ 0, 1, 2
    out PIC1 + 1, al

# -- The banner: firmware, memory, disks.
    mov si, offset banner
    call fw_puts
    mov ax, [BDA_SEG * 16 + BDA_MEM_KB]
    call fw_putdec
    mov si, offset banner_base
    call fw_puts
    call extended_kb                # EAX = KiB above 1 MiB (system.S)
    shr eax, 10                     # MiB: at most 4095, fits AX
    call fw_putdec
    mov si, offset banner_ext
    call fw_puts
    movzx ax, byte ptr [BDA_SEG * 16 + BDA_HARD_DISKS]
    call fw_putdec
    mov si, offset banner_disks
    call fw_puts

    sti
    POST POST_BOOT
    int 0x19
    # INT 19h does not return.

banner:
    .asciz "ringlab BIOS\r\nMemory: "
banner_base:
    .asciz " KiB base, "
banner_ext:
    .asciz " MiB extended; hard disks: "
banner_disks:
    .asciz "\r\n\r\n"

# default_handler: an interrupt nobody installed a handler for.
default_handler:
    iret

# The IVT entries POST installs: (vector, handler) pairs, FFh ends.
ivt_hw:
    .byte 0x08
    .word irq0_handler
    .byte 0x09
    .word irq1_handler
    .irp v, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
    .byte \v
    .word master_irq_handler
    .endr
    .irp v, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77
    .byte \v
    .word slave_irq_handler
    .endr
    .byte 0x10
    .word int10_handler
    .byte 0x11
    .word int11_handler
    .byte 0x12
    .word int12_handler
    .byte 0x13
    .word int13_handler
    .byte 0x14
    .word int14_handler
    .byte 0x15
    .word int15_handler
    .byte 0x16
    .word int16_handler
    .byte 0x18
    .word int18_handler
    .byte 0x19
    .word int19_handler
    .byte 0x1A
    .word int1a_handler
    .byte 0xFF

# master_irq_handler / slave_irq_handler: an IRQ nothing handles is
# acknowledged so the controller does not wait for it forever. A spurious
# IRQ 7 or 15 (8259A datasheet: its ISR bit is clear) gets no EOI from its
# own chip.
master_irq_handler:
    push ax
    mov al, 0x0B                    # OCW3: read ISR
    out PIC1, al
    in al, PIC1
    test al, al
    jz 1f                           # spurious: nothing in service
    mov al, 0x20
    out PIC1, al
1:  pop ax
    iret

slave_irq_handler:
    push ax
    mov al, 0x0B
    out PIC2, al
    in al, PIC2
    test al, al
    jz 1f                           # spurious IRQ 15: only the master
    mov al, 0x20
    out PIC2, al
1:  mov al, 0x20
    out PIC1, al
    pop ax
    iret
