# mptable.S: the tables of the Intel MultiProcessor Specification 1.4
# (MPS), which tell an operating system where the APICs are and how the
# interrupt lines reach them. xv6, Linux (without ACPI) and many teaching
# kernels read them.
#
# Two structures, both in the EBDA, where an OS looks first (MPS 4.0: the
# EBDA's first KiB, then the last KiB of base memory, then F0000-FFFFF):
#
#   the floating pointer (MPS 4.1), 16 bytes at EBDA offset 10h, on a
#   16-byte boundary as the search requires: the signature "_MP_", the
#   address of the configuration table, and the feature bytes;
#
#   the configuration table (MPS 4.2), at EBDA offset 20h: a header, then
#   entries sorted by type: processors, buses, I/O APICs, I/O interrupt
#   assignments, local interrupt assignments (MPS 4.3).
#
# Each has a checksum byte that makes all its bytes add up to 0 (mod 256).
#
# What the tables say is ringlab's board (machine/src/board.rs): one CPU,
# its local APIC at FEE00000h; one ISA bus; the I/O APIC, ID 1, at
# FEC00000h; ISA IRQ n on I/O APIC pin n except IRQ 0 (the PIT) on pin 2,
# IRQ 2 (the cascade) on none; the 8259A pair on LINT0 (ExtINT) and NMI on
# LINT1 of every local APIC. That is MPS 3.6.2.2's "virtual wire" mode:
# the machine starts as a PC/AT, the 8259A reaching the CPU through the
# local APIC, and no IMCR (feature byte 2 bit 7 clear), so an OS switches
# to the I/O APIC by masking the 8259As and programming the I/O APIC.
# Like SeaBIOS under QEMU, no I/O interrupt entry names pin 0: the 8259A's
# output is not wired there on this board, only to LINT0.
#
# The processor's signature and features come from CPUID, the local
# APIC's ID and version and the I/O APIC's version from the chips
# themselves (read above 1 MiB in a moment of protected mode: apic_probe);
# the rest is the template below, copied into the EBDA.

# The floating pointer's fields (MPS table 4-1).
    .set MPF_SIGNATURE, 0            # "_MP_"
    .set MPF_CONFIG, 4               # physical address of the table
    .set MPF_LENGTH, 8               # in 16-byte units: 1
    .set MPF_REVISION, 9             # 4: MPS 1.4
    .set MPF_CHECKSUM, 10
    .set MPF_FEATURE1, 11            # 0: a table follows (no default config)
    .set MPF_FEATURE2, 12            # bit 7 IMCRP: 0, virtual wire
    .set MPF_SIZE, 16
    .set MPC_CHECKSUM, 7             # the configuration table's checksum

# apic_probe's segment selectors (its GDT, probe_gdt, is below it).
    .set PROBE_CODE, 0x08
    .set PROBE_FLAT, 0x10
    .set PROBE_REAL, 0x18

mptable_init:
    push ds
    push es
    push eax
    push ebx
    push ecx
    push edx
    push si
    push di
    mov ax, BDA_SEG
    mov ds, ax
    mov es, [BDA_EBDA_SEG]
    movzx edx, word ptr [BDA_EBDA_SEG]
    shl edx, 4                      # EDX = the EBDA's physical address
    push cs
    pop ds
    cld

# The configuration table: the template, then the fields only the
# hardware knows.
    mov si, offset mpc_template
    mov di, EBDA_MP_CONFIG
    mov cx, mpc_end - mpc_template
    rep movsb
    mov eax, 1                      # CPUID 1: EAX signature, EDX features
    push edx
    cpuid
    and eax, 0x0FFF                 # family, model, stepping (MPS 4.3.1)
    mov es:[EBDA_MP_CONFIG + mpc_cpu_signature - mpc_template], eax
    mov es:[EBDA_MP_CONFIG + mpc_cpu_features - mpc_template], edx
    pop edx
    call apic_probe
    mov es:[EBDA_MP_CONFIG + mpc_cpu_apic_id - mpc_template], bl
    mov es:[EBDA_MP_CONFIG + mpc_cpu_apic_version - mpc_template], bh
    mov es:[EBDA_MP_CONFIG + mpc_ioapic_version - mpc_template], cl
    mov si, EBDA_MP_CONFIG
    mov cx, mpc_end - mpc_template
    call ebda_checksum
    mov es:[EBDA_MP_CONFIG + MPC_CHECKSUM], al

# The floating pointer.
    mov di, EBDA_MP_FLOAT
    mov dword ptr es:[di + MPF_SIGNATURE], 0x5F504D5F  # "_MP_"
    add edx, EBDA_MP_CONFIG
    mov es:[di + MPF_CONFIG], edx
    mov byte ptr es:[di + MPF_LENGTH], 1
    mov byte ptr es:[di + MPF_REVISION], 4
    mov byte ptr es:[di + MPF_CHECKSUM], 0
    mov byte ptr es:[di + MPF_FEATURE1], 0
    mov dword ptr es:[di + MPF_FEATURE2], 0  # features 2-5: no IMCR
    mov si, di
    mov cx, MPF_SIZE
    call ebda_checksum
    mov es:[di + MPF_CHECKSUM], al

    pop di
    pop si
    pop edx
    pop ecx
    pop ebx
    pop eax
    pop es
    pop ds
    ret

# ebda_checksum: AL = the byte that makes the CX bytes at ES:SI sum to 0
# (with that byte 0 while summing).
ebda_checksum:
    push cx
    push si
    xor al, al
1:  add al, es:[si]
    inc si
    loop 1b
    neg al
    pop si
    pop cx
    ret

# apic_probe: BL = the local APIC's ID, BH = its version, CL = the I/O
# APIC's version: registers at FEE00020h, FEE00030h and (through the index
# register at FEC00000h and the window at FEC00010h) I/O APIC register 1.
#
# Real mode reaches 1 MiB and a little more, so this steps into protected
# mode for a moment (Intel SDM Vol 3A 9.9.1, "Switching to Protected
# Mode", and 9.9.2, "Switching Back to Real-Address Mode"): a GDT with a
# flat 4 GiB data segment and a 16-bit code segment that is this ROM; PE
# set, a far jump to load CS; FS loaded with the flat segment for the
# reads; then FS loaded with a 64 KiB segment (real mode's limit, so no
# 4 GiB limit leaks out in its hidden cache), PE cleared, a far jump back
# to F000h. Interrupts and NMI are off meanwhile: the IVT is no IDT.
apic_probe:
    push eax
    push esi
    push fs
    pushf
    cli
    mov al, 0x8F                    # NMI masked (port 70h bit 7)
    out RTC_INDEX, al
    lgdt cs:[probe_gdtr]
    mov eax, cr0
    or al, 1                        # PE
    mov cr0, eax
    ljmp PROBE_CODE, offset 1f
1:  mov ax, PROBE_FLAT
    mov fs, ax
    mov esi, LAPIC_BASE
    mov eax, fs:[esi + 0x20]        # local APIC ID register: ID in 31-24
    shr eax, 24
    mov bl, al
    mov eax, fs:[esi + 0x30]        # version register: version in 7-0
    mov bh, al
    mov esi, IOAPIC_BASE
    mov dword ptr fs:[esi], 1       # IOREGSEL = 1, IOAPICVER
    mov eax, fs:[esi + 0x10]        # IOWIN: version in 7-0
    mov cl, al
    mov ax, PROBE_REAL
    mov fs, ax
    mov eax, cr0
    and al, 0xFE
    mov cr0, eax
    ljmp 0xF000, offset 2f
2:  mov al, 0x0F                    # NMI unmasked again
    out RTC_INDEX, al
    popf
    pop fs
    pop esi
    pop eax
    ret

# The probe's GDT (SDM Vol 3A 3.4.5, segment descriptors).
    .balign 8
probe_gdt:
    .quad 0                         # the null descriptor
    .quad 0x00009B0F0000FFFF        # 08h: code, base F0000h, 64 KiB, 16-bit
    .quad 0x008F93000000FFFF        # 10h: data, base 0, 4 GiB (4 KiB units)
    .quad 0x000093000000FFFF        # 18h: data, base 0, 64 KiB: real mode's
probe_gdtr:
    .word probe_gdtr - probe_gdt - 1  # limit
    .long 0xF0000 + probe_gdt       # linear base: the ROM below 1 MiB

# ---- the configuration table's template -------------------------------------

# I/O interrupt assignment (MPS 4.3.4): an ISA IRQ to an I/O APIC pin.
# Type INT (vectored), flags 0: polarity and trigger as the bus defines
# them (ISA: active high, edge).
.macro MP_ISA_IRQ irq, pin
    .byte 3                         # entry type: I/O interrupt
    .byte 0                         # interrupt type: INT
    .word 0                         # flags: conforming polarity, trigger
    .byte 0                         # source bus: the ISA bus, ID 0
    .byte \irq                      # source bus IRQ
    .byte IOAPIC_ID                 # destination I/O APIC
    .byte \pin                      # its INTIN pin
.endm

# Local interrupt assignment (MPS 4.3.5): a signal to a LINT pin.
.macro MP_LOCAL type, lint
    .byte 4                         # entry type: local interrupt
    .byte \type                     # 3: ExtINT (an 8259A), 1: NMI
    .word 0                         # flags: conforming
    .byte 0                         # source bus: ISA
    .byte 0                         # source bus IRQ (none for these)
    .byte 0xFF                      # destination: every local APIC
    .byte \lint                     # LINT0 or LINT1
.endm

mpc_template:
# The header (MPS 4.2, table 4-2).
    .ascii "PCMP"                   # signature
    .word mpc_end - mpc_template    # base table length
    .byte 4                         # specification revision: 1.4
    .byte 0                         # checksum (filled in)
    .ascii "RINGLAB "               # OEM ID, 8 characters, space padded
    .ascii "PC          "           # product ID, 12 characters
    .long 0                         # OEM table: none
    .word 0                         # its size
    .word 3 + (mpc_local - mpc_irqs) / 8 + 2  # entries that follow
    .long LAPIC_BASE                # where every local APIC answers
    .word 0                         # extended table: none
    .byte 0                         # its checksum
    .byte 0                         # reserved

# One processor (MPS 4.3.1, table 4-4), 20 bytes.
    .byte 0                         # entry type: processor
mpc_cpu_apic_id:
    .byte 0                         # local APIC ID (from the APIC)
mpc_cpu_apic_version:
    .byte 0                         # local APIC version (from the APIC)
    .byte 0x03                      # flags: bit 0 enabled, bit 1 the BSP
mpc_cpu_signature:
    .long 0                         # CPUID 1 EAX: stepping, model, family
mpc_cpu_features:
    .long 0                         # CPUID 1 EDX: feature flags
    .long 0, 0                      # reserved

# One bus (MPS 4.3.2), 8 bytes.
    .byte 1                         # entry type: bus
    .byte 0                         # bus ID
    .ascii "ISA   "                 # bus type, 6 characters

# One I/O APIC (MPS 4.3.3), 8 bytes.
    .byte 2                         # entry type: I/O APIC
    .byte IOAPIC_ID                 # its ID
mpc_ioapic_version:
    .byte 0                         # its version (from the chip)
    .byte 0x01                      # flags: enabled
    .long IOAPIC_BASE               # its address

# The ISA interrupts (board.rs's ioapic_pin): 15 entries, IRQ 2 has none.
mpc_irqs:
    MP_ISA_IRQ 0, 2                 # the PIT: pin 2 (the interrupt override)
    MP_ISA_IRQ 1, 1
    MP_ISA_IRQ 3, 3
    MP_ISA_IRQ 4, 4
    MP_ISA_IRQ 5, 5
    MP_ISA_IRQ 6, 6
    MP_ISA_IRQ 7, 7
    MP_ISA_IRQ 8, 8
    MP_ISA_IRQ 9, 9
    MP_ISA_IRQ 10, 10
    MP_ISA_IRQ 11, 11
    MP_ISA_IRQ 12, 12
    MP_ISA_IRQ 13, 13
    MP_ISA_IRQ 14, 14
    MP_ISA_IRQ 15, 15

# The local interrupts: the 8259A on LINT0, NMI on LINT1.
mpc_local:
    MP_LOCAL 3, 0
    MP_LOCAL 1, 1
mpc_end:

    .if mpc_end - mpc_template > EBDA_EXT_KB - EBDA_MP_CONFIG
    .error "the MP configuration table does not fit in its part of the EBDA"
    .endif
