# bios-video-scroll.S: INT 10h scrolling and strings: scroll a window up
# (06h) and down (07h), the lines it uncovers in the attribute asked for,
# blank a window (AL=0, the window cut to the screen), write string (13h)
# in its modes 0, 1 and 3, and teletype output at the bottom line, where the
# page scrolls and the new line takes the attribute under the cursor.
# Attributes and cursors on COM1; the screen shows the text.
    .intel_syntax noprefix
    .code16                         # before the first instruction: the
    jmp start                       # jump must be 16-bit code too
    .include "bios-boot.inc"
    .include "bios-console.inc"

# W13 mode, attribute, position, string, length: INT 10h AH=13h.
.macro W13 mode, attr, pos, str, len
    mov ax, 0x1300 | \mode
    mov bx, \attr
    mov cx, \len
    mov dx, \pos
    mov bp, offset \str
    int 0x10
.endm

# SCROLL function, lines, attribute, top left, bottom right.
.macro SCROLL fn, lines, attr, from, to
    mov ax, (\fn << 8) | \lines
    mov bh, \attr
    mov cx, \from
    mov dx, \to
    int 0x10
.endm

# CELL row, column: prints the cell there (page 0).
.macro CELL pos
    mov dx, \pos
    call cell
.endm

start:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7C00
    cld
    mov ax, 0x0003
    int 0x10
    # Rows 10-14: "aA" to "eE". The window is column 0 of those rows.
    mov dx, 0x0A00
    call at
    mov si, offset rows
    call tty
    SCROLL 0x06, 1, 0x4F, 0x0A00, 0x0E00    # up 1: b c d e, blank
    SCROLL 0x07, 2, 0x2F, 0x0A00, 0x0E00    # down 2: blank blank b c d
    SAY "scroll "
    CELL 0x0A00
    CELL 0x0E00
    SCROLL 0x06, 0, 0x70, 0x1000, 0x10FF    # blank row 16 (cut at 79)
    CELL 0x104F
    call newline
    # 13h: mode 1 (cursor moves), 0 (stays), 3 (pairs, moves), and a
    # string with CR LF.
    SAY "string "
    xor bh, bh
    W13 1, 0x1F, 0x1202, s_string, 6
    call cursor
    W13 0, 0x2E, 0x1302, s_keep, 4
    call cursor
    W13 3, 0, 0x1402, s_pairs, 2
    call cursor
    W13 1, 0x07, 0x1500, s_lines, 6
    call cursor
    CELL 0x1403
    call newline
    # The bottom line in yellow on magenta; "ab" at its end, then "c":
    # the page scrolls up, the new line yellow on magenta too.
    mov dx, 0x1800
    call at
    mov ax, 0x0920
    mov bx, 0x005E
    mov cx, 80
    int 0x10
    mov dx, 0x184E
    call at
    mov si, offset s_abc
    call tty
    SAY "bottom "
    xor bh, bh
    call cursor
    CELL 0x1800
    CELL 0x174E
    call newline
    EXIT 0

rows:
    .asciz "aA\r\nbB\r\ncC\r\ndD\r\neE"
s_string:
    .ascii "string"
s_keep:
    .ascii "keep"
s_pairs:
    .byte 'x', 0x4E, 'y', 0x1E
s_lines:
    .ascii "ab\r\ncd"
s_abc:
    .asciz "abc"
    .org 510
    .word 0xAA55
