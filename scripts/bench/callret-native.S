# The loop of callret.S as an x86-64 Linux program (scripts/bench-callret.sh
# times it against the same loop on ringlab's engines).
    .intel_syntax noprefix
    .global _start
_start:
    mov ecx, ITERATIONS
    test ecx, ecx
    jz 2f
1:  call just_ret
    loop 1b
2:  mov eax, 60                 # exit(0)
    xor edi, edi
    syscall
just_ret:
    ret
