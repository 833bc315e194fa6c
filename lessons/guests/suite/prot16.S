# prot16: real16's workload in 16-bit protected mode, as 286-era
# protected-mode systems ran: a code segment whose base (7C00h) is not its
# selector times 16, LODSW through data segments loaded from the GDT (one
# per pass, sixteen of them, at real16's bases, so the checksum is
# real16's), 16-bit arithmetic and rotates, a far call per pass. The
# pattern is written in real mode, the printing done in 32-bit protected
# mode.
    .include "boot.inc"
    .code16
    .global start
    .ifndef PASSES
    .equ PASSES, 2000
    .endif
    .equ GDT16, 0x0600          # this guest's GDT, built here
    .equ CODE16, 0x18           # 16-bit code, base 7C00h, 64 KiB
    .equ BASE16, 0x7C00
    .equ DATA0, 0x20            # 16-bit data, base 0 (stack, result)
    .equ DATA16, 0x28           # 0x28 + 8 * i: base 10000h + 16 * i
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7000
    cld
    PATTERN16
    xor ax, ax                  # the GDT: boot.inc's three descriptors,
    mov es, ax                  # then the 16-bit ones
    mov di, GDT16
    mov si, offset gdt
    mov cx, 12
    rep movsw
    mov ax, 0xFFFF              # 0x18: code, base 7C00h
    stosw
    mov ax, BASE16
    stosw
    mov ax, 0x9A00
    stosw
    xor ax, ax
    stosw
    mov ax, 0xFFFF              # 0x20: data, base 0
    stosw
    xor ax, ax
    stosw
    mov ax, 0x9200
    stosw
    xor ax, ax
    stosw
    xor bx, bx                  # 0x28 + 8 * i: data, base 10000h + 16 * i
3:  mov ax, 0xFFFF
    stosw
    mov ax, bx
    stosw
    mov ax, 0x9201
    stosw
    xor ax, ax
    stosw
    add bx, 16
    cmp bx, 256
    jb 3b
    lgdt [gdtr16]
    mov eax, cr0
    or al, 1                    # CR0.PE
    mov cr0, eax
    ljmp CODE16, offset pm16 - BASE16
pm16:
    mov ax, DATA0
    mov ss, ax
    mov sp, 0x7000
    mov bp, PASSES
    xor dx, dx
    xor di, di
1:  mov ax, bp
    and ax, 0x0F
    shl ax, 3
    add ax, DATA16
    mov ds, ax
    PASS16
    lcall CODE16, offset mark - BASE16
    dec bp
    jnz 1b
    mov ax, DATA0
    mov ds, ax
    mov [result], dx
    mov [result + 2], di
    ljmp 0x08, offset pm32      # boot.inc's flat 32-bit code
mark:                           # a far call and return per pass
    add di, bp
    lret
    .code32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7000
    mov eax, [result]
    FINISH
    .code16
gdtr16:
    .word DATA16 + 16 * 8 - 1
    .long GDT16
result:
    .long 0
    TAIL
