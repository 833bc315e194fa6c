# bios-disk-ro.S: writes to a read-only disk. The test attaches a 16-sector
# data disk whose image file cannot be written as the secondary slave (no
# secondary master): drive 81h. The drive aborts writes; INT 13h says
# "write protected" (AH=03h) and moves nothing.
    .set STAGE2_SECTORS, 3
    .include "bios-disk-boot.inc"

    .set DISK, 0x81

stage2_main:
    mov si, offset m_stage2
    call puts
    movzx ax, byte ptr [0x475]
    SHOW disks, ax
    call newline

    # Reads work: LBAs 1-2 to 1000:0000.
    mov byte ptr [dap], 0x10
    mov word ptr [dap + 2], 2
    mov dword ptr [dap + 4], 0x10000000
    mov dword ptr [dap + 8], 1
    mov ax, 0x4200
    mov dl, DISK
    mov si, offset dap
    int 0x13
    REPORT "42h lba 1 x2"
    SHOW count, [dap + 2]
    mov ax, 0x1000
    mov es, ax
    xor di, di
    mov eax, 1
    mov cx, 2
    call check_sectors
    call newline

    # Writing them back: AH=43h, then AH=03h (C0 H0 S2).
    mov word ptr [dap + 2], 2
    mov ax, 0x4300
    mov dl, DISK
    mov si, offset dap
    int 0x13
    REPORT "43h lba 1 x2"
    SHOW count, [dap + 2]
    call newline
    mov ax, 0x1000
    mov es, ax
    xor bx, bx
    mov ax, 0x0302
    mov cx, 0x0002
    mov dx, 0x0000 + DISK
    int 0x13
    REPORT "03h c0 h0 s2 x2"
    call newline
    mov ah, 0x01
    mov dl, DISK
    int 0x13
    REPORT "01h"
    call newline
    EXIT 0

    .p2align 2
dap: .fill 16, 1, 0

# The whole of stage 2 is on the disk.
    .org (1 + STAGE2_SECTORS) * 512
