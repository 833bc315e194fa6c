# Lesson 4, rings: a tiny kernel in ring 0 and a program in ring 3.
#
# A multiboot kernel (the loader enters it in 32-bit protected mode, ring
# 0). It sets up its own GDT with ring-0 and ring-3 segments and a Task
# State Segment (TSS): when ring 3 is interrupted, the CPU takes the ring-0
# stack from the TSS. It then IRETs into ring 3. The user program:
#   - makes system calls with INT 0x80 through a trap gate of DPL 3
#     (write: EAX=1, ESI=string; exit: EAX=2, EBX=code);
#   - writes to COM1 directly: the TSS's I/O permission bitmap allows ports
#     0x3F8-0x3FF (and nothing else) to ring 3, although IOPL is 0;
#   - tries CLI: with IOPL 0 that is a #GP, which the kernel reports and
#     skips.
# The kernel halts with interrupts disabled when the program exits.

.intel_syntax noprefix
.code32
.global start

.equ COM1, 0x3F8
.equ KSTACK, 0x90000          # ring-0 stack top (also TSS.ESP0)
.equ USTACK, 0x80000          # ring-3 stack top
.equ IDT, 0x70000             # 256 gates
.equ KCODE, 0x08
.equ KDATA, 0x10
.equ UCODE, 0x18 | 3          # RPL 3: the selector a ring-3 program uses
.equ UDATA, 0x20 | 3
.equ TSS_SEL, 0x28

    .section .text
    .align 4
multiboot:
    .long 0x1BADB002          # magic
    .long 0x00000002          # flags: memory information
    .long -(0x1BADB002 + 0x00000002)

start:
    lgdt [gdtr]
    ljmp KCODE, offset 1f     # reload CS from our GDT
1:  mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, KSTACK
    call com1_init

    # The TSS descriptor's base is our `tss` label, split into the
    # descriptor's three base fields.
    mov eax, offset tss
    mov [gdt_tss + 2], ax
    shr eax, 16
    mov [gdt_tss + 4], al
    mov [gdt_tss + 7], ah
    mov ax, TSS_SEL
    ltr ax                    # TR = our TSS (the CPU marks it busy)

    # IDT: every vector to `unexpected`; #GP (13) to `gp_fault`; 0x80 is
    # the system call gate, a trap gate with DPL 3 so ring 3 may use INT.
    mov edi, IDT
    mov ecx, 256
2:  mov eax, offset unexpected
    mov dx, 0x8E00            # present, DPL 0, 32-bit interrupt gate
    call gate
    loop 2b
    mov edi, IDT + 13 * 8
    mov eax, offset gp_fault
    mov dx, 0x8E00
    call gate
    mov edi, IDT + 0x80 * 8
    mov eax, offset syscall
    mov dx, 0xEF00            # present, DPL 3, 32-bit trap gate
    call gate
    lidt [idtr]

    mov esi, offset k_hello
    call kputs

    # Into ring 3: IRET pops EIP, CS, EFLAGS and, because the new CPL (3)
    # is outer, ESP and SS too. EFLAGS: IF = 0, IOPL = 0.
    push UDATA                # SS
    push USTACK               # ESP
    push 0x002                # EFLAGS (bit 1 is always set)
    push UCODE                # CS
    push offset user_main     # EIP
    iret

# ---- ring 3 -------------------------------------------------------------

user_main:
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    mov eax, 1                # write(string)
    mov esi, offset u_hello
    int 0x80
    mov esi, offset u_direct  # port I/O allowed by the I/O bitmap
    call uputs
    cli                       # privileged at CPL 3 > IOPL 0: #GP
    mov eax, 1
    mov esi, offset u_after
    int 0x80
    mov eax, 2                # exit(0)
    xor ebx, ebx
    int 0x80
    jmp .                     # never reached

uputs:                        # ring-3 print, straight to the UART
    lodsb
    test al, al
    jz 2f
    mov bl, al
    mov dx, COM1 + 5
1:  in al, dx
    test al, 0x20
    jz 1b
    mov dx, COM1
    mov al, bl
    out dx, al
    jmp uputs
2:  ret

# ---- ring 0 -------------------------------------------------------------

syscall:                      # INT 0x80: the frame is EIP, CS, EFLAGS, ESP, SS
    push ds
    push eax
    mov ax, KDATA
    mov ds, ax
    pop eax
    cmp eax, 1
    je 1f
    cmp eax, 2
    je 2f
    pop ds
    iret
1:  mov ax, [esp + 8]         # the caller's CS: its RPL is its ring
    call kring
    push esi
    mov esi, offset k_write
    call kputs
    pop esi
    push es
    mov ax, KDATA
    mov es, ax
    call kputs                # the user's string (flat segments: same address)
    pop es
    pop ds
    iret
2:  mov esi, offset k_exit
    call kputs
    cli
    hlt                       # IF = 0: the machine stops, status 0

gp_fault:                     # #GP: error code, EIP, CS, EFLAGS, ESP, SS
    push ds
    push eax
    push esi
    mov ax, KDATA
    mov ds, ax
    mov esi, offset k_gp
    call kputs
    mov eax, [esp + 12]       # error code
    call khex
    mov esi, offset k_gp_at
    call kputs
    mov eax, [esp + 16]       # faulting EIP
    call khex
    mov esi, offset k_gp_ring
    call kputs
    mov ax, [esp + 20]        # CS
    and al, 3
    add al, '0'
    call kputc
    mov esi, offset k_gp_skip
    call kputs
    inc dword ptr [esp + 16]  # skip the 1-byte CLI
    pop esi
    pop eax
    pop ds
    add esp, 4                # drop the error code
    iret

unexpected:
    mov ax, KDATA
    mov ds, ax
    mov esi, offset k_oops
    call kputs
    cli
    hlt

kring:                        # print "[ring N] " for the RPL in AX
    push esi
    push eax
    mov esi, offset k_from
    call kputs
    pop eax
    and al, 3
    add al, '0'
    call kputc
    mov al, ']'
    call kputc
    mov al, ' '
    call kputc
    pop esi
    ret

gate:                         # EDI: slot, EAX: handler, DX: type bits
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

kputs:
    lodsb
    test al, al
    jz 1f
    call kputc
    jmp kputs
1:  ret

khex:                         # EAX as 8 hex digits
    push ecx
    mov ecx, 8
1:  rol eax, 4
    push eax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 2f
    add al, 'a' - '0' - 10
2:  call kputc
    pop eax
    loop 1b
    pop ecx
    ret

kputc:
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

k_hello:   .asciz "kernel: ring 0, GDT, TSS and IDT ready; IRET to ring 3\n"
k_from:    .asciz "kernel: int 0x80 from [ring "
k_write:   .asciz "write: "
k_exit:    .asciz "kernel: exit(0) from ring 3, halting\n"
k_gp:      .asciz "kernel: #GP error "
k_gp_at:   .asciz " at "
k_gp_ring: .asciz " in ring "
k_gp_skip: .asciz " (CLI with IOPL 0): skipped\n"
k_oops:    .asciz "kernel: unexpected interrupt\n"
u_hello:   .asciz "hello from ring 3\n"
u_direct:  .asciz "user: OUT to COM1 from ring 3, allowed by the I/O bitmap\n"
u_after:   .asciz "back in ring 3 after the #GP\n"

    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF  # 0x08 ring-0 code
    .quad 0x00CF92000000FFFF  # 0x10 ring-0 data
    .quad 0x00CFFA000000FFFF  # 0x18 ring-3 code (DPL 3)
    .quad 0x00CFF2000000FFFF  # 0x20 ring-3 data (DPL 3)
gdt_tss:                      # 0x28 32-bit TSS, available; base filled in
    .word tss_end - tss - 1   # limit
    .word 0
    .byte 0
    .byte 0x89                # present, DPL 0, type 9
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
    .long 0                   # back link
    .long KSTACK              # ESP0: the stack for ring 0
    .long KDATA               # SS0
    .fill 22, 4, 0            # ESP1 .. LDT: unused here
    .word 0                   # T flag
    .word iomap - tss         # I/O permission bitmap offset
iomap:
    .fill 0x3F8 / 8, 1, 0xFF  # ports 0x000-0x3F7: denied
    .byte 0x00                # ports 0x3F8-0x3FF (COM1): allowed
    .byte 0xFF                # the bitmap must end with a byte of ones
tss_end:
