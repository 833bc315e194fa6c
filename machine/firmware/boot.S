# boot.S: INT 19h, the bootstrap loader, and INT 18h, where a PC goes when
# nothing boots (BIOS Boot Specification 1.01, "IPL devices"; IBM PC AT
# Technical Reference, INT 19h).
#
# INT 19h reads sector 0 of the first hard disk (drive 80h) to 0000:7C00
# with INT 13h, checks the boot signature 55h AAh at its end, and jumps to
# it with DL = the drive number, as every PC BIOS does. Drive 00h (a
# floppy) does not exist on this PC. A read that fails is tried three
# times, with a reset (AH=00h) in between, as RBIL advises for INT 13h.
# When nothing boots, the reason goes to the screen and to port 0xE9, and
# the machine stops with POST code EBh.

int19_handler:
    sti
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, BOOT_OFF
    call multiboot_handoff          # returns when no kernel was loaded
    mov dl, 0x80
    cmp byte ptr [BDA_SEG * 16 + BDA_HARD_DISKS], 0
    je boot_no_disk
    mov si, 3                       # tries, as BIOSes retry a read
1:  mov ax, 0x0201                  # read 1 sector
    mov cx, 0x0001                  # cylinder 0, sector 1
    xor dh, dh                      # head 0
    mov bx, BOOT_OFF
    int 0x13
    jnc 2f
    mov bh, ah                      # the status, for the message
    xor ah, ah                      # reset the drive, try again
    int 0x13
    dec si
    jnz 1b
    mov si, offset msg_read_error
    call fw_puts
    mov al, bh                      # the status of the last try
    call boot_puthex
    mov si, offset msg_read_error_end
    jmp boot_fail
2:  cmp word ptr [BOOT_OFF + 510], 0xAA55
    je 3f
    mov si, offset msg_no_signature
    jmp boot_fail
3:  POST POST_BOOT_SECTOR
    mov dl, 0x80
    ljmp BOOT_SEG, BOOT_OFF

boot_no_disk:
    mov si, offset msg_no_disk
    jmp boot_fail

# INT 18h: no bootable device (on the IBM PC, ROM BASIC).
int18_handler:
    mov si, offset msg_int18
    # fall through

# boot_fail: the message at CS:SI, then a final stop: interrupts off and
# HLT, which ringlab reports as the end of the run (and shows the POST
# code EBh, "nothing bootable").
boot_fail:
    call fw_puts
    mov si, offset msg_halt
    call fw_puts
    POST POST_NO_BOOT
    cli
1:  hlt
    jmp 1b

msg_no_disk:
    .asciz "No bootable device: no hard disk.\r\n"
# boot_puthex: AL as two hex digits (the screen and port 0xE9).
boot_puthex:
    push ax
    push cx
    mov cx, 2
1:  rol al, 4
    push ax
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe 2f
    add al, 'A' - '0' - 10
2:  call fw_putc
    pop ax
    loop 1b
    pop cx
    pop ax
    ret

msg_read_error:
    .asciz "Boot failed: disk 80h could not be read (INT 13h status "
msg_read_error_end:
    .asciz "h).\r\n"
msg_no_signature:
    .asciz "Boot failed: disk 80h has no boot signature (55 AA at byte 510).\r\n"
msg_int18:
    .asciz "No bootable device.\r\n"
msg_halt:
    .asciz "System halted.\r\n"

# ---- a kernel ringlab loaded ---------------------------------------------
#
# `ringlab run kernel.elf` loads a multiboot kernel itself (it reads the
# ELF file, as GRUB or QEMU's -kernel would) and then powers the PC on as
# usual, so the kernel finds what a BIOS leaves: the IVT, the BDA, the
# EBDA with the MP tables, the E820 map (also in the multiboot memory
# map). The loader leaves a record in its boot information block
# (machine/src/firmware.rs: HANDOFF_*): "RLMB", the entry point, the
# multiboot information address and the GDTR of its boot GDT. INT 19h
# looks for it at the block's possible addresses and, if it is there,
# enters the kernel in the state the Multiboot Specification 0.6.96
# section 3.2 gives: protected mode, paging off, flat 4 GiB code and data
# segments, interrupts off, A20 on, EAX = 2BADB002h, EBX = the
# information's address.

    .set HANDOFF_OFF, 0x150
    .set HANDOFF_MAGIC, 0x424D4C52   # "RLMB"
    .set MULTIBOOT_MAGIC, 0x2BADB002

multiboot_handoff:
    mov si, offset handoff_blocks
1:  mov bx, cs:[si]
    test bx, bx
    jz 3f                           # none: boot the disk
    cmp dword ptr [bx + HANDOFF_OFF], HANDOFF_MAGIC
    je 2f
    add si, 2
    jmp 1b
3:  ret
2:  mov dword ptr [bx + HANDOFF_OFF], 0     # used: a reset boots the disk
    cli
    movzx esp, sp                   # the stack the kernel starts on
    POST POST_BOOT_SECTOR
    in al, FAST_A20                 # A20 on (the loader put the kernel at 1 MiB)
    or al, 0x02
    and al, 0xFE
    out FAST_A20, al
    lgdt [bx + HANDOFF_OFF + 12]    # the loader's boot GDT
    mov esi, [bx + HANDOFF_OFF + 4] # the entry point
    mov ebp, [bx + HANDOFF_OFF + 8] # the multiboot information
    mov eax, 0x00000011             # CR0: PE, ET (caches on, as after POST)
    mov cr0, eax
    .byte 0x66, 0xEA                # JMP FAR 0008:handoff32 (32-bit offset)
    .long handoff32 + 0xF0000
    .word 0x08

    .code32
handoff32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    push esi                        # where `ret` goes: the kernel
    mov eax, MULTIBOOT_MAGIC
    mov ebx, ebp
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    push 0x2                        # EFLAGS: interrupts off, DF clear
    popfd
    ret
    .code16

# Where the loader may have put its boot information block, tried in this
# order (machine/src/firmware.rs HANDOFF_BLOCKS); 0 ends the list.
handoff_blocks:
    .word 0x500, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000, 0
