# Lesson 5, paging: page tables, user and supervisor pages, page faults
# with CR2 and the error code, and a demand-paging handler.
#
# A multiboot kernel (ring 0, 32-bit) builds a page directory and two page
# tables, turns on paging (CR0.PG, with CR0.WP so even ring 0 respects
# read-only pages), and runs a ring-3 program (see lesson 4 for the GDT,
# TSS and system calls) that touches three kinds of pages:
#   0x300000  a supervisor page (U/S = 0): a ring-3 read faults
#   0x301000  a read-only user page (R/W = 0): a ring-3 write faults
#   0x500000  not present: the kernel allocates a frame and maps it
#             (demand paging), and the write is retried and succeeds.
# For the two protection faults, the program puts a recovery address in
# EDI before the access; the kernel resumes there.

.intel_syntax noprefix
.code32
.global start

.equ COM1, 0x3F8
.equ KSTACK, 0x90000
.equ USTACK, 0x80000
.equ IDT, 0x70000
.equ PD, 0x200000             # page directory
.equ PT0, 0x201000            # page table for 0-4 MiB
.equ PT1, 0x202000            # page table for 4-8 MiB (all not present)
.equ FREE_FRAME, 0x600000     # the frame demand paging hands out
.equ KCODE, 0x08
.equ KDATA, 0x10
.equ UCODE, 0x18 | 3
.equ UDATA, 0x20 | 3
.equ TSS_SEL, 0x28
# Page table entry bits (SDM Vol 3A 4.3).
.equ P, 1
.equ RW, 2
.equ US, 4

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
    mov fs, ax
    mov gs, ax
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
    mov edi, IDT + 14 * 8     # #PF
    mov eax, offset page_fault
    mov dx, 0x8E00
    call gate
    mov edi, IDT + 0x80 * 8
    mov eax, offset syscall
    mov dx, 0xEF00
    call gate
    lidt [idtr]

    # Page tables. PT0: 0-4 MiB identity mapped, user and writable ...
    mov edi, PT0
    mov eax, P | RW | US
    mov ecx, 1024
3:  mov [edi], eax
    add eax, 0x1000
    add edi, 4
    loop 3b
    # ... except the supervisor page and the read-only page.
    mov dword ptr [PT0 + (0x300000 >> 12) * 4], 0x300000 | P | RW
    mov dword ptr [PT0 + (0x301000 >> 12) * 4], 0x301000 | P | US
    # PT1: 4-8 MiB, nothing present yet.
    mov edi, PT1
    xor eax, eax
    mov ecx, 1024
    rep stosd
    # The directory: two tables, user and writable (the tables decide).
    mov edi, PD
    mov ecx, 1024
    rep stosd
    mov dword ptr [PD + 0], PT0 | P | RW | US
    mov dword ptr [PD + 4], PT1 | P | RW | US
    mov dword ptr [0x300000], 0x5ec3e7  # something to keep from ring 3

    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000        # PG and WP
    mov cr0, eax

    mov esi, offset k_hello
    call kputs
    push UDATA
    push USTACK
    push 0x002
    push UCODE
    push offset user_main
    iret

# ---- ring 3 -------------------------------------------------------------

user_main:
    mov ax, UDATA
    mov ds, ax
    mov es, ax

    mov edi, offset 1f        # recovery address for the kernel
    mov eax, [0x300000]       # supervisor page: #PF, error 5
1:  mov edi, offset 2f
    mov dword ptr [0x301000], 1   # read-only page: #PF, error 7
2:  mov dword ptr [0x500000], 0x1234  # not present: demand paging
    mov eax, [0x500000]
    cmp eax, 0x1234
    jne 3f
    mov eax, 1
    mov esi, offset u_ok
    int 0x80
3:  mov eax, 2
    xor ebx, ebx
    int 0x80
    jmp .

# ---- ring 0 -------------------------------------------------------------

page_fault:                   # error code, EIP, CS, EFLAGS, ESP, SS
    push ds
    pushad                    # 32 bytes: error code at [esp + 36]
    mov ax, KDATA
    mov ds, ax
    mov esi, offset k_pf
    call kputs
    mov eax, [esp + 40]       # faulting EIP
    call khex
    mov esi, offset k_cr2
    call kputs
    mov eax, cr2              # the linear address that faulted
    call khex
    mov esi, offset k_err
    call kputs
    mov eax, [esp + 36]
    and eax, 7
    add al, '0'
    call kputc
    mov ebx, [esp + 36]
    mov esi, offset k_notp    # bit 0: 0 = not present, 1 = protection
    test bl, 1
    jz 1f
    mov esi, offset k_prot
1:  call kputs
    mov esi, offset k_read    # bit 1: write
    test bl, 2
    jz 2f
    mov esi, offset k_write
2:  call kputs
    mov esi, offset k_user    # bit 2: from user mode
    test bl, 4
    jnz 3f
    mov esi, offset k_sup
3:  call kputs
    test bl, 1
    jnz 4f
    # Not present: demand paging. Map a fresh frame at the faulting page
    # and let the instruction run again.
    mov eax, cr2
    shr eax, 12
    and eax, 0x3FF
    mov dword ptr [PT1 + eax * 4], FREE_FRAME | P | RW | US
    mov eax, cr2
    invlpg [eax]
    mov esi, offset k_mapped
    call kputs
    jmp 5f
4:  mov eax, [esp + 0]        # saved EDI: the program's recovery address
    mov [esp + 40], eax
    mov esi, offset k_skip
    call kputs
5:  popad
    pop ds
    add esp, 4                # drop the error code
    iret

syscall:
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
1:  call kputs
    pop ds
    iret
2:  mov esi, offset k_exit
    call kputs
    cli
    hlt

unexpected:
    mov ax, KDATA
    mov ds, ax
    mov esi, offset k_oops
    call kputs
    cli
    hlt

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

kputs:
    lodsb
    test al, al
    jz 1f
    call kputc
    jmp kputs
1:  ret

khex:
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

k_hello:  .asciz "kernel: paging on (CR0.PG, CR0.WP); running the ring-3 program\n"
k_pf:     .asciz "kernel: #PF at "
k_cr2:    .asciz " CR2="
k_err:    .asciz " error="
k_notp:   .asciz " (not present,"
k_prot:   .asciz " (protection,"
k_read:   .asciz " read,"
k_write:  .asciz " write,"
k_user:   .asciz " user)"
k_sup:    .asciz " supervisor)"
k_mapped: .asciz ": mapped a frame, retrying\n"
k_skip:   .asciz ": resuming at the recovery address\n"
k_exit:   .asciz "kernel: exit(0) from ring 3, halting\n"
k_oops:   .asciz "kernel: unexpected interrupt\n"
u_ok:     .asciz "user: the demand-paged page holds 0x1234\n"

    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00CFFA000000FFFF
    .quad 0x00CFF2000000FFFF
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
    .word tss_end - tss       # no I/O bitmap: every port needs IOPL
tss_end:
