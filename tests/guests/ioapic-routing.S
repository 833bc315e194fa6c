# ioapic-routing.S: the ISA devices' interrupts through the 82093AA I/O
# APIC with the 8259A pair masked, as xv6 and Linux set the machine up.
#
# The local APIC is software-enabled with LINT0 and LINT1 masked (xv6's
# lapicinit), so nothing of the 8259A reaches the CPU; every handler ends
# with an EOI to the local APIC. The I/O APIC is programmed through
# IOREGSEL/IOWIN (datasheet 3.1): every pin masked first (xv6's
# ioapicinit), then one device at a time unmasked, edge-triggered, active
# high, physical destination 0 (the local APIC's ID). ISA IRQ n uses vector
# 0x30 + n. The board wires IRQ n to pin n, except the PIT's IRQ 0 to pin 2
# (the MP table's interrupt source override); pin 0 is unmasked too, with
# vector 0x50, to show that nothing arrives there.
#
# - PIT: channel 0 in mode 0 (one interrupt at terminal count), three times.
# - Keyboard: the test types "ab" (set 1 after the 8042's translation:
#   1e 9e 30 b0), one interrupt per byte, each read from port 0x60 (a
#   read drops IRQ 1 and the next byte raises it again: an edge).
# - COM1: the test sends "hi"; receive-data interrupts (IER bit 0, OUT2 to
#   connect INTR to the bus); the handler drains the receiver.
# - ATA: READ SECTORS of two sectors from the primary master, one
#   interrupt per sector (nIEN clear); the handler reads the status, which
#   releases INTRQ.
# - ATA again with pin 14 level-triggered (vector 0x3D): in the handler the
#   entry shows remote IRR and the TMR bit is set; an EOI while INTRQ is
#   still asserted (status not read) makes the I/O APIC send again; after
#   the status read and the EOI remote IRR is clear.
    .include "platform.inc"

    .set LAPIC, 0xFEE00000
    .set L_TPR, 0x080
    .set L_EOI, 0x0B0
    .set L_SVR, 0x0F0
    .set L_TMR, 0x180
    .set L_LVT_LINT0, 0x350
    .set L_LVT_LINT1, 0x360
    .set LVT_MASKED, 0x10000

    .set IOAPIC, 0xFEC00000
    .set IOREGSEL, 0x00
    .set IOWIN, 0x10
    .set IO_ID, 0x00
    .set IO_VERSION, 0x01
    .set IO_TABLE, 0x10            # entry n: IO_TABLE + 2n (low), + 2n + 1 (high)
    .set RTE_MASKED, 0x10000
    .set RTE_LEVEL, 0x8000

    .set V_PIT, 0x30
    .set V_KBD, 0x31
    .set V_COM1, 0x34
    .set V_ATA, 0x3E
    .set V_ATA_LEVEL, 0x3D
    .set V_PIN0, 0x50

    .set ATA, 0x1F0
    .set ATA_CTRL, 0x3F6

.macro GATE vector, handler
    mov ecx, \vector
    mov eax, offset \handler
    call set_gate
.endm

.macro EOI
    mov dword ptr [LAPIC + L_EOI], 0
.endm

main:
    GATE V_PIT, pit_irq
    GATE V_KBD, kbd_irq
    GATE V_COM1, com1_irq
    GATE V_ATA, ata_irq
    GATE V_ATA_LEVEL, ata_level_irq
    GATE V_PIN0, pin0_irq

    # The local APIC: enabled (spurious vector 0xFF), LINT0 and LINT1
    # masked, TPR 0. The 8259As stay initialised and fully masked.
    mov dword ptr [LAPIC + L_SVR], 0x1FF
    mov dword ptr [LAPIC + L_LVT_LINT0], LVT_MASKED
    mov dword ptr [LAPIC + L_LVT_LINT1], LVT_MASKED
    mov dword ptr [LAPIC + L_TPR], 0
    mov al, 0xFF
    out PIC1 + 1, al
    out PIC2 + 1, al

    mov esi, offset msg_id
    call puts
    mov eax, IO_ID
    call ioapic_read
    shr eax, 24
    call putdec
    mov esi, offset msg_version
    call puts
    mov eax, IO_VERSION
    call ioapic_read
    call puthex
    mov esi, offset msg_pins
    call puts
    shr eax, 16                    # maximum redirection entry
    and eax, 0xFF
    inc eax
    call putdec
    call newline

    # Every pin masked, vector 0x30 + pin, destination 0.
    xor ecx, ecx
1:  lea eax, [ecx + 0x30 + RTE_MASKED]
    call ioapic_route
    inc ecx
    cmp ecx, 24
    jb 1b

    # Pin 0: nothing is wired there.
    mov ecx, 0
    mov eax, V_PIN0
    call ioapic_route

    # The PIT on pin 2: three one-shot countdowns (mode 0, 1193 counts,
    # 1 ms), each ending in one rising edge of OUT0.
    mov ecx, 2
    mov eax, V_PIT
    call ioapic_route
    mov ebx, 3
2:  mov al, 0x30                   # channel 0, LSB then MSB, mode 0
    out 0x43, al
    mov ax, 1193
    out 0x40, al
    mov al, ah
    out 0x40, al
    mov eax, [pit_count]
    inc eax
    call wait_count_pit
    dec ebx
    jnz 2b
    mov esi, offset msg_pit
    call puts
    mov eax, [pit_count]
    call putdec
    call newline

    # The keyboard on pin 1. The typed keys are already waiting: they
    # began to flow when platform.inc initialised the 8259As (ICW1 clears
    # the IMR until OCW1 masks it again; Machine::key_events), so IRQ 1 is
    # high and unmasking the edge-triggered pin alone makes no edge. As
    # Linux's i8042 set-up does, the keyboard interrupt is turned off in
    # the 8042's command byte (bit 0) while the route is programmed and on
    # again after: IRQ 1 falls and rises.
    mov ah, 0x64                   # translate, system flag, no interrupt
    call kbc_command_byte
    mov ecx, 1
    mov eax, V_KBD
    call ioapic_route
    mov ah, 0x65                   # and the keyboard interrupt
    call kbc_command_byte
    mov edi, offset kbd_count
    mov eax, 4
    call wait_count
    mov esi, offset msg_kbd
    call puts
    mov eax, [kbd_count]
    call putdec
    mov esi, offset msg_scancodes
    call puts
    xor edx, edx
3:  cmp edx, [kbd_count]
    jae 4f
    mov al, ' '
    call putc
    mov al, [kbd_bytes + edx]
    call puthex2
    inc edx
    jmp 3b
4:  call newline

    # COM1 on pin 4: receive-data interrupts, FIFOs off (16450 mode).
    mov ecx, 4
    mov eax, V_COM1
    call ioapic_route
    mov dx, COM1 + 2               # FCR: FIFOs off
    xor al, al
    out dx, al
    mov dx, COM1 + 1               # IER: received data available
    mov al, 0x01
    out dx, al
    mov dx, COM1 + 4               # MCR: DTR, RTS, OUT2 (INTR to the bus)
    mov al, 0x0B
    out dx, al
    mov edi, offset com1_len
    mov eax, 2
    call wait_count
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov esi, offset msg_com1
    call puts
    mov eax, [com1_count]
    call putdec
    mov esi, offset msg_iir
    call puts
    mov al, [com1_iir]
    call puthex2
    mov esi, offset msg_received
    call puts
    mov esi, offset com1_bytes
    call puts
    mov al, '"'
    call putc
    call newline

    # The primary ATA channel on pin 14: two sectors, an interrupt each.
    mov ecx, 14
    mov eax, V_ATA
    call ioapic_route
    mov dx, ATA_CTRL               # nIEN = 0: INTRQ enabled
    xor al, al
    out dx, al
    mov al, 2                      # sectors
    xor ebx, ebx                   # LBA 0
    call ata_read_sectors
    mov edi, offset ata_count
    mov eax, 1
    call wait_count
    mov edi, offset sector_buf
    call ata_read_block
    mov edi, offset ata_count
    mov eax, 2
    call wait_count
    mov edi, offset sector_buf + 512
    call ata_read_block
    mov esi, offset msg_ata
    call puts
    mov eax, [ata_count]
    call putdec
    mov esi, offset msg_status
    call puts
    mov al, [ata_status]
    call puthex2
    call newline
    mov esi, offset sector_buf
    call put_sector
    mov esi, offset sector_buf + 512
    call put_sector

    # Pin 14 level-triggered, vector 0x3D: one sector (LBA 2).
    mov ecx, 14
    mov eax, V_ATA_LEVEL | RTE_LEVEL
    call ioapic_route
    mov al, 1
    mov ebx, 2
    call ata_read_sectors
    mov edi, offset level_count
    mov eax, 2
    call wait_count
    mov edi, offset sector_buf
    call ata_read_block
    mov esi, offset msg_level
    call puts
    mov eax, [level_count]
    call putdec
    call newline
    mov esi, offset msg_level_entry
    call puts
    mov eax, [level_entry]
    call puthex
    mov esi, offset msg_level_tmr
    call puts
    mov eax, [level_tmr]
    shr eax, V_ATA_LEVEL - 32      # vector 0x3D: bit 29 of TMR word 1
    and eax, 1
    call putdec
    call newline
    mov esi, offset msg_level_after
    call puts
    mov eax, IO_TABLE + 2 * 14
    call ioapic_read
    call puthex
    call newline
    mov esi, offset sector_buf
    call put_sector

    # Everything masked again.
    mov ecx, 14
    mov eax, RTE_MASKED | V_ATA
    call ioapic_route
    mov esi, offset msg_pin0
    call puts
    mov eax, [pin0_count]
    call putdec
    call newline
    ret

# ioapic_read: EAX = register EAX. ioapic_write: register ECX = EAX.
ioapic_read:
    mov [IOAPIC + IOREGSEL], eax
    mov eax, [IOAPIC + IOWIN]
    ret
ioapic_write:
    mov [IOAPIC + IOREGSEL], ecx
    mov [IOAPIC + IOWIN], eax
    ret

# ioapic_route: pin ECX's entry = EAX (low half), destination APIC 0 (the
# high half written first, so an unmasking low half finds it set).
ioapic_route:
    push ecx
    push eax
    lea ecx, [IO_TABLE + ecx * 2 + 1]
    xor eax, eax
    call ioapic_write
    dec ecx
    pop eax
    call ioapic_write
    pop ecx
    ret

# kbc_command_byte: the 8042's command byte = AH (command 60h), each
# write once the input buffer is empty.
kbc_command_byte:
    call kbc_wait
    mov al, 0x60
    out 0x64, al
    call kbc_wait
    mov al, ah
    out 0x60, al
    ret
kbc_wait:
    in al, 0x64
    test al, 0x02
    jnz kbc_wait
    ret

# wait_count: sleeps until the dword at EDI reaches EAX (interrupts on
# while asleep only).
wait_count:
1:  cmp [edi], eax
    jae 2f
    sti
    hlt
    cli
    jmp 1b
2:  ret

wait_count_pit:
    mov edi, offset pit_count
    jmp wait_count

# ata_read_sectors: READ SECTORS (20h) of AL sectors at LBA EBX, drive 0.
ata_read_sectors:
    push eax
    mov dx, ATA + 6
    mov eax, ebx
    shr eax, 24
    and al, 0x0F
    or al, 0xE0                    # LBA, drive 0
    out dx, al
    mov dx, ATA + 7
1:  in al, dx                      # BSY clear before the command
    test al, 0x80
    jnz 1b
    pop eax
    mov dx, ATA + 2
    out dx, al
    mov eax, ebx
    mov dx, ATA + 3
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    mov dx, ATA + 7
    mov al, 0x20
    out dx, al
    ret

# ata_read_block: 256 words from the data port to EDI.
ata_read_block:
    mov dx, ATA
    mov ecx, 256
    cld
    rep insw
    ret

# put_sector: the NUL-terminated text at the start of the sector at ESI.
put_sector:
    push esi
    mov esi, offset msg_sector
    call puts
    pop esi
    call puts
    mov al, '"'
    call putc
    jmp newline

pit_irq:
    inc dword ptr [pit_count]
    EOI
    iret

pin0_irq:
    inc dword ptr [pin0_count]
    EOI
    iret

kbd_irq:
    push eax
    push edx
    in al, 0x60
    mov edx, [kbd_count]
    cmp edx, 16
    jae 1f
    mov [kbd_bytes + edx], al
1:  inc dword ptr [kbd_count]
    EOI
    pop edx
    pop eax
    iret

com1_irq:
    push eax
    push edx
    push edi
    inc dword ptr [com1_count]
    mov dx, COM1 + 2               # IIR: why
    in al, dx
    cmp dword ptr [com1_count], 1
    jne 1f
    mov [com1_iir], al
1:  mov dx, COM1 + 5               # drain while LSR.DR
    in al, dx
    test al, 0x01
    jz 2f
    mov dx, COM1
    in al, dx
    mov edi, [com1_len]
    cmp edi, 15
    jae 1b
    mov [com1_bytes + edi], al
    inc dword ptr [com1_len]
    jmp 1b
2:  EOI
    pop edi
    pop edx
    pop eax
    iret

ata_irq:
    push eax
    push edx
    mov dx, ATA + 7                # status: releases INTRQ
    in al, dx
    mov [ata_status], al
    inc dword ptr [ata_count]
    EOI
    pop edx
    pop eax
    iret

# Level-triggered: the first time the EOI comes before the status read.
ata_level_irq:
    push eax
    push edx
    inc dword ptr [level_count]
    cmp dword ptr [level_count], 1
    jne 1f
    mov eax, IO_TABLE + 2 * 14
    call ioapic_read
    mov [level_entry], eax
    mov eax, [LAPIC + L_TMR + 0x10]
    mov [level_tmr], eax
    EOI                            # INTRQ still asserted: sent again
    jmp 2f
1:  mov dx, ATA + 7
    in al, dx
    EOI
2:  pop edx
    pop eax
    iret

msg_id:         .asciz "I/O APIC ID "
msg_version:    .asciz ", version "
msg_pins:       .asciz ", pins "
msg_pit:        .asciz "PIT (IRQ 0) on pin 2 -> vector 0x30, three one-shot countdowns: interrupts "
msg_kbd:        .asciz "keyboard (IRQ 1) on pin 1 -> vector 0x31: interrupts "
msg_scancodes:  .asciz ", bytes"
msg_com1:       .asciz "COM1 (IRQ 4) on pin 4 -> vector 0x34: interrupts "
msg_iir:        .asciz ", first IIR "
msg_received:   .asciz ", received \""
msg_ata:        .asciz "ATA (IRQ 14) on pin 14 -> vector 0x3e, READ SECTORS x2: interrupts "
msg_status:     .asciz ", last status "
msg_sector:     .asciz "  sector: \""
msg_level:      .asciz "ATA with pin 14 level-triggered -> vector 0x3d, EOI before the status read the first time: handler entries "
msg_level_entry: .asciz "  pin 14 entry (low) in the first entry "
msg_level_tmr:  .asciz ", TMR bit "
msg_level_after: .asciz "  pin 14 entry (low) after the status read and EOI "
msg_pin0:       .asciz "pin 0 (nothing wired) -> vector 0x50: interrupts "

# Variables, on a page of their own.
    .set VARS, 0x200000
    .set pit_count, VARS + 0x00
    .set kbd_count, VARS + 0x04
    .set com1_count, VARS + 0x08
    .set com1_len, VARS + 0x0C
    .set com1_iir, VARS + 0x10
    .set ata_count, VARS + 0x14
    .set ata_status, VARS + 0x18
    .set level_count, VARS + 0x1C
    .set level_entry, VARS + 0x20
    .set level_tmr, VARS + 0x24
    .set pin0_count, VARS + 0x28
    .set kbd_bytes, VARS + 0x80    # 16 bytes
    .set com1_bytes, VARS + 0x90   # 16 bytes, NUL-terminated
    .set sector_buf, VARS + 0x200  # two sectors
