# fib: call-heavy recursion, fib(33) computed the naive way: 11.4 M calls
# and returns, each with a PUSH, a compare, a branch and stack traffic.
    .include "boot.inc"
    .code16
    .global start
    .ifndef N
    .equ N, 33
    .endif
start:
    ENTER_PM
    mov eax, N
    call fib
    FINISH

fib:                            # EAX = fib(EAX); EBX, ECX clobbered
    cmp eax, 2
    jb 1f
    push eax
    dec eax
    call fib
    mov ecx, eax
    pop eax
    push ecx
    sub eax, 2
    call fib
    pop ecx
    add eax, ecx
1:  ret
    TAIL
