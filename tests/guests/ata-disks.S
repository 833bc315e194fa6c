# ata-disks.S: an interrupt-driven ATA PIO driver, as an OS writes one,
# run against every drive it finds on the two legacy channels.
#
# Per channel (primary 0x1F0/0x3F6 on IRQ 14, secondary 0x170/0x376 on
# IRQ 15): a floating bus (status 0xFF) means no controller; otherwise a
# software reset (SRST set, status reads BSY, SRST released), then each
# drive is selected and its status and signature read: status 0 means no
# device ("device 0 only"), else the task file holds the ATA signature
# 01 01 00 00.
#
# Per drive found, with nIEN clear and IRQ 14/15 unmasked at the 8259As
# (the handler counts, reads Status to acknowledge INTRQ, sends EOIs):
#   IDENTIFY DEVICE: model, serial, LBA28 capacity, READ/WRITE MULTIPLE
#     maximum, and the integrity word (signature A5, bytes sum to 0);
#   READ SECTORS of 5 sectors: one interrupt per sector, each sector read
#     after its interrupt (the first with two single INSW, then REP INSW);
#   SET MULTIPLE MODE 4, READ MULTIPLE of 10 sectors: blocks of 4, 4, 2;
#   WRITE SECTORS of 3 sectors and WRITE MULTIPLE of 6 (pseudo-random data
#     from a per-drive seed): no interrupt before the first block, one
#     after each block written;
#   both read back and compared with what was written;
#   a READ SECTORS that runs past the end of the disk: the sector inside
#     is read, the next block ends with ERR and IDNF, the task file
#     pointing at the first sector that failed.
# Data checksums are djb2 (h = h * 33 + byte, from 5381) over the bytes.
# The test checks them, and the sectors written, against the disk images.
    .include "platform.inc"
    .include "multiboot.inc"

    .set IDBUF, 0x180000            # IDENTIFY data
    .set RDBUF, 0x200000            # sectors read
    .set WRBUF, 0x280000            # sectors written

    .set ST_BSY, 0x80
    .set ST_DRQ, 0x08
    .set ST_ERR, 0x01

# The current drive's port I/O: register \reg of the command block, AL.
.macro ATA_OUT reg
    mov dx, word ptr [base]
    add dx, \reg
    out dx, al
.endm
.macro ATA_IN reg
    mov dx, word ptr [base]
    add dx, \reg
    in al, dx
.endm

main:
    cld
    mov ecx, IRQ_BASE + 14
    mov eax, offset irq14
    call set_gate
    mov ecx, IRQ_BASE + 15
    mov eax, offset irq15
    call set_gate
    # Unmask IRQ 14 and 15 on the slave and the cascade (IRQ 2) on the
    # master.
    in al, PIC2 + 1
    and al, 0x3F
    out PIC2 + 1, al
    in al, PIC1 + 1
    and al, 0xFB
    out PIC1 + 1, al

    # Probe: drives 0-3 (primary master, primary slave, secondary
    # master, secondary slave).
    xor ebx, ebx
1:  mov [drive], ebx
    call set_drive
    test ebx, 1
    jnz 2f
    call reset_channel              # on each channel's master
2:  call probe
    inc ebx
    cmp ebx, 4
    jb 1b

    xor ebx, ebx
3:  bt dword ptr [present], ebx
    jnc 4f
    mov [drive], ebx
    call set_drive
    push ebx
    call test_drive
    pop ebx
4:  inc ebx
    cmp ebx, 4
    jb 3b
    ret

# set_drive: the globals for drive [drive]: base, ctrl, chan, devsel.
set_drive:
    push eax
    mov eax, [drive]
    shr eax, 1
    mov [chan], eax
    mov dx, 0x1F0
    mov cx, 0x3F6
    test eax, eax
    jz 1f
    mov dx, 0x170
    mov cx, 0x376
1:  mov [base], dx
    mov [ctrl], cx
    mov al, 0xE0                    # LBA, device 0
    test byte ptr [drive], 1
    jz 2f
    mov al, 0xF0                    # LBA, device 1
2:  mov [devsel], al
    pop eax
    ret

# delay400: four reads of Alternate Status, the 400 ns a drive may take to
# show a new status after a select or a command (ATA-6 9.2).
delay400:
    push eax
    push edx
    mov dx, [ctrl]
    in al, dx
    in al, dx
    in al, dx
    in al, dx
    pop edx
    pop eax
    ret

# altstatus: AL = Alternate Status (does not acknowledge an interrupt).
altstatus:
    push edx
    mov dx, [ctrl]
    in al, dx
    pop edx
    ret

# reset_channel: software reset of the current channel, unless nothing
# drives its bus.
reset_channel:
    mov esi, offset s_channel
    call puts
    mov eax, [chan]
    call putdec
    mov esi, offset s_status
    call puts
    ATA_IN 7
    call puthex2
    cmp al, 0xFF
    jne 1f
    mov esi, offset s_floating
    call puts
    ret
1:  mov esi, offset s_srst
    call puts
    mov al, 0x0C                    # SRST, and bit 3 (obsolete, set)
    mov dx, [ctrl]
    out dx, al
    call delay400
    call altstatus
    call puthex2
    mov al, 0x08                    # SRST released, nIEN clear
    out dx, al
    call delay400
2:  call altstatus
    test al, ST_BSY
    jnz 2b
    mov esi, offset s_after
    call puts
    call puthex2
    call newline
    ret

# probe: selects drive [drive] and reads its status and signature.
probe:
    mov esi, offset s_hd
    call puts
    mov eax, [drive]
    call putdec
    mov esi, offset s_status
    call puts
    mov al, [devsel]
    and al, 0xB0                    # CHS-style select, as a probe does
    ATA_OUT 6
    call delay400
    ATA_IN 7
    call puthex2
    cmp al, 0xFF
    jne 1f
    mov esi, offset s_no_controller
    jmp 9f
1:  test al, al
    jnz 2f
    mov esi, offset s_no_device
    jmp 9f
2:  mov esi, offset s_signature
    call puts
    mov ecx, 2
3:  ATA_IN cx
    call puthex2
    mov al, ' '
    cmp ecx, 5
    je 4f
    call putc
4:  inc ecx
    cmp ecx, 6
    jb 3b
    mov eax, [drive]
    bts dword ptr [present], eax
    mov esi, offset s_found
9:  call puts
    ret

# wait_irq: sleeps until the current channel has interrupted once more
# than the driver has consumed; consumes it. Runs with IF clear outside
# the STI; HLT window, so every interrupt lands there.
wait_irq:
    push eax
    push ebx
    mov ebx, [chan]
1:  cli
    mov eax, [irq_count + ebx * 4]
    cmp eax, [irq_taken + ebx * 4]
    jne 2f
    sti
    hlt
    jmp 1b
2:  inc dword ptr [irq_taken + ebx * 4]
    pop ebx
    pop eax
    ret

# wait_notbusy: polls Alternate Status until BSY clears; AL = status.
wait_notbusy:
1:  call altstatus
    test al, ST_BSY
    jnz 1b
    ret

irq14:
    push eax
    push edx
    mov dx, 0x1F7
    in al, dx                       # acknowledges INTRQ
    mov [irq_status], al
    inc dword ptr [irq_count]
    mov al, 0x20
    out PIC2, al
    out PIC1, al
    pop edx
    pop eax
    IRET_SAME_RING

irq15:
    push eax
    push edx
    mov dx, 0x177
    in al, dx
    mov [irq_status + 1], al
    inc dword ptr [irq_count + 4]
    mov al, 0x20
    out PIC2, al
    out PIC1, al
    pop edx
    pop eax
    IRET_SAME_RING

# taskfile: EAX = LBA, CL = sector count: selects the drive and writes
# the address registers.
taskfile:
    push eax
    push eax
    shr eax, 24
    and al, 0x0F
    or al, [devsel]
    ATA_OUT 6
    call delay400
    mov al, cl
    ATA_OUT 2
    pop eax
    ATA_OUT 3
    shr eax, 8
    ATA_OUT 4
    shr eax, 8
    ATA_OUT 5
    pop eax
    ret

# command: AL to the Command register; remembers the interrupt count so
# `irqs_since` can tell how many the command raised.
command:
    push ebx
    mov ebx, [chan]
    push eax
    mov eax, [irq_count + ebx * 4]
    mov [irq_mark], eax
    pop eax
    ATA_OUT 7
    pop ebx
    ret

# print_irqs: " N interrupts" raised since the last `command`.
print_irqs:
    push eax
    push ebx
    mov al, ' '
    call putc
    mov ebx, [chan]
    mov eax, [irq_count + ebx * 4]
    sub eax, [irq_mark]
    call putdec
    mov esi, offset s_interrupt
    call puts
    cmp eax, 1
    je 1f
    mov al, 's'
    call putc
1:  pop ebx
    pop eax
    ret

# print_taskfile: " status SS error EE count CC lba LLLLLL" of the drive.
print_taskfile:
    mov esi, offset s_tf_status
    call puts
    call altstatus
    call puthex2
    mov esi, offset s_tf_error
    call puts
    ATA_IN 1
    call puthex2
    mov esi, offset s_tf_count
    call puts
    ATA_IN 2
    call puthex2
    mov esi, offset s_tf_lba
    call puts
    ATA_IN 6
    and al, 0x0F
    call puthex1
    ATA_IN 5
    call puthex2
    ATA_IN 4
    call puthex2
    ATA_IN 3
    call puthex2
    ret

# read_blocks: after a read command: ECX sectors in blocks of EBX
# sectors, each read after its interrupt into EDI. The first two words
# of the transfer go through single INSW, the rest of each block through
# REP INSW. CF set (and the status printed) if a block ends with ERR.
read_blocks:
    push ecx
    mov byte ptr [first], 1
1:  call wait_irq
    call altstatus
    test al, ST_ERR
    jnz 8f
    test al, ST_DRQ
    jz 8f
    mov eax, ecx
    cmp eax, ebx
    jbe 2f
    mov eax, ebx
2:  sub ecx, eax
    push ecx
    shl eax, 8                      # words in this block
    mov ecx, eax
    mov dx, [base]
    cmp byte ptr [first], 0
    je 3f
    mov byte ptr [first], 0
    insw
    insw
    sub ecx, 2
3:  rep insw
    pop ecx
    test ecx, ecx
    jnz 1b
    pop ecx
    clc
    ret
8:  pop ecx
    stc
    ret

# write_blocks: after a write command: ECX sectors in blocks of EBX from
# ESI. Waits for DRQ before the first block (no interrupt then), and for
# an interrupt after each block. The first two words go through single
# OUTSW. CF set on ERR.
write_blocks:
    push ecx
    mov byte ptr [first], 1
    call wait_notbusy
1:  test al, ST_ERR
    jnz 8f
    test al, ST_DRQ
    jz 8f
    mov eax, ecx
    cmp eax, ebx
    jbe 2f
    mov eax, ebx
2:  sub ecx, eax
    push ecx
    shl eax, 8
    mov ecx, eax
    mov dx, [base]
    cmp byte ptr [first], 0
    je 3f
    mov byte ptr [first], 0
    outsw
    outsw
    sub ecx, 2
3:  rep outsw
    call wait_irq
    call altstatus
    pop ecx
    test ecx, ecx
    jnz 1b
    test al, ST_ERR | ST_DRQ        # the last interrupt: done, no DRQ
    jnz 8f
    pop ecx
    clc
    ret
8:  pop ecx
    stc
    ret

# checksum: EAX = djb2 of ECX bytes at ESI.
checksum:
    push ecx
    push esi
    push edx
    mov eax, 5381
1:  movzx edx, byte ptr [esi]
    imul eax, eax, 33
    add eax, edx
    inc esi
    loop 1b
    pop edx
    pop esi
    pop ecx
    ret

# print_sum: ", checksum XXXXXXXX" of ECX bytes at ESI.
print_sum:
    push eax
    mov eax, esi
    mov esi, offset s_checksum
    call puts
    mov esi, eax
    call checksum
    call puthex
    pop eax
    ret

# print_range: "NAME LBA-LAST" with ESI the name, EAX the LBA, ECX the
# count.
print_range:
    push eax
    call puts
    mov al, ' '
    call putc
    mov eax, [esp]
    call putdec
    mov al, '-'
    call putc
    mov eax, [esp]
    add eax, ecx
    dec eax
    call putdec
    mov al, ':'
    call putc
    pop eax
    ret

# fill_random: ECX bytes (a multiple of 4) at EDI from the generator
# x = x * 1103515245 + 12345 in [seed].
fill_random:
    push eax
    push ecx
    push edx
    shr ecx, 2
1:  mov eax, [seed]
    imul eax, eax, 1103515245
    add eax, 12345
    mov [seed], eax
    stosd
    loop 1b
    pop edx
    pop ecx
    pop eax
    ret

# compare: ZF set if the ECX bytes at ESI and EDI are equal; prints the
# verdict.
compare:
    push ecx
    push esi
    push edi
    repe cmpsb
    mov esi, offset s_match
    je 1f
    mov esi, offset s_mismatch
1:  call puts
    pop edi
    pop esi
    pop ecx
    ret

test_drive:
    mov esi, offset s_hd
    call puts
    mov eax, [drive]
    call putdec
    mov al, ':'
    call putc
    call newline

    # ---- IDENTIFY DEVICE
    mov esi, offset s_identify
    call puts
    xor eax, eax
    xor ecx, ecx
    call taskfile
    mov al, 0xEC
    call command
    call wait_irq
    mov esi, offset s_tf_status
    call puts
    call altstatus
    call puthex2
    mov edi, IDBUF
    mov dx, [base]
    insw                            # words 0 and 1 one by one
    insw
    mov ecx, 254
    rep insw
    mov esi, offset s_comma
    call puts
    call print_irqs
    mov esi, offset s_after
    call puts
    call altstatus
    call puthex2
    call newline

    mov esi, offset s_model
    call puts
    mov esi, IDBUF + 27 * 2
    mov ecx, 20
    call put_ata_string
    mov esi, offset s_serial
    call puts
    mov esi, IDBUF + 10 * 2
    mov ecx, 10
    call put_ata_string
    call newline
    mov esi, offset s_capacity
    call puts
    mov eax, [IDBUF + 60 * 2]
    call putdec
    mov esi, offset s_sectors_lba
    call puts
    movzx eax, word ptr [IDBUF + 49 * 2]
    bt eax, 9
    mov al, 'n'
    jnc 1f
    mov al, 'y'
1:  call putc
    mov esi, offset s_multiple_max
    call puts
    movzx eax, byte ptr [IDBUF + 47 * 2]
    call putdec
    mov esi, offset s_chs
    call puts
    movzx eax, word ptr [IDBUF + 1 * 2]
    call putdec
    mov al, '/'
    call putc
    movzx eax, word ptr [IDBUF + 3 * 2]
    call putdec
    mov al, '/'
    call putc
    movzx eax, word ptr [IDBUF + 6 * 2]
    call putdec
    call newline
    mov esi, offset s_integrity
    call puts
    movzx eax, byte ptr [IDBUF + 255 * 2]
    call puthex2
    mov esi, offset s_sum
    call puts
    xor eax, eax
    mov esi, IDBUF
    mov ecx, 512
2:  add al, [esi]
    inc esi
    loop 2b
    call puthex2
    call newline

    # ---- READ SECTORS 3-7, one interrupt per sector
    mov eax, 3
    mov ecx, 5
    mov esi, offset s_read_sectors
    call print_range
    call taskfile
    mov al, 0x20
    call command
    mov edi, RDBUF
    mov ebx, 1
    call read_blocks
    call print_irqs
    mov esi, offset s_first
    call puts
    mov esi, RDBUF
    mov ecx, 16
    call put_text
    mov esi, RDBUF
    mov ecx, 5 * 512
    call print_sum
    call newline
    mov al, ' '
    call putc
    call print_taskfile
    call newline

    # ---- SET MULTIPLE MODE 4, READ MULTIPLE 10-19
    mov esi, offset s_set_multiple
    call puts
    xor eax, eax
    mov ecx, 4
    call taskfile
    mov al, 0xC6
    call command
    call wait_irq
    mov esi, offset s_tf_status
    call puts
    call altstatus
    call puthex2
    mov esi, offset s_comma
    call puts
    call print_irqs
    call newline
    mov eax, 10
    mov ecx, 10
    mov esi, offset s_read_multiple
    call print_range
    call taskfile
    mov al, 0xC4
    call command
    mov edi, RDBUF
    mov ebx, 4
    call read_blocks
    call print_irqs
    mov esi, offset s_first
    call puts
    mov esi, RDBUF
    mov ecx, 16
    call put_text
    mov esi, RDBUF
    mov ecx, 10 * 512
    call print_sum
    call newline
    mov al, ' '
    call putc
    call print_taskfile
    call newline

    # ---- WRITE SECTORS 20-22 and WRITE MULTIPLE 30-35
    mov eax, [drive]
    add eax, 0x1000
    mov [seed], eax
    mov edi, WRBUF
    mov ecx, 9 * 512
    call fill_random
    mov eax, 20
    mov ecx, 3
    mov esi, offset s_write_sectors
    call print_range
    call taskfile
    mov al, 0x30
    call command
    mov esi, WRBUF
    mov ebx, 1
    call write_blocks
    call print_irqs
    mov esi, WRBUF
    mov ecx, 3 * 512
    call print_sum
    call newline
    mov al, ' '
    call putc
    call print_taskfile
    call newline
    mov eax, 30
    mov ecx, 6
    mov esi, offset s_write_multiple
    call print_range
    call taskfile
    mov al, 0xC5
    call command
    mov esi, WRBUF + 3 * 512
    mov ebx, 4
    call write_blocks
    call print_irqs
    mov esi, WRBUF + 3 * 512
    mov ecx, 6 * 512
    call print_sum
    call newline
    mov al, ' '
    call putc
    call print_taskfile
    call newline

    # ---- read both back
    mov eax, 20
    mov ecx, 3
    mov esi, offset s_read_back
    call print_range
    call taskfile
    mov al, 0x20
    call command
    mov edi, RDBUF
    mov ebx, 1
    call read_blocks
    call print_irqs
    mov esi, RDBUF
    mov edi, WRBUF
    mov ecx, 3 * 512
    call compare
    call newline
    mov eax, 30
    mov ecx, 6
    mov esi, offset s_read_back_multiple
    call print_range
    call taskfile
    mov al, 0xC4
    call command
    mov edi, RDBUF
    mov ebx, 4
    call read_blocks
    call print_irqs
    mov esi, RDBUF
    mov edi, WRBUF + 3 * 512
    mov ecx, 6 * 512
    call compare
    call newline

    # ---- past the end: the last sector and one that does not exist
    mov eax, [IDBUF + 60 * 2]
    dec eax
    mov ecx, 2
    mov esi, offset s_read_past_end
    call print_range
    call taskfile
    mov al, 0x20
    call command
    mov edi, RDBUF
    mov ebx, 1
    call read_blocks
    mov esi, offset s_error
    jc 1f
    mov esi, offset s_no_error
1:  call puts
    call print_irqs
    mov esi, offset s_first
    call puts
    mov esi, RDBUF
    mov ecx, 16
    call put_text
    call newline
    mov al, ' '
    call putc
    call print_taskfile
    call newline
    ret

# put_ata_string: ECX words at ESI, each holding two characters high byte
# first; trailing spaces are not printed.
put_ata_string:
    push eax
    push ebx
    push ecx
    push edi
    mov edi, offset strbuf
1:  lodsw
    xchg al, ah
    stosw
    loop 1b
2:  cmp edi, offset strbuf
    je 3f
    cmp byte ptr [edi - 1], ' '
    jne 3f
    dec edi
    jmp 2b
3:  mov byte ptr [edi], 0
    mov esi, offset strbuf
    call puts
    pop edi
    pop ecx
    pop ebx
    pop eax
    ret

# put_text: ECX bytes at ESI between quotes, '.' for the unprintable.
put_text:
    push eax
    mov al, '"'
    call putc
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
    pop eax
    ret

s_channel:          .asciz "channel "
s_status:           .asciz ": status "
s_floating:         .asciz " -> nothing drives the bus\n"
s_srst:             .asciz ", SRST: "
s_after:            .asciz ", after: "
s_hd:               .asciz "hd"
s_no_controller:    .asciz " -> no controller\n"
s_no_device:        .asciz " -> no device\n"
s_signature:        .asciz ", signature "
s_found:            .asciz " -> ATA disk\n"
s_identify:         .asciz " identify:"
s_comma:            .asciz ","
s_interrupt:        .asciz " interrupt"
s_tf_status:        .asciz " status "
s_tf_error:         .asciz " error "
s_tf_count:         .asciz " count "
s_tf_lba:           .asciz " lba "
s_model:            .asciz " model \""
s_serial:           .asciz "\", serial "
s_capacity:         .asciz " capacity "
s_sectors_lba:      .asciz " sectors, LBA "
s_multiple_max:     .asciz ", multiple max "
s_chs:              .asciz ", CHS "
s_integrity:        .asciz " integrity word signature "
s_sum:              .asciz ", byte sum "
s_read_sectors:     .asciz " read sectors"
s_read_multiple:    .asciz " read multiple"
s_set_multiple:     .asciz " set multiple 4:"
s_write_sectors:    .asciz " write sectors"
s_write_multiple:   .asciz " write multiple"
s_read_back:        .asciz " read back"
s_read_back_multiple: .asciz " read back (multiple)"
s_read_past_end:    .asciz " read past the end"
s_first:            .asciz ", first bytes "
s_checksum:         .asciz ", checksum "
s_match:            .asciz ", matches what was written"
s_mismatch:         .asciz ", DIFFERS from what was written"
s_error:            .asciz " ended with ERR,"
s_no_error:         .asciz " ended without error,"

    .p2align 2
drive:      .long 0
chan:       .long 0
present:    .long 0
seed:       .long 0
irq_count:  .long 0, 0
irq_taken:  .long 0, 0
irq_mark:   .long 0
irq_status: .byte 0, 0
base:       .word 0
ctrl:       .word 0
devsel:     .byte 0
first:      .byte 0
strbuf:     .space 48
