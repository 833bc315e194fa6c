# The cost of a local APIC register write (BENCHMARKS.md): a multiboot
# kernel that enables the local APIC and then writes COUNT times in a
# `dec ecx; jnz` loop, the register chosen by OP:
#   OP=0  a store to RAM (the baseline: the loop itself)
#   OP=1  EOI (0xFEE000B0) -- on KVM an MMIO exit, as every local APIC
#         access is without an in-kernel irqchip
#   OP=2  TPR (0xFEE00080)
#   OP=3  OUT to port 0x80 (a port I/O exit, for comparison)
# then prints "done" on COM1 and leaves through isa-debug-exit (port
# 0xF4). (wall time with OP - wall time with OP=0) / COUNT is what one
# write costs the engine.
# Assemble with: as --32 --defsym OP=n --defsym COUNT=N; link at 1 MiB.
    .intel_syntax noprefix
    .code32
    .equ COM1, 0x3F8
    .equ LAPIC, 0xFEE00000
    .equ DATA, 0x200000         # RAM on a page of its own
    .ifndef COUNT
    .equ COUNT, 1000000
    .endif
    .ifndef OP
    .equ OP, 1
    .endif

    .section .text
    .global start
    .balign 4
mb_header:
    .long 0x1BADB002            # multiboot magic
    .long 0                     # flags
    .long -0x1BADB002           # checksum
start:
    mov esp, 0x7000
    # Software enable (SVR bit 8, spurious vector 0xFF), as a kernel does.
    mov dword ptr [LAPIC + 0xF0], 0x1FF
    mov ecx, COUNT
    xor eax, eax
1:
    .if OP == 0
    mov [DATA], eax
    .elseif OP == 1
    mov [LAPIC + 0xB0], eax
    .elseif OP == 2
    mov [LAPIC + 0x80], eax
    .else
    out 0x80, al
    .endif
    dec ecx
    jnz 1b

    mov esi, offset done
    mov dx, COM1
2:  lodsb
    test al, al
    jz 3f
    out dx, al
    jmp 2b
3:  xor eax, eax
    out 0xF4, al                # isa-debug-exit
    cli
    hlt

done:
    .asciz "done\n"
