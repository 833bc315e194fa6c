# ata-bench.S: disk read throughput. Reads SECTORS sectors (default 2048,
# 1 MiB) from the primary master PASSES times (default 1), as a polling
# driver does: READ SECTORS of up to 256 sectors per command, nIEN set,
# and for each sector a wait for DRQ (BSY clear) and REP INSW of 256
# words into one buffer (with LOOP=1: a loop of single INSW instead, to
# compare with the bulk path). Prints "read N sectors, sum S" (S the sum
# of each sector's first dword, so every sector has to arrive) and exits
# with 0. SECTORS=0 is the baseline: the same run without the reads.
#
#   scripts/bench-ata.sh assembles it with --defsym and times `ringlab
#   run` on each engine against the baseline.
    .include "platform.inc"
    .include "multiboot.inc"

    .ifndef SECTORS
    .set SECTORS, 2048
    .endif
    .ifndef PASSES
    .set PASSES, 1
    .endif
    .ifndef LOOP
    .set LOOP, 0
    .endif

    .set ATA, 0x1F0
    .set ATA_CTRL, 0x3F6
    .set BUF, 0x200000
    .set ST_BSY, 0x80
    .set ST_DRQ, 0x08
    .set ST_ERR, 0x01

main:
    cld
    mov dx, ATA_CTRL
    mov al, 0x0A                    # nIEN: polling
    out dx, al
    xor ebp, ebp                    # the sum
    mov ebx, PASSES
1:  test ebx, ebx
    jz 9f
    xor esi, esi                    # next LBA
2:  cmp esi, SECTORS
    jae 8f
    mov ecx, SECTORS
    sub ecx, esi
    cmp ecx, 256
    jbe 3f
    mov ecx, 256
3:  call read_command               # ECX sectors at LBA ESI
    add esi, ecx
4:  mov dx, ATA + 7
5:  in al, dx
    test al, ST_BSY
    jnz 5b
    test al, ST_ERR
    jnz 7f
    mov edi, BUF
    mov dx, ATA
    push ecx
    mov ecx, 256
    .if LOOP
6:  insw
    loop 6b
    .else
    rep insw
    .endif
    pop ecx
    add ebp, [BUF]
    loop 4b
    jmp 2b
8:  dec ebx
    jmp 1b
7:  mov esi, offset s_error
    call puts
    EXIT 1
9:  mov esi, offset s_read
    call puts
    mov eax, SECTORS * PASSES
    call putdec
    mov esi, offset s_sum
    call puts
    mov eax, ebp
    call puthex
    call newline
    ret

# read_command: READ SECTORS of ECX (1-256) sectors at LBA ESI.
read_command:
    push eax
    mov dx, ATA + 6
    mov eax, esi
    shr eax, 24
    or al, 0xE0
    out dx, al
    mov dx, ATA + 2
    mov al, cl                      # 256 is 0
    out dx, al
    mov eax, esi
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    inc dx
    inc dx
    mov al, 0x20
    out dx, al
    pop eax
    ret

s_read:     .asciz "read "
s_sum:      .asciz " sectors, sum "
s_error:    .asciz "read error\n"
