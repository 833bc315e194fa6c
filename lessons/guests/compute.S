# compute: the benchmark guest of BENCHMARKS.md and `ringlab bench` — a
# tight integer and memory loop of 900 million instructions.
#
# A boot sector (so Bochs can boot it from a floppy image too): it enters
# 32-bit protected mode with flat segments, runs the loop, prints the
# checksum in hex on COM1 and stops through Bochs' shutdown port 0x8900
# (ringlab: exit status 0). It uses no BIOS service, so ringlab runs it
# without one. The loop's data lives at 0x20000, on another page than the
# code (QEMU slows down ten-fold on stores to a page it translated code
# from).

    .intel_syntax noprefix
    .code16
    .global start

    .equ COM1, 0x3F8
    .equ DATA, 0x20000
    .equ ITERATIONS, 112500000  # x 8 instructions = 900 M

start:
    cli
    xor ax, ax
    mov ds, ax
    lgdt [gdtr]
    mov eax, cr0
    or al, 1                    # CR0.PE
    mov cr0, eax
    ljmp 0x08, offset pm        # load CS from the GDT: now 32-bit code

    .code32
pm:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7000

    mov esi, DATA
    mov ecx, ITERATIONS
    xor eax, eax
    xor ebx, ebx
1:  mov edx, [esi + ebx*4]      # the loop: 8 instructions, two memory ops
    add eax, edx
    add edx, ecx
    mov [esi + ebx*4], edx
    inc ebx
    and ebx, 1023
    dec ecx
    jnz 1b

    # COM1: 8N1 at 115200 (divisor 1), then the checksum in hex.
    mov ebp, eax
    mov dx, COM1 + 3
    mov al, 0x80                # DLAB
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x03                # 8 bits, no parity, 1 stop bit
    out dx, al
    mov ecx, 8
2:  rol ebp, 4
    mov eax, ebp
    and eax, 0xF
    mov al, [hexdigits + eax]
    call putc
    loop 2b
    mov al, 10
    call putc

    mov dx, 0x8900              # Bochs' shutdown port
    mov esi, offset shutdown
3:  lodsb
    test al, al
    jz 4f
    out dx, al
    jmp 3b
4:  cli
    hlt

putc:                           # AL to COM1 once the transmitter is empty
    mov bl, al
    mov dx, COM1 + 5
5:  in al, dx
    test al, 0x20
    jz 5b
    mov dx, COM1
    mov al, bl
    out dx, al
    ret

hexdigits:
    .ascii "0123456789abcdef"
shutdown:
    .asciz "Shutdown"

    .align 8
gdt:
    .quad 0                     # null
    .quad 0x00CF9A000000FFFF    # 0x08: flat 32-bit ring 0 code
    .quad 0x00CF92000000FFFF    # 0x10: flat ring 0 data
gdtr:
    .word gdtr - gdt - 1
    .long gdt

    .org 510
    .word 0xAA55
