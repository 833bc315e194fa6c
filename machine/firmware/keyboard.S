# keyboard.S: the 8042 keyboard controller at POST, IRQ 1 (INT 09h) and
# INT 16h (IBM PC AT Technical Reference, "Keyboard"; RBIL INT 09, INT 16).

# kbc_init: the controller's self test (AAh -> 55h), the keyboard interface
# test (ABh -> 00h), the command byte (IRQ 1 on, system flag, translation
# to scan code set 1), the keyboard reset (FFh -> FAh AAh) and scanning on.
# A controller that fails its self test stops POST with code E5h.
kbc_init:
    call kbc_flush
    mov al, 0xAA
    call kbc_command
    call kbc_read
    cmp al, 0x55
    je 1f
    POST POST_KBC_FAIL
    cli
    hlt
1:  mov al, 0xAB
    call kbc_command
    call kbc_read                   # 00h: the interface is good
    mov al, 0x60                    # write the command byte
    call kbc_command
    mov al, 0x65                    # translate, system flag, IRQ 1
    call kbc_write_data
    mov al, 0xFF                    # the keyboard: reset
    call kbc_write_data
    call kbc_read                   # FAh (acknowledge)
    call kbc_read                   # AAh (self test passed)
    mov al, 0xF4                    # enable scanning
    call kbc_write_data
    call kbc_read                   # FAh
    ret

# kbc_flush: reads and drops whatever the output buffer holds.
kbc_flush:
    push cx
    mov cx, 16
1:  in al, KBC_STATUS
    test al, 0x01
    jz 2f
    in al, KBC_DATA
    loop 1b
2:  pop cx
    ret

# kbc_command: controller command AL, once the input buffer is empty.
kbc_command:
    push ax
1:  in al, KBC_STATUS
    test al, 0x02
    jnz 1b
    pop ax
    out KBC_STATUS, al
    ret

# kbc_write_data: AL to port 60h (a command byte parameter or a keyboard
# command), once the input buffer is empty.
kbc_write_data:
    push ax
1:  in al, KBC_STATUS
    test al, 0x02
    jnz 1b
    pop ax
    out KBC_DATA, al
    ret

# kbc_read: AL = the next output buffer byte (waits a bounded time; AL =
# 0 when none came).
kbc_read:
    push cx
    mov cx, 0xFFFF
1:  in al, KBC_STATUS
    test al, 0x01
    jnz 2f
    loop 1b
    xor al, al
    pop cx
    ret
2:  in al, KBC_DATA
    pop cx
    ret

# IRQ 1: a byte from the keyboard (to be completed: the scan code to
# ASCII translation and the BDA buffer).
irq1_handler:
    push ax
    in al, KBC_DATA
    mov al, 0x20
    out PIC1, al
    pop ax
    iret

# INT 16h: keyboard services (to be completed).
int16_handler:
    stc
    mov ah, 0x86
    jmp iret_cf
