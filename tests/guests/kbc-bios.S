# kbc-bios.S: the 8042 keyboard controller and its PS/2 keyboard set up
# as a PC BIOS does it (IBM PC AT and PS/2 technical references; the
# order SeaBIOS's ps2port.c follows), the A20 gate moved three ways, then
# keys read through IRQ 1.
#
# Every byte written waits for the input buffer to be empty (status bit
# 1), every byte read for the output buffer to be full (bit 0, bounded:
# "timeout" if nothing comes). Each line prints what was sent and what
# came back.
#
# A20: with the gate off, address line 20 is held low, so 0x108000
# reaches 0x008000. The code that runs with the gate off is copied below
# 1 MiB first (the guest itself is at 1 MiB, where it could not fetch its
# next instruction); it writes 0x108000 and reads 0x008000 with the gate
# off, then on.
#
# Keys: with the keyboard interrupt enabled (command byte bit 0) and IRQ 1
# unmasked, the guest writes POST code 01 (port 0x80): the host types its
# keys from there on. The handler reads status and one byte per
# interrupt; the main loop prints the bytes (set 1: the controller
# translates) and what they spell on a US keyboard, until Enter is
# released.
    .include "platform.inc"
    .include "multiboot.inc"

    .set KBC_DATA, 0x60
    .set KBC_STATUS, 0x64
    .set ST_OBF, 0x01
    .set ST_IBF, 0x02
    .set LOW_CODE, 0x7000           # where the A20 routine runs
    .set LOW, 0x008000              # the two addresses that alias with
    .set HIGH, 0x108000             # the gate off
    .set RESULTS, 0x7F00            # what the A20 routine saw
    .set ENTER_BREAK, 0x9C

main:
    cld
    # ---- the controller
    mov al, 0xAD                    # disable the keyboard interface
    call kbc_command
    mov al, 0xA7                    # and the auxiliary one
    call kbc_command
    xor ecx, ecx                    # flush what is in the output buffer
1:  in al, KBC_STATUS
    test al, ST_OBF
    jz 2f
    in al, KBC_DATA
    inc ecx
    jmp 1b
2:  mov esi, offset s_flush
    call puts
    mov eax, ecx
    call putdec
    call newline

    mov esi, offset s_cb_read
    mov bl, 0x20
    mov ecx, 1
    call controller_line
    mov esi, offset s_self_test
    mov bl, 0xAA
    mov ecx, 1
    call controller_line
    mov esi, offset s_kbd_test
    mov bl, 0xAB
    mov ecx, 1
    call controller_line
    mov al, 0x34                    # system flag, both interfaces off,
    call write_command_byte         # no interrupts, no translation
    mov esi, offset s_kbd_enable
    mov bl, 0xAE
    xor ecx, ecx
    call controller_line
    mov esi, offset s_cb_read
    mov bl, 0x20
    mov ecx, 1
    call controller_line

    # ---- the keyboard, untranslated
    mov esi, offset s_reset
    mov bl, 0xFF
    mov ecx, 2
    call keyboard_line
    mov esi, offset s_identify_raw
    mov bl, 0xF2
    mov ecx, 3
    call keyboard_line
    mov esi, offset s_leds
    mov bl, 0xED
    mov ecx, 1
    call keyboard_line
    mov esi, offset s_leds_value
    mov bl, 0x07
    mov ecx, 1
    call keyboard_line
    mov esi, offset s_typematic
    mov bl, 0xF3
    mov ecx, 1
    call keyboard_line
    mov esi, offset s_typematic_value
    mov bl, 0x20
    mov ecx, 1
    call keyboard_line
    mov esi, offset s_echo
    mov bl, 0xEE
    mov ecx, 1
    call keyboard_line

    # ---- translation on
    mov al, 0x64                    # translate, system flag, aux off
    call write_command_byte
    mov esi, offset s_identify_xlat
    mov bl, 0xF2
    mov ecx, 3
    call keyboard_line
    mov esi, offset s_get_set
    mov bl, 0xF0
    mov ecx, 1
    call keyboard_line
    mov esi, offset s_get_set_value
    mov bl, 0x00
    mov ecx, 2
    call keyboard_line
    mov esi, offset s_enable
    mov bl, 0xF4
    mov ecx, 1
    call keyboard_line

    # ---- A20
    mov esi, offset s_output_port
    mov bl, 0xD0
    mov ecx, 1
    call controller_line
    mov esi, offset a20_low
    mov edi, LOW_CODE
    mov ecx, offset A20_LOW_LEN
    rep movsb
    mov esi, offset s_a20_d1
    xor ebx, ebx
    call a20_line
    mov esi, offset s_a20_92
    mov ebx, 1
    call a20_line
    mov esi, offset s_a20_dd
    mov ebx, 2
    call a20_line

    # ---- keys through IRQ 1
    mov ecx, IRQ_BASE + 1
    mov eax, offset kbd_irq
    call set_gate
    mov al, 0x65                    # and the keyboard interrupt
    call write_command_byte
    in al, PIC1 + 1
    and al, 0xFD
    out PIC1 + 1, al
    mov al, 0x01                    # host: type now
    out 0x80, al
1:  cli
    mov eax, [nkeys]
    cmp eax, [nshown]
    je 2f
    mov ebx, [nshown]
    mov al, [keys + ebx]
    inc dword ptr [nshown]
    cmp ebx, 0
    jne 3f
    mov esi, offset s_irq1
    call puts
3:  push eax
    mov al, ' '
    call putc
    pop eax
    call puthex2
    cmp al, ENTER_BREAK
    je 4f
    jmp 1b
2:  sti
    hlt
    jmp 1b
4:  call newline
    mov esi, offset s_irqs
    call puts
    mov eax, [nirqs]
    call putdec
    mov esi, offset s_spurious
    call puts
    mov eax, [nempty]
    call putdec
    call newline
    mov esi, offset s_typed
    call puts
    call decode_keys
    mov al, '"'
    call putc
    call newline
    mov esi, offset s_after_keys
    call puts
    in al, KBC_STATUS
    call puthex2
    call newline
    ret

kbd_irq:
    push eax
    push ebx
    in al, KBC_STATUS
    test al, ST_OBF
    jnz 1f
    inc dword ptr [nempty]          # nothing to read: count it
    jmp 2f
1:  in al, KBC_DATA
    mov ebx, [nkeys]
    cmp ebx, 255
    jae 2f
    mov [keys + ebx], al
    inc dword ptr [nkeys]
2:  inc dword ptr [nirqs]
    mov al, 0x20
    out PIC1, al
    pop ebx
    pop eax
    IRET_SAME_RING

# kbc_command: AL to the command port, once the input buffer is empty.
kbc_command:
    push eax
1:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 1b
    pop eax
    out KBC_STATUS, al
    ret

# kbc_write: AL to the data port (to the keyboard, or a command's
# parameter), once the input buffer is empty.
kbc_write:
    push eax
1:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 1b
    pop eax
    out KBC_DATA, al
    ret

# kbc_read: AL = the next byte of the output buffer; CF set if none came
# in 1000 polls.
kbc_read:
    push ecx
    mov ecx, 1000
1:  in al, KBC_STATUS
    test al, ST_OBF
    jnz 2f
    loop 1b
    pop ecx
    stc
    ret
2:  in al, KBC_DATA
    pop ecx
    clc
    ret

# read_and_print: ECX bytes from the output buffer, each " xx", or
# " timeout"; then a check that nothing more came.
read_and_print:
    test ecx, ecx
    jnz 1f
    mov esi, offset s_no_reply
    call puts
    jmp 2f
1:  call kbc_read
    jc 3f
    push eax
    mov al, ' '
    call putc
    pop eax
    call puthex2
    loop 1b
2:  in al, KBC_STATUS
    test al, ST_OBF
    jz 4f
    mov esi, offset s_more
    call puts
    ret
3:  mov esi, offset s_timeout
    call puts
4:  ret

# controller_line: ESI the name, BL a controller command, ECX the bytes
# it answers: "name (cc): xx ..."
controller_line:
    call puts
    mov esi, offset s_open
    call puts
    mov al, bl
    call puthex2
    mov esi, offset s_close
    call puts
    mov al, bl
    call kbc_command
    call read_and_print
    call newline
    ret

# keyboard_line: as controller_line for a byte BL to the keyboard.
keyboard_line:
    call puts
    mov esi, offset s_open
    call puts
    mov al, bl
    call puthex2
    mov esi, offset s_close
    call puts
    mov al, bl
    call kbc_write
    call read_and_print
    call newline
    ret

# write_command_byte: command 0x60 with AL, then reads it back (0x20).
write_command_byte:
    push eax
    mov esi, offset s_cb_write
    call puts
    call puthex2
    mov al, 0x60
    call kbc_command
    pop eax
    call kbc_write
    mov esi, offset s_reads
    call puts
    mov al, 0x20
    call kbc_command
    mov ecx, 1
    call read_and_print
    call newline
    ret

# a20_line: ESI the name, EBX the method for the routine below; prints
# what it saw.
a20_line:
    call puts
    mov eax, LOW_CODE
    call eax
    mov esi, offset s_off
    call puts
    mov al, [RESULTS]
    call puthex2
    mov esi, offset s_low_reads
    call puts
    mov eax, [RESULTS + 4]
    call puthex
    cmp eax, 0x22222222
    call wrap_verdict
    mov esi, offset s_on
    call puts
    mov al, [RESULTS + 1]
    call puthex2
    mov esi, offset s_low_reads
    call puts
    mov eax, [RESULTS + 8]
    call puthex
    cmp eax, 0x33333333
    call wrap_verdict
    mov esi, offset s_high_reads
    call puts
    mov eax, [RESULTS + 12]
    call puthex
    call newline
    ret

# wrap_verdict: " (wraps)" if ZF (0x008000 read what was just written to
# 0x108000), else " (no wrap)".
wrap_verdict:
    mov esi, offset s_wraps
    je 1f
    mov esi, offset s_no_wrap
1:  call puts
    ret

# a20_low: copied to LOW_CODE and run there (position independent, no
# calls out). EBX: 0 the 8042's output port (D1), 1 port 0x92, 2 the
# 8042's A20 commands (DD off, DF on). Turns the gate off, writes HIGH
# and reads LOW, turns it on and does it again. RESULTS: +0 the output
# port (methods 0, 2) or port 0x92 (method 1) with the gate off, +1 the
# same with it on, +4 LOW read with the gate off, +8 LOW with it on, +12
# HIGH with it on.
a20_low:
    mov dword ptr [LOW], 0x11111111
    # Off.
    cmp ebx, 1
    je 2f
1:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 1b
    mov al, 0xDD
    cmp ebx, 2
    je 3f
    mov al, 0xD1
    out KBC_STATUS, al
4:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 4b
    mov al, 0xCD                    # output port: A20 (bit 1) low, reset high
    out KBC_DATA, al
    jmp 5f
3:  out KBC_STATUS, al
    jmp 5f
2:  in al, 0x92
    and al, 0xFC                    # bit 1 A20 off (and bit 0 no reset)
    out 0x92, al
5:  mov dword ptr [HIGH], 0x22222222
    mov eax, [LOW]
    mov [RESULTS + 4], eax
    mov edi, RESULTS
    call 8f
    # On.
    cmp ebx, 1
    je 2f
1:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 1b
    mov al, 0xDF
    cmp ebx, 2
    je 3f
    mov al, 0xD1
    out KBC_STATUS, al
4:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 4b
    mov al, 0xCF
    out KBC_DATA, al
    jmp 5f
3:  out KBC_STATUS, al
    jmp 5f
2:  in al, 0x92
    and al, 0xFE
    or al, 0x02
    out 0x92, al
5:  mov dword ptr [HIGH], 0x33333333
    mov eax, [LOW]
    mov [RESULTS + 8], eax
    mov eax, [HIGH]
    mov [RESULTS + 12], eax
    mov edi, RESULTS + 1
    call 8f
    ret
    # The gate as the method's own port shows it, to [EDI].
8:  cmp ebx, 1
    je 9f
1:  in al, KBC_STATUS
    test al, ST_IBF
    jnz 1b
    mov al, 0xD0
    out KBC_STATUS, al
1:  in al, KBC_STATUS
    test al, ST_OBF
    jz 1b
    in al, KBC_DATA
    mov [edi], al
    ret
9:  in al, 0x92
    mov [edi], al
    ret
    .set A20_LOW_LEN, . - a20_low

# decode_keys: prints, between quotes, what the set-1 codes in `keys`
# spell on a US keyboard (Shift held for capitals; Enter as \n).
decode_keys:
    push eax
    push ebx
    push ecx
    mov al, '"'
    call putc
    xor ebx, ebx
    xor ecx, ecx                    # CL: Shift is down
1:  cmp ebx, [nkeys]
    jae 9f
    movzx eax, byte ptr [keys + ebx]
    inc ebx
    cmp al, 0x2A                    # left Shift
    je 2f
    cmp al, 0x36                    # right Shift
    je 2f
    cmp al, 0xAA
    je 3f
    cmp al, 0xB6
    je 3f
    cmp al, 0x1C                    # Enter
    je 5f
    test al, 0x80                   # other releases
    jnz 1b
    cmp al, offset KEYMAP_LEN
    jae 1b
    test cl, cl
    jz 4f
    mov al, [keymap_shift + eax]
    jmp 6f
4:  mov al, [keymap + eax]
6:  test al, al
    jz 1b
    call putc
    jmp 1b
2:  mov cl, 1
    jmp 1b
3:  xor cl, cl
    jmp 1b
5:  mov al, '\\'
    call putc
    mov al, 'n'
    call putc
    jmp 1b
9:  pop ecx
    pop ebx
    pop eax
    ret

# Set 1 make codes 0x00-0x39 on a US keyboard, unshifted and shifted (0:
# not a character).
keymap:
    .byte 0, 0
    .ascii "1234567890-="
    .byte 0, 0
    .ascii "qwertyuiop[]"
    .byte 0, 0
    .ascii "asdfghjkl;'`"
    .byte 0
    .ascii "\\zxcvbnm,./"
    .byte 0, '*', 0, ' '
    .set KEYMAP_LEN, . - keymap
keymap_shift:
    .byte 0, 0
    .ascii "!@#$%^&*()_+"
    .byte 0, 0
    .ascii "QWERTYUIOP{}"
    .byte 0, 0
    .ascii "ASDFGHJKL:\"~"
    .byte 0
    .ascii "|ZXCVBNM<>?"
    .byte 0, '*', 0, ' '

s_flush:            .asciz "flushed before set-up: "
s_cb_read:          .asciz "read command byte"
s_cb_write:         .asciz "write command byte (60) "
s_reads:            .asciz ", read back (20):"
s_self_test:        .asciz "controller self test"
s_kbd_test:         .asciz "keyboard interface test"
s_kbd_enable:       .asciz "enable keyboard interface"
s_reset:            .asciz "keyboard reset"
s_identify_raw:     .asciz "keyboard identify, untranslated"
s_identify_xlat:    .asciz "keyboard identify, translated"
s_leds:             .asciz "set LEDs"
s_leds_value:       .asciz "  all three on"
s_typematic:        .asciz "set typematic rate"
s_typematic_value:  .asciz "  500 ms, 30 per second"
s_echo:             .asciz "echo"
s_get_set:          .asciz "scan code set"
s_get_set_value:    .asciz "  which one?"
s_enable:           .asciz "enable scanning"
s_output_port:      .asciz "read output port"
s_open:             .asciz " ("
s_close:            .asciz "):"
s_more:             .asciz " and more bytes"
s_no_reply:         .asciz " no reply"
s_timeout:          .asciz " timeout"
s_a20_d1:           .asciz "A20 by output port (D1 cd/cf):"
s_a20_92:           .asciz "A20 by port 92:"
s_a20_dd:           .asciz "A20 by commands DD/DF:"
s_off:              .asciz "\n  off: port "
s_on:               .asciz "\n  on:  port "
s_low_reads:        .asciz ", 0x008000 after writing 0x108000 reads "
s_high_reads:       .asciz ", 0x108000 reads "
s_wraps:            .asciz " (wraps)"
s_no_wrap:          .asciz " (no wrap)"
s_irq1:             .asciz "keys (IRQ 1):"
s_irqs:             .asciz "interrupts: "
s_spurious:         .asciz ", with the output buffer empty: "
s_typed:            .asciz "typed: "
s_after_keys:       .asciz "status after the keys: "

    .p2align 2
nkeys:  .long 0
nshown: .long 0
nirqs:  .long 0
nempty: .long 0
keys:   .space 256
