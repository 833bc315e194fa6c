# ata.S: the ATA driver of INT 13h and POST (disk.S includes it): the
# registers of an ATA channel and the steps of the protocols, one routine
# each, for the drive whose record (disk.S, DRV_*) is at FS:BX.
#
# T13 ATA/ATAPI-6 (d1410r3b): "register descriptions", the "PIO data-in",
# "PIO data-out" and "non-data" command protocols, the "software reset"
# protocol, and the commands used here: IDENTIFY DEVICE, READ SECTORS,
# WRITE SECTORS, READ VERIFY SECTORS, all with 28-bit LBAs.
#
# Polling, no interrupts: nIEN is set in Device Control, so the drives
# never interrupt (IRQ 14 and 15 also stay masked at the 8259A, as SeaBIOS
# leaves them in PIO mode), and the BIOS reads Status until BSY clears, a
# bounded number of times (ATA_POLLS). Data moves with REP INSW / REP
# OUTSW, 256 words a sector (ringlab serves each REP in one go).

# ---- the registers --------------------------------------------------------------

# The command block, at 1F0h (primary) or 170h (secondary).
    .set ATA_DATA, 0
    .set ATA_ERROR, 1
    .set ATA_COUNT, 2               # Sector Count
    .set ATA_LBA_LOW, 3             # LBA bits 7-0
    .set ATA_LBA_MID, 4             # LBA bits 15-8
    .set ATA_LBA_HIGH, 5            # LBA bits 23-16
    .set ATA_DEVICE, 6              # the drive; LBA bits 27-24
    .set ATA_STATUS, 7              # read: Status (clears a pending interrupt)
    .set ATA_COMMAND, 7             # write: Command
# The control block, at 3F6h or 376h: Alternate Status (read; the same
# bits, nothing cleared) and Device Control (write).
    .set ATA_NIEN, 0x02             # no interrupts
    .set ATA_SRST, 0x04             # software reset of both drives

# Status.
    .set ATA_BSY, 0x80              # busy: no other bit is valid
    .set ATA_DRDY, 0x40             # ready for a command
    .set ATA_DF, 0x20               # device fault
    .set ATA_DRQ, 0x08              # a block of data is waiting to move
    .set ATA_ERR, 0x01              # the command failed: see Error
# Error.
    .set ATA_BBK, 0x80              # bad block
    .set ATA_UNC, 0x40              # uncorrectable data
    .set ATA_IDNF, 0x10             # ID not found: no such sector
    .set ATA_ABRT, 0x04             # command aborted
    .set ATA_TK0NF, 0x02            # track 0 not found
    .set ATA_AMNF, 0x01             # address mark not found
# Device: bits 7 and 5 are set (obsolete, ATA-1 required them), bit 6
# selects LBA addressing, bit 4 the slave.
    .set ATA_DEV_LBA, 0xE0
    .set ATA_DEV_SLAVE, 0x10
# Commands.
    .set ATA_READ_SECTORS, 0x20
    .set ATA_WRITE_SECTORS, 0x30
    .set ATA_READ_VERIFY, 0x40
    .set ATA_IDENTIFY, 0xEC

# Status reads before a drive still busy counts as failed. A real BIOS
# waits up to 30 s by the clock for a drive to spin up; ringlab's drives
# finish every command during the access that starts it, so a drive still
# busy after this many reads is broken.
    .set ATA_POLLS, 100000

# IDENTIFY DEVICE data (ATA-6 "IDENTIFY DEVICE information"), read to the
# boot sector's place, free until INT 19h loads it.
    .set IDENTIFY, 0x7C00
    .set ID_CYLINDERS, IDENTIFY + 2 * 1
    .set ID_HEADS, IDENTIFY + 2 * 3
    .set ID_SPT, IDENTIFY + 2 * 6
    .set ID_CAPABILITIES, IDENTIFY + 2 * 49     # bit 9: LBA supported
    .set ID_LBA_SECTORS, IDENTIFY + 2 * 60      # dword: LBA28 capacity

# ---- the steps ---------------------------------------------------------------

# ata_pause: the 400 ns ATA asks for after selecting a drive or writing a
# command, before Status means anything: four reads of Alternate Status,
# at least 100 ns each on an ISA bus.
ata_pause:
    push ax
    push dx
    mov dx, fs:[bx + DRV_CTRL]
    in al, dx
    in al, dx
    in al, dx
    in al, dx
    pop dx
    pop ax
    ret

# ata_select: writes AL to the Device register (which drive; LBA mode and
# LBA bits 27-24), then pauses.
ata_select:
    push dx
    mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_DEVICE
    out dx, al
    call ata_pause
    pop dx
    ret

# ata_wait: pauses, then reads Status until BSY clears. AL = the status;
# CF set if the drive stayed busy (ATA_POLLS reads).
ata_wait:
    push ecx
    push dx
    call ata_pause
    mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_STATUS
    mov ecx, ATA_POLLS
1:  in al, dx
    test al, ATA_BSY                # (TEST clears CF)
    jz 2f
    dec ecx
    jnz 1b
    stc
2:  pop dx
    pop ecx
    ret

# ata_reset: software reset of the channel of FS:BX (ATA-6 "software reset
# protocol"): SRST set, held, cleared; nIEN stays set so the drives never
# interrupt. Then wait until the drives are no longer busy. A channel with
# nothing on it reads FFh and is left alone. CF set on a timeout.
ata_reset:
    push ax
    push dx
    mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_STATUS
    in al, dx
    cmp al, 0xFF
    je 1f                           # (CMP equal: CF clear)
    mov dx, fs:[bx + DRV_CTRL]
    mov al, ATA_NIEN | ATA_SRST
    out dx, al
    call ata_pause                  # SRST held at least 5 us: twelve
    call ata_pause                  # ISA reads of about 1 us
    call ata_pause
    call ata_pause
    mov al, ATA_NIEN
    out dx, al
    call ata_wait
1:  pop dx
    pop ax
    ret

# ata_identify: IDENTIFY DEVICE to the drive of FS:BX; its 512 bytes of
# answer to 0000:IDENTIFY. CF set if no ATA disk answers at that position.
ata_identify:
    push ax
    push cx
    push dx
    push di
    push es
    mov al, fs:[bx + DRV_DEVICE]
    call ata_select
    mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_STATUS
    in al, dx
    cmp al, 0xFF                    # nothing on the channel: the bus floats
    je 1f
    test al, al                     # 00h: the drive is absent (its partner
    jz 1f                           # answers for it, ATA "device 0 only")
    call ata_wait
    jc 1f
    mov al, ATA_IDENTIFY
    out dx, al
    call ata_wait
    jc 1f
    test al, ATA_ERR                # an ATAPI device (a CD-ROM) aborts
    jnz 1f                          # IDENTIFY DEVICE
    test al, ATA_DRQ
    jz 1f
    xor ax, ax
    mov es, ax
    mov di, IDENTIFY
    mov cx, 256
    mov dx, fs:[bx + DRV_BASE]      # the Data register
    rep insw
    clc
    jmp 2f
1:  stc
2:  pop es
    pop di
    pop dx
    pop cx
    pop ax
    ret

# ata_transfer: one ATA PIO command moving sectors.
#   FS:BX  the drive            EAX  the first sector (an LBA below 2^28)
#   CX     sectors, 1-256        SI   ATA_READ_SECTORS, ATA_WRITE_SECTORS
#   ES:DI  the buffer                 or ATA_READ_VERIFY (no data)
# Returns AL = the INT 13h status (CF set if not 0), CX = sectors moved.
# Changes EAX.
    .set XF_COMMAND, 0              # locals, at [bp]
    .set XF_COUNT, 2
    .set XF_DONE, 4                 # sectors moved
    .set XF_SENT, 6                 # sectors written to the Data register
ata_transfer:
    push bp
    push ds
    push es
    push dx
    push si
    push di
    sub sp, 8
    mov bp, sp
    mov [bp + XF_COMMAND], si
    mov [bp + XF_COUNT], cx
    xor dx, dx
    mov [bp + XF_DONE], dx
    mov [bp + XF_SENT], dx
    # The buffer as segment:offset with an offset below 16, so no sector's
    # 512 bytes wrap around the end of a segment.
    mov dx, di
    shr dx, 4
    mov si, es
    add si, dx
    mov es, si
    and di, 0x0F

    # 1. Select the drive, in LBA mode with LBA bits 27-24; wait until it
    #    is not busy.
    push eax
    shr eax, 24
    and al, 0x0F
    or al, fs:[bx + DRV_DEVICE]
    call ata_select
    call ata_wait
    pop eax
    jc xfer_timeout

    # 2. The task file: Sector Count (256 is written as 0), LBA bits 23-0,
    #    then the command, which starts it.
    mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_COUNT
    push ax
    mov al, cl
    out dx, al
    pop ax
    inc dx                          # LBA Low
    out dx, al
    shr eax, 8
    inc dx                          # LBA Mid
    out dx, al
    shr eax, 8
    inc dx                          # LBA High
    out dx, al
    add dx, ATA_COMMAND - ATA_LBA_HIGH
    mov al, [bp + XF_COMMAND]
    out dx, al

    # 3. Block by block (a block is one sector for these commands): wait
    #    until the drive is not busy; ERR ends the command. A read finds
    #    DRQ with a sector to take; a write finds DRQ asking for the next
    #    sector, and a good status after a sector written means it is on
    #    the disk; READ VERIFY moves nothing and is done when not busy.
xfer_block:
    call ata_wait
    jc xfer_timeout
    test al, ATA_ERR | ATA_DF
    jnz xfer_failed
    mov cx, [bp + XF_SENT]
    cmp byte ptr [bp + XF_COMMAND], ATA_WRITE_SECTORS
    jne 1f
    mov [bp + XF_DONE], cx
1:  mov cx, [bp + XF_COUNT]
    cmp byte ptr [bp + XF_COMMAND], ATA_READ_VERIFY
    jne 2f
    mov [bp + XF_DONE], cx
2:  cmp [bp + XF_DONE], cx
    jae xfer_ok
    test al, ATA_DRQ
    jz xfer_no_data
    mov dx, fs:[bx + DRV_BASE]      # the Data register
    mov cx, 256                     # words in a sector
    cmp byte ptr [bp + XF_COMMAND], ATA_WRITE_SECTORS
    je 3f
    push di
    rep insw                        # ES:DI <- 256 words
    pop di
    inc word ptr [bp + XF_DONE]
    jmp 4f
3:  push ds
    push es
    pop ds
    mov si, di
    rep outsw                       # 256 words <- DS:SI
    pop ds
    inc word ptr [bp + XF_SENT]
4:  mov cx, es                      # the next 512 bytes of memory
    add cx, 512 / 16
    mov es, cx
    jmp xfer_block

xfer_failed:
    mov ah, [bp + XF_COMMAND]
    call ata_error
    jmp xfer_end
xfer_no_data:
    mov al, DISK_STATUS_ERROR
    jmp xfer_end
xfer_timeout:
    mov al, DISK_TIMEOUT
    jmp xfer_end
xfer_ok:
    mov al, DISK_OK
xfer_end:
    mov cx, [bp + XF_DONE]
    add sp, 8
    pop di
    pop si
    pop dx
    pop es
    pop ds
    pop bp
    cmp al, 1                       # CF = (AL = 0) ...
    cmc                             # ... inverted: CF = (AL != 0)
    ret

# ata_error: the INT 13h status for a command that ended with ERR or DF:
# AL = its status, AH = the command; returns AL. The Error register says
# why (ATA-6 "Error register"); ABRT on a write is a drive refusing to
# write (ringlab: a read-only image), "write protected".
ata_error:
    push dx
    push si
    test al, ATA_DF
    jz 1f
    mov al, DISK_WRITE_FAULT
    jmp 4f
1:  mov dx, fs:[bx + DRV_BASE]
    add dx, ATA_ERROR
    in al, dx                       # AL = Error
    cmp ah, ATA_WRITE_SECTORS
    jne 2f
    test al, ATA_ABRT
    jz 2f
    mov al, DISK_WRITE_PROTECTED
    jmp 4f
2:  mov si, offset ata_error_codes
3:  test al, cs:[si]
    jnz 5f
    add si, 2
    cmp si, offset ata_error_codes_end
    jb 3b
    mov al, DISK_STATUS_ERROR       # ERR with no reason given
    jmp 4f
5:  mov al, cs:[si + 1]
4:  pop si
    pop dx
    ret

# (Error register bit, INT 13h status), first match wins.
ata_error_codes:
    .byte ATA_IDNF, DISK_NOT_FOUND
    .byte ATA_UNC, DISK_ECC_ERROR
    .byte ATA_BBK, DISK_BAD_BLOCK
    .byte ATA_AMNF, DISK_ADDRESS_MARK
    .byte ATA_TK0NF, DISK_SEEK_FAILED
    .byte ATA_ABRT, DISK_BAD_PARAMETER
ata_error_codes_end:
