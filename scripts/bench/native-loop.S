# The compute guest's loop (lessons/guests/compute.S) as a 32-bit Linux
# program, to time the same instructions natively in the same environment
# (BENCHMARKS.md, KVM against native).
    .intel_syntax noprefix
    .code32
    .global _start
    .equ ITERATIONS, 112500000
    .bss
    .align 4096
data: .space 4096
    .text
_start:
    lea esi, data
    mov ecx, ITERATIONS
    xor eax, eax
    xor ebx, ebx
1:  mov edx, [esi + ebx*4]
    add eax, edx
    add edx, ecx
    mov [esi + ebx*4], edx
    inc ebx
    and ebx, 1023
    dec ecx
    jnz 1b
    mov eax, 1          # exit(0)
    xor ebx, ebx
    int 0x80
