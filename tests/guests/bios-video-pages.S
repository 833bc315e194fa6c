# bios-video-pages.S: INT 10h's eight pages and the information functions:
# text written to pages not shown (13h and 09h with BH = 1, 2), each page
# with its own cursor (02h, 03h), page 2 shown (05h: the CRTC's start
# address and cursor follow), teletype output going to the page shown; get
# mode (0Fh), EGA information (12h BL=10h), display combination (1Ah); and
# functions not supported (04h, 40h; 05h with page 8) that change nothing.
# The final screen is page 2.
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
    mov ax, 0x0003
    int 0x10
    mov si, offset s_page0          # page 0, shown
    call tty
    mov ax, 0x1301                  # page 1 at row 1, column 1
    mov bx, 0x0107
    mov cx, 6
    mov dx, 0x0101
    mov bp, offset s_page1
    int 0x10
    mov ah, 0x02                    # page 2's cursor: row 2, column 3
    mov bh, 2
    mov dx, 0x0203
    int 0x10
    mov ax, 0x0950                  # "PPPP" there, yellow on red
    mov bx, 0x024E
    mov cx, 4
    int 0x10
    SAY "cursors "
    call cursors
    call newline
    # 05h: page 2 shown; page 8 does not exist.
    mov ax, 0x0502
    int 0x10
    mov ax, 0x0508
    int 0x10
    SAY "crtc "
    mov bl, 0x0C                    # start: 2 * 4096 / 2 = 1000h
    call crtc
    call putw
    mov bl, 0x0E                    # cursor: 1000h + 2 * 80 + 3
    call crtc
    call putw
    mov ax, [0x44E]                 # the BDA's page start and page
    call putw
    movzx ax, byte ptr [0x462]
    call putw
    # Teletype output goes to the page shown.
    mov si, offset s_tty
    call tty
    call cursors
    call newline
    # 0Fh, 12h BL=10h, 1Ah AL=00h.
    SAY "info "
    xor bx, bx
    mov ah, 0x0F
    int 0x10
    call putw
    mov ax, bx
    call putw
    mov ah, 0x12
    mov bl, 0x10
    int 0x10
    mov ax, bx
    call putw
    mov ax, cx
    call putw
    mov ax, 0x1A00
    int 0x10
    call putw
    mov ax, bx
    call putw
    call newline
    # 04h (light pen) and 40h: not supported; every register as it was.
    SAY "none "
    mov ax, 0x0400
    call unchanged
    mov ax, 0x4000
    call unchanged
    call newline
    EXIT 0

# cursors: the cursors of pages 0, 1 and 2 (position, shape).
cursors:
    xor bh, bh
1:  call cursor
    inc bh
    cmp bh, 3
    jb 1b
    ret

# unchanged: INT 10h with AX and known values in the other registers;
# prints AX BX CX DX SI DI BP afterwards.
unchanged:
    mov bx, 0x1111
    mov cx, 0x2222
    mov dx, 0x3333
    mov si, 0x4444
    mov di, 0x5555
    mov bp, 0x6666
    int 0x10
    call putw
    .irp r, bx, cx, dx, si, di, bp
    mov ax, \r
    call putw
    .endr
    ret

s_page0:
    .asciz "page 0"
s_page1:
    .ascii "page 1"
s_tty:
    .asciz "tty"
    .org 510
    .word 0xAA55
