# Lesson 2, protected: from real mode into 32-bit protected mode.
#
# A boot sector builds a Global Descriptor Table (GDT) with flat 4 GiB code
# and data segments, sets CR0.PE, and does the far jump that loads CS from
# the GDT — only then does the CPU decode 32-bit code. It then loads the
# data segment registers, prints what it sees on COM1 and on the VGA
# screen (the same line on both), and halts with interrupts disabled (exit status 0).

.intel_syntax noprefix
.code16
.global start

.equ COM1, 0x3F8
.equ CODE_SEL, 0x08          # GDT index 1, TI = 0 (GDT), RPL 0
.equ DATA_SEL, 0x10          # GDT index 2

start:
    cli                      # no IDT yet: an interrupt now would triple-fault
    xor ax, ax
    mov ds, ax
    lgdt [gdtr]              # GDTR = base and limit of our table
    mov eax, cr0
    or eax, 1                # CR0.PE: protection on ...
    mov cr0, eax
    # ... but CS still holds its real-mode cache: this far jump loads CS
    # with CODE_SEL, whose descriptor says "32-bit" (D = 1).
    ljmp CODE_SEL, offset pm32

.code32
pm32:
    mov ax, DATA_SEL         # each load reads a descriptor from the GDT
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7C00

    # COM1 at 8N1 (see lesson 1).
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

    # Everything printed goes to COM1 and, in white on green, to the VGA
    # screen: EDI is the screen position (see putc). Flat segments make
    # 0xB8000, the text screen's memory, an ordinary address now.
    mov edi, 0xB8000
    mov esi, offset msg
    call puts
    mov ax, cs               # show the selectors and CR0 we run with
    call hex16
    mov esi, offset msg_ds
    call puts
    mov ax, ds
    call hex16
    mov esi, offset msg_cr0
    call puts
    mov eax, cr0
    call hex32
    mov al, 10
    call putc
    cli
    hlt

puts:                        # ESI: NUL-terminated string to COM1
    lodsb
    test al, al
    jz 1f
    call putc
    jmp puts
1:  ret

hex32:                       # EAX in hex
    push eax
    shr eax, 16
    call hex16
    pop eax
hex16:                       # AX in hex
    mov ecx, 4
1:  rol ax, 4
    push eax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 2f
    add al, 'a' - '0' - 10
2:  call putc
    pop eax
    loop 1b
    ret

putc:                        # AL to COM1 once the transmitter is empty,
    push edx                 # and to the VGA screen at EDI
    push eax
    mov dx, COM1 + 5
1:  in al, dx
    test al, 0x20
    jz 1b
    pop eax
    mov dx, COM1
    out dx, al
    cmp al, 10               # the newline is for COM1 only
    je 2f
    push eax
    mov ah, 0x2F             # white on green
    stosw                    # [ES:EDI] = character and colour; EDI += 2
    pop eax
2:  pop edx
    ret

msg:     .asciz "Protected mode, 32-bit code. CS="
msg_ds:  .asciz " DS="
msg_cr0: .asciz " CR0="

    .align 8
gdt:
    .quad 0                  # the null descriptor: selector 0 means "none"
    .quad 0x00CF9A000000FFFF # 0x08: base 0, limit 4 GiB (G=1), code, DPL 0, D=1
    .quad 0x00CF92000000FFFF # 0x10: base 0, limit 4 GiB, data, writable, DPL 0
gdtr:
    .word gdtr - gdt - 1     # limit: size - 1
    .long gdt                # linear base

    .org 510
    .word 0xAA55
