# keyboard.S: the keyboard. The 8042 keyboard controller at POST, IRQ 1
# (INT 09h), which turns the keyboard's scan codes into keystrokes in the
# BIOS's keyboard buffer, and INT 16h, which hands them to programs.
#
# Where the definitions come from: the IBM PC AT Technical Reference
# ("Keyboard", and the BIOS's keyboard interrupt and INT 16h) with the
# additions IBM made for its 101-key Enhanced keyboard (the functions
# 10h-12h and the extended keystroke codes), as Ralf Brown's Interrupt List
# documents them (RBIL INT 09, INT 16, and its tables of keystroke codes),
# and the BIOS data area's keyboard fields (RBIL MEMORY.LST).
#
# The path of a key:
#   keyboard --scan code set 2--> 8042 --translated to set 1--> port 60h
#   IRQ 1 --> irq1_handler: INT 15h AH=4Fh (a program may filter or
#   change the code), shift state, translation to a keystroke word
#   (scan code in the high byte, ASCII in the low byte, as IBM's tables
#   give it) --> the buffer at 0040:001E --> INT 16h --> the program.
#
# Set 1 in brief: one byte per key press (the "make" code), the same byte
# with bit 7 set on release (the "break" code). Keys the 101-key keyboard
# added, and the second Ctrl and Alt, send E0h first; Pause sends E1h 1Dh
# 45h E1h 9Dh C5h at once.

# The BDA's keyboard fields not named in bios.S, and their bits.
    .set BDA_ALT_NUMPAD, 0x19       # byte: a number typed with Alt + keypad

    # BDA_KBD_FLAGS (0417h): the shift state.
    .set KF_RSHIFT, 0x01
    .set KF_LSHIFT, 0x02
    .set KF_CTRL, 0x04              # either Ctrl held
    .set KF_ALT, 0x08               # either Alt held
    .set KF_SCROLL, 0x10            # Scroll Lock on
    .set KF_NUM, 0x20               # Num Lock on
    .set KF_CAPS, 0x40              # Caps Lock on
    .set KF_INSERT, 0x80            # insert mode on
    # BDA_KBD_FLAGS2 (0418h): keys held down.
    .set KF2_LCTRL, 0x01
    .set KF2_LALT, 0x02
    .set KF2_SYSRQ, 0x04
    .set KF2_SCROLL, 0x10
    .set KF2_NUM, 0x20
    .set KF2_CAPS, 0x40
    .set KF2_INSERT, 0x80
    # BDA_KBD_FLAGS3 (0496h): the enhanced keyboard's state.
    .set KF3_E1, 0x01               # the last code was E1h
    .set KF3_E0, 0x02               # the last code was E0h
    .set KF3_RCTRL, 0x04            # right Ctrl held
    .set KF3_RALT, 0x08             # right Alt held
    .set KF3_ENHANCED, 0x10         # a 101/102-key keyboard is attached

    # Set-1 codes the handler acts on itself.
    .set SC_CTRL, 0x1D
    .set SC_LSHIFT, 0x2A
    .set SC_RSHIFT, 0x36
    .set SC_ALT, 0x38
    .set SC_CAPS, 0x3A
    .set SC_NUM, 0x45
    .set SC_SCROLL, 0x46            # E0 46: Break (Ctrl + Pause)
    .set SC_PRINT, 0x37             # E0 37: Print Screen; alone: keypad *
    .set SC_INSERT, 0x52
    .set SC_DELETE, 0x53
    .set SC_LAST, 0x58              # F12, the last key in kbd_keys

# ---- POST: the controller and the keyboard --------------------------------

# kbc_init: the controller's self test (AAh -> 55h), the keyboard interface
# test (ABh -> 00h), the command byte (IRQ 1 on, system flag, translation
# to scan code set 1), the keyboard reset (FFh -> FAh AAh). A controller
# that fails its self test stops POST with code E5h.
#
# Keys pressed while POST runs are kept, not flushed. The keyboard
# interface is disabled (ADh) first, so keystrokes wait in the keyboard;
# a byte already in the output buffer (the 8259A's initialization unmasks
# IRQ 1 for a moment, and ringlab's keyboard starts sending then) is not
# read and dropped but pushed back by the self test's answer (i8042.rs:
# "an unread keyboard byte it displaces is given back"). The keyboard's
# reset keeps the keystrokes it had not begun to send, and sends them
# once its answers FAh AAh are read. A reset keyboard scans already (IBM
# PS/2 keyboard reference), so no F4h "enable" follows: a key sent
# meanwhile would sit in front of its acknowledgement.
kbc_init:
    mov al, 0xAD                    # nothing was sent yet: the input
    out KBC_STATUS, al              # buffer is empty, no need to wait
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
    mov al, 0x60                    # write the command byte: still with
    call kbc_command                # the keyboard interface disabled
    mov al, 0x75                    # (10h), translate, system flag, IRQ 1
    call kbc_write_data
    mov al, 0xFF                    # the keyboard: reset (a byte sent to
    call kbc_write_data             # it enables its interface again)
    call kbc_read                   # FAh (acknowledge)
    call kbc_read                   # AAh (self test passed)
    mov al, 0x60
    call kbc_command
    mov al, 0x65                    # translate, system flag, IRQ 1
    call kbc_write_data
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

# ---- IRQ 1: a byte from the keyboard --------------------------------------

# irq1_handler: reads the byte, offers it to INT 15h AH=4Fh (the keyboard
# intercept: a program that hooks it may change AL, or return CF clear to
# drop the byte; the BIOS's own INT 15h returns CF set, AL unchanged),
# processes it, acknowledges the interrupt. Runs with interrupts off. An
# interrupt with the output buffer empty (one the 8259A latched while the
# byte was read some other way) reads nothing: port 60h would repeat the
# last byte, a key pressed twice.
irq1_handler:
    push ds
    pusha
    cld
    mov ax, BDA_SEG
    mov ds, ax
    in al, KBC_STATUS
    test al, 0x01
    jz 1f                           # nothing there
    in al, KBC_DATA
    mov ah, 0x4F
    stc
    int 0x15
    jnc 1f                          # taken by the intercept
    call kbd_byte
1:  cli
    mov al, 0x20                    # EOI to the master 8259A
    out PIC1, al
    popa
    pop ds
    iret

# kbd_byte: one set-1 byte AL (DS = BDA).
kbd_byte:
    # Not keys: the keyboard's acknowledge, resend, echo, and its
    # "buffer overrun" codes.
    cmp al, 0xFA
    je 9f
    cmp al, 0xFE
    je 9f
    cmp al, 0xEE
    je 9f
    cmp al, 0x00
    je 9f
    cmp al, 0xFF
    je 9f
    # Prefixes: remembered for the next byte.
    cmp al, 0xE0
    jne 1f
    or byte ptr [BDA_KBD_FLAGS3], KF3_E0
    ret
1:  cmp al, 0xE1
    jne 2f
    or byte ptr [BDA_KBD_FLAGS3], KF3_E1
    ret
2:  mov ah, [BDA_KBD_FLAGS3]        # AH: the prefix this byte had
    and byte ptr [BDA_KBD_FLAGS3], 0xFF & ~(KF3_E0 | KF3_E1)
    mov bl, al
    and bl, 0x7F                    # BL = the key, AL bit 7 = released
    test ah, KF3_E1
    jz 3f
    # Pause (E1 1D 45 E1 9D C5): ignored. The 1Dh/9Dh after an E1h keep
    # the prefix so the 45h/C5h that follow are not taken for Num Lock.
    # (IBM's BIOS holds the machine in the keyboard interrupt until the
    # next key; this BIOS does not.)
    cmp bl, SC_CTRL
    jne 9f
    or byte ptr [BDA_KBD_FLAGS3], KF3_E1
    ret
3:  test ah, KF3_E0
    jz 4f
    # The "fake shifts" (E0 2A, E0 36 and their releases) that keyboards
    # wrap around some gray keys: not keys.
    cmp bl, SC_LSHIFT
    je 9f
    cmp bl, SC_RSHIFT
    je 9f
4:  # The shift keys and the locks.
    cmp bl, SC_LSHIFT
    je kbd_lshift
    cmp bl, SC_RSHIFT
    je kbd_rshift
    cmp bl, SC_CTRL
    je kbd_ctrl
    cmp bl, SC_ALT
    je kbd_alt
    cmp bl, SC_CAPS
    je kbd_caps
    cmp bl, SC_NUM
    je kbd_num
    cmp bl, SC_SCROLL
    jne 5f
    test ah, KF3_E0
    jz kbd_scroll
    test al, 0x80
    jz kbd_ctrl_break
    ret
5:  test al, 0x80
    jz kbd_make
    # A release of any other key: only Insert's "held" bit changes.
    cmp bl, SC_INSERT
    jne 9f
    and byte ptr [BDA_KBD_FLAGS2], 0xFF & ~KF2_INSERT
9:  ret

# The shift keys: their bits follow the key (AL bit 7 set: released).
kbd_lshift:
    mov cl, KF_LSHIFT
    jmp 1f
kbd_rshift:
    mov cl, KF_RSHIFT
1:  test al, 0x80
    jnz 2f
    or [BDA_KBD_FLAGS], cl
    ret
2:  not cl
    and [BDA_KBD_FLAGS], cl
    ret

# Ctrl and Alt: the left key's bit is in 0418h, the right key's (E0) in
# 0496h, and 0417h has "either one held". Releasing Alt ends a number
# typed on the keypad (see kbd_make): that number is the keystroke.
kbd_ctrl:
    mov cx, (KF2_LCTRL << 8) | KF3_RCTRL
    mov dl, KF_CTRL
    jmp kbd_ctrl_alt
kbd_alt:
    mov cx, (KF2_LALT << 8) | KF3_RALT
    mov dl, KF_ALT
kbd_ctrl_alt:                       # CH, CL: the left, right bits; DL: 0417h's
    test ah, KF3_E0
    jz 1f
    mov bx, BDA_KBD_FLAGS3          # right: CL in 0496h
    jmp 2f
1:  mov bx, BDA_KBD_FLAGS2          # left: CH in 0418h
    mov cl, ch
2:  test al, 0x80
    jnz 3f
    or [bx], cl
    or [BDA_KBD_FLAGS], dl
    ret
3:  not cl
    and [bx], cl
    # Still held on the other side?
    mov cl, [BDA_KBD_FLAGS2]
    and cl, ch
    mov ch, [BDA_KBD_FLAGS3]
    and ch, KF3_RCTRL | KF3_RALT
    cmp dl, KF_CTRL
    jne 4f
    and ch, KF3_RCTRL
    jmp 5f
4:  and ch, KF3_RALT
5:  or cl, ch
    jnz 6f
    not dl
    and [BDA_KBD_FLAGS], dl
    not dl
6:  cmp dl, KF_ALT
    jne 7f
    movzx ax, byte ptr [BDA_ALT_NUMPAD]
    mov byte ptr [BDA_ALT_NUMPAD], 0
    test al, al
    jz 7f
    call kbd_store                  # scan code 00h, the character typed
7:  ret

# The locks: a press toggles the state (0417h) unless the key is already
# held (the keyboard repeats a held key's make code); the "held" bit
# (0418h) follows the key. The LEDs are not updated: a keyboard command
# from inside the interrupt would have to wait for its acknowledgement.
kbd_caps:
    mov cx, (KF2_CAPS << 8) | KF_CAPS
    jmp kbd_lock
kbd_num:
    mov cx, (KF2_NUM << 8) | KF_NUM
    jmp kbd_lock
kbd_scroll:
    mov cx, (KF2_SCROLL << 8) | KF_SCROLL
kbd_lock:                           # CH: the held bit, CL: the state bit
    test al, 0x80
    jnz 2f
    test [BDA_KBD_FLAGS2], ch
    jnz 1f
    or [BDA_KBD_FLAGS2], ch
    xor [BDA_KBD_FLAGS], cl
1:  ret
2:  not ch
    and [BDA_KBD_FLAGS2], ch
    ret

# Ctrl + Break (the 101-key keyboard sends E0 46 for Ctrl + Pause): the
# buffer is emptied, the BDA's break flag (0471h bit 7) set, INT 1Bh
# called (programs hook it; the BIOS's own returns), and an empty keystroke
# (0000h) stored, as IBM's BIOS does.
kbd_ctrl_break:
    mov ax, [BDA_KBD_BUF_START]
    mov [BDA_KBD_HEAD], ax
    mov [BDA_KBD_TAIL], ax
    mov byte ptr [BDA_BREAK], 0x80
    int 0x1B
    xor ax, ax
    jmp kbd_store

# kbd_make: a key other than the shift keys pressed. AH has the E0 prefix
# bit, BL the code. The keystroke is looked up in kbd_keys (or kbd_gray
# for the E0 keys) in the column of the shift state, Alt first, then
# Ctrl, then Shift:
#   - Shift picks the shifted column; for the letters Caps Lock reverses
#     it, for the keypad's digits and "." Num Lock does;
#   - a 0000h entry is a combination that makes no keystroke;
#   - Alt + the keypad's digits types a character by its decimal code,
#     stored when Alt is released (kbd_ctrl_alt);
#   - Ctrl + Alt + Del restarts the machine.
kbd_make:
    mov cl, [BDA_KBD_FLAGS]
    mov ch, cl
    and ch, KF_CTRL | KF_ALT
    cmp ch, KF_CTRL | KF_ALT
    jne 1f
    cmp bl, SC_DELETE
    je kbd_reboot
1:  test ah, KF3_E0
    jnz kbd_make_gray
    cmp bl, SC_LAST
    ja 9f                           # not a key of the 101-key keyboard
    movzx si, bl
    shl si, 3                       # SI = the key's row: four words
    call kbd_is_keypad              # ZF set: keypad digit or "."
    jnz 2f
    test cl, KF_ALT
    jnz kbd_alt_numpad
2:  test cl, KF_ALT
    jz 3f
    add si, 6                       # the Alt column
    jmp 6f
3:  test cl, KF_CTRL
    jz 4f
    add si, 4                       # the Ctrl column
    jmp 6f
4:  mov ch, cl                      # CH bit 0: Shift wanted
    and ch, KF_LSHIFT | KF_RSHIFT
    jz 41f
    mov ch, 1
41: call kbd_is_keypad
    jnz 42f
    test cl, KF_NUM
    jz 5f
    xor ch, 1                       # Num Lock reverses it on the keypad
    jmp 5f
42: mov dl, cs:[kbd_keys + si]      # the normal column's ASCII
    cmp dl, 'a'
    jb 5f
    cmp dl, 'z'
    ja 5f
    test cl, KF_CAPS
    jz 5f
    xor ch, 1                       # Caps Lock reverses it on the letters
5:  test ch, ch
    jz 6f
    add si, 2                       # the Shift column
6:  mov ax, cs:[kbd_keys + si]
    test ax, ax
    jz 9f
    cmp ax, 0x5200                  # keypad Ins (not its "0"): insert
    je kbd_insert
    jmp kbd_store
9:  ret

# The keys with an E0 prefix (kbd_gray): Shift and the locks change
# nothing, Ctrl and Alt have columns; Print Screen is special.
kbd_make_gray:
    cmp bl, SC_PRINT
    je kbd_print_screen
    mov si, offset kbd_gray
1:  mov dl, cs:[si]
    test dl, dl
    jz 9f                           # not in the table: no keystroke
    cmp dl, bl
    je 2f
    add si, 7
    jmp 1b
2:  inc si
    test cl, KF_ALT
    jz 3f
    add si, 4
    jmp 5f
3:  test cl, KF_CTRL
    jz 5f
    add si, 2
5:  mov ax, cs:[si]
    cmp ax, 0x52E0                  # gray Insert: insert mode
    je kbd_insert
    jmp kbd_store
9:  ret

# Insert toggles the insert state (0417h bit 7) on a press that is not a
# repeat, and is a keystroke too.
kbd_insert:
    test byte ptr [BDA_KBD_FLAGS2], KF2_INSERT
    jnz kbd_store
    or byte ptr [BDA_KBD_FLAGS2], KF2_INSERT
    xor byte ptr [BDA_KBD_FLAGS], KF_INSERT
    jmp kbd_store

# Print Screen: with Ctrl, the keystroke 7200h; otherwise INT 05h, the
# print screen service (nothing prints on this PC: its handler returns).
# With Alt the keyboard sends SysRq (54h) instead, which has no keystroke.
kbd_print_screen:
    test cl, KF_CTRL
    jz 1f
    mov ax, 0x7200
    jmp kbd_store
1:  int 0x05
    ret

# Alt + a keypad digit: 0419h = 0419h * 10 + the digit (modulo 256).
kbd_alt_numpad:
    cmp bl, SC_DELETE
    je 1f                           # Alt + keypad ".": nothing
    mov dl, cs:[kbd_keys + si + 2]  # the shifted column's ASCII digit
    sub dl, '0'
    mov al, [BDA_ALT_NUMPAD]
    mov dh, 10
    mul dh
    add al, dl
    mov [BDA_ALT_NUMPAD], al
1:  ret

# kbd_is_keypad: ZF set when BL is one of the keypad's digit keys or its
# "." (47h-53h but not 4Ah "-" and 4Eh "+"), keys whose meaning Num Lock
# switches.
kbd_is_keypad:
    cmp bl, 0x47
    jb 1f
    cmp bl, SC_DELETE
    ja 1f
    cmp bl, 0x4A
    je 1f
    cmp bl, 0x4E
    je 1f
    cmp bl, bl                      # ZF set
    ret
1:  cmp bl, 0xFF                    # ZF clear (BL is never FFh here)
    ret

# kbd_reboot: Ctrl + Alt + Del: a warm restart. BDA 0472h = 1234h tells
# POST that memory need not be tested (IBM AT Technical Reference, "Reset
# flag"); 8042 command FEh pulses the CPU's reset line.
kbd_reboot:
    mov word ptr [BDA_RESET_FLAG], 0x1234
    mov al, 0xFE
    out KBC_STATUS, al
1:  hlt
    jmp 1b

# kbd_store: keystroke AX into the buffer (DS = BDA). The buffer is a ring
# of words from 0480h to 0482h (offsets in segment 40h): the head (041Ah)
# is the next to be read, the tail (041Ch) the next free word. One word
# always stays free so that head = tail means empty: 15 keystrokes fit in
# the usual 16 words. When full, the key is lost (CF set; IBM's BIOS
# beeps).
kbd_store:
    push bx
    push si
    mov bx, [BDA_KBD_TAIL]
    lea si, [bx + 2]
    cmp si, [BDA_KBD_BUF_LIMIT]
    jb 1f
    mov si, [BDA_KBD_BUF_START]
1:  cmp si, [BDA_KBD_HEAD]
    stc
    je 2f                           # full
    mov [bx], ax
    mov [BDA_KBD_TAIL], si
    clc
2:  pop si
    pop bx
    ret

# ---- the keystroke tables (RBIL INT 16, "keystroke codes") ----------------
#
# kbd_keys: one row per set-1 code 00h-58h: the keystroke without a shift
# key, with Shift, with Ctrl, with Alt; the high byte is the scan code the
# program sees, the low byte the ASCII character (00h: none, a function
# key). 0000h: that combination makes no keystroke.
#
# Keystrokes only the Enhanced keyboard has (RBIL marks them; F11, F12,
# Alt + Esc, Ctrl + Tab, ...) reach a program only through INT 16h
# 10h-12h. IBM's BIOS marks them in the buffer in one of two ways, kept
# here: a scan code above 84h, or (for scan codes every keyboard has) an
# ASCII byte of F0h, which function 10h returns as 00h. Functions 00h and
# 01h drop both kinds (see kbd_convert).
.macro KEY normal, shift, ctrl, alt
    .word \normal, \shift, \ctrl, \alt
.endm
# A letter: scan code SC, lower case ASCII A: with Shift upper case, with
# Ctrl the control character (Ctrl + A = 01h), with Alt no character.
.macro LETTER sc, a
    .word (\sc << 8) | \a, (\sc << 8) | (\a - 0x20), (\sc << 8) | (\a - 0x60), \sc << 8
.endm

kbd_keys:
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 00h
    KEY 0x011B, 0x011B, 0x011B, 0x01F0  # 01h Esc
    KEY 0x0231, 0x0221, 0x0000, 0x7800  # 02h 1 !
    KEY 0x0332, 0x0340, 0x0300, 0x7900  # 03h 2 @ (Ctrl: NUL)
    KEY 0x0433, 0x0423, 0x0000, 0x7A00  # 04h 3 #
    KEY 0x0534, 0x0524, 0x0000, 0x7B00  # 05h 4 $
    KEY 0x0635, 0x0625, 0x0000, 0x7C00  # 06h 5 %
    KEY 0x0736, 0x075E, 0x071E, 0x7D00  # 07h 6 ^ (Ctrl: RS)
    KEY 0x0837, 0x0826, 0x0000, 0x7E00  # 08h 7 &
    KEY 0x0938, 0x092A, 0x0000, 0x7F00  # 09h 8 *
    KEY 0x0A39, 0x0A28, 0x0000, 0x8000  # 0Ah 9 (
    KEY 0x0B30, 0x0B29, 0x0000, 0x8100  # 0Bh 0 )
    KEY 0x0C2D, 0x0C5F, 0x0C1F, 0x8200  # 0Ch - _ (Ctrl: US)
    KEY 0x0D3D, 0x0D2B, 0x0000, 0x8300  # 0Dh = +
    KEY 0x0E08, 0x0E08, 0x0E7F, 0x0EF0  # 0Eh Backspace (Ctrl: DEL)
    KEY 0x0F09, 0x0F00, 0x9400, 0xA500  # 0Fh Tab (Shift: back tab)
    LETTER 0x10, 0x71                   # 10h Q
    LETTER 0x11, 0x77                   # 11h W
    LETTER 0x12, 0x65                   # 12h E
    LETTER 0x13, 0x72                   # 13h R
    LETTER 0x14, 0x74                   # 14h T
    LETTER 0x15, 0x79                   # 15h Y
    LETTER 0x16, 0x75                   # 16h U
    LETTER 0x17, 0x69                   # 17h I
    LETTER 0x18, 0x6F                   # 18h O
    LETTER 0x19, 0x70                   # 19h P
    KEY 0x1A5B, 0x1A7B, 0x1A1B, 0x1AF0  # 1Ah [ { (Ctrl: ESC)
    KEY 0x1B5D, 0x1B7D, 0x1B1D, 0x1BF0  # 1Bh ] } (Ctrl: GS)
    KEY 0x1C0D, 0x1C0D, 0x1C0A, 0x1CF0  # 1Ch Enter (Ctrl: LF)
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 1Dh Ctrl
    LETTER 0x1E, 0x61                   # 1Eh A
    LETTER 0x1F, 0x73                   # 1Fh S
    LETTER 0x20, 0x64                   # 20h D
    LETTER 0x21, 0x66                   # 21h F
    LETTER 0x22, 0x67                   # 22h G
    LETTER 0x23, 0x68                   # 23h H
    LETTER 0x24, 0x6A                   # 24h J
    LETTER 0x25, 0x6B                   # 25h K
    LETTER 0x26, 0x6C                   # 26h L
    KEY 0x273B, 0x273A, 0x0000, 0x27F0  # 27h ; :
    KEY 0x2827, 0x2822, 0x0000, 0x28F0  # 28h ' "
    KEY 0x2960, 0x297E, 0x0000, 0x29F0  # 29h ` ~
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 2Ah left Shift
    KEY 0x2B5C, 0x2B7C, 0x2B1C, 0x2BF0  # 2Bh \ | (Ctrl: FS)
    LETTER 0x2C, 0x7A                   # 2Ch Z
    LETTER 0x2D, 0x78                   # 2Dh X
    LETTER 0x2E, 0x63                   # 2Eh C
    LETTER 0x2F, 0x76                   # 2Fh V
    LETTER 0x30, 0x62                   # 30h B
    LETTER 0x31, 0x6E                   # 31h N
    LETTER 0x32, 0x6D                   # 32h M
    KEY 0x332C, 0x333C, 0x0000, 0x33F0  # 33h , <
    KEY 0x342E, 0x343E, 0x0000, 0x34F0  # 34h . >
    KEY 0x352F, 0x353F, 0x0000, 0x35F0  # 35h / ?
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 36h right Shift
    KEY 0x372A, 0x372A, 0x9600, 0x37F0  # 37h keypad *
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 38h Alt
    KEY 0x3920, 0x3920, 0x3920, 0x3920  # 39h Space
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 3Ah Caps Lock
    KEY 0x3B00, 0x5400, 0x5E00, 0x6800  # 3Bh F1
    KEY 0x3C00, 0x5500, 0x5F00, 0x6900  # 3Ch F2
    KEY 0x3D00, 0x5600, 0x6000, 0x6A00  # 3Dh F3
    KEY 0x3E00, 0x5700, 0x6100, 0x6B00  # 3Eh F4
    KEY 0x3F00, 0x5800, 0x6200, 0x6C00  # 3Fh F5
    KEY 0x4000, 0x5900, 0x6300, 0x6D00  # 40h F6
    KEY 0x4100, 0x5A00, 0x6400, 0x6E00  # 41h F7
    KEY 0x4200, 0x5B00, 0x6500, 0x6F00  # 42h F8
    KEY 0x4300, 0x5C00, 0x6600, 0x7000  # 43h F9
    KEY 0x4400, 0x5D00, 0x6700, 0x7100  # 44h F10
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 45h Num Lock
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 46h Scroll Lock
    # The keypad: without Num Lock the cursor keys, with it (the Shift
    # column) the digits; Alt + digits: see kbd_alt_numpad.
    KEY 0x4700, 0x4737, 0x7700, 0x0000  # 47h keypad 7 Home
    KEY 0x4800, 0x4838, 0x8D00, 0x0000  # 48h keypad 8 Up
    KEY 0x4900, 0x4939, 0x8400, 0x0000  # 49h keypad 9 PgUp
    KEY 0x4A2D, 0x4A2D, 0x8E00, 0x4AF0  # 4Ah keypad -
    KEY 0x4B00, 0x4B34, 0x7300, 0x0000  # 4Bh keypad 4 Left
    KEY 0x4CF0, 0x4C35, 0x8F00, 0x0000  # 4Ch keypad 5
    KEY 0x4D00, 0x4D36, 0x7400, 0x0000  # 4Dh keypad 6 Right
    KEY 0x4E2B, 0x4E2B, 0x9000, 0x4EF0  # 4Eh keypad +
    KEY 0x4F00, 0x4F31, 0x7500, 0x0000  # 4Fh keypad 1 End
    KEY 0x5000, 0x5032, 0x9100, 0x0000  # 50h keypad 2 Down
    KEY 0x5100, 0x5133, 0x7600, 0x0000  # 51h keypad 3 PgDn
    KEY 0x5200, 0x5230, 0x9200, 0x0000  # 52h keypad 0 Ins
    KEY 0x5300, 0x532E, 0x9300, 0x0000  # 53h keypad . Del
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 54h SysRq (Alt + Print Screen)
    KEY 0x0000, 0x0000, 0x0000, 0x0000  # 55h
    KEY 0x565C, 0x567C, 0x0000, 0x0000  # 56h the 102nd key, \ |
    KEY 0x8500, 0x8700, 0x8900, 0x8B00  # 57h F11
    KEY 0x8600, 0x8800, 0x8A00, 0x8C00  # 58h F12
.if . - kbd_keys != 8 * (SC_LAST + 1)
    .error "kbd_keys needs one row per code 00h-SC_LAST"
.endif

# kbd_gray: the E0 keys: code, then the keystroke without Ctrl or Alt,
# with Ctrl, with Alt. The gray cursor keys have E0h as their ASCII byte
# where the keypad's have 00h, so a program can tell them apart; keypad
# Enter and "/" have E0h as their scan code. A zero ends the table.
.macro GRAY sc, normal, ctrl, alt
    .byte \sc
    .word \normal, \ctrl, \alt
.endm
kbd_gray:
    GRAY 0x1C, 0xE00D, 0xE00A, 0xA600   # keypad Enter
    GRAY 0x35, 0xE02F, 0x9500, 0xA400   # keypad /
    GRAY 0x47, 0x47E0, 0x77E0, 0x9700   # Home
    GRAY 0x48, 0x48E0, 0x8DE0, 0x9800   # Up
    GRAY 0x49, 0x49E0, 0x84E0, 0x9900   # Page Up
    GRAY 0x4B, 0x4BE0, 0x73E0, 0x9B00   # Left
    GRAY 0x4D, 0x4DE0, 0x74E0, 0x9D00   # Right
    GRAY 0x4F, 0x4FE0, 0x75E0, 0x9F00   # End
    GRAY 0x50, 0x50E0, 0x91E0, 0xA000   # Down
    GRAY 0x51, 0x51E0, 0x76E0, 0xA100   # Page Down
    GRAY 0x52, 0x52E0, 0x92E0, 0xA200   # Insert
    GRAY 0x53, 0x53E0, 0x93E0, 0xA300   # Delete
    .byte 0

# ---- INT 16h: keyboard services -------------------------------------------
#
#   AH=00h  wait for a keystroke and take it: AX = the keystroke
#   AH=01h  look at the next keystroke: ZF set if none, else ZF clear and
#           AX = the keystroke (it stays in the buffer)
#   AH=02h  AL = the shift flags (0417h)
#   AH=05h  store keystroke CX as if typed: AL = 00h, or 01h if the
#           buffer was full
#   AH=10h, 11h  as 00h, 01h, with the Enhanced keyboard's keystrokes
#   AH=12h  AL = the shift flags, AH = the keys held (bit 0 left Ctrl,
#           1 left Alt, 2 right Ctrl, 3 right Alt, 4 Scroll Lock, 5 Num
#           Lock, 6 Caps Lock, 7 SysRq)
#
# Other functions (03h typematic rate, 09h capabilities, 0Ah keyboard ID,
# ...) return with every register unchanged.
#
# Which keystrokes 00h and 01h return (IBM's rule for programs written
# before the Enhanced keyboard, kbd_convert): the ones only it has are
# skipped (taken out of the buffer unseen) and the gray keys look like
# their twins: a scan code above 84h or an ASCII byte F0h: skipped; ASCII
# E0h (gray cursor keys): 00h, as the keypad's; scan code E0h (keypad
# Enter, "/"): 1Ch, 35h, as the main keys'. Functions 10h and 11h return
# every keystroke as stored, except that ASCII F0h becomes 00h.
int16_handler:
    sti                             # keys arrive by IRQ 1 while we wait
    push ds
    push bx
    mov bx, BDA_SEG
    mov ds, bx
    xor bl, bl                      # BL = 0: the standard functions
    cmp ah, 0x10
    jb 1f
    sub ah, 0x10                    # 10h-12h: 00h-02h, enhanced
    mov bl, 1
    cmp ah, 0x02
    je k_flags_enhanced
1:  cmp ah, 0x00
    je k_read
    cmp ah, 0x01
    je k_peek
    test bl, bl
    jnz 2f                          # 13h and above: not functions
    cmp ah, 0x02
    je k_flags
    cmp ah, 0x05
    je k_store
    jmp k_done                      # unknown: nothing changes
2:  add ah, 0x10                    # unknown: AH as it came
    jmp k_done

k_read:                             # AH=00h/10h
1:  cli
    call kbd_peek
    jnz 2f
    sti                             # wait for an interrupt: STI takes
    hlt                             # effect after HLT has started, so
    jmp 1b                          # IRQ 1 cannot come in between
2:  call kbd_advance
k_done:
    pop bx
    pop ds
    iret

k_peek:                             # AH=01h/11h
    push ax
    cli
    call kbd_peek
    jz 1f
    pop bx                          # a keystroke: AX is the result
    jmp 2f
1:  pop ax                          # none: AX as it was
2:  pop bx
    pop ds
    jmp iret_zf

k_flags:                            # AH=02h
    mov al, [BDA_KBD_FLAGS]
    jmp k_done

k_flags_enhanced:                   # AH=12h
    mov al, [BDA_KBD_FLAGS2]
    mov ah, al
    and ah, KF2_SYSRQ
    shl ah, 5                       # SysRq held: bit 7
    and al, KF2_LCTRL | KF2_LALT | KF2_SCROLL | KF2_NUM | KF2_CAPS
    or ah, al
    mov al, [BDA_KBD_FLAGS3]
    and al, KF3_RCTRL | KF3_RALT
    or ah, al
    mov al, [BDA_KBD_FLAGS]
    jmp k_done

k_store:                            # AH=05h
    cli
    push ax
    mov ax, cx
    call kbd_store
    pop ax
    mov al, 0
    adc al, 0                       # 01h when it was full (CF)
    jmp k_done

# kbd_peek: ZF set when no keystroke waits; else ZF clear and AX = the
# next keystroke as function BL (0: 00h/01h, 1: 10h/11h) returns it.
# Keystrokes the standard functions skip are taken out on the way.
# Interrupts must be off (IRQ 1 changes the buffer).
kbd_peek:
    push si
1:  mov si, [BDA_KBD_HEAD]
    cmp si, [BDA_KBD_TAIL]
    je 2f                           # empty: ZF set
    mov ax, [si]
    call kbd_convert
    jnc 3f
    call kbd_advance                # skipped
    jmp 1b
3:  cmp si, [BDA_KBD_TAIL]          # not equal: ZF clear
2:  pop si
    ret

# kbd_advance: the head moves past the keystroke it points at.
kbd_advance:
    push si
    mov si, [BDA_KBD_HEAD]
    add si, 2
    cmp si, [BDA_KBD_BUF_LIMIT]
    jb 1f
    mov si, [BDA_KBD_BUF_START]
1:  mov [BDA_KBD_HEAD], si
    pop si
    ret

# kbd_convert: keystroke AX as function BL returns it (see the rule above
# int16_handler); CF set when the standard functions skip it.
kbd_convert:
    test bl, bl
    jnz 5f
    cmp ah, 0xE0
    jne 1f
    mov ah, 0x1C                    # keypad Enter: Enter
    cmp al, '/'
    jne 4f
    mov ah, 0x35                    # keypad /: /
    jmp 4f
1:  cmp ah, 0x84
    ja 3f                           # enhanced only
    test ah, ah
    jz 4f                           # 00xxh (Alt + keypad): as typed
    cmp al, 0xF0
    je 3f                           # enhanced only
    cmp al, 0xE0
    jne 4f
    xor al, al                      # a gray key: as the keypad's
    jmp 4f
3:  stc
    ret
5:  cmp al, 0xF0
    jne 4f
    test ah, ah
    jz 4f
    xor al, al
4:  clc
    ret
