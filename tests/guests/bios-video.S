# bios-video.S: INT 10h in text mode 3, on page 0: set mode (00h) and the
# BDA's video fields, cursor shape (01h, with the CRTC's emulated scan
# lines), cursor position (02h, 03h), write cells (09h), characters (0Ah),
# read a cell (08h), teletype (0Eh). Results on COM1; the screen shows the
# text.
    .intel_syntax noprefix
    .code16                         # before the first instruction: the
    jmp start                       # jump must be 16-bit code too
    .include "bios-boot.inc"
    .include "bios-console.inc"
start:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7C00
    cld
    # 00h: mode 3. AL = 30h; the BDA: mode, columns, page size, page
    # start, cursor shape, active page, CRTC port, rows - 1, char height.
    SAY "mode "
    mov ax, 0x0003
    int 0x10
    call putw
    mov si, offset bda_fields
1:  lodsw
    test ax, ax
    jz 2f
    mov bx, ax
    and bx, 0x7FFF
    mov bx, [bx]
    test ah, 0x80                   # a byte field
    jz 3f
    xor bh, bh
3:  xchg ax, bx
    call putw
    jmp 1b
2:  SAY "crtc "                     # shape, start, cursor location
    mov bl, 0x0A
    call crtc
    call putw
    mov bl, 0x0C
    call crtc
    call putw
    mov bl, 0x0E
    call crtc
    call putw
    call newline
    # 01h: shapes a program asks for, and the CRTC scan lines they get.
    SAY "shape "
    mov si, offset shapes
4:  lodsw
    mov cx, ax
    mov ah, 0x01
    int 0x10
    mov bl, 0x0A
    call crtc
    call putw
    cmp si, offset shapes_end
    jb 4b
    xor bh, bh
    call cursor                     # 03h: the BDA's shape: the last asked
    call newline
    # 02h, 09h, 0Ah, 08h: "AAA" in yellow on blue at row 2, column 5;
    # a "b" over the middle one keeps its colours.
    mov dx, 0x0205
    call at
    SAY "pos "
    call cursor
    mov bl, 0x0E
    call crtc                       # 2 * 80 + 5 = 00A5h
    call putw
    mov ax, 0x0941
    mov bx, 0x001E
    mov cx, 3
    int 0x10
    inc dx
    call at
    mov ax, 0x0A62
    mov cx, 1
    int 0x10
    call cell                       # 1E62: b, yellow on blue
    call cursor                     # did not move
    call newline
    # 0Eh: "Hello", two backspaces, "XY", CR, ">", a bell: ">elXY",
    # the cursor at row 4, column 1.
    mov dx, 0x0400
    call at
    mov si, offset hello
    call tty
    SAY "tty "
    xor bh, bh
    call cursor
    # A line that wraps: 85 "=" from column 0 of row 6 end at row 7,
    # column 5.
    mov dx, 0x0600
    call at
    mov cx, 85
5:  mov ax, 0x0E3D
    int 0x10
    loop 5b
    call cursor
    call newline
    EXIT 0

# The BDA's video fields (bit 15 set: a byte).
bda_fields:
    .word 0x8449, 0x44A, 0x44C, 0x44E, 0x460, 0x8462, 0x463, 0x8484, 0x485, 0
# 01h: a block, an underline, the cursor off (bit 5), back to 0607h.
shapes:
    .word 0x0007, 0x0607, 0x2000, 0x0607
shapes_end:
hello:
    .asciz "Hello\b\bXY\r>\007"
    .org 510
    .word 0xAA55
