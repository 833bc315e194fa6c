# paging: 4 KiB pages over 64 MiB, identity-mapped, and a loop that
# touches one dword in each of 16384 pages in turn (far beyond any TLB's
# reach), reloading CR3 every 4096 touches: page walks, TLB misses and
# flushes.
    .include "boot.inc"
    .code16
    .global start
    .equ PD, 0x10000
    .equ PT, 0x400000           # 16 page tables, 64 KiB
    .equ PAGES, 16384
    .ifndef ROUNDS
    .equ ROUNDS, 2000
    .endif
start:
    ENTER_PM
    mov edi, 0x800000           # the pages touched start zeroed
    mov ecx, (0x4000000 - 0x800000) / 4
    xor eax, eax
    rep stosd
    mov edi, PT                 # the page tables: page n at n * 4096
    xor eax, eax
    or eax, 3                   # present, writable
    mov ecx, PAGES
1:  stosd
    add eax, 4096
    dec ecx
    jnz 1b
    mov edi, PD                 # the directory: 16 tables
    mov eax, PT | 3
    mov ecx, 16
2:  stosd
    add eax, 4096
    dec ecx
    jnz 2b
    mov ecx, 1024 - 16
    xor eax, eax
    rep stosd
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000          # CR0.PG
    mov cr0, eax
    mov ebp, ROUNDS
    xor edx, edx
3:  mov esi, 0x800000           # 8 MiB .. 64 MiB: 14336 pages
    mov ecx, 14336
4:  add [esi], ecx
    add edx, [esi]
    add esi, 4096
    test ecx, 4095
    jnz 5f
    mov eax, cr3                # a TLB flush every 4096 pages
    mov cr3, eax
5:  dec ecx
    jnz 4b
    dec ebp
    jnz 3b
    mov eax, edx
    FINISH
    TAIL
