# Lesson 6, popek-goldberg: the sensitive instructions that are not
# privileged.
#
# Popek and Goldberg (1974): a CPU can be virtualized by trap-and-emulate
# if every instruction that reads or changes privileged state traps when
# run outside the most privileged mode. On x86 several do not trap: they
# run in ring 3 (or in a deprivileged ring 0) and quietly give answers
# that reveal, or ignore, the real machine state. This kernel runs the
# same probe in ring 0 and in ring 3 and prints what each instruction
# shows. Run it on every engine, and on the interpreter with --deprivilege
# (trap-and-emulate): compare the ring-0 lines.

.intel_syntax noprefix
.code32
.global start

.equ COM1, 0x3F8
.equ KSTACK, 0x90000
.equ USTACK, 0x80000
.equ IDT, 0x70000
.equ KCODE, 0x08
.equ KDATA, 0x10
.equ UCODE, 0x18 | 3
.equ UDATA, 0x20 | 3
.equ TSS_SEL, 0x28

    .section .text
    .align 4
    .long 0x1BADB002
    .long 0x00000002
    .long -(0x1BADB002 + 0x00000002)

start:
    lgdt [gdtr]
    ljmp KCODE, offset 1f
1:  mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, KSTACK
    call com1_init
    mov eax, offset tss
    mov [gdt_tss + 2], ax
    shr eax, 16
    mov [gdt_tss + 4], al
    mov [gdt_tss + 7], ah
    mov ax, TSS_SEL
    ltr ax
    mov edi, IDT
    mov ecx, 256
2:  mov eax, offset unexpected
    mov dx, 0x8E00
    call gate
    loop 2b
    mov edi, IDT + 0x80 * 8
    mov eax, offset sys_exit
    mov dx, 0xEF00            # DPL 3 trap gate: ring 3's way back
    call gate
    lidt [idtr]

    cli
    mov al, '0'
    call probe                # ring 0
    push UDATA
    push USTACK
    push 0x002                # IF = 0, IOPL = 0
    push UCODE
    push offset user_main
    iret

user_main:
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    mov al, '3'
    call probe                # ring 3: the same instructions
    int 0x80

sys_exit:
    mov ax, KDATA
    mov ds, ax
    cli
    hlt

unexpected:
    mov ax, KDATA
    mov ds, ax
    mov esi, offset s_oops
    call puts
    cli
    hlt

# The probe: AL = '0' or '3', the ring we think we are in. Every line is
# "instruction: what it showed". Nothing here traps in either ring.
probe:
    mov [ring], al
    mov esi, offset s_ring
    call puts
    mov al, [ring]
    call putc
    mov al, 10
    call putc

    mov esi, offset s_cs      # MOV from CS: the RPL is the CPL
    call puts
    mov ax, cs
    call hex16
    mov esi, offset s_ss
    call puts
    mov ax, ss
    call hex16
    call nl

    mov esi, offset s_pushf   # PUSHF: IF and IOPL as the CPU has them
    call puts
    pushfd
    pop eax
    push eax
    shr eax, 9
    and al, 1
    add al, '0'
    call putc
    mov esi, offset s_iopl
    call puts
    pop eax
    shr eax, 12
    and al, 3
    add al, '0'
    call putc
    call nl

    mov esi, offset s_popf    # POPF with IF = 1: taken only if CPL <= IOPL
    call puts
    pushfd
    or dword ptr [esp], 0x200
    popfd
    pushfd
    pop eax
    shr eax, 9
    and al, 1
    add al, '0'
    call putc
    call nl
    pushfd                    # and IF = 0 again (silently kept in ring 3)
    and dword ptr [esp], ~0x200
    popfd

    mov esi, offset s_sgdt    # SGDT / SIDT: where the real tables are
    call puts
    sgdt [tablebuf]
    mov eax, [tablebuf + 2]
    call hex32
    mov al, '/'
    call putc
    mov ax, [tablebuf]
    call hex16
    mov esi, offset s_sidt
    call puts
    sidt [tablebuf]
    mov eax, [tablebuf + 2]
    call hex32
    mov al, '/'
    call putc
    mov ax, [tablebuf]
    call hex16
    call nl

    mov esi, offset s_str     # STR / SLDT: the real TR and LDTR
    call puts
    str ax
    call hex16
    mov esi, offset s_sldt
    call puts
    sldt ax
    call hex16
    call nl

    mov esi, offset s_smsw    # SMSW: the low half of the real CR0
    call puts
    smsw eax
    call hex32
    call nl

    mov esi, offset s_lar     # LAR: access rights incl. the DPL
    call puts
    xor eax, eax
    mov ecx, KCODE
    lar eax, ecx              # ZF = 1 if the descriptor is visible here
    setz bl
    call hex32
    mov esi, offset s_zf
    call puts
    mov al, bl
    add al, '0'
    call putc
    call nl
    ret

nl:
    mov al, 10
putc:                         # to COM1; ring 3 gets there by the I/O bitmap
    push edx
    push eax
    mov dx, COM1 + 5
1:  in al, dx
    test al, 0x20
    jz 1b
    pop eax
    mov dx, COM1
    out dx, al
    pop edx
    ret

puts:
    lodsb
    test al, al
    jz 1f
    call putc
    jmp puts
1:  ret

hex32:
    push eax
    shr eax, 16
    call hex16
    pop eax
hex16:
    push ecx
    mov ecx, 4
1:  rol ax, 4
    push eax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 2f
    add al, 'a' - '0' - 10
2:  call putc
    pop eax
    loop 1b
    pop ecx
    ret

gate:
    mov [edi], ax
    mov word ptr [edi + 2], KCODE
    mov [edi + 4], dx
    shr eax, 16
    mov [edi + 6], ax
    add edi, 8
    ret

com1_init:
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    inc dx
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x03
    out dx, al
    ret

ring:     .byte 0
tablebuf: .fill 6, 1, 0
s_ring:   .asciz "-- probe in ring "
s_cs:     .asciz "  mov from cs/ss: CS="
s_ss:     .asciz " SS="
s_pushf:  .asciz "  pushf (IF cleared): IF="
s_iopl:   .asciz " IOPL="
s_popf:   .asciz "  popf with IF=1, then pushf: IF="
s_sgdt:   .asciz "  sgdt: "
s_sidt:   .asciz "  sidt: "
s_str:    .asciz "  str: "
s_sldt:   .asciz "  sldt: "
s_smsw:   .asciz "  smsw: "
s_lar:    .asciz "  lar of the kernel code selector: "
s_zf:     .asciz " ZF="
s_oops:   .asciz "unexpected interrupt\n"

    .align 8
gdt:                          # accessed bits preset (type 0xB, 0x3): the CPU
    .quad 0                   # need not write the GDT, and LAR shows the same
    .quad 0x00CF9B000000FFFF  # on every engine
    .quad 0x00CF93000000FFFF
    .quad 0x00CFFB000000FFFF
    .quad 0x00CFF3000000FFFF
gdt_tss:
    .word tss_end - tss - 1
    .word 0
    .byte 0
    .byte 0x89
    .byte 0
    .byte 0
gdtr:
    .word gdtr - gdt - 1
    .long gdt
idtr:
    .word 256 * 8 - 1
    .long IDT

    .align 4
tss:
    .long 0
    .long KSTACK
    .long KDATA
    .fill 22, 4, 0
    .word 0
    .word iomap - tss
iomap:
    .fill 0x3F8 / 8, 1, 0xFF
    .byte 0x00                # COM1 for ring 3
    .byte 0xFF
tss_end:
