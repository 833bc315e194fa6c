# bios-disk-chs.S: INT 13h's CHS functions on the boot disk. The disk is
# this file: the boot sector, then stage 2 (sectors 1-7), which the boot
# sector loads with AH=02h, then data sectors up to 3024 sectors (3
# cylinders of 16 heads of 63 sectors: IDENTIFY's geometry, which INT 13h
# shows untranslated). Data sector n holds n in its first word and n's
# low byte in the others.
    .set STAGE2_SECTORS, 7
    .set FIRST_DATA, 1 + STAGE2_SECTORS
    .set SECTORS, 3 * 16 * 63
    .include "bios-disk-boot.inc"

stage2_main:
    mov si, offset m_stage2
    call puts
    movzx ax, byte ptr [drive]
    SHOW drive, ax
    call newline

    # AH=08h: 3 cylinders (last 2), 16 heads (last 15), 63 sectors, 1 disk.
    mov ah, 0x08
    mov dl, 0x80
    int 0x13
    REPORT "08h"
    SHOW cx, cx
    SHOW dx, dx
    call newline

    # AH=15h: a fixed disk (AH=03h) of CX:DX = 3024 sectors.
    mov ax, 0x1500
    mov dl, 0x80
    int 0x13
    REPORT "15h"
    SHOW cx, cx
    SHOW dx, dx
    call newline

    # Across a head: C0 H0 S60, 8 sectors = LBAs 59-66 (head 0 sectors
    # 60-63, then head 1 sectors 1-4), to 1000:0000.
    mov ax, 0x1000
    mov es, ax
    xor bx, bx
    mov ax, 0x0208
    mov cx, 60
    mov dx, 0x0080
    int 0x13
    REPORT "02h c0 h0 s60 x8"
    xor di, di
    mov eax, 59
    mov cx, 8
    call check_sectors
    call newline

    # Across a cylinder: C0 H15 S60, 8 sectors = LBAs 1004-1011.
    mov ax, 0x0208
    mov cx, 60
    mov dx, 0x0F80
    xor bx, bx
    int 0x13
    REPORT "02h c0 h15 s60 x8"
    mov eax, 1004
    mov cx, 8
    call check_sectors
    call newline

    # Cylinder bits 9-8 in CL: C2 H1 S1 = LBA 2079 (CH = 2; bits 9-8 0
    # here, but the packing is exercised by AH=08h above).
    mov ax, 0x0201
    mov cx, 0x0201
    mov dx, 0x0180
    xor bx, bx
    int 0x13
    REPORT "02h c2 h1 s1"
    mov eax, 2 * 1008 + 63
    mov cx, 1
    call check_sectors
    call newline

    # A buffer crossing the 64 KiB boundary at 10000h: 0FF0:0000, 2
    # sectors from LBA 100 (C0 H1 S38).
    mov ax, 0x0FF0
    mov es, ax
    xor bx, bx
    mov ax, 0x0202
    mov cx, 38
    mov dx, 0x0180
    int 0x13
    REPORT "02h across 64 KiB"
    xor di, di
    mov eax, 100
    mov cx, 2
    call check_sectors
    call newline

    # A buffer running past the end of its segment: 2000:FF00, 2 sectors
    # from LBA 200 (C0 H3 S12): the second sector lands at 30100h (linear).
    mov ax, 0x2000
    mov es, ax
    mov bx, 0xFF00
    mov ax, 0x0202
    mov cx, 12
    mov dx, 0x0380
    int 0x13
    REPORT "02h past segment end"
    mov ax, 0x2FF0
    mov es, ax
    xor di, di
    mov eax, 200
    mov cx, 2
    call check_sectors
    call newline

    # AH=04h verify: the last 5 sectors (C2 H15 S59-63).
    mov ax, 0x0405
    mov cx, 0x0200 + 59
    mov dx, 0x0F80
    int 0x13
    REPORT "04h last 5"
    call newline

    # Past the end: the last sector (C2 H15 S63) and one more: the last
    # is read (AL = 1), then "sector not found" (AH = 04h).
    mov ax, 0x1000
    mov es, ax
    xor bx, bx
    mov ax, 0x0202
    mov cx, 0x0200 + 63
    mov dx, 0x0F80
    int 0x13
    REPORT "02h last + 1"
    xor di, di
    mov eax, SECTORS - 1
    mov cx, 1
    call check_sectors
    call newline
    # AH=01h: that status, then (cleared) 00h.
    mov ah, 0x01
    mov dl, 0x80
    int 0x13
    REPORT "01h"
    call newline
    mov ah, 0x01
    mov dl, 0x80
    int 0x13
    REPORT "01h again"
    call newline

    # Addresses outside the geometry: cylinder 3, head 16, sector 0,
    # sector 64: sector not found, nothing moved.
    mov ax, 0x0201
    mov cx, 0x0301
    mov dx, 0x0080
    int 0x13
    REPORT "02h c3"
    call newline
    mov ax, 0x0201
    mov cx, 0x0001
    mov dx, 0x1080
    int 0x13
    REPORT "02h h16"
    call newline
    mov ax, 0x0201
    mov cx, 0x0000
    mov dx, 0x0080
    int 0x13
    REPORT "02h s0"
    call newline
    mov ax, 0x0201
    mov cx, 64
    mov dx, 0x0080
    int 0x13
    REPORT "02h s64"
    call newline
    # Counts 0 and 129: invalid.
    mov ax, 0x0200
    mov cx, 0x0001
    mov dx, 0x0080
    int 0x13
    REPORT "02h x0"
    call newline
    mov ax, 0x0281
    mov cx, 0x0001
    mov dx, 0x0080
    int 0x13
    REPORT "02h x129"
    call newline

    # AH=03h: write 2 sectors at LBA 2000 (C1 H15 S48-49) from a pattern,
    # read them back and compare. (The test reads the disk afterwards.)
    mov ax, 0x5000
    mov es, ax
    xor di, di
    mov cx, 1024
    xor al, al
1:  stosb
    add al, 3
    loop 1b
    xor bx, bx
    mov ax, 0x0302
    mov cx, 0x0100 + 48
    mov dx, 0x0F80
    int 0x13
    REPORT "03h c1 h15 s48 x2"
    call newline
    mov ax, 0x6000
    mov es, ax
    xor bx, bx
    mov ax, 0x0202
    mov cx, 0x0100 + 48
    mov dx, 0x0F80
    int 0x13
    REPORT "02h reread"
    push ds
    mov ax, 0x5000
    mov ds, ax
    xor si, si
    xor di, di
    mov cx, 1024
    repe cmpsb
    pop ds
    je 2f
    SAY " differs"
    jmp 3f
2:  SAY " same"
3:

    # Reset, ready, recalibrate, seek.
    mov ah, 0x00
    mov dl, 0x80
    int 0x13
    REPORT "00h"
    call newline
    mov ah, 0x10
    mov dl, 0x80
    int 0x13
    REPORT "10h"
    call newline
    mov ah, 0x11
    mov dl, 0x80
    int 0x13
    REPORT "11h"
    call newline
    mov ah, 0x0C
    mov cx, 0x0201
    mov dx, 0x0F80
    int 0x13
    REPORT "0Ch c2 h15"
    call newline
    mov ah, 0x0C
    mov cx, 0x0301
    mov dx, 0x0080
    int 0x13
    REPORT "0Ch c3"
    call newline
    # A function this BIOS does not have (05h, format a track).
    mov ah, 0x05
    mov dl, 0x80
    int 0x13
    REPORT "05h"
    call newline
    # The BDA: 0040:0074 (last status), 0040:0075 (disks).
    mov ax, [0x474]
    SHOW "bda 474", ax
    call newline
    EXIT 0

# ---- the data sectors --------------------------------------------------------
    .org FIRST_DATA * 512
    .set lba, FIRST_DATA
    .rept SECTORS - FIRST_DATA
    .word lba
    .fill 510, 1, lba & 0xFF
    .set lba, lba + 1
    .endr
