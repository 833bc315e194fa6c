# Lesson 7, nanobench: the nanobenchmarks of Adams and Agesen (ASPLOS
# 2006, "A Comparison of Software and Hardware Techniques for x86
# Virtualization"), measured with RDTSC as cycles per operation.
#
# Each benchmark repeats one operation N times between two RDTSC reads:
#   syscall    INT 0x80 from ring 3 to a ring-0 handler that IRETs at once
#   in         IN from port 0x80 (a device access: an exit under KVM)
#   cr3wr      MOV to CR3 (flushes the TLB)
#   pgfault    a ring-0 access to a not-present page; the handler maps it
#   divzero    DIV by zero; the #DE handler skips the instruction
#   ptemod     a write to a page-table entry
#   call/ret   a near CALL to a RET
# Around each benchmark the kernel writes POST codes to port 0x80: n
# (1-7) when benchmark n starts, 0x80 + n when it ends, so `ringlab
# bench` can time each one in host time on every engine.
# On ringlab's interpreter the TSC counts virtual time (1 ns per
# instruction), so the figures are instruction counts; on KVM they are
# real cycles. The numbers differ by engine; the table does not.

.intel_syntax noprefix
.code32
.global start

.equ COM1, 0x3F8
.equ N, 10000
.equ KSTACK, 0x90000
.equ USTACK, 0x80000
.equ IDT, 0x70000
.equ PD, 0x200000
.equ PT0, 0x201000
.equ PT1, 0x202000
.equ PROBE, 0x400000           # the page the page-fault benchmark unmaps
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
    mov edi, IDT + 0 * 8
    mov eax, offset de_handler
    mov dx, 0x8E00
    call gate
    mov edi, IDT + 14 * 8
    mov eax, offset pf_handler
    mov dx, 0x8E00
    call gate
    mov edi, IDT + 0x80 * 8
    mov eax, offset null_syscall
    mov dx, 0xEF00
    call gate
    mov edi, IDT + 0x81 * 8
    mov eax, offset sys_back
    mov dx, 0xEF00
    call gate
    lidt [idtr]

    # Identity-map 0-8 MiB, user and writable, then turn paging on.
    mov edi, PT0
    mov eax, 0x007            # P | RW | US
    mov ecx, 2048             # PT0 and PT1 are contiguous
3:  mov [edi], eax
    add eax, 0x1000
    add edi, 4
    loop 3b
    mov edi, PD
    xor eax, eax
    mov ecx, 1024
    rep stosd
    mov dword ptr [PD + 0], PT0 | 7
    mov dword ptr [PD + 4], PT1 | 7
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax

    mov esi, offset s_title
    call puts

    # in: IN from port 0x80.
    call mark_start
    call t0
    mov ecx, N
4:  in al, 0x80
    loop 4b
    mov esi, offset s_in
    call report

    # cr3wr: reload CR3.
    call mark_start
    call t0
    mov ecx, N
    mov eax, PD
5:  mov cr3, eax
    loop 5b
    mov esi, offset s_cr3
    call report

    # pgfault: unmap PROBE, touch it; the handler maps it back.
    call mark_start
    call t0
    mov ecx, N
6:  mov dword ptr [PT1 + ((PROBE >> 12) & 0x3FF) * 4], 0
    invlpg [PROBE]
    mov eax, [PROBE]
    loop 6b
    mov esi, offset s_pf
    call report

    # divzero: DIV by zero; the handler steps over the 2-byte DIV.
    call mark_start
    call t0
    mov ecx, N
    xor ebx, ebx
7:  xor edx, edx
    mov eax, 1
    div ebx
    loop 7b
    mov esi, offset s_de
    call report

    # ptemod: write a page-table entry.
    call mark_start
    call t0
    mov ecx, N
    mov eax, PROBE | 7
8:  mov [PT1 + ((PROBE >> 12) & 0x3FF) * 4], eax
    loop 8b
    mov esi, offset s_pte
    call report

    # call/ret.
    call mark_start
    call t0
    mov ecx, N
9:  call just_ret
    loop 9b
    mov esi, offset s_call
    call report

    # syscall: from ring 3 (the start mark is written here, in ring 0:
    # ring 3 may not touch port 0x80).
    call mark_start
    push UDATA
    push USTACK
    push 0x002
    push UCODE
    push offset user_main
    iret

user_main:
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    call t0
    mov ecx, N
1:  int 0x80
    loop 1b
    rdtsc
    sub eax, [tsc0]
    int 0x81                  # back to ring 0 with EAX = elapsed cycles

sys_back:                     # ring 0 again (the frame is left unused)
    mov bx, KDATA
    mov ds, bx
    mov es, bx
    mov [tsc1], eax
    mov esi, offset s_sys
    call report_elapsed
    mov esi, offset s_end
    call puts
    cli
    hlt

# ---- handlers -------------------------------------------------------------

null_syscall:
    iret

de_handler:                   # #DE is a fault: skip the DIV (2 bytes)
    add dword ptr [esp], 2
    iret

pf_handler:                   # map PROBE back (the only page that faults)
    push eax
    mov eax, PROBE | 7
    mov [PT1 + ((PROBE >> 12) & 0x3FF) * 4], eax
    pop eax
    add esp, 4                # error code
    iret

unexpected:
    mov ax, KDATA
    mov ds, ax
    mov esi, offset s_oops
    call puts
    cli
    hlt

just_ret:
    ret

# ---- timing and output --------------------------------------------------

mark_start:                   # POST code n: benchmark n starts
    inc byte ptr [bench_no]
    push eax
    mov al, [bench_no]
    out 0x80, al
    pop eax
    ret

t0:                           # start a measurement
    push eax
    push edx
    rdtsc
    mov [tsc0], eax
    pop edx
    pop eax
    ret

report:                       # ESI: name; elapsed since t0, per operation
    rdtsc
    sub eax, [tsc0]
    mov [tsc1], eax
report_elapsed:
    mov al, [bench_no]        # POST code 0x80 + n: benchmark n ends
    or al, 0x80
    out 0x80, al
    call puts
    mov eax, [tsc1]
    xor edx, edx
    mov ecx, N
    div ecx
    call decimal
    mov esi, offset s_cycles
    call puts
    ret

decimal:                      # EAX as decimal, right-aligned in 8 columns
    mov edi, offset numbuf + 8
    mov byte ptr [edi], 0
    mov ecx, 10
1:  xor edx, edx
    div ecx
    add dl, '0'
    dec edi
    mov [edi], dl
    test eax, eax
    jnz 1b
2:  cmp edi, offset numbuf
    je 3f
    dec edi
    mov byte ptr [edi], ' '
    jmp 2b
3:  mov esi, offset numbuf
    jmp puts

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

puts:
    lodsb
    test al, al
    jz 1f
    call putc
    jmp puts
1:  ret

putc:
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

s_title:  .asciz "nanobench: cycles per operation (RDTSC), 10000 each\n"
s_in:     .asciz "  in         IN from port 0x80    "
s_cr3:    .asciz "  cr3wr      MOV to CR3           "
s_pf:     .asciz "  pgfault    #PF, handler maps    "
s_de:     .asciz "  divzero    #DE, handler skips   "
s_pte:    .asciz "  ptemod     write a PTE          "
s_call:   .asciz "  call/ret   near CALL and RET    "
s_sys:    .asciz "  syscall    INT 0x80 and IRET    "
s_cycles: .asciz "\n"
s_end:    .asciz "done\n"

    # The variables on a page of their own: a store to a page that holds
    # code makes a binary translator (ringlab's, QEMU's) drop what it
    # translated from that page, which would be timed along.
    .balign 4096
tsc0:     .long 0
bench_no: .byte 0
tsc1:     .long 0
numbuf:   .fill 9, 1, 0
s_oops:   .asciz "unexpected interrupt\n"

    .align 8
gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF
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
    .word tss_end - tss
tss_end:
