# Lesson 0, reset: the boot sector a PC's firmware runs.
#
# This lesson boots as a PC does. The CPU starts at the reset vector,
# F000:FFF0, in ringlab's BIOS (machine/firmware/bios.S); POST sets up
# the chips, the interrupt vector table (IVT) and the BIOS data area
# (BDA); then INT 19h reads sector 0 of the first hard disk -- these 512
# bytes -- to 0000:7C00, checks the 55 AA at its end, and jumps here with
# DL = the drive it read us from (80h, the first hard disk).
#
# We report what the BIOS left us: where we run (CS:IP), its stack
# (SS:SP), the boot drive (DL), the equipment word (INT 11h), base memory
# (INT 12h), where the extended BIOS data area (EBDA) is, and the first 32
# vectors of the IVT; then we sleep with HLT until the BIOS's timer
# handler (IRQ 0) counts a tick in the BDA, and exit through port 0xF4
# (QEMU's isa-debug-exit: writing 0 ends the run with exit status 1).
#
# Started without the firmware (`--boot direct`) the IVT is all zeros:
# every INT would jump to 0000:0000. We check for that first, say so and
# exit with 1 (exit status 3).
#
# Everything goes to COM1, programmed here: a boot sector cannot know how
# the firmware left the UART. (The screen keeps the BIOS's banner.)

.intel_syntax noprefix
.code16
.global start

.equ COM1, 0x3F8
.equ LSR_THRE, 0x20          # line status: transmit holding register empty
.equ BDA, 0x400              # the BIOS data area, 0040:0000, as an offset in segment 0
.equ BDA_EBDA_SEG, BDA + 0x0E
.equ BDA_TICKS, BDA + 0x6C   # dword: timer ticks since midnight (IRQ 0 counts them)
.equ EXIT_PORT, 0xF4

start:
    # First, what the BIOS handed over, before we change any of it.
    mov bp, sp               # SP
    mov bx, ss               # SS
    mov cx, cs               # CS: 0000 here; some BIOSes jump to 07C0:0000
    call here                # pushes the address of `here`: our IP + 9
here:
    pop si
    sub si, here - start     # IP at `start`
    xor ax, ax
    mov ds, ax               # DS = 0: our strings are at 0000:7Cxx
    # Our own stack, just below us, where INT 19h had its. MOV SS holds
    # interrupts off until after the next instruction, so no interrupt
    # can use the new SS with the old SP.
    mov ss, ax
    mov sp, 0x7C00
    push dx                  # what we found, for printing: DL,
    push bp                  # SP,
    push bx                  # SS,
    push si                  # IP,
    push cx                  # CS
    cld

    # COM1: 115200 baud (divisor 1), 8N1, as lesson 1 does.
    mov dx, COM1 + 3
    mov al, 0x80             # LCR.DLAB: the divisor latch at 3F8h/3F9h
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    inc dx
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x03             # 8 bits, no parity, 1 stop bit; DLAB off
    out dx, al

    # Did a BIOS run? POST points every vector at its code in segment
    # F000; in fresh RAM vector 19h (the bootstrap) is 0000:0000.
    cmp word ptr [0x19 * 4 + 2], 0
    jne 2f
    mov si, offset s_no_bios
    call puts
    mov al, 1
    out EXIT_PORT, al        # exit status (1 << 1) | 1 = 3
    jmp stop

2:  mov si, offset s_hello
    call puts
    pop ax                   # CS
    pop dx                   # IP
    call segoff
    mov si, offset s_sssp
    call puts
    pop ax                   # SS
    pop dx                   # SP
    call segoff
    mov si, offset s_dl
    call puts
    pop ax                   # DL
    call hex2

    mov si, offset s_equipment
    call puts
    int 0x11                 # AX = the equipment word (the BDA's 0040:0010)
    call hex4

    mov si, offset s_memory
    call puts
    int 0x12                 # AX = KiB of base memory (the BDA's 0040:0013)
    call dec
    mov si, offset s_ebda
    call puts
    mov ax, [BDA_EBDA_SEG]
    call hex4

    # The IVT: 256 far pointers (offset, then segment) at 0000:0000; the
    # first 32, four to a line.
    mov si, offset s_ivt
    call puts
    xor di, di               # DI = vector * 4
3:  test di, 15
    jnz 4f
    mov si, offset s_nl
    call puts
    mov ax, di
    shr ax, 2
    call hex2
    mov al, 'h'
    call putc
4:  mov al, ' '
    call putc
    mov ax, [di + 2]         # segment
    mov dx, [di]             # offset
    call segoff
    add di, 4
    cmp di, 32 * 4
    jb 3b

    # IRQ 0: the BIOS's handler (vector 08h) adds one to the tick count at
    # 0040:006C, 18.2 times a second. Sleep until it does.
    mov si, offset s_ticks
    call puts
    sti                      # the BIOS boots us with IF=1; be sure
    mov ebx, [BDA_TICKS]
5:  hlt                      # until the next interrupt
    mov eax, [BDA_TICKS]
    sub eax, ebx
    jz 5b                    # another interrupt: not the tick yet
    call dec                 # AX = ticks counted: 1

    mov si, offset s_bye
    call puts
    xor al, al
    out EXIT_PORT, al        # exit status (0 << 1) | 1 = 1
stop:                        # (not reached: the write ended the run)
    cli
    hlt

# segoff: AX:DX as SSSS:OOOO.
segoff:
    call hex4
    mov al, ':'
    call putc
    mov ax, dx
    # fall through

# hex4: AX as four hex digits. hex2: AL as two. hexn: the top CX digits
# of AX.
hex4:
    mov cx, 4
hexn:
    rol ax, 4                # the next digit to the bottom
    push ax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 6f
    add al, 'A' - '9' - 1
6:  call putc
    pop ax
    loop hexn
    ret
hex2:
    mov ah, al
    mov cx, 2
    jmp hexn

# dec: AX in decimal.
dec:
    xor cx, cx
    mov bx, 10
7:  xor dx, dx
    div bx                   # AX = DX:AX / 10, DX = the last digit
    push dx
    inc cx
    test ax, ax
    jnz 7b
8:  pop ax
    add al, '0'
    call putc
    loop 8b
    ret

# puts: the string at DS:SI, up to its 0.
puts:
    lodsb
    test al, al
    jz 9f
    call putc
    jmp puts
9:  ret

# putc: AL to COM1, once the UART can take it.
putc:
    push ax
    push dx
    mov ah, al
    mov dx, COM1 + 5         # line status register
10: in al, dx
    test al, LSR_THRE
    jz 10b
    mov al, ah
    mov dx, COM1
    out dx, al
    pop dx
    pop ax
    ret

s_no_bios:
    .asciz "no BIOS ran: the IVT is empty\n"
s_hello:
    .asciz "booted at CS:IP "
s_sssp:
    .asciz " SS:SP "
s_dl:
    .asciz " DL="
s_equipment:
    .asciz "h\nINT 11h equipment word "
s_memory:
    .asciz "h\nINT 12h base memory "
s_ebda:
    .asciz " KiB, EBDA "
s_ivt:
    .asciz "h\nIVT:"
s_ticks:
    .asciz "\nIRQ 0 ticks at 0040:006C: +"
s_bye:
    .ascii "\nexit through port F4h"
s_nl:
    .asciz "\n"
    .org 510
    .word 0xAA55             # the boot signature INT 19h checks
