# Lesson 3, interrupts: an IDT, the 8259A remapped to 0x20, the 8254 at
# 100 Hz, and an idle loop that HLTs until five timer ticks have arrived.
#
# In protected mode (see lesson 2) the CPU finds handlers through the
# Interrupt Descriptor Table. The PIC's IRQ0-7 come out at vectors 8-15 by
# default, on top of the CPU's exceptions, so we move them to 0x20-0x27.
# HLT stops the CPU until an interrupt: the emulator skips the idle time.

.intel_syntax noprefix
.code16
.global start

.equ COM1, 0x3F8
.equ IDT, 0x1000             # 256 gates of 8 bytes
.equ TICKS, 5

start:
    cli
    xor ax, ax
    mov ds, ax
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    ljmp 0x08, offset pm32

.code32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7C00

    # Fill the IDT: every vector goes to `unexpected`, then the timer
    # (0x20) and the PIC's spurious IRQ7 (0x27) get their own handlers.
    mov edi, IDT
    mov ecx, 256
1:  mov eax, offset unexpected
    call gate
    loop 1b
    mov edi, IDT + 0x20 * 8
    mov eax, offset timer
    call gate
    mov edi, IDT + 0x27 * 8
    mov eax, offset spurious
    call gate
    lidt [idtr]

    # COM1 at 8N1.
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

    # 8259A pair: ICW1 = edge triggered, cascade, ICW4 follows; ICW2 = the
    # vector base; ICW3 = slave on IR2; ICW4 = 8086 mode. Then mask all
    # but IRQ0 (OCW1).
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
    mov al, 0xFE
    out 0x21, al
    mov al, 0xFF
    out 0xA1, al

    # 8254 counter 0, LSB then MSB, mode 2 (rate generator), count 11932:
    # 1193182 Hz / 11932 = 100 Hz.
    mov al, 0x34
    out 0x43, al
    mov ax, 11932
    out 0x40, al
    mov al, ah
    out 0x40, al

    mov esi, offset hello
    call puts
    sti                      # from here the timer interrupts us
idle:
    hlt                      # sleep until the next interrupt
    cmp dword ptr [ticks], TICKS
    jb idle
    cli
    mov esi, offset done
    call puts
    hlt                      # IF = 0: the run ends here (status 0)

timer:                       # IRQ0: count, tell COM1, end of interrupt
    push eax
    push esi
    inc dword ptr [ticks]
    mov esi, offset tick
    call puts
    mov eax, [ticks]
    add al, '0'
    call putc
    mov al, 10
    call putc
    mov al, 0x20             # OCW2: non-specific EOI
    out 0x20, al
    pop esi
    pop eax
    iret

spurious:                    # IRQ7 with nothing in service: no EOI
    iret

unexpected:                  # any other vector: say so and stop
    mov esi, offset oops
    call puts
    cli
    hlt

gate:                        # EDI: gate slot, EAX: handler -> 32-bit interrupt gate
    mov word ptr [edi], ax
    mov word ptr [edi + 2], 0x08        # code segment selector
    mov word ptr [edi + 4], 0x8E00      # P=1, DPL 0, type 0xE (interrupt gate)
    shr eax, 16
    mov word ptr [edi + 6], ax
    add edi, 8
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

ticks: .long 0
hello: .asciz "PIT at 100 Hz, waiting for 5 ticks\n"
tick:  .asciz "tick "
done:  .asciz "done\n"
oops:  .asciz "unexpected interrupt\n"

    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdtr:
    .word gdtr - gdt - 1
    .long gdt
idtr:
    .word 256 * 8 - 1
    .long IDT

    .org 510
    .word 0xAA55
