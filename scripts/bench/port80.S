# COUNT (default 1,000,000) OUTs to port 0x80 (POST codes), then exit
# through port 0xF4: the cost of a port I/O exit round trip on KVM
# (BENCHMARKS.md). `as --defsym COUNT=N` sets another count.
    .intel_syntax noprefix
    .code16
    .ifndef COUNT
    .set COUNT, 1000000
    .endif
    .global start
start:
    cli
    mov ecx, COUNT
1:  out 0x80, al
    dec ecx
    jnz 1b
    xor al, al
    out 0xf4, al
    .org 510
    .word 0xAA55
