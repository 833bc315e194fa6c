# system.S: INT 11h, INT 12h, INT 15h, and the memory sizes POST finds
# (to be completed).

# memory_init: sizes memory from the CMOS.
memory_init:
    ret

# extended_kb: EAX = KiB of RAM above 1 MiB.
extended_kb:
    xor eax, eax
    ret

int11_handler:
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    mov ax, [BDA_EQUIPMENT]
    pop ds
    iret

int12_handler:
    push ds
    mov ax, BDA_SEG
    mov ds, ax
    mov ax, [BDA_MEM_KB]
    pop ds
    iret

int15_handler:
    stc
    mov ah, 0x86
    jmp iret_cf
