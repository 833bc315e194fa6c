# Lesson 8, determinism: the same timer-driven guest on every engine.
#
# The PIT interrupts at 1 kHz while the guest runs a fixed computation
# three times. Each run prints a checksum (the same everywhere: the
# computation does not depend on time) and how many timer ticks and TSC
# cycles it took. On the interpreter, virtual time advances by retired
# instructions, so ticks and cycles are the same on every run and every
# machine; on KVM they follow the real clock and change from run to run.
# A multiboot kernel (entered in 32-bit protected mode, ring 0).

.intel_syntax noprefix
.code32
.global start

.equ COM1, 0x3F8
.equ IDT, 0x1000
.equ ROUNDS, 2000000

    .section .text
    .align 4
    .long 0x1BADB002
    .long 0x00000002
    .long -(0x1BADB002 + 0x00000002)

start:
    cli
    lgdt [gdtr]
    ljmp 0x08, offset pm32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x90000
    mov edi, IDT
    mov ecx, 256
1:  mov eax, offset spurious
    call gate
    loop 1b
    mov edi, IDT + 0x20 * 8
    mov eax, offset timer
    call gate
    lidt [idtr]
    mov dx, COM1 + 3          # COM1 8N1
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
    mov al, 0x11              # PIC at 0x20, only IRQ0
    out 0x20, al
    out 0xA0, al
    mov al, 0x20
    out 0x21, al
    mov al, 0x28
    out 0xA1, al
    mov al, 0x04
    out 0x21, al
    mov al, 0x02
    out 0xA1, al
    mov al, 0x01
    out 0x21, al
    out 0xA1, al
    mov al, 0xFE
    out 0x21, al
    mov al, 0xFF
    out 0xA1, al
    mov al, 0x34              # PIT: mode 2, 1193 = 1 kHz
    out 0x43, al
    mov ax, 1193
    out 0x40, al
    mov al, ah
    out 0x40, al
    sti

    mov ebp, 3                # three runs
run:
    mov dword ptr [ticks], 0
    rdtsc
    mov [tsc0], eax
    mov ecx, ROUNDS           # the computation: a checksum of a sequence
    mov eax, 0x12345678
    xor ebx, ebx
2:  imul eax, eax, 1103515245
    add eax, 12345
    add ebx, eax
    rol ebx, 3
    dec ecx
    jnz 2b
    mov [sum], ebx
    rdtsc
    sub eax, [tsc0]
    mov [cycles], eax
    mov edx, [ticks]
    mov [nticks], edx
    mov esi, offset s_sum
    call puts
    mov eax, [sum]
    call hex32
    mov esi, offset s_ticks
    call puts
    mov eax, [nticks]
    call decimal
    mov esi, offset s_cycles
    call puts
    mov eax, [cycles]
    call decimal
    mov al, 10
    call putc
    dec ebp
    jnz run
    cli
    hlt

timer:
    inc dword ptr [ticks]
    push eax
    mov al, 0x20
    out 0x20, al
    pop eax
spurious:
    iret

gate:
    mov [edi], ax
    mov word ptr [edi + 2], 0x08
    mov word ptr [edi + 4], 0x8E00
    shr eax, 16
    mov [edi + 6], ax
    add edi, 8
    ret

decimal:                      # EAX in decimal
    push ebx
    mov ebx, 10
    xor ecx, ecx
1:  xor edx, edx
    div ebx
    push edx
    inc ecx
    test eax, eax
    jnz 1b
2:  pop eax
    add al, '0'
    call putc
    loop 2b
    pop ebx
    ret

hex32:
    mov ecx, 8
1:  rol eax, 4
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

puts:
    lodsb
    test al, al
    jz 1f
    call putc
    jmp puts
1:  ret

putc:
    push edx
    push eax
    mov dx, COM1 + 5
1:  in al, dx
    test al, 0x20
    jz 1b
    pop eax
    mov dx, COM1
    out dx, al
    pop edx
    ret

ticks:  .long 0
nticks: .long 0
tsc0:   .long 0
cycles: .long 0
sum:    .long 0
s_sum:    .asciz "checksum "
s_ticks:  .asciz " ticks "
s_cycles: .asciz " cycles "

    .align 8
gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF
    .quad 0x00CF93000000FFFF
gdtr:
    .word gdtr - gdt - 1
    .long gdt
idtr:
    .word 256 * 8 - 1
    .long IDT

