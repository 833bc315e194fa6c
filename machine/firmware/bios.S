# ringlab's BIOS: the firmware of ringlab's PC, read top to bottom.
#
# A PC's processor starts at the reset vector, physical FFFFFFF0, in real
# mode with CS = F000 and a hidden CS base of FFFF0000 (Intel SDM Vol 3A
# 9.1.4). On a PC the firmware ROM answers there and at F0000-FFFFF below
# 1 MiB (the "low alias"); ringlab maps this 64 KiB image at both places.
# The first instruction, at F000:FFF0, jumps to F000:E05B, where IBM's PC/AT
# BIOS began its power-on self test (POST), and every PC BIOS since.
#
# What this firmware does, in the order the files are included below:
#
#   post.S      POST: the chips put in the state a PC BIOS leaves them in,
#               the interrupt vector table, the BIOS data area, the EBDA,
#               the screen, the MP tables (mptable.S), then INT 19h.
#   video.S     INT 10h: text mode 3 on the VGA (and the screen helpers).
#   disk.S      INT 13h: the ATA disks as BIOS drives 80h-83h (with ata.S,
#               the ATA PIO driver it uses).
#   serial.S    INT 14h: the UARTs.
#   system.S    INT 11h, 12h, 15h: equipment, memory (E820...), A20, waits.
#   keyboard.S  IRQ 1 (INT 09h) and INT 16h: the keyboard buffer.
#   time.S      IRQ 0 (INT 08h), INT 1Ah: the tick count, the RTC.
#   mptable.S   the MultiProcessor Specification 1.4 tables.
#   boot.S      INT 18h, INT 19h: load sector 0 of the first disk, run it.
#
# Conventions. Everything here is 16-bit real-mode code (.code16) running
# from segment F000; offsets in this file are offsets in that segment (the
# image is linked at 0). A 386 is assumed (32-bit registers and operand
# prefixes are used freely). Data the BIOS keeps at run time lives in RAM:
# the BIOS data area (BDA) at 0040:0000 and the extended BIOS data area
# (EBDA) at the top of base memory. Interrupt handlers save every register
# they do not return a result in, and address the BDA with DS = 0040h
# (equate BDA_SEG); they return with `iret`, or through `iret_cf` when the
# carry flag is a result (the flags the caller gets back are the ones
# pushed by its INT, with CF replaced).
#
# Nothing is written to COM1: stdout stays exactly what the guest sends
# there. Firmware messages go to the screen and to the debug console port
# 0xE9 (Bochs and QEMU convention); progress goes to the POST code port
# 0x80, where `ringlab run --stats` shows it.
#
# References: IBM PC AT Technical Reference (1984), Ralf Brown's Interrupt
# List (RBIL) release 61, the BIOS Boot Specification 1.01, the Intel
# MultiProcessor Specification 1.4, ACPI 6.x chapter 15 (E820), and the
# datasheets named in machine/src/devices/.

    .intel_syntax noprefix
    .code16
    .text
    .global reset

# ---- the machine (see machine/src/board.rs) -----------------------------

    .set BDA_SEG, 0x0040
    .set COM1, 0x3F8
    .set DEBUGCON, 0xE9
    .set POST_PORT, 0x80
    .set PIC1, 0x20
    .set PIC2, 0xA0
    .set PIT, 0x40
    .set KBC_DATA, 0x60
    .set KBC_STATUS, 0x64
    .set RTC_INDEX, 0x70
    .set RTC_DATA, 0x71
    .set FAST_A20, 0x92
    .set ATA0, 0x1F0
    .set ATA0_CTRL, 0x3F6
    .set ATA1, 0x170
    .set ATA1_CTRL, 0x376
    .set VGA_TEXT_SEG, 0xB800
    .set CRTC_INDEX, 0x3D4
    .set LAPIC_BASE, 0xFEE00000
    .set IOAPIC_BASE, 0xFEC00000
    .set IOAPIC_ID, 1

# ---- the BIOS data area (offsets in segment 0040h; RBIL MEMORY.LST) ------

    .set BDA_COM_PORTS, 0x00        # 4 words: I/O base of COM1-COM4
    .set BDA_LPT_PORTS, 0x08        # 3 words: LPT1-LPT3
    .set BDA_EBDA_SEG, 0x0E         # word: segment of the EBDA
    .set BDA_EQUIPMENT, 0x10        # word: INT 11h's answer
    .set BDA_MEM_KB, 0x13           # word: base memory in KiB (INT 12h)
    .set BDA_KBD_FLAGS, 0x17        # byte: shift, ctrl, alt, locks
    .set BDA_KBD_FLAGS2, 0x18       # byte: keys held
    .set BDA_KBD_HEAD, 0x1A         # word: next key to read (offset in 40h)
    .set BDA_KBD_TAIL, 0x1C         # word: next free slot
    .set BDA_KBD_BUF, 0x1E          # 16 words: the keyboard buffer
    .set BDA_KBD_BUF_END, 0x3E
    .set BDA_VIDEO_MODE, 0x49       # byte
    .set BDA_COLUMNS, 0x4A          # word
    .set BDA_PAGE_SIZE, 0x4C        # word: bytes per page
    .set BDA_PAGE_START, 0x4E       # word: offset of the active page
    .set BDA_CURSOR_POS, 0x50       # 8 words: (row << 8) | column per page
    .set BDA_CURSOR_SHAPE, 0x60     # word: (start << 8) | end scan line
    .set BDA_ACTIVE_PAGE, 0x62      # byte
    .set BDA_CRTC_PORT, 0x63        # word: 3D4h (colour) or 3B4h (mono)
    .set BDA_MODE_CTRL, 0x65        # byte: the last 3D8h value
    .set BDA_PALETTE, 0x66          # byte: the last 3D9h value
    .set BDA_TICKS, 0x6C            # dword: ticks since midnight
    .set BDA_MIDNIGHT, 0x70         # byte: midnight passed since last read
    .set BDA_BREAK, 0x71            # byte: Ctrl-Break seen
    .set BDA_RESET_FLAG, 0x72       # word: 1234h = warm boot
    .set BDA_DISK_STATUS, 0x74      # byte: last hard disk status (INT 13h 01h)
    .set BDA_HARD_DISKS, 0x75       # byte: number of hard disks
    .set BDA_COM_TIMEOUT, 0x7C      # 4 bytes: INT 14h timeouts, COM1-COM4 (ticks)
    .set BDA_KBD_BUF_START, 0x80    # word
    .set BDA_KBD_BUF_LIMIT, 0x82    # word
    .set BDA_ROWS, 0x84             # byte: rows - 1
    .set BDA_CHAR_HEIGHT, 0x85      # word: scan lines per character
    .set BDA_VIDEO_CTL, 0x87        # byte: EGA/VGA control
    .set BDA_VIDEO_SWITCHES, 0x88   # byte
    .set BDA_VGA_FLAGS, 0x89        # byte
    .set BDA_KBD_FLAGS3, 0x96       # byte: enhanced keyboard flags
    .set BDA_KBD_LEDS, 0x97         # byte

    .set TICKS_PER_DAY, 0x1800B0    # 18.2065 Hz * 86400 s (IBM's count)

# The EBDA: 1 KiB at the top of base memory (639 KiB of 640 usable). Its
# first byte is its size in KiB; the MP floating pointer lives in it.
    .set EBDA_SEG, 0x9FC0
    .set EBDA_KB, 1
    .set EBDA_MP_FLOAT, 0x10        # MP floating pointer (16 bytes)
    .set EBDA_MP_CONFIG, 0x20       # MP configuration table (216 bytes)
    .set EBDA_EXT_KB, 0x100         # dword: KiB of RAM above 1 MiB (system.S)
    .set EBDA_E820_COUNT, 0x104     # byte: entries in the E820 map
    .set EBDA_E820, 0x108           # the E820 map, 20 bytes an entry (system.S)
    .set EBDA_DISKS, 0x200          # INT 13h's per-drive state (disk.S)

# Where the boot sector goes.
    .set BOOT_SEG, 0x0000
    .set BOOT_OFF, 0x7C00

# POST codes (port 0x80): what POST is doing; a run that stops shows the
# last one (`ringlab run --stats`).
    .set POST_START, 0x01
    .set POST_PIC, 0x02
    .set POST_PIT, 0x03
    .set POST_RTC, 0x04
    .set POST_KBC, 0x05
    .set POST_MEMORY, 0x06
    .set POST_IVT, 0x07
    .set POST_BDA, 0x08
    .set POST_VIDEO, 0x09
    .set POST_DISKS, 0x0A
    .set POST_MPTABLE, 0x0B
    .set POST_BOOT, 0x0C
    .set POST_BOOT_SECTOR, 0x0D     # jumping to 0000:7C00
    .set POST_NO_BOOT, 0xEB         # nothing bootable: halted
    .set POST_KBC_FAIL, 0xE5        # the 8042 failed its self test

.macro POST code
    mov al, \code
    out POST_PORT, al
.endm

# ---- the code --------------------------------------------------------

    .org 0
rom_start:
    .include "post.S"
    .include "video.S"
    .include "disk.S"
    .include "serial.S"
    .include "system.S"
    .include "keyboard.S"
    .include "time.S"
    .include "mptable.S"
    .include "boot.S"
    .include "util.S"

rom_code_end:

# ---- fixed addresses at the top of the ROM -------------------------------

# IBM's POST entry point: F000:E05B. Code above may not reach it.
    .org 0xE05B
post_entry_point:
    jmp post

# INT 15h AH=C0h's system configuration table (system.S).
    .org 0xE6F5
config_table:
    CONFIG_TABLE

# The reset vector: the first instruction the processor runs.
    .org 0xFFF0
reset:
    ljmp 0xF000, offset post_entry_point

# The ROM date (mm/dd/yy), which software reads at F000:FFF5.
    .org 0xFFF5
    .ascii "12/06/26"
# The model byte: FC, a PC/AT.
    .org 0xFFFE
    .byte 0xFC
    .byte 0x00
