# The compute benchmark (lessons/guests/compute.S: 112.5 M iterations of an
# 8-instruction integer and memory loop, 900 M instructions) as a multiboot
# kernel, so QEMU's `-kernel` and ringlab run the very same code: entered
# in 32-bit protected mode with flat segments, prints the checksum in hex
# on COM1 and leaves through the isa-debug-exit port 0xF4
# (scripts/bench-vs-qemu.sh, BENCHMARKS.md).
    .intel_syntax noprefix
    .code32
    .equ COM1, 0x3F8
    .equ DATA, 0x20000
    .ifndef ITERATIONS          # --defsym ITERATIONS=1: startup cost only
    .equ ITERATIONS, 112500000
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
    mov esi, DATA
    mov ecx, ITERATIONS
    xor eax, eax
    xor ebx, ebx
1:  mov edx, [esi + ebx*4]      # the loop: 8 instructions, two memory ops
    add eax, edx
    add edx, ecx
    mov [esi + ebx*4], edx
    inc ebx
    and ebx, 1023
    dec ecx
    jnz 1b

    mov ebp, eax
    mov ecx, 8
2:  rol ebp, 4
    mov eax, ebp
    and eax, 0xF
    mov al, [hexdigits + eax]
    mov dx, COM1
    out dx, al
    dec ecx
    jnz 2b
    mov al, '\n'
    out dx, al
    xor eax, eax
    out 0xF4, al                # isa-debug-exit
    cli
    hlt

hexdigits:
    .ascii "0123456789abcdef"
