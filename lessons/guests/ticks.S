# Timer interrupts while the CPU computes: real mode, the PIC at vector
# 0x20, the PIT at 100 Hz; the main loop spins (no HLT) until the IRQ0
# handler has counted five ticks, then prints "5 ticks" on COM1 and exits.
# On KVM the ticks must interrupt KVM_RUN while the guest loops.
    .intel_syntax noprefix
    .code16
    .global start
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7000
    mov word ptr [0x20*4], offset tick    # IVT entry 0x20: IRQ0
    mov word ptr [0x20*4+2], 0
    # 8259A: ICW1 (edge, cascade, ICW4), ICW2 base 0x20/0x28, ICW3, ICW4 8086.
    mov al, 0x11
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
    mov al, 0xFE            # only IRQ0
    out 0x21, al
    mov al, 0xFF
    out 0xA1, al
    # 8254 counter 0, mode 2, 11932 = 100 Hz.
    mov al, 0x34
    out 0x43, al
    mov ax, 11932
    out 0x40, al
    mov al, ah
    out 0x40, al
    mov word ptr [count], 0
    sti
1:  cmp word ptr [count], 5
    jb 1b
    cli
    mov si, offset msg
    mov dx, 0x3F8
2:  lodsb
    test al, al
    jz 3f
    out dx, al
    jmp 2b
3:  xor al, al
    out 0xF4, al

tick:
    inc word ptr [count]
    push ax
    mov al, 0x20            # non-specific EOI
    out 0x20, al
    pop ax
    iret

count: .word 0
msg: .asciz "5 ticks\n"
    .org 510
    .word 0xAA55
