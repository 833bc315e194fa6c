# panic-loop.S: `jmp $` twice. First with IF = 1, waiting for the PIT's
# one-shot tick (a legitimate wait: the jump runs until the interrupt,
# whose handler leaves past it); then as xv6's panic() ends, printing
# "panic: ..." and spinning with interrupts disabled (`cli; for(;;);`),
# where every engine stops the run: Stop::Spinning, ringlab's exit status
# 18. The platform's EXIT after `main` is never reached.
    .include "platform.inc"

    .set PIT_CH0, 0x40
    .set PIT_MODE, 0x43
    .set ONE_SHOT, 0x30            # channel 0, lobyte/hibyte, mode 0
    .set TICKS, 1193               # about 1 ms of the PIT's 1.193182 MHz

main:
    mov ecx, IRQ_BASE
    mov eax, offset tick
    call set_gate
    mov al, ONE_SHOT
    out PIT_MODE, al
    mov al, TICKS & 0xFF
    out PIT_CH0, al
    mov al, TICKS >> 8
    out PIT_CH0, al
    in al, PIC1 + 1
    and al, 0xFE                   # IRQ0 unmasked
    out PIC1 + 1, al
    sti
wait:
    jmp wait                       # jmp $ with IF = 1: runs until the tick
woke:
    mov esi, offset woke_msg
    call puts
    mov esi, offset panic_msg
    call puts
    cli
    jmp .                          # EB FE with IF = 0: a dead CPU

# tick: IRQ0 leaves the wait for `woke`. It drops its frame (EIP, CS,
# EFLAGS) rather than return through IRET, which kvm-pvm cannot run in
# unpaged protected mode, so this guest runs on KVM there too; IF stays
# clear, as the interrupt gate left it, and IRQ0 is masked again.
tick:
    mov al, 0xFF
    out PIC1 + 1, al
    xor al, al
    call pic_eoi
    add esp, 12
    jmp woke

woke_msg: .asciz "woken from jmp $ by IRQ0\n"
panic_msg: .asciz "panic: spin test\n"
