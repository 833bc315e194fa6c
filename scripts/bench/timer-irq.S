# The cost of an injected timer interrupt (BENCHMARKS.md): a real-mode
# boot sector that spins LOOPS times through `dec ecx; jnz` while the 8254
# interrupts it at 1193182 / DIVISOR Hz (DIVISOR = 0: no timer), then
# prints the number of IRQ0s taken in hex on COM1 and exits through port
# 0xF4. Run once with the timer and once without: the difference in wall
# time divided by the ticks is what one interrupt costs the engine
# (on KVM: the timer signal exit, KVM_INTERRUPT, the handler's EOI exit).
# Assemble with: as --32 --defsym LOOPS=N --defsym DIVISOR=D
    .intel_syntax noprefix
    .code16
    .global start
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7C00
    mov word ptr [8 * 4], offset irq0       # IRQ0 -> vector 8, as a BIOS sets it
    mov word ptr [8 * 4 + 2], 0
    mov dword ptr [ticks], 0
    mov al, 0x11                            # 8259A ICW1: edge, cascade, ICW4
    out 0x20, al
    mov al, 0x08                            # ICW2: vectors 8-15
    out 0x21, al
    mov al, 0x04                            # ICW3: slave on IRQ2
    out 0x21, al
    mov al, 0x01                            # ICW4: 8086 mode
    out 0x21, al
.if DIVISOR
    mov al, 0xFE                            # only IRQ0
    out 0x21, al
    mov al, 0x34                            # 8254 channel 0, lo/hi, mode 2
    out 0x43, al
    mov al, DIVISOR & 0xFF
    out 0x40, al
    mov al, DIVISOR >> 8
    out 0x40, al
.else
    mov al, 0xFF
    out 0x21, al
.endif
    sti
    mov ecx, LOOPS
1:  dec ecx
    jnz 1b
    cli
    mov edx, [ticks]
    mov cx, 8
2:  rol edx, 4                              # print EDX in hex, high digit first
    mov al, dl
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 3f
    add al, 'a' - '9' - 1
3:  push dx
    mov dx, 0x3F8
    out dx, al
    pop dx
    loop 2b
    mov al, '\n'
    mov dx, 0x3F8
    out dx, al
    xor al, al
    out 0xF4, al
    hlt

irq0:
    inc dword ptr cs:[ticks]
    push ax
    mov al, 0x20                            # non-specific EOI
    out 0x20, al
    pop ax
    iret

    .balign 4
ticks:
    .long 0
    .org 510
    .word 0xAA55
