# disk.S: INT 13h, the fixed disk services, on ringlab's ATA disks.
#
# INT 13h is how a PC program has read and written disks since 1981: it
# puts a function number in AH and a drive number in DL (00h-7Fh floppy
# drives, 80h-FFh hard disks), the other arguments in other registers, and
# executes INT 13h. It gets back CF clear on success, or CF set and a status
# code in AH (RBIL table 00234); the BIOS also keeps the last hard disk
# status at 0040:0074 for AH=01h. Boot sectors, boot loaders (GRUB, Pintos'
# loader) and DOS use it; a protected-mode kernel cannot, and brings its own
# driver (xv6's boot block already talks to the ATA ports itself).
#
# CHS and LBA. The original functions (AH=02h read, 03h write, 04h verify)
# name a sector by its place on the mechanism: cylinder, head, sector (CHS),
# packed in CH, CL and DH:
#
#     CH         cylinder bits 7-0
#     CL 7-6     cylinder bits 9-8    CL 5-0   sector, counted from 1
#     DH         head
#
# so INT 13h reaches at most 1024 cylinders x 256 heads x 63 sectors of
# 512 bytes: 7.8 GiB. LBA (logical block addressing) just numbers the
# sectors 0, 1, 2, ... from the start of the disk. With H heads and S
# sectors per track the two are related by
#
#     LBA = (cylinder * H + head) * S + (sector - 1)
#
# ATA drives take a 28-bit LBA (128 GiB); the IBM/Microsoft extensions
# (AH=41h-48h, the Enhanced Disk Drive specification, EDD) take a 64-bit
# LBA in a "disk address packet" in memory and make CHS unnecessary.
#
# Translation. An ATA drive reports a default geometry in its IDENTIFY
# DEVICE data (words 1, 3, 6: at most 16383 cylinders, 16 heads, 63
# sectors; a disk of 7.9 GiB or more reports exactly 16383 x 16 x 63, and
# its true size in words 60-61). Past 1024 cylinders (504 MiB) INT 13h's 10-bit
# cylinder cannot carry that geometry, so the BIOS shows INT 13h callers a
# logical geometry of its own with fewer cylinders and more heads, and turns
# their CHS addresses into LBAs for the drive. disk_translate chooses it
# with SeaBIOS' rule (so a disk image partitioned under QEMU sees the same
# geometry here):
#
#   none          the drive's geometry, up to 1024 cylinders (504 MiB);
#   large         cylinders halved and heads doubled until at most 1024
#                 cylinders, while heads stay under 256 (up to 4 GiB);
#   LBA-assisted  63 sectors, 16, 32, 64, 128 or 255 heads by size, the
#                 cylinders that fit, at most 1024: the first 7.8 GiB.
#
# Whichever it is, the drive is always addressed by LBA: the logical
# geometry only says how a CHS address becomes an LBA.
#
# The functions here (RBIL "INT 13"; EDD 3.0 for 41h-48h):
#
#   00h reset           01h last status        08h drive parameters
#   02h read            03h write              04h verify   (CHS, AL sectors,
#                                                             buffer ES:BX)
#   0Ch seek            0Dh alternate reset    10h ready?   11h recalibrate
#   15h drive type      41h extensions?        48h drive parameters (EDD)
#   42h read            43h write              44h verify   47h seek
#                                              (a disk address packet at DS:SI)
#
# Drive numbers: 80h, 81h, ... are the disks that answer IDENTIFY, in the
# order of their ATA positions (primary master, primary slave, secondary
# master, secondary slave); 0040:0075 holds how many there are, the EBDA
# what POST learnt about each (EBDA_DISKS), and INT 41h and 46h point at
# IBM's parameter tables of drives 80h and 81h.
#
# The drives are run by ata.S, included below: ATA PIO with polling.
#
# Choices (RBIL leaves them to the BIOS):
#
# - Drive numbers below 80h are floppy drives, and this PC has none (INT 11h
#   says so): every function answers AH=01h "invalid parameter", as SeaBIOS
#   does for a drive it does not have, except AH=15h, which answers "no such
#   drive" (AH=00h, CF clear) as RBIL documents. Hard disk numbers past the
#   last disk answer the same, except AH=08h, which gives AH=07h with CX =
#   DX = 0 (RBIL: "AH = status (07h)").
# - The buffer is linear memory from ES:BX (or the packet's address): it
#   may cross a 64 KiB physical boundary and the end of its segment. AH=09h
#   "DMA boundary" is an AT floppy controller's limit (its 8237 DMA channel
#   cannot cross 64 KiB); PIO copies through the CPU, and this BIOS moves
#   to the next 512 bytes of memory sector by sector. AH=48h says so (flags
#   bit 0, "DMA boundary errors handled transparently").
# - Every cylinder is usable: AH=08h's last cylinder is cylinders - 1 and
#   AH=15h's count is cylinders x heads x sectors. (The IBM AT reserved a
#   drive's last cylinder for diagnostics; an image file has none.)
# - A request that runs past the end of the disk moves the sectors up to
#   the end, then fails with AH=04h, "sector not found", with the count of
#   sectors moved (AL for AH=02h-04h, the packet's count for AH=42h-44h).
#   The BIOS never asks the drive for a sector the disk does not have.
# - Counts: AL = 1-128 for AH=02h-04h, 0-127 blocks for AH=42h-44h (EDD's
#   limit); others give AH=01h.
# - A write the drive refuses with ABRT (a read-only image) is AH=03h,
#   "write protected".

# ---- INT 13h status codes (RBIL table 00234) ------------------------------

    .set DISK_OK, 0x00
    .set DISK_BAD_PARAMETER, 0x01   # invalid function or parameter, no such drive
    .set DISK_ADDRESS_MARK, 0x02
    .set DISK_WRITE_PROTECTED, 0x03
    .set DISK_NOT_FOUND, 0x04       # sector not found
    .set DISK_RESET_FAILED, 0x05
    .set DISK_PARAMS_FAILED, 0x07   # AH=08h on a drive that does not exist
    .set DISK_BAD_BLOCK, 0x0A
    .set DISK_ECC_ERROR, 0x10       # uncorrectable read error
    .set DISK_SEEK_FAILED, 0x40
    .set DISK_TIMEOUT, 0x80
    .set DISK_NOT_READY, 0xAA
    .set DISK_WRITE_FAULT, 0xCC
    .set DISK_STATUS_ERROR, 0xE0    # the drive's status makes no sense

    .set DISK_TYPE_NONE, 0x00       # AH=15h: no such drive
    .set DISK_TYPE_FIXED, 0x03      # AH=15h: a hard disk
    .set EDD_VERSION, 0x30          # AH=41h: EDD 3.0
    .set EDD_SUBSET, 0x0001         # AH=41h: fixed disk access (42h-44h, 47h, 48h)

# ---- the state of each disk: EBDA_DISKS + n * DRV_SIZE for drive 80h + n --

    .set DRV_BASE, 0                # word: command block port (1F0h, 170h)
    .set DRV_CTRL, 2                # word: control block port (3F6h, 376h)
    .set DRV_DEVICE, 4              # byte: Device register (E0h or F0h)
    .set DRV_TRANSLATION, 5         # byte: TRANSLATION_*
    .set DRV_SECTORS, 6             # dword: LBA28 capacity
    .set DRV_PCYL, 10               # word: IDENTIFY's geometry
    .set DRV_PHEADS, 12             # word
    .set DRV_PSPT, 14               # word
    .set DRV_LCYL, 16               # word: INT 13h's geometry
    .set DRV_LHEADS, 18             # word
    .set DRV_LSPT, 20               # word
    .set DRV_FDPT, 24               # 16 bytes: INT 41h/46h's table
    .set DRV_SIZE, 40
    .set MAX_DISKS, 4

    .set TRANSLATION_NONE, 0
    .set TRANSLATION_LARGE, 1
    .set TRANSLATION_LBA, 2

# ---- the ATA driver -----------------------------------------------------------

    .include "ata.S"

# ---- POST: which drives answer ----------------------------------------------

# disk_init: probes the four ATA positions, records the disks in the EBDA
# and counts them in the BDA; INT 41h and 46h point at the parameter tables
# of drives 80h and 81h.
disk_init:
    pushad
    push ds
    push es
    push fs
    push gs
    mov ax, BDA_SEG
    mov ds, ax
    mov fs, word ptr [BDA_EBDA_SEG]
    xor ax, ax
    mov gs, ax                      # GS:IDENTIFY = the IDENTIFY data
    mov byte ptr [BDA_HARD_DISKS], 0
    mov bx, EBDA_DISKS              # FS:BX = the next drive's record
    xor bp, bp                      # BP = ATA position 0-3
disk_probe:
    # The ports and Device register value of position BP, in the record
    # (kept only if a disk answers).
    mov ax, ATA0
    mov dx, ATA0_CTRL
    cmp bp, 2
    jb 1f
    mov ax, ATA1
    mov dx, ATA1_CTRL
1:  mov fs:[bx + DRV_BASE], ax
    mov fs:[bx + DRV_CTRL], dx
    mov al, ATA_DEV_LBA
    test bp, 1
    jz 2f
    or al, ATA_DEV_SLAVE
2:  mov fs:[bx + DRV_DEVICE], al
    test bp, 1                      # each channel is reset once, before
    jnz 3f                          # its master is probed
    call ata_reset
3:  call ata_identify
    jc 4f
    call disk_setup
    jc 4f
    inc byte ptr [BDA_HARD_DISKS]
    add bx, DRV_SIZE
4:  inc bp
    cmp bp, MAX_DISKS
    jb disk_probe

    # INT 41h and 46h: far pointers (not handlers) to the fixed disk
    # parameter tables of drives 80h and 81h; 0000:0000 for no drive.
    xor eax, eax
    mov es, ax
    mov dword ptr es:[0x41 * 4], eax
    mov dword ptr es:[0x46 * 4], eax
    mov ax, fs
    shl eax, 16
    mov ax, EBDA_DISKS + DRV_FDPT
    cmp byte ptr [BDA_HARD_DISKS], 1
    jb 5f
    mov es:[0x41 * 4], eax
    add ax, DRV_SIZE
    cmp byte ptr [BDA_HARD_DISKS], 2
    jb 5f
    mov es:[0x46 * 4], eax
5:  pop gs
    pop fs
    pop es
    pop ds
    popad
    ret

# disk_setup: fills the record at FS:BX from the IDENTIFY data at
# GS:IDENTIFY. CF set if the BIOS cannot use the drive (no LBA: every ATA
# disk since ATA-2 has it, ringlab's too).
disk_setup:
    push eax
    test word ptr gs:[ID_CAPABILITIES], 0x0200
    jz 1f
    mov eax, gs:[ID_LBA_SECTORS]
    test eax, eax
    jz 1f
    mov fs:[bx + DRV_SECTORS], eax
    mov ax, gs:[ID_CYLINDERS]
    cmp ax, 16383                   # ATA's cap (8 GiB and more)
    jbe 2f
    mov ax, 16383
2:  mov fs:[bx + DRV_PCYL], ax
    mov ax, gs:[ID_HEADS]
    mov fs:[bx + DRV_PHEADS], ax
    mov ax, gs:[ID_SPT]
    mov fs:[bx + DRV_PSPT], ax
    call disk_translate
    call disk_fdpt
    pop eax
    clc
    ret
1:  pop eax
    stc
    ret

# disk_translate: INT 13h's geometry for the drive at FS:BX, from its own
# geometry and size (see the header; SeaBIOS' rule).
disk_translate:
    push eax
    push ecx
    push edx
    push esi
    push edi
    movzx ecx, word ptr fs:[bx + DRV_PCYL]      # ECX = cylinders
    movzx esi, word ptr fs:[bx + DRV_PHEADS]    # ESI = heads
    movzx edi, word ptr fs:[bx + DRV_PSPT]      # EDI = sectors per track
    # A geometry with a zero, more than INT 13h can carry per cylinder, or
    # more sectors than the disk has is no use: LBA-assisted, from the size.
    test cx, cx
    jz translate_lba
    test si, si
    jz translate_lba
    test di, di
    jz translate_lba
    cmp si, 255
    ja translate_lba
    cmp di, 63
    ja translate_lba
    mov eax, ecx
    imul eax, esi
    imul eax, edi
    cmp eax, fs:[bx + DRV_SECTORS]
    ja translate_lba
    # None: the drive's own geometry fits INT 13h.
    mov dl, TRANSLATION_NONE
    cmp cx, 1024
    ja 1f
    cmp si, 16
    jbe translate_store
    # Large: shift cylinder bits into the head number, up to 4 GiB.
1:  mov eax, ecx
    imul eax, esi
    cmp eax, 131072
    ja translate_lba
    mov dl, TRANSLATION_LARGE
2:  cmp cx, 1024
    jbe translate_store
    shr cx, 1
    shl si, 1
    cmp si, 127
    jbe 2b
    jmp translate_store
translate_lba:
    # LBA-assisted: whole tracks of 63 sectors, as many heads (a power of
    # two, or 255) as 1024 cylinders need.
    mov dl, TRANSLATION_LBA
    mov di, 63
    mov si, 255
    mov cx, 1024
    mov eax, fs:[bx + DRV_SECTORS]
    cmp eax, 1024 * 255 * 63
    ja translate_store              # the first 7.8 GiB only
    push edx
    xor edx, edx
    mov ecx, 63
    div ecx                         # EAX = tracks
    mov ecx, eax
    shr ecx, 10                     # ECX = heads 1024 cylinders would need
    mov si, 16
    cmp cx, 16
    jbe 3f
    mov si, 32
    cmp cx, 32
    jbe 3f
    mov si, 64
    cmp cx, 64
    jbe 3f
    mov si, 128
    cmp cx, 128
    jbe 3f
    mov si, 255
3:  xor edx, edx
    div esi                         # EAX = cylinders
    mov ecx, eax
    pop edx
translate_store:
    cmp ecx, 1024
    jbe 4f
    mov cx, 1024
4:  test cx, cx                     # a disk smaller than one track still
    jnz 5f                          # has a cylinder
    inc cx
5:  mov fs:[bx + DRV_LCYL], cx
    mov fs:[bx + DRV_LHEADS], si
    mov fs:[bx + DRV_LSPT], di
    mov fs:[bx + DRV_TRANSLATION], dl
    pop edi
    pop esi
    pop edx
    pop ecx
    pop eax
    ret

# disk_fdpt: IBM's fixed disk parameter table (RBIL table 03196) in the
# record at FS:BX, with the geometry INT 13h shows. The EBDA starts out
# zero, so the fields that are 0 here (the XT's timeouts, reduced write
# current, ECC burst length) are left alone.
disk_fdpt:
    push ax
    mov ax, fs:[bx + DRV_LCYL]
    mov fs:[bx + DRV_FDPT + 0x00], ax           # cylinders
    mov fs:[bx + DRV_FDPT + 0x0C], ax           # landing zone
    mov ax, fs:[bx + DRV_LHEADS]
    mov fs:[bx + DRV_FDPT + 0x02], al           # heads
    mov word ptr fs:[bx + DRV_FDPT + 0x05], 0xFFFF  # no write precompensation
    mov ah, 0xC0                    # control byte: no retries (as the CMOS)
    cmp al, 8
    jbe 1f
    or ah, 0x08                     # more than 8 heads
1:  mov fs:[bx + DRV_FDPT + 0x08], ah
    mov ax, fs:[bx + DRV_LSPT]
    mov fs:[bx + DRV_FDPT + 0x0E], al           # sectors per track
    pop ax
    ret

# disk_rw: moves CX sectors (0-256) from LBA EAX with ata_transfer, but
# only sectors the disk has: a request running past the end moves the
# sectors up to it and then fails with "sector not found". Returns AL =
# status (CF set if not 0), CX = sectors moved. Changes EAX.
disk_rw:
    push edx
    movzx ecx, cx
    test cx, cx
    jz 3f
    mov edx, fs:[bx + DRV_SECTORS]
    sub edx, eax                    # EDX = sectors from EAX to the end
    jbe 2f                          # EAX is past the end
    cmp ecx, edx
    jbe 1f
    mov cx, dx                      # the sectors that exist
    call ata_transfer
    jc 4f
    mov al, DISK_NOT_FOUND
    stc
    jmp 4f
1:  call ata_transfer
    jmp 4f
2:  xor cx, cx
    mov al, DISK_NOT_FOUND
    stc
    jmp 4f
3:  mov al, DISK_OK                 # nothing asked, nothing done
    clc
4:  pop edx
    ret

# ---- INT 13h ---------------------------------------------------------------

# The caller's registers, saved on entry (PUSH DS, ES, FS, GS, PUSHAD) and
# addressed [bp + R_*]: a function reads its arguments there and writes its
# results there; they are what the caller gets back.
    .set R_DI, 0
    .set R_SI, 4
    .set R_BX, 16
    .set R_DX, 20
    .set R_DL, 20
    .set R_DH, 21
    .set R_CX, 24
    .set R_CL, 24
    .set R_CH, 25
    .set R_AX, 28
    .set R_AL, 28
    .set R_AH, 29
    .set R_ES, 36
    .set R_DS, 38

# int13_handler: finds the function and the drive, and runs the function
# with DS = BDA, FS:BX = the drive's record, ES = GS = 0 (the caller's
# segments are in the frame).
int13_handler:
    sti                             # a disk may take long: the clock runs
    push ds
    push es
    push fs
    push gs
    pushad
    mov bp, sp
    cld
    mov ax, BDA_SEG
    mov ds, ax
    mov fs, word ptr [BDA_EBDA_SEG]
    xor ax, ax
    mov es, ax
    mov gs, ax
    mov ax, [bp + R_AX]
    mov dl, [bp + R_DL]
    test dl, dl
    jns int13_no_drive              # DL < 80h: a floppy drive; none here
    cmp ah, 0x01
    je disk_status                  # the status needs no drive
    # The drive: its record, if DL - 80h < the number of disks.
    movzx bx, dl
    sub bl, 0x80
    cmp bl, [BDA_HARD_DISKS]
    jae int13_no_drive
    imul bx, bx, DRV_SIZE
    add bx, EBDA_DISKS
    # The function.
    mov si, offset int13_functions
1:  cmp ah, cs:[si]
    je 2f
    add si, 3
    cmp si, offset int13_functions_end
    jb 1b
    mov al, DISK_BAD_PARAMETER      # no such function
    jmp int13_exit
2:  jmp word ptr cs:[si + 1]

# (function, handler): what this BIOS implements.
int13_functions:
    .byte 0x00
    .word disk_reset
    .byte 0x02
    .word disk_read
    .byte 0x03
    .word disk_write
    .byte 0x04
    .word disk_verify
    .byte 0x08
    .word disk_parameters
    .byte 0x0C
    .word disk_seek
    .byte 0x0D
    .word disk_reset                # alternate reset: the same
    .byte 0x10
    .word disk_ready
    .byte 0x11
    .word disk_ready                # recalibrate: nothing to move
    .byte 0x15
    .word disk_type
    .byte 0x41
    .word disk_ext_check
    .byte 0x42
    .word disk_ext_read
    .byte 0x43
    .word disk_ext_write
    .byte 0x44
    .word disk_ext_verify
    .byte 0x47
    .word disk_ext_seek
    .byte 0x48
    .word disk_ext_parameters
int13_functions_end:

# int13_no_drive: DL names no drive (see "Choices" in the header).
int13_no_drive:
    cmp ah, 0x15
    je 2f
    cmp ah, 0x08
    jne 1f
    test dl, dl
    jns 1f
    xor ax, ax                      # AH=08h on a hard disk number: as the
    mov [bp + R_CX], ax             # IBM AT, status 07h and no geometry
    mov [bp + R_DX], ax
    mov al, DISK_PARAMS_FAILED
    jmp int13_exit
1:  mov al, DISK_BAD_PARAMETER
    test dl, dl
    jns int13_exit_status           # floppies keep no status at 0040:0074
    jmp int13_exit
2:  xor ax, ax                      # AH=15h: type 00h, no such drive,
    mov [bp + R_CX], ax             # with CF clear (AL = DISK_TYPE_NONE
    mov [bp + R_DX], ax             # = DISK_OK)
    test dl, dl
    jns int13_exit_status
    jmp int13_exit

# The ways out. int13_exit: AL = the function's status, kept for AH=01h
# and returned in AH, with CF set if not 0. int13_exit_status: the same
# without keeping it. int13_exit_type: success, AL returned in AH (AH=15h
# and 41h return something else than a status there).
int13_exit_type:
    mov byte ptr [BDA_DISK_STATUS], DISK_OK
    mov [bp + R_AH], al
    clc
    jmp int13_return
int13_exit:
    mov [BDA_DISK_STATUS], al
int13_exit_status:
    mov [bp + R_AH], al
    cmp al, 1                       # CF = (AL != 0)
    cmc
int13_return:
    popad
    pop gs
    pop fs
    pop es
    pop ds
    jmp iret_cf

# Two common endings.
int13_bad_parameter:
    mov al, DISK_BAD_PARAMETER
    jmp int13_exit
int13_not_found:
    mov al, DISK_NOT_FOUND
    jmp int13_exit

# AH=01h: the status of the last operation, which is then cleared (as the
# IBM AT does).
disk_status:
    mov al, DISK_OK
    xchg al, [BDA_DISK_STATUS]
    jmp int13_exit_status

# AH=00h: reset. The drive's channel gets a software reset.
disk_reset:
    call ata_reset
    mov al, DISK_OK
    jnc int13_exit
    mov al, DISK_RESET_FAILED
    jmp int13_exit

# AH=10h, 11h: ready? recalibrate: the drive answers and is ready.
disk_ready:
    call disk_check
    jmp int13_exit

# disk_check: selects the drive and waits until it is not busy. AL =
# DISK_OK if it is ready for a command, else DISK_NOT_READY or
# DISK_TIMEOUT.
disk_check:
    mov al, fs:[bx + DRV_DEVICE]
    call ata_select
    call ata_wait
    jc 2f
    test al, ATA_DRDY
    jz 1f
    mov al, DISK_OK
    ret
1:  mov al, DISK_NOT_READY
    ret
2:  mov al, DISK_TIMEOUT
    ret

# AH=0Ch: seek to cylinder CH/CL, head DH. Nothing moves on an ATA disk
# addressed by LBA; the address must exist and the drive be ready.
disk_seek:
    call chs_to_lba
    jc int13_not_found
    jmp disk_ready

# chs_to_lba: EAX = the LBA of the caller's CH, CL, DH in the drive's INT
# 13h geometry; CF set if outside it.
chs_to_lba:
    push ecx
    push edx
    movzx edx, byte ptr [bp + R_DH]             # head
    cmp dx, fs:[bx + DRV_LHEADS]
    jae 1f
    movzx ecx, byte ptr [bp + R_CL]
    and cl, 0x3F                                # sector, from 1
    jz 1f
    cmp cx, fs:[bx + DRV_LSPT]
    ja 1f
    mov al, [bp + R_CL]
    mov ah, al
    shr ah, 6                                   # cylinder bits 9-8
    mov al, [bp + R_CH]                         # cylinder bits 7-0
    movzx eax, ax
    cmp ax, fs:[bx + DRV_LCYL]
    jae 1f
    push edx
    movzx edx, word ptr fs:[bx + DRV_LHEADS]
    imul eax, edx                               # cylinder * heads
    pop edx
    add eax, edx                                # + head
    movzx edx, word ptr fs:[bx + DRV_LSPT]
    imul eax, edx                               # * sectors per track
    lea eax, [eax + ecx - 1]                    # + sector - 1
    clc
    jmp 2f
1:  stc
2:  pop edx
    pop ecx
    ret

# AH=02h read, 03h write, 04h verify: AL sectors (1-128) from cylinder
# CH/CL, head DH, sector CL; ES:BX the buffer. AL returns the sectors
# moved. A transfer may run on across tracks, heads and cylinders
# ("multitrack"): the sectors are consecutive LBAs.
disk_read:
    mov si, ATA_READ_SECTORS
    jmp disk_chs
disk_write:
    mov si, ATA_WRITE_SECTORS
    jmp disk_chs
disk_verify:
    mov si, ATA_READ_VERIFY
disk_chs:
    movzx cx, byte ptr [bp + R_AL]
    mov byte ptr [bp + R_AL], 0     # sectors moved: none yet
    test cx, cx
    jz int13_bad_parameter
    cmp cx, 128
    ja int13_bad_parameter
    call chs_to_lba
    jc int13_not_found
    mov es, [bp + R_ES]
    mov di, [bp + R_BX]
    call disk_rw
    mov [bp + R_AL], cl
    jmp int13_exit

# AH=08h: the drive's INT 13h geometry. CH = last cylinder bits 7-0, CL =
# cylinder bits 9-8 in bits 7-6 and sectors per track in bits 5-0, DH =
# last head, DL = number of hard disks; AL = 0.
disk_parameters:
    mov ax, fs:[bx + DRV_LCYL]
    dec ax                          # cylinders are counted from 0
    mov [bp + R_CH], al
    shl ah, 6
    or ah, fs:[bx + DRV_LSPT]
    mov [bp + R_CL], ah
    mov al, fs:[bx + DRV_LHEADS]
    dec al                          # heads too
    mov [bp + R_DH], al
    mov al, [BDA_HARD_DISKS]
    mov [bp + R_DL], al
    mov byte ptr [bp + R_AL], 0
    mov al, DISK_OK
    jmp int13_exit

# AH=15h: the drive's type: 03h, a hard disk, with CX:DX = the sectors INT
# 13h's geometry reaches.
disk_type:
    movzx eax, word ptr fs:[bx + DRV_LCYL]
    movzx ecx, word ptr fs:[bx + DRV_LHEADS]
    imul eax, ecx
    movzx ecx, word ptr fs:[bx + DRV_LSPT]
    imul eax, ecx
    mov [bp + R_DX], ax
    shr eax, 16
    mov [bp + R_CX], ax
    mov al, DISK_TYPE_FIXED
    jmp int13_exit_type

# AH=41h: are the extensions there? BX = 55AAh on entry; BX = AA55h, AH =
# the version (EDD 3.0), CX = the subsets supported: bit 0, access through
# disk address packets (AH=42h-44h, 47h, 48h).
disk_ext_check:
    cmp word ptr [bp + R_BX], 0x55AA
    jne int13_bad_parameter
    mov word ptr [bp + R_BX], 0xAA55
    mov word ptr [bp + R_CX], EDD_SUBSET
    mov al, EDD_VERSION
    jmp int13_exit_type

# The disk address packet at the caller's DS:SI (RBIL table 00272).
    .set DAP_SIZE, 0                # byte: 10h, or 18h with a flat address
    .set DAP_COUNT, 2               # word: blocks; returns blocks moved
    .set DAP_BUFFER, 4              # dword: segment:offset (offset first)
    .set DAP_LBA, 8                 # qword
    .set DAP_FLAT, 16               # qword: the buffer if DAP_BUFFER = FFFF:FFFF

# AH=42h read, 43h write (AL = 00h or 01h: write; 02h: write and verify),
# 44h verify: the blocks the packet at DS:SI says. Its count returns the
# blocks moved.
disk_ext_read:
    mov si, ATA_READ_SECTORS
    jmp disk_ext
disk_ext_write:
    mov si, ATA_WRITE_SECTORS
    jmp disk_ext
disk_ext_verify:
    mov si, ATA_READ_VERIFY
disk_ext:
    mov gs, [bp + R_DS]
    mov di, [bp + R_SI]             # GS:DI = the packet
    cmp byte ptr gs:[di + DAP_SIZE], 0x10
    jb int13_bad_parameter
    mov cx, gs:[di + DAP_COUNT]
    mov word ptr gs:[di + DAP_COUNT], 0
    cmp cx, 127
    ja int13_bad_parameter
    cmp si, ATA_WRITE_SECTORS       # AH=43h: AL = 00h-02h
    jne 1f
    cmp byte ptr [bp + R_AL], 2
    ja int13_bad_parameter
1:
    # The buffer: a segment:offset, or with FFFF:FFFF there a 64-bit flat
    # address, which real-mode code can reach below 1 MiB only.
    les dx, gs:[di + DAP_BUFFER]
    cmp dword ptr gs:[di + DAP_BUFFER], 0xFFFFFFFF
    jne 2f
    cmp byte ptr gs:[di + DAP_SIZE], 0x18
    jb int13_bad_parameter
    cmp dword ptr gs:[di + DAP_FLAT + 4], 0
    jne int13_bad_parameter
    mov eax, gs:[di + DAP_FLAT]
    cmp eax, 0x100000
    jae int13_bad_parameter
    mov dx, ax
    and dx, 0x0F
    shr eax, 4
    mov es, ax
2:  # The LBA: past 2^32 sectors is past the end of any disk here.
    mov eax, gs:[di + DAP_LBA]
    cmp dword ptr gs:[di + DAP_LBA + 4], 0
    je 3f
    mov eax, 0xFFFFFFFF
3:  push eax
    mov di, dx                      # ES:DI = the buffer
    call disk_rw
    pop edx                         # EDX = the LBA, for a verify
    mov di, [bp + R_SI]
    mov gs:[di + DAP_COUNT], cx
    jc int13_exit
    cmp si, ATA_WRITE_SECTORS       # AH=43h with AL=02h: verify the
    jne int13_exit                  # sectors just written
    cmp byte ptr [bp + R_AL], 2
    jne int13_exit
    mov eax, edx
    mov si, ATA_READ_VERIFY
    call disk_rw
    jmp int13_exit

# AH=47h: seek to the packet's LBA: it must exist, the drive be ready.
disk_ext_seek:
    mov gs, [bp + R_DS]
    mov di, [bp + R_SI]
    cmp dword ptr gs:[di + DAP_LBA + 4], 0
    jne int13_not_found
    mov eax, gs:[di + DAP_LBA]
    cmp eax, fs:[bx + DRV_SECTORS]
    jae int13_not_found
    jmp disk_ready

# AH=48h: the drive's parameters, in the result buffer at DS:SI (RBIL table
# 00273), whose first word gives its size: 1Ah bytes (EDD 1.x) or 1Eh and
# more (2.x: also the pointer to a device parameter table extension, which
# this BIOS does not have). The geometry is the drive's own (IDENTIFY's);
# for a disk larger than 16383 of its cylinders the geometry is marked
# not valid and says 16383 cylinders, as EDD asks.
disk_ext_parameters:
    mov es, [bp + R_DS]
    mov di, [bp + R_SI]             # ES:DI = the buffer
    mov cx, es:[di]
    cmp cx, 0x1A
    jb int13_bad_parameter
    mov ax, 0x1A
    cmp cx, 0x1E
    jb 1f
    mov dword ptr es:[di + 0x1A], 0xFFFFFFFF    # no extension table
    mov ax, 0x1E
1:  mov es:[di], ax                             # the size filled in
    movzx eax, word ptr fs:[bx + DRV_PHEADS]
    mov es:[di + 0x08], eax
    movzx ecx, word ptr fs:[bx + DRV_PSPT]
    mov es:[di + 0x0C], ecx
    imul eax, ecx
    imul eax, eax, 16383            # what 16383 cylinders hold
    mov edx, fs:[bx + DRV_SECTORS]
    mov word ptr es:[di + 0x02], 0x0003         # DMA boundaries are no
    movzx ecx, word ptr fs:[bx + DRV_PCYL]      # matter; geometry valid
    cmp edx, eax
    jbe 2f
    mov word ptr es:[di + 0x02], 0x0001
    mov ecx, 16383
2:  mov es:[di + 0x04], ecx                     # cylinders
    mov es:[di + 0x10], edx                     # total sectors, 64 bits
    mov dword ptr es:[di + 0x14], 0
    mov word ptr es:[di + 0x18], 512            # bytes per sector
    mov al, DISK_OK
    jmp int13_exit
