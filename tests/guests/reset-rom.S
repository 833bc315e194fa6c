# reset-rom.S: a 64 KiB firmware ROM that boots as a PC's BIOS does.
#
# The CPU starts at the reset vector, FFFFFFF0 (the ROM's high alias, real
# mode with CS base FFFF0000, SDM Vol 3A 9.1.4), whose far jump reloads CS
# with F000: from then on the CPU runs the ROM's low alias at F0000. The
# ROM enters protected mode, writes POST codes 01-03 to port 0x80, tries to
# write both of its aliases (a ROM ignores that), prints on COM1 and halts
# with interrupts disabled. Linked at 0: 16-bit offsets are offsets in
# segment F000; 32-bit code adds ROM_BASE.
#
# Build: as --32 -o rom.o reset-rom.S
#        ld -m elf_i386 -nostdlib -N -Ttext=0 -e start -o rom.elf rom.o
#        objcopy -O binary -j .text rom.elf rom.bin
# Run:   ringlab run --bios rom.bin --stats
    .intel_syntax noprefix
    .code16
    .global start
    .equ ROM_BASE, 0xF0000
    .equ COM1, 0x3F8

start:                          # F000:0000, reached from the reset vector
    cli
    mov al, 0x01
    out 0x80, al                # POST 01: running in the low alias
    lgdt cs:[gdtr]              # 16-bit operand: a 24-bit base is enough
    mov eax, cr0
    or al, 1
    mov cr0, eax
    .byte 0x66, 0xEA            # JMP FAR 0008:pm (32-bit offset)
    .long pm + ROM_BASE
    .word 0x08

    .code32
pm:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x90000
    mov al, 0x02
    out 0x80, al                # POST 02: protected mode
    call com1_init
    mov esi, offset hello + ROM_BASE
    call puts

    # Writes to both aliases of the ROM are ignored: read back.
    mov byte ptr [probe + ROM_BASE], 0x55
    mov dword ptr [0xFFFF0000 + probe], 0x55555555
    mov al, [probe + ROM_BASE]
    mov bl, [0xFFFF0000 + probe]
    mov ecx, [0xFFFF0000 + probe]
    mov esi, offset ignored + ROM_BASE
    cmp al, 0xA5
    jne 1f
    cmp bl, 0xA5
    jne 1f
    cmp ecx, [probe + ROM_BASE]
    je 2f
1:  mov esi, offset written + ROM_BASE
2:  call puts
    mov al, 0x03
    out 0x80, al                # POST 03: done
    mov eax, 0x12345678
    cli
    hlt

com1_init:
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
    ret

puts:
    lodsb
    test al, al
    jz 3f
    mov ah, al
    mov dx, COM1 + 5
4:  in al, dx
    test al, 0x20
    jz 4b
    mov dx, COM1
    mov al, ah
    out dx, al
    jmp puts
3:  ret

    # Accessed bits preset, as BIOSes do: the CPU would otherwise try to
    # set them in ROM at every segment load (a write the ROM ignores).
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF    # 0x08: code, flat, 32-bit, accessed
    .quad 0x00CF93000000FFFF    # 0x10: data, flat, 32-bit, accessed
gdtr:
    .word 23
    .long gdt + ROM_BASE
probe:
    .byte 0xA5, 0x00, 0x11, 0x22
hello:
    .asciz "rom: hello from protected mode\n"
ignored:
    .asciz "rom: writes to ROM ignored\n"
written:
    .asciz "rom: a write to ROM took effect!\n"

    .code16
    .org 0xFFF0                 # the reset vector: FFFFFFF0, F000:FFF0
    .byte 0xEA                  # JMP FAR F000:start
    .word start
    .word 0xF000
    .fill 11, 1, 0xF4           # to 64 KiB
