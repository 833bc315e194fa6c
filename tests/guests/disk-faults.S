# disk-faults.S: a guest that keeps writing its disk, for the tests of
# what a signal or a full host disk does to it (frontend/tests/disk_faults.rs).
#
# On the primary master, polling (nIEN set), generation G = 1, 2, 3, ...
# for ever: sectors FIRST .. SECTORS-1, BLOCK at a time (WRITE MULTIPLE
# with SET MULTIPLE MODE BLOCK), each block followed by FLUSH CACHE, and
# once the flush is done the line
#
#   flushed K G
#
# with K the block's last sector: from then on sectors FIRST..K hold
# generation G (or a later one). Every sector S written in generation G
# holds 128 dwords, dword i = (G << 16 | S) xor (i * 0x9E3779B1): a sector
# that is part old and part new, or part of two generations, matches no
# pattern.
#
# A command that ends with ERR prints
#
#   error at K: status SS error EE lba LLLLLL count CC
#
# (K the block's first sector; LBA and Sector Count as the drive left
# them: the failing sector and what was left to write) and the guest goes
# on with the next block; the third error ends the run with EXIT 2
# (ringlab's exit status 5).
#
# --defsym SECTORS=n, FIRST=n, BLOCK=n (1 to 16) choose the range.

    .include "platform.inc"
    .include "multiboot.inc"

    .ifndef SECTORS
    .set SECTORS, 256
    .endif
    .ifndef FIRST
    .set FIRST, 0
    .endif
    .ifndef BLOCK
    .set BLOCK, 4
    .endif

    .set ATA, 0x1F0
    .set ATA_CTRL, 0x3F6
    .set BUF, 0x200000
    .set ST_BSY, 0x80
    .set ST_ERR, 0x01
    .set GOLDEN, 0x9E3779B1

main:
    cld
    mov dx, ATA_CTRL
    mov al, 0x0A                    # nIEN: we poll
    out dx, al
    mov dx, ATA + 6
    mov al, 0xE0                    # LBA, master
    out dx, al
    mov dx, ATA + 2
    mov al, BLOCK
    out dx, al
    mov dx, ATA + 7
    mov al, 0xC6                    # SET MULTIPLE MODE
    out dx, al
    call wait_ready
    xor ebp, ebp                    # errors so far
    mov ebx, 1                      # generation
next_gen:
    mov eax, FIRST
next_block:
    push eax
    call fill
    pop eax
    call write_block
    add eax, BLOCK
    cmp eax, SECTORS - BLOCK
    jbe next_block
    inc ebx
    jmp next_gen

# fill: BUF gets the BLOCK sectors from EAX, generation EBX.
fill:
    mov edi, BUF
    mov esi, eax                    # the sector
1:  mov edx, ebx
    shl edx, 16
    or edx, esi                     # the tag G << 16 | S
    xor ecx, ecx                    # i * GOLDEN
    push esi
    mov esi, 128
2:  mov eax, ecx
    xor eax, edx
    stosd
    add ecx, GOLDEN
    dec esi
    jnz 2b
    pop esi
    inc esi
    mov eax, edi
    cmp eax, BUF + BLOCK * 512
    jb 1b
    ret

# write_block: WRITE MULTIPLE of BUF to the BLOCK sectors from EAX, then
# FLUSH CACHE; prints "flushed" or the error. Keeps EAX and EBX.
write_block:
    push eax
    mov ecx, eax                    # the block's first sector
    mov dx, ATA + 2
    mov al, BLOCK
    out dx, al
    mov eax, ecx
    mov dx, ATA + 3
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    mov dx, ATA + 7
    mov al, 0xC5                    # WRITE MULTIPLE
    out dx, al
    call wait_ready
    test al, ST_ERR
    jnz 8f
    mov esi, BUF
    mov ecx, BLOCK * 256
    mov dx, ATA
    rep outsw
    call wait_ready
    test al, ST_ERR
    jnz 8f
    mov dx, ATA + 7
    mov al, 0xE7                    # FLUSH CACHE
    out dx, al
    call wait_ready
    test al, ST_ERR
    jnz 8f
    mov esi, offset s_flushed
    call puts
    mov eax, [esp]
    add eax, BLOCK - 1
    call putdec
    mov al, ' '
    call putc
    mov eax, ebx
    call putdec
    call newline
    pop eax
    ret
8:  # AL = status
    mov esi, offset s_error
    call puts
    push eax
    mov eax, [esp + 4]
    call putdec
    mov esi, offset s_status
    call puts
    pop eax
    call puthex2
    mov esi, offset s_errreg
    call puts
    mov dx, ATA + 1
    in al, dx
    call puthex2
    mov esi, offset s_lba
    call puts
    mov dx, ATA + 5
    in al, dx
    call puthex2
    dec dx
    in al, dx
    call puthex2
    dec dx
    in al, dx
    call puthex2
    mov esi, offset s_count
    call puts
    dec dx
    in al, dx
    call puthex2
    call newline
    inc ebp
    cmp ebp, 3
    jb 9f
    EXIT 2
9:  pop eax
    ret

# wait_ready: AL = Status once BSY clears.
wait_ready:
    mov dx, ATA + 7
1:  in al, dx
    test al, ST_BSY
    jnz 1b
    ret

s_flushed:  .asciz "flushed "
s_error:    .asciz "error at "
s_status:   .asciz ": status "
s_errreg:   .asciz " error "
s_lba:      .asciz " lba "
s_count:    .asciz " count "
