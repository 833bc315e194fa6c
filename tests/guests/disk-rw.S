# disk-rw.S: the smallest useful disk client, polling with interrupts off
# (nIEN set), on the primary master. Reads sector 0, writes sector 1 with
# "guest wrote this" 32 times, reads sector 1 back, and prints:
#
#   sector 0: "<its first 16 bytes>"
#   write sector 1: status SS error EE
#   sector 1: "<its first 16 bytes>"
#
# A read-only disk ends the write with ERR and ABRT (status 51 error 04)
# and sector 1 reads as before. Exits with 0.
    .include "platform.inc"
    .include "multiboot.inc"

    .set ATA, 0x1F0
    .set ATA_CTRL, 0x3F6
    .set BUF, 0x200000
    .set ST_BSY, 0x80
    .set ST_DRQ, 0x08
    .set ST_ERR, 0x01

main:
    cld
    mov dx, ATA_CTRL
    mov al, 0x0A                    # nIEN: we poll
    out dx, al
    xor eax, eax
    call read_sector
    mov esi, offset s_sector0
    call puts
    call put_first

    mov edi, BUF                    # sector 1's new contents
    mov ecx, 32
1:  mov esi, offset s_pattern
    movsd
    movsd
    movsd
    movsd
    loop 1b
    mov eax, 1
    mov cl, 0x30                    # WRITE SECTORS
    call start_command
    test al, ST_ERR
    jnz 2f
    mov esi, BUF
    mov ecx, 256
    mov dx, ATA
    rep outsw
    call wait_ready
2:  mov esi, offset s_write
    call puts
    call puthex2
    mov esi, offset s_error
    call puts
    mov dx, ATA + 1
    in al, dx
    call puthex2
    call newline

    mov eax, 1
    call read_sector
    mov esi, offset s_sector1
    call puts
    call put_first
    ret

# start_command: command CL for one sector at LBA EAX; AL = status once
# BSY is clear.
start_command:
    mov dx, ATA + 6
    push eax
    mov al, 0xE0                    # LBA, master
    out dx, al
    mov dx, ATA + 2
    mov al, 1
    out dx, al
    pop eax
    mov dx, ATA + 3
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    shr eax, 8
    inc dx
    out dx, al
    mov dx, ATA + 7
    mov al, cl
    out dx, al
    # falls through
# wait_ready: AL = Status once BSY clears (reading Status, not Alternate
# Status: with nIEN set there is no interrupt to acknowledge anyway).
wait_ready:
    mov dx, ATA + 7
1:  in al, dx
    test al, ST_BSY
    jnz 1b
    ret

# read_sector: sector EAX into BUF (zeros on an error).
read_sector:
    mov cl, 0x20                    # READ SECTORS
    call start_command
    mov edi, BUF
    test al, ST_DRQ
    jz 1f
    mov ecx, 256
    mov dx, ATA
    rep insw
    ret
1:  xor eax, eax
    mov ecx, 128
    rep stosd
    ret

# put_first: the first 16 bytes of BUF between quotes, then a newline.
put_first:
    mov al, '"'
    call putc
    mov esi, BUF
    mov ecx, 16
1:  lodsb
    cmp al, 0x20
    jb 2f
    cmp al, 0x7E
    jbe 3f
2:  mov al, '.'
3:  call putc
    loop 1b
    mov al, '"'
    call putc
    call newline
    ret

s_sector0:  .asciz "sector 0: "
s_sector1:  .asciz "sector 1: "
s_write:    .asciz "write sector 1: status "
s_error:    .asciz " error "
s_pattern:  .ascii "guest wrote this"
