# bios-disk-geometry.S: the CHS translation of large disks. The test
# attaches three sparse disks as drives 81h-83h: 1 GiB ("large", bit-shift
# translation), 6 GiB and 20 GiB (LBA-assisted; 20 GiB is also past
# IDENTIFY's 16383 x 16 x 63). For each the guest prints AH=08h, 15h and
# 48h, then reads the last sector CHS reaches (the cylinder, head and
# sector AH=08h gives as the last ones; it must be LBA AH=15h's count - 1)
# and the last sector of the disk (AH=48h's count - 1) with AH=42h. The
# test has put those sectors' LBAs in them.
    .set STAGE2_SECTORS, 3
    .include "bios-disk-boot.inc"

stage2_main:
    mov si, offset m_stage2
    call puts
    movzx ax, byte ptr [0x475]
    SHOW disks, ax
    call newline
    mov byte ptr [disk], 0x81
next_disk:
    movzx ax, byte ptr [disk]
    SHOW drive, ax
    call newline

    mov ax, 0x0800
    mov dl, [disk]
    int 0x13
    REPORT "08h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov [last_cx], cx
    mov [last_dh], dh

    mov ax, 0x1500
    mov dl, [disk]
    int 0x13
    REPORT "15h"
    SHOW cx, cx
    SHOW dx, dx
    call newline
    mov [chs_sectors], dx
    mov [chs_sectors + 2], cx

    mov word ptr [params], 0x1A
    mov ax, 0x4800
    mov dl, [disk]
    mov si, offset params
    int 0x13
    REPORT "48h"
    SHOW flags, [params + 0x02]
    SHOW cyl, [params + 0x04]
    SHOW heads, [params + 0x08]
    SHOW spt, [params + 0x0C]
    SHOW sectors, [params + 0x10]
    SHOW hi, [params + 0x12]
    call newline

    # The last sector CHS reaches, by AH=08h's numbers.
    mov ax, 0x1000
    mov es, ax
    xor bx, bx
    mov ax, 0x0201
    mov cx, [last_cx]
    mov dh, [last_dh]
    mov dl, [disk]
    int 0x13
    REPORT "02h last chs"
    xor di, di
    mov eax, [chs_sectors]
    dec eax
    mov cx, 1
    call check_sectors
    call newline

    # The last sector of the disk, by LBA.
    mov byte ptr [dap], 0x10
    mov word ptr [dap + 2], 1
    mov dword ptr [dap + 4], 0x10000000
    mov eax, [params + 0x10]
    dec eax
    mov [dap + 8], eax
    mov dword ptr [dap + 12], 0
    mov ax, 0x4200
    mov dl, [disk]
    mov si, offset dap
    int 0x13
    REPORT "42h last lba"
    xor di, di
    mov eax, [params + 0x10]
    dec eax
    mov cx, 1
    call check_sectors
    call newline

    inc byte ptr [disk]
    cmp byte ptr [disk], 0x84
    jb next_disk
    EXIT 0

    .p2align 2
chs_sectors: .long 0
last_cx: .word 0
last_dh: .byte 0
disk: .byte 0
    .p2align 2
dap: .fill 16, 1, 0
params: .fill 0x1A, 1, 0

# The whole of stage 2 is on the disk.
    .org (1 + STAGE2_SECTORS) * 512
