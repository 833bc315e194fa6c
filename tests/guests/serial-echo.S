# serial-echo.S: an interrupt-driven COM1 driver that echoes what it
# receives, as a terminal line discipline with echo on does.
#
# The 16550A is set up as an OS does (PC16550D datasheet): 115200 baud
# 8N1 (divisor 1), FIFOs on and cleared with the receive trigger at 14
# bytes, DTR, RTS and OUT2 (which lets INTR reach IRQ 4 on a PC), then the
# received-data interrupt (IER bit 0) once IRQ 4 is unmasked at the 8259A.
#
# The handler is the 8250 driver's loop for an edge-triggered ISA line:
# read IIR until it says no interrupt is pending (bit 0), so the line is
# low when the handler returns and the next interrupt makes a new edge.
# For received data (IIR 4) and character timeouts (IIR C) it drains the
# receiver while LSR says data ready, echoing each byte to THR (after
# waiting for THRE); a line status interrupt (IIR 6) reads LSR.
#
# The input ends with EOT (0x04), which is not echoed: the guest then
# turns the receive interrupt off and prints one line, "echo: N bytes,
# checksum C, interrupts I (received data R, timeouts T), line errors E",
# C the djb2 checksum (h = h * 33 + byte, from 5381) of the bytes echoed,
# and exits with 0.
    .include "platform.inc"
    .include "multiboot.inc"

    .set RBR, COM1                  # receive buffer / THR / divisor low
    .set IER, COM1 + 1
    .set IIR, COM1 + 2              # FCR when written
    .set LCR, COM1 + 3
    .set MCR, COM1 + 4
    .set LSR, COM1 + 5
    .set LSR_DR, 0x01
    .set LSR_THRE, 0x20
    .set EOT, 0x04

main:
    cld
    mov ecx, IRQ_BASE + 4
    mov eax, offset com1_irq
    call set_gate
    mov dx, LCR
    mov al, 0x80                    # DLAB: the divisor latch
    out dx, al
    mov dx, RBR
    mov al, 1                       # 115200 baud
    out dx, al
    mov dx, IER
    xor al, al
    out dx, al
    mov dx, LCR
    mov al, 0x03                    # 8N1, DLAB off
    out dx, al
    mov dx, IIR
    mov al, 0xC7                    # FIFOs on, both cleared, trigger 14
    out dx, al
    mov dx, MCR
    mov al, 0x0B                    # DTR, RTS, OUT2
    out dx, al
    in al, PIC1 + 1
    and al, 0xEF                    # IRQ 4
    out PIC1 + 1, al
    mov dx, IER
    mov al, 0x01                    # received data available
    out dx, al
1:  cli
    cmp byte ptr [done], 0
    jne 2f
    sti
    hlt
    jmp 1b
2:  mov esi, offset s_echo
    call puts
    mov eax, [count]
    call putdec
    mov esi, offset s_bytes
    call puts
    mov eax, [sum]
    call puthex
    mov esi, offset s_interrupts
    call puts
    mov eax, [irqs]
    call putdec
    mov esi, offset s_received
    call puts
    mov eax, [rx_data]
    call putdec
    mov esi, offset s_timeouts
    call puts
    mov eax, [timeouts]
    call putdec
    mov esi, offset s_errors
    call puts
    mov eax, [line_errors]
    call putdec
    call newline
    ret

com1_irq:
    push eax
    push ecx
    push edx
    inc dword ptr [irqs]
1:  mov dx, IIR
    in al, dx
    test al, 0x01                   # nothing (more) pending
    jnz 9f
    and al, 0x0E
    cmp al, 0x04
    je 3f
    cmp al, 0x0C
    je 2f
    cmp al, 0x06
    je 4f
    mov dx, COM1 + 6                # modem status: read MSR to clear
    in al, dx
    jmp 1b
2:  inc dword ptr [timeouts]
    jmp 5f
3:  inc dword ptr [rx_data]
    jmp 5f
4:  inc dword ptr [line_errors]
    mov dx, LSR
    in al, dx
    jmp 1b
    # Drain the receiver.
5:  mov dx, LSR
    in al, dx
    test al, LSR_DR
    jz 1b
    mov dx, RBR
    in al, dx
    cmp al, EOT
    je 8f
    inc dword ptr [count]
    movzx ecx, al
    mov edx, [sum]
    imul edx, edx, 33
    add edx, ecx
    mov [sum], edx
    mov cl, al
    mov dx, LSR
6:  in al, dx
    test al, LSR_THRE
    jz 6b
    mov al, cl
    mov dx, RBR
    out dx, al
    jmp 5b
8:  mov byte ptr [done], 1
    mov dx, IER                     # no more receive interrupts
    xor al, al
    out dx, al
9:  mov al, 0x20
    out PIC1, al
    pop edx
    pop ecx
    pop eax
    IRET_SAME_RING

s_echo:         .asciz "echo: "
s_bytes:        .asciz " bytes, checksum "
s_interrupts:   .asciz ", interrupts "
s_received:     .asciz " (received data "
s_timeouts:     .asciz ", timeouts "
s_errors:       .asciz "), line errors "

    .p2align 2
count:          .long 0
sum:            .long 5381
irqs:           .long 0
rx_data:        .long 0
timeouts:       .long 0
line_errors:    .long 0
done:           .byte 0
