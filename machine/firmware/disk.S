# disk.S: INT 13h on the ATA disks as BIOS drives 80h-83h (to be
# completed).

# disk_init: counts the hard disks for the BDA.
disk_init:
    ret

int13_handler:
    stc
    mov ah, 0x01                    # invalid function
    jmp iret_cf
