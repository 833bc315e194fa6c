# nmi.S: NMIs the guest sends itself through the local APIC (ICR: delivery
# mode NMI, shorthand self). An NMI is taken with IF clear; the NMI mask
# (port 0x70 bit 7) holds one back until it is cleared; a second NMI sent
# inside the handler waits for the handler's IRET (SDM Vol 3A 6.7.1).
    .include "platform.inc"

    .set LAPIC, 0xFEE00000
    .set ICR_LO, 0x300
    .set SELF_NMI, 0x00044400      # shorthand self, delivery mode NMI

main:
    mov ecx, 2
    mov eax, offset nmi_handler
    call set_gate
    cli
    # 1. Taken with IF = 0.
    mov dword ptr [LAPIC + ICR_LO], SELF_NMI
    nop
    mov esi, offset m1
    call report
    # 2. Masked at port 0x70: held, then taken once the mask is cleared.
    mov al, 0x8F
    out 0x70, al
    mov dword ptr [LAPIC + ICR_LO], SELF_NMI
    nop
    nop
    mov esi, offset m2
    call report
    mov al, 0x0F
    out 0x70, al
    nop
    mov esi, offset m3
    call report
    # 3. One sent inside the handler waits for its IRET.
    mov byte ptr [nested], 1
    mov dword ptr [LAPIC + ICR_LO], SELF_NMI
    nop
    mov esi, offset m4
    call report
    mov esi, offset order_msg
    call puts
    mov esi, offset order
    call puts
    call newline
    ret

# report: prints ESI then the NMI count.
report:
    call puts
    mov eax, [count]
    call putdec
    call newline
    ret

nmi_handler:
    push eax
    inc dword ptr [count]
    # Record which NMI ran: 'a' + count - 1, and '<' / '>' around the
    # nested send.
    mov eax, [count]
    add al, 'a' - 1
    call append
    cmp byte ptr [nested], 1
    jne 1f
    mov byte ptr [nested], 0
    mov al, '<'
    call append
    mov dword ptr [LAPIC + ICR_LO], SELF_NMI
    nop
    nop
    mov al, '>'
    call append
1:  pop eax
    iret

# append: AL to the `order` string.
append:
    push edi
    mov edi, [order_len]
    mov [order + edi], al
    inc dword ptr [order_len]
    pop edi
    ret

count: .long 0
nested: .byte 0
order_len: .long 0
order: .fill 16, 1, 0
m1: .asciz "NMI with IF=0, count "
m2: .asciz "NMI masked at port 0x70, count "
m3: .asciz "mask cleared, count "
m4: .asciz "NMI sent inside the handler, count "
order_msg: .asciz "order: "
