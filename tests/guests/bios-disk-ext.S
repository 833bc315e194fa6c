# bios-disk-ext.S: the INT 13h extensions (AH=41h-48h, EDD) on a second
# disk, and the answers for drives that do not exist. The test attaches a
# 64-sector data disk as the secondary master: with no primary slave it
# is drive 81h. Its sector n holds n in its first word and n's low byte
# in its last (and a pattern between).
    .set STAGE2_SECTORS, 7
    .include "bios-disk-boot.inc"

    .set DISK, 0x81
    .set SECTORS, 64

# DAP count, segment, offset, lba[, lba high]: fills the disk address
# packet `dap` (size 10h).
.macro DAP count, seg, off, lba, high=0
    mov byte ptr [dap], 0x10
    mov word ptr [dap + 2], \count
    mov word ptr [dap + 4], \off
    mov word ptr [dap + 6], \seg
    mov dword ptr [dap + 8], \lba
    mov dword ptr [dap + 12], \high
.endm

# EXT function[, drive[, al]]: INT 13h with DS:SI = the packet.
.macro EXT function, drive=DISK, al=0
    mov ax, (\function << 8) | \al
    mov dl, \drive
    mov si, offset dap
    int 0x13
.endm

stage2_main:
    mov si, offset m_stage2
    call puts
    movzx ax, byte ptr [0x475]      # the BDA's count of hard disks
    SHOW disks, ax
    call newline

    # AH=41h: EDD 3.0 (AH=30h), BX=AA55h, CX=1 (packet access).
    mov ax, 0x4100
    mov bx, 0x55AA
    mov dl, DISK
    int 0x13
    REPORT "41h"
    SHOW bx, bx
    SHOW cx, cx
    call newline
    mov ax, 0x4100
    mov bx, 0x1234
    mov dl, DISK
    int 0x13
    REPORT "41h bx=1234"
    SHOW bx, bx
    call newline

    # AH=48h with a 1Eh-byte buffer: 64 sectors, IDENTIFY's 1 x 1 x 63.
    call clear_params
    mov word ptr [params], 0x1E
    mov ax, 0x4800
    mov dl, DISK
    mov si, offset params
    int 0x13
    REPORT "48h"
    call show_params
    # 1Ah bytes: EDD 1.x, no pointer at 1Ah.
    call clear_params
    mov word ptr [params], 0x1A
    mov ax, 0x4800
    mov dl, DISK
    mov si, offset params
    int 0x13
    REPORT "48h 1Ah"
    call show_params
    mov word ptr [params], 0x18
    mov ax, 0x4800
    mov dl, DISK
    mov si, offset params
    int 0x13
    REPORT "48h 18h"
    call newline

    # AH=08h and 15h on the second disk: 1 cylinder, 1 head, 63 sectors of
    # its 64; 2 disks.
    mov ah, 0x08
    mov dl, DISK
    int 0x13
    REPORT "08h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov ah, 0x15
    mov dl, DISK
    int 0x13
    REPORT "15h"
    SHOW cx, cx
    SHOW dx, dx
    call newline

    # AH=42h: 16 blocks from LBA 5 to 1000:0000, and their checksum (the
    # 16-bit sum of their words).
    DAP 16, 0x1000, 0, 5
    EXT 0x42
    REPORT "42h lba 5 x16"
    SHOW count, [dap + 2]
    mov ax, 0x1000
    mov es, ax
    xor di, di
    mov cx, 16 * 256
    xor bx, bx
1:  add bx, es:[di]
    add di, 2
    loop 1b
    SHOW sum, bx
    xor di, di
    mov eax, 5
    mov cx, 16
    call check_sectors
    call newline

    # AH=43h: 3 blocks at LBA 10 from 5000:0000 (bytes 0, 3, 6, ...), read
    # back to 6000:0000 and compared. (The test reads the disk too.)
    mov ax, 0x5000
    mov es, ax
    xor di, di
    mov cx, 3 * 512
    xor al, al
1:  stosb
    add al, 3
    loop 1b
    DAP 3, 0x5000, 0, 10
    EXT 0x43
    REPORT "43h lba 10 x3"
    SHOW count, [dap + 2]
    call newline
    DAP 3, 0x6000, 0, 10
    EXT 0x42
    REPORT "42h reread"
    push ds
    mov ax, 0x5000
    mov ds, ax
    mov ax, 0x6000
    mov es, ax
    xor si, si
    xor di, di
    mov cx, 3 * 512
    repe cmpsb
    pop ds
    je 1f
    SAY " differs"
    jmp 2f
1:  SAY " same"
2:
    # AH=43h AL=02h, write and verify: LBA 20 from the pattern's second
    # sector (5000:0200).
    DAP 1, 0x5000, 0x200, 20
    EXT 0x43, DISK, 2
    REPORT "43h verify lba 20"
    SHOW count, [dap + 2]
    call newline
    # AL=03h is no write mode.
    DAP 1, 0x5000, 0, 21
    EXT 0x43, DISK, 3
    REPORT "43h al=3"
    SHOW count, [dap + 2]
    call newline

    # AH=44h verify: the whole disk, then one block more.
    DAP SECTORS, 0, 0, 0
    EXT 0x44
    REPORT "44h x64"
    SHOW count, [dap + 2]
    call newline
    DAP SECTORS+1, 0, 0, 0
    EXT 0x44
    REPORT "44h x65"
    SHOW count, [dap + 2]
    call newline

    # Past the end: LBA 62, 4 blocks: two read, then sector not found.
    DAP 4, 0x1000, 0, SECTORS-2
    EXT 0x42
    REPORT "42h lba 62 x4"
    SHOW count, [dap + 2]
    mov ax, 0x1000
    mov es, ax
    xor di, di
    mov eax, SECTORS - 2
    mov cx, 2
    call check_sectors
    call newline
    # At the end, and 2^32 blocks further: nothing.
    DAP 1, 0x1000, 0, SECTORS
    EXT 0x42
    REPORT "42h lba 64"
    SHOW count, [dap + 2]
    call newline
    DAP 1, 0x1000, 0, 5, 1
    EXT 0x42
    REPORT "42h lba 2^32+5"
    SHOW count, [dap + 2]
    call newline
    # Counts: 128 is too many, 0 is nothing to do.
    DAP 128, 0x1000, 0, 0
    EXT 0x42
    REPORT "42h x128"
    SHOW count, [dap + 2]
    call newline
    DAP 0, 0x1000, 0, 0
    EXT 0x42
    REPORT "42h x0"
    SHOW count, [dap + 2]
    call newline
    # A packet of 18h bytes with FFFF:FFFF and the flat address 40000h.
    DAP 1, 0xFFFF, 0xFFFF, 7
    mov byte ptr [dap], 0x18
    mov dword ptr [dap + 16], 0x40000
    mov dword ptr [dap + 20], 0
    EXT 0x42
    REPORT "42h flat 40000h"
    SHOW count, [dap + 2]
    mov ax, 0x4000
    mov es, ax
    xor di, di
    mov eax, 7
    mov cx, 1
    call check_sectors
    call newline
    # A flat address above 1 MiB real mode cannot reach; a packet too small.
    DAP 1, 0xFFFF, 0xFFFF, 7
    mov byte ptr [dap], 0x18
    mov dword ptr [dap + 16], 0x100000
    EXT 0x42
    REPORT "42h flat 100000h"
    call newline
    DAP 1, 0x1000, 0, 0
    mov byte ptr [dap], 0x0F
    EXT 0x42
    REPORT "42h size 0Fh"
    call newline

    # AH=47h, extended seek: the last block, then past it.
    DAP 0, 0, 0, SECTORS-1
    EXT 0x47
    REPORT "47h lba 63"
    call newline
    DAP 0, 0, 0, SECTORS
    EXT 0x47
    REPORT "47h lba 64"
    call newline

    # Drive 82h does not exist.
    mov ax, 0x4100
    mov bx, 0x55AA
    mov dl, 0x82
    int 0x13
    REPORT "82h 41h"
    call newline
    DAP 1, 0x1000, 0, 0
    EXT 0x42, 0x82
    REPORT "82h 42h"
    call newline
    mov ax, 0x15FF
    mov cx, 0xFFFF
    mov dx, 0xFF82
    int 0x13
    REPORT "82h 15h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov ah, 0x08
    mov cx, 0xFFFF
    mov dx, 0xFF82
    int 0x13
    REPORT "82h 08h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov ah, 0x01
    mov dl, 0x80
    int 0x13
    REPORT "80h 01h"
    call newline

    # Drive 00h, a floppy this PC does not have.
    mov ax, 0x0201
    mov cx, 0x0001
    mov dx, 0x0000
    mov bx, 0x1000
    mov es, bx
    xor bx, bx
    int 0x13
    REPORT "00h 02h"
    call newline
    mov ax, 0x15FF
    mov cx, 0xFFFF
    mov dx, 0xFF00
    int 0x13
    REPORT "00h 15h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov ah, 0x08
    mov dl, 0x00
    int 0x13
    REPORT "00h 08h"
    call newline
    mov ah, 0x00
    mov dl, 0x00
    int 0x13
    REPORT "00h 00h"
    call newline
    # The hard disk status (0040:0074) is not a floppy's.
    mov ax, [0x474]
    SHOW "bda 474", ax
    call newline
    EXIT 0

# clear_params: 1111h in every word of `params`.
clear_params:
    push ax
    push cx
    push di
    push es
    xor ax, ax
    mov es, ax
    mov di, offset params
    mov cx, 0x42 / 2
    mov ax, 0x1111
    rep stosw
    pop es
    pop di
    pop cx
    pop ax
    ret

# show_params: the AH=48h result at `params`, and a newline.
show_params:
    SHOW size, [params]
    SHOW flags, [params + 0x02]
    SHOW cyl, [params + 0x04]
    SHOW heads, [params + 0x08]
    SHOW spt, [params + 0x0C]
    SHOW sectors, [params + 0x10]
    SHOW hi, [params + 0x12]
    SHOW bps, [params + 0x18]
    SHOW dpte, [params + 0x1A]
    SHOW seg, [params + 0x1C]
    call newline
    ret

    .p2align 2
dap: .fill 24, 1, 0
params: .fill 0x42, 1, 0

# The whole of stage 2 is on the disk.
    .org (1 + STAGE2_SECTORS) * 512
