# system.S: INT 11h (equipment), INT 12h (base memory) and INT 15h (the
# "system services": memory maps, the A20 gate, waiting, the configuration
# table), with the memory sizes POST finds.
#
# Sources: Ralf Brown's Interrupt List (RBIL) INT 11, 12 and 15; ACPI 6.x
# chapter 15 ("System Address Map Interfaces") for E820; the IBM PC AT
# Technical Reference for AH=86h and the CMOS map. Where these leave a
# choice, this file does what SeaBIOS does under QEMU (the firmware most
# kernels are tested on), and says so.
#
# INT 15h functions (AH, or AX):
#   2400h-2403h  A20 gate off / on / state / how it can be switched
#   4Fh          keyboard intercept (IRQ 1 calls it for every scan code)
#   86h          wait CX:DX microseconds
#   88h          extended memory size (KiB above 1 MiB, at most 63 MiB)
#   C0h          ES:BX = the ROM configuration table
#   C1h          ES = the EBDA's segment
#   E801h        memory below and above 16 MiB
#   E820h        the physical address map, one range per call
# Everything else, including the 286-era AH=87h (copy extended memory) and
# AH=89h (switch to protected mode), returns CF set and AH=86h ("function
# not supported"), as RBIL's BIOSes do for what they lack.

# ---- memory sizes ---------------------------------------------------------

# Where the RAM is, as POST leaves it (all below 4 GiB: ringlab's RAM is at
# most 3 GiB, so CMOS 5Bh-5Dh, RAM above 4 GiB, is always 0 and not read):
#
#   0 - base memory     conventional RAM: INT 12h's KiB (BDA 40:13h), 639
#   base memory - 640K  the EBDA (and whatever software took from 40:13h)
#   640K - 1M           not RAM to software: the VGA window A0000-BFFFF,
#                       option ROM space, the BIOS at F0000-FFFFF
#   1M - end            extended memory: EBDA_EXT_KB KiB
#
# The size kept is one number, the KiB above 1 MiB (EBDA_EXT_KB, a dword at
# EBDA offset 100h), from which AH=88h, E801h and the E820 map are derived.

    .set E820_RAM, 1                # address range types (ACPI 6.x 15.1)
    .set E820_RESERVED, 2
    .set E820_ENTRY, 20             # base (qword), length (qword), type (dword)
    .set SMAP, 0x534D4150           # "SMAP", the E820 signature (EDX, EAX)
    .set KB_BELOW_16M, 15 * 1024    # extended KiB between 1 and 16 MiB
    .set WAIT_PAUSE, 100            # AH=86h: LOOPs between two looks at the RTC
    .set E820_MAX, 7                # ranges memory_init lists, at most

    .if EBDA_E820 + E820_MAX * E820_ENTRY > EBDA_DISKS
    .error "the E820 map does not fit in its part of the EBDA (bios.S)"
    .endif

# memory_init (POST, after the EBDA is cleared): the extended memory size
# from the CMOS, kept in the EBDA, and the E820 map built from it.
#   CMOS 30h-31h  extended KiB as POST found it, at most 63 MiB (FC00h)
#   CMOS 34h-35h  RAM above 16 MiB in 64 KiB units (QEMU, SeaBIOS)
# When 34h-35h is non-zero the RAM reaches past 16 MiB and its end is
# 16 MiB + that many 64 KiB blocks; otherwise 30h-31h is exact.
memory_init:
    push ds
    push eax
    push ebx
    push ecx
    push edx
    push si
    mov ax, BDA_SEG
    mov ds, ax
    mov bx, [BDA_MEM_KB]            # base memory, for the map below
    mov ds, [BDA_EBDA_SEG]
    mov al, 0x35                    # 64 KiB blocks above 16 MiB
    call cmos_read
    mov ah, al
    mov al, 0x34
    call cmos_read
    movzx eax, ax
    test eax, eax
    jz 1f
    shl eax, 6                      # 64 KiB blocks to KiB
    add eax, KB_BELOW_16M
    jmp 2f
1:  mov al, 0x31                    # no RAM above 16 MiB: 30h-31h is it
    call cmos_read
    mov ah, al
    mov al, 0x30
    call cmos_read
    movzx eax, ax
2:  mov [EBDA_EXT_KB], eax

# The E820 map, in address order, as SeaBIOS lists it under QEMU. The VGA
# window A0000-BFFFF and the option ROM space C0000-EFFFF are not listed
# at all (neither RAM nor reserved: holes, which ACPI says to treat as
# reserved); the BIOS's 64 KiB at F0000 are reserved, and so are the pages
# of the two APICs and the ROM's alias below 4 GiB, which a kernel must not
# take for RAM when it sizes the address space.
    mov byte ptr [EBDA_E820_COUNT], 0
    movzx ecx, bx                   # conventional RAM: 0 - base memory
    shl ecx, 10
    xor eax, eax
    mov dl, E820_RAM
    call e820_add
    mov eax, ecx                    # the EBDA: base memory - 640 KiB
    mov ecx, 640 * 1024
    sub ecx, eax
    mov dl, E820_RESERVED
    call e820_add
    mov eax, 0xF0000                # the BIOS ROM
    mov ecx, 0x10000
    call e820_add
    mov eax, 0x100000               # extended memory (none with 1 MiB)
    mov ecx, [EBDA_EXT_KB]
    shl ecx, 10
    mov dl, E820_RAM
    call e820_add
    mov eax, IOAPIC_BASE            # the I/O APIC's page
    mov ecx, 0x1000
    mov dl, E820_RESERVED
    call e820_add
    mov eax, LAPIC_BASE             # the local APIC's page
    call e820_add
    mov eax, 0xFFFF0000             # the ROM's alias at the top of 4 GiB
    mov ecx, 0x10000
    call e820_add
    pop si
    pop edx
    pop ecx
    pop ebx
    pop eax
    pop ds
    ret

# e820_add: appends the range EAX, length ECX, type DL to the map in the
# EBDA (DS); an empty range is left out.
e820_add:
    jecxz 1f
    push eax
    push si
    movzx si, byte ptr [EBDA_E820_COUNT]  # the entry's address in the EBDA
    imul si, si, E820_ENTRY
    add si, EBDA_E820
    mov [si], eax                   # base: the low dword...
    mov dword ptr [si + 4], 0       # ...and the high one (all below 4 GiB)
    mov [si + 8], ecx               # length
    mov dword ptr [si + 12], 0
    movzx eax, dl
    mov [si + 16], eax              # type
    inc byte ptr [EBDA_E820_COUNT]
    pop si
    pop eax
1:  ret

# extended_kb: EAX = KiB of RAM above 1 MiB (for POST's banner).
extended_kb:
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    mov ds, [BDA_EBDA_SEG]
    mov eax, [EBDA_EXT_KB]
    pop ds
    ret

# ---- INT 11h, INT 12h -------------------------------------------------------

# INT 11h: AX = the equipment word POST put in the BDA (40:10h).
int11_handler:
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    mov ax, [BDA_EQUIPMENT]
    pop ds
    iret

# INT 12h: AX = KiB of conventional memory (40:13h), the EBDA excluded.
int12_handler:
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    mov ax, [BDA_MEM_KB]
    pop ds
    iret

# ---- INT 15h ----------------------------------------------------------------

int15_handler:
    cmp ah, 0x24
    je int15_a20
    cmp ah, 0x4F
    je int15_key_intercept
    cmp ah, 0x86
    je int15_wait
    cmp ah, 0x88
    je int15_extended_size
    cmp ah, 0xC0
    je int15_config
    cmp ah, 0xC1
    je int15_ebda
    cmp ax, 0xE801
    je int15_e801
    cmp ax, 0xE820
    je int15_e820
int15_unsupported:
    mov ah, 0x86                    # function not supported
    stc
    jmp iret_cf

# int15_ok: the common successful return: AH = 0, CF clear.
int15_ok:
    xor ah, ah
    clc
    jmp iret_cf

# AX=2400h-2403h: the A20 gate, through system control port A (92h) bit 1.
# The 8042's output port bit 1 is the same gate on this board (either
# switches it, both read it), so one port serves; bit 0 of port 92h resets
# the CPU and is always written 0.
#   2400h disable, 2401h enable: AH = 0.
#   2402h state: AL = 1 if enabled, 0 if not; AH = 0.
#   2403h how: BX bit 0 = the 8042 can switch it, bit 1 = port 92h can.
int15_a20:
    cmp al, 0x03
    ja int15_unsupported
    je 3f
    cmp al, 0x02
    je 2f
    push ax
    mov ah, al                      # AL = 0 or 1: bit 1 of port 92h
    shl ah, 1
    in al, FAST_A20
    and al, 0xFC                    # keep the other bits; never reset
    or al, ah
    out FAST_A20, al
    pop ax
    jmp int15_ok
2:  in al, FAST_A20
    shr al, 1
    and al, 1
    jmp int15_ok
3:  mov bx, 0x0003
    jmp int15_ok

# AH=4Fh: the keyboard intercept. IRQ 1 calls INT 15h AH=4Fh with each
# scan code in AL; a hook may change AL, or return CF clear to have the
# key ignored. With no hook installed the key is processed: CF set, AL
# unchanged.
int15_key_intercept:
    stc
    jmp iret_cf

# AH=86h: wait CX:DX microseconds.
#
# The PC/AT BIOS counted the RTC's periodic interrupt (1024 Hz, INT 70h)
# down while the caller looped; hence RBIL's "resolution of 977
# microseconds". This one watches the same periodic signal without its
# interrupt: the RTC sets the PF flag of register C at every periodic edge
# whether or not the interrupt is enabled, and reading C clears it. So the
# wait works with interrupts enabled or disabled, and it cannot miss edges
# unless the CPU is away for a whole period (977 us), where polling port
# 61h's refresh bit (15 us) would. The wait runs with the caller's
# interrupt flag (its INT cleared IF): with interrupts on, the timer keeps
# ticking meanwhile, so a long wait does not stop the time of day; with
# them off, nothing interrupts it.
#
# Edges to see: ceil(us * rate / 10^6) + 1 for the rate register A
# selects, the first one because the current period is partly over. The
# wait therefore lasts at least CX:DX us and at most one period more. The
# RTC's other flags in register C (alarm, update ended) are cleared by
# the reads too, as on the AT while its wait ran. CF set, AH=86h if the
# RTC's divider or periodic signal is off (POST turns them on).
int15_wait:
    push bp
    mov bp, sp
    test byte ptr [bp + 7], 0x02    # the caller's FLAGS (bit 9, IF) at [sp+4]
    pop bp
    jz 0f
    sti
0:  push eax
    push ebx
    push ecx
    push edx
    shl ecx, 16                     # ECX = CX:DX microseconds
    mov cx, dx
    test ecx, ecx
    jz 9f
    mov al, 0x0A                    # register A: divider and rate
    call cmos_read
    mov dl, al
    and al, 0x70
    cmp al, 0x20                    # DV = 010: the 32.768 kHz time base runs
    jne 8f
    and dl, 0x0F                    # RS: the periodic rate (MC146818A Table 5)
    jz 8f
    mov ebx, 256                    # RS 1 and 2: 256 Hz and 128 Hz
    cmp dl, 1
    je 1f
    mov ebx, 128
    cmp dl, 2
    je 1f
    push cx                         # RS 3-15: 65536 >> RS Hz (8192 - 2;
    mov cl, dl                      # POST's RS 6 is 1024 Hz)
    mov ebx, 65536
    shr ebx, cl
    pop cx
1:  mov eax, ecx                    # EDX:EAX = us * Hz
    mul ebx
    add eax, 1000000 - 1            # rounded up...
    adc edx, 0
    mov ebx, 1000000
    div ebx                         # ...to periods
    lea ecx, [eax + 1]              # and one for the period under way
    mov al, 0x0C                    # clear PF
    call cmos_read
2:  push cx                         # a pause between looks: PF changes
    mov cx, WAIT_PAUSE              # once a period, and each look is a
3:  loop 3b                         # slow bus access
    pop cx
    mov al, 0x0C                    # the next edge: PF (bit 6) set
    call cmos_read
    test al, 0x40
    jz 2b
    dec ecx
    jnz 2b
9:  pop edx
    pop ecx
    pop ebx
    pop eax
    jmp int15_ok
8:  pop edx
    pop ecx
    pop ebx
    pop eax
    jmp int15_unsupported

# AH=88h: AX = KiB of extended memory, at most 63 MiB (FC00h), as CMOS
# 30h-31h holds it and SeaBIOS returns it: older callers take the 16-bit
# answer for the whole of memory above 1 MiB, newer ones ask E801h/E820h.
int15_extended_size:
    push eax                        # (EAX's high half is the caller's)
    call extended_kb
    cmp eax, 0xFC00
    jbe 1f
    mov ax, 0xFC00
1:  push bp
    mov bp, sp
    mov [bp + 2], ax                # the low word of the EAX pushed
    pop bp
    pop eax
    clc
    jmp iret_cf

# AX=E801h: AX = CX = KiB between 1 MiB and 16 MiB (at most 15 MiB),
# BX = DX = RAM above 16 MiB in 64 KiB blocks (RBIL INT 15/AX=E801h).
int15_e801:
    push eax
    push edx
    call extended_kb                # EAX = KiB above 1 MiB
    mov edx, eax
    cmp eax, KB_BELOW_16M
    jbe 1f
    mov eax, KB_BELOW_16M
1:  sub edx, eax                    # KiB above 16 MiB...
    shr edx, 6                      # ...in 64 KiB blocks
    mov cx, ax
    mov bx, dx
    pop edx
    pop eax
    mov ax, cx
    mov dx, bx
    clc
    jmp iret_cf

# AX=E820h: one range of the physical address map (ACPI 6.x 15.1).
#   In:  EBX = continuation (0 first, then what the last call returned),
#        ES:DI = buffer, ECX = its size (at least 20), EDX = "SMAP".
#   Out: CF clear, EAX = "SMAP", ECX = 20 bytes written (base, length,
#        type; no ACPI 3.0 attributes), EBX = the next continuation, 0
#        after the last range.
#   CF set, AH = 86h: EDX is not "SMAP", the buffer is too small, or EBX
#   is not a continuation this BIOS gave (as SeaBIOS answers).
int15_e820:
    cmp edx, SMAP
    jne int15_unsupported
    cmp ecx, E820_ENTRY
    jb int15_unsupported
    push ds
    push si
    push di
    push cx
    mov ax, BDA_SEG
    mov ds, ax
    mov ds, [BDA_EBDA_SEG]
    movzx ecx, byte ptr [EBDA_E820_COUNT]
    cmp ebx, ecx
    jae 1f
    imul si, bx, E820_ENTRY
    add si, EBDA_E820
    push cx
    mov cx, E820_ENTRY
    cld
    rep movsb
    pop cx
    inc ebx                         # the next range, or 0 after the last
    cmp ebx, ecx
    jb 2f
    xor ebx, ebx
2:  pop cx
    pop di
    pop si
    pop ds
    mov eax, SMAP
    mov ecx, E820_ENTRY
    clc
    jmp iret_cf
1:  pop cx
    pop di
    pop si
    pop ds
    jmp int15_unsupported

# AH=C0h: ES:BX = the system configuration table, AH = 0 (RBIL #00509).
int15_config:
    push cs
    pop es
    mov bx, offset config_table
    jmp int15_ok

# AH=C1h: ES = the EBDA's segment (RBIL INT 15/AH=C1h).
int15_ebda:
    push ax
    mov ax, BDA_SEG
    mov es, ax
    mov es, es:[BDA_EBDA_SEG]
    pop ax
    clc
    jmp iret_cf

# The system configuration table (IBM PS/2 and AT BIOSes; RBIL #00509,
# the same values as SeaBIOS). bios.S puts it at F000:E6F5, where IBM's
# BIOS had it (and SeaBIOS keeps it), as `config_table`.
.macro CONFIG_TABLE
    .word 8                         # bytes that follow
    .byte 0xFC                      # model: PC/AT (as F000:FFFEh says)
    .byte 0x00                      # submodel
    .byte 0x01                      # BIOS revision
    # Feature byte 1: bit 6 a second 8259A, bit 5 an RTC, bit 4 IRQ 1
    # calls INT 15h AH=4Fh, bit 2 an EBDA is allocated. Not: bit 7 (DMA
    # channel 3 for the disk), bit 3 (AH=41h wait for event), bit 1 (Micro
    # Channel), bit 0 (two buses).
    .byte 0x74
    .byte 0x00                      # feature 2: none of AH=C6h-C9h, INT 16h AH=09h
    .byte 0x00                      # features 3-5: reserved
    .byte 0x00
    .byte 0x00
.endm
