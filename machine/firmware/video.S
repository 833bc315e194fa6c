# video.S: INT 10h, the video services, for the VGA in text mode.
#
# What the services are: the IBM PC BIOS's screen interface, as the IBM PC
# AT Technical Reference lists it (functions 00h-0Fh) with the EGA and VGA
# additions (12h, 13h, 1Ah), each as Ralf Brown's Interrupt List (RBIL,
# INT 10) documents its registers. The caller puts the function number in
# AH; results come back in registers, and every register that is not a
# result keeps its value.
#
# What this BIOS supports: the text modes of ringlab's VGA (vga.rs): mode
# 03h, 80x25 characters in 16 colours at B800:0000, and mode 02h, its
# grey twin (the same mode on a VGA). Eight pages of 4000 bytes, each at
# a 4 KiB boundary (B800:0000, B800:1000, ...), one of them shown. Each
# cell is two bytes: the character (code page 437), then its attribute
# (bits 0-3 foreground, 4-6 background, 7 blink). The CRT controller
# (CRTC, at 3D4h index / 3D5h data) shows a page from its start address
# (registers 0Ch-0Dh) and draws the cursor at its location (0Eh-0Fh) with
# the scan lines 0Ah-0Bh; both count cells from the start of video memory.
#
# Left out, and why: mode 07h (monochrome at B000:0000, CRTC at 3B4h) and
# the 40-column and graphics modes: ringlab's VGA models only colour text,
# so AH=00h refuses them (nothing changes). The functions of graphics
# modes and of the palette and fonts (04h light pen, 0Bh, 0Ch, 0Dh, 10h,
# 11h) and anything unknown return with every register unchanged, as PC
# BIOSes answer what they do not implement. The bell (07h in teletype
# output) makes no sound: the PC's speaker is not modelled.
#
# The BIOS data area (BDA) holds the video state that programs read
# directly (RBIL MEMORY.LST): the mode (0449h), columns (044Ah), page size
# (044Ch) and start (044Eh), the eight cursor positions (0450h, row in the
# high byte, column in the low byte), the cursor shape (0460h), the active
# page (0462h), the CRTC's port (0463h), rows - 1 (0484h) and the character
# height (0485h). The code below keeps them and reads them back, so a
# program that changes them directly is followed.

    .set TEXT_MEMORY_BYTES, 0x8000  # 32 KiB at B800:0000: eight pages
    .set TEXT_PAGE_BYTES, 0x1000    # 80 x 25 x 2 = 4000, rounded up
    .set TEXT_COLUMNS, 80
    .set TEXT_ROWS, 25
    .set BLANK_CELL, 0x0720         # a space, light grey on black
    .set CGA_CURSOR, 0x0607         # scan lines 6-7 of an 8-line cell
    # CRTC registers (IBM VGA Technical Reference, "CRT Controller").
    .set CRTC_CURSOR_START, 0x0A    # bit 5: no cursor
    .set CRTC_START_ADDRESS, 0x0C   # 0Ch high byte, 0Dh low byte
    .set CRTC_CURSOR_LOCATION, 0x0E # 0Eh high byte, 0Fh low byte
    .set INT10_LAST, 0x1A           # the last function implemented

# The registers of the caller, as int10_handler saves them (PUSHAD, then
# DS and ES), addressed from BP. A function returns a result by writing it
# here; the handler's POPAD hands it to the caller.
    .set F_ES, 0
    .set F_DS, 2
    .set F_DI, 4
    .set F_SI, 8
    .set F_BP, 12
    .set F_BX, 20
    .set F_DX, 24
    .set F_CX, 28
    .set F_AX, 32

# INT 10h: save everything, point DS at the BDA, call the function AH
# names with the caller's other registers as they were, restore
# everything (with the results the function left in the frame).
int10_handler:
    cmp ah, INT10_LAST
    ja 1f                           # unknown: nothing changes
    pushad
    push ds
    push es
    mov bp, sp
    cld
    push ax
    mov ax, BDA_SEG
    mov ds, ax
    pop ax
    movzx si, ah
    add si, si
    call cs:[int10_functions + si]
    pop es
    pop ds
    popad
1:  iret

int10_functions:
    .word v_set_mode                # 00h set video mode
    .word v_set_cursor_shape        # 01h set cursor shape
    .word v_set_cursor_position     # 02h set cursor position
    .word v_get_cursor              # 03h get cursor position and shape
    .word v_unsupported             # 04h light pen
    .word v_set_active_page         # 05h select the page shown
    .word v_scroll                  # 06h scroll a window up
    .word v_scroll                  # 07h scroll a window down
    .word v_read_cell               # 08h read character and attribute
    .word v_write_cells             # 09h write character and attribute
    .word v_write_chars             # 0Ah write character only
    .word v_unsupported             # 0Bh CGA palette
    .word v_unsupported             # 0Ch write pixel
    .word v_unsupported             # 0Dh read pixel
    .word v_teletype                # 0Eh teletype output
    .word v_get_mode                # 0Fh get video mode
    .word v_unsupported             # 10h palette registers
    .word v_unsupported             # 11h character generator
    .word v_alternate_select        # 12h alternate select (BL=10h)
    .word v_write_string            # 13h write string
    .word v_unsupported             # 14h-19h
    .word v_unsupported
    .word v_unsupported
    .word v_unsupported
    .word v_unsupported
    .word v_unsupported
    .word v_display_combination     # 1Ah display combination code
.if . - int10_functions != 2 * (INT10_LAST + 1)
    .error "int10_functions needs one entry per function 00h-INT10_LAST"
.endif

v_unsupported:
    ret

# ---- 00h: set video mode AL (bit 7 set: keep the screen's contents) ----
# Returns AL = 30h (RBIL: "video mode flag", as Phoenix and AMI BIOSes and
# SeaBIOS return it for the text modes).
v_set_mode:
    mov bl, al
    and al, 0x7F
    cmp al, 0x03
    je 1f
    cmp al, 0x02
    jne 9f                          # not a mode of this VGA: no change
1:  mov byte ptr [bp + F_AX], 0x30
    mov [BDA_VIDEO_MODE], al
    mov word ptr [BDA_COLUMNS], TEXT_COLUMNS
    mov word ptr [BDA_PAGE_SIZE], TEXT_PAGE_BYTES
    mov word ptr [BDA_PAGE_START], 0
    mov byte ptr [BDA_ACTIVE_PAGE], 0
    mov word ptr [BDA_CRTC_PORT], CRTC_INDEX
    mov byte ptr [BDA_ROWS], TEXT_ROWS - 1
    mov word ptr [BDA_CHAR_HEIGHT], 16
    # What a CGA's mode register (3D8h) and palette (3D9h) would hold in
    # this mode: 80 columns, video on, blink; for old programs that look.
    mov byte ptr [BDA_MODE_CTRL], 0x29
    mov byte ptr [BDA_PALETTE], 0x30
    # EGA/VGA control (0487h): bits 6-5 = 11b, 256 KiB of video memory;
    # bit 0 clear, CGA cursor shapes are emulated (see cursor_emulate);
    # bit 7, this mode set's "keep the screen" bit. The switches (0488h)
    # and VGA flags (0489h: VGA active, 400 scan lines) as a VGA BIOS
    # leaves them.
    and bl, 0x80
    or bl, 0x60
    mov [BDA_VIDEO_CTL], bl
    mov byte ptr [BDA_VIDEO_SWITCHES], 0xF9
    mov byte ptr [BDA_VGA_FLAGS], 0x51
    # Every page's cursor at the top left; the CGA's underline cursor.
    push es
    push ds
    pop es
    mov di, BDA_CURSOR_POS
    xor ax, ax
    mov cx, 8
    rep stosw
    pop es
    mov cx, CGA_CURSOR
    mov [BDA_CURSOR_SHAPE], cx
    call crtc_cursor_shape
    # Page 0 shown, the cursor drawn where the BDA says.
    xor ax, ax
    mov bl, CRTC_START_ADDRESS
    call crtc_write_pair
    call crtc_cursor
    test byte ptr [BDA_VIDEO_CTL], 0x80
    jnz 9f
    # Clear all eight pages.
    push es
    mov ax, VGA_TEXT_SEG
    mov es, ax
    xor di, di
    mov ax, BLANK_CELL
    mov cx, TEXT_MEMORY_BYTES / 2
    rep stosw
    pop es
9:  ret

# ---- 01h: cursor shape: CH = start scan line (bit 5: no cursor), CL = end
v_set_cursor_shape:
    mov [BDA_CURSOR_SHAPE], cx
    jmp crtc_cursor_shape

# ---- 02h: set cursor position: BH = page, DH = row, DL = column ----------
# Each page keeps its own cursor; only the shown page's reaches the CRTC.
v_set_cursor_position:
    cmp bh, 7
    ja 1f
    call set_cursor
1:  ret

# ---- 03h: get cursor: BH = page -> DH, DL = row, column; CH, CL = shape --
v_get_cursor:
    and bh, 7
    call get_cursor
    mov [bp + F_DX], dx
    mov cx, [BDA_CURSOR_SHAPE]
    mov [bp + F_CX], cx
    ret

# ---- 05h: show page AL (0-7) ---------------------------------------------
v_set_active_page:
    cmp al, 7
    ja 1f
    mov [BDA_ACTIVE_PAGE], al
    movzx ax, al
    imul ax, word ptr [BDA_PAGE_SIZE]
    mov [BDA_PAGE_START], ax
    shr ax, 1                       # the CRTC counts cells, not bytes
    mov bl, CRTC_START_ADDRESS
    call crtc_write_pair
    call crtc_cursor                # that page's cursor
1:  ret

# ---- 06h/07h: scroll a window of the shown page up (06h) or down (07h) --
# AL = lines (0: blank the whole window), BH = attribute of the blank
# lines, CH, CL = top row, left column, DH, DL = bottom row, right column.
v_scroll:
    mov si, [BDA_PAGE_START]
    jmp scroll_window

# ---- 08h: read the cell at page BH's cursor -> AH = attribute, AL = char
v_read_cell:
    and bh, 7
    call get_cursor
    call cell_offset
    push es
    mov ax, VGA_TEXT_SEG
    mov es, ax
    mov ax, es:[di]
    pop es
    mov [bp + F_AX], ax
    ret

# ---- 09h: write AL with attribute BL, CX times, at page BH's cursor ------
# The cursor does not move; the cells follow each other across line ends
# (as on IBM's BIOS), but never past the end of video memory.
v_write_cells:
    and bh, 7
    call get_cursor
    call cell_offset
    call limit_count
    mov ah, bl
    push es
    mov dx, VGA_TEXT_SEG
    mov es, dx
    rep stosw
    pop es
    ret

# ---- 0Ah: write AL CX times at page BH's cursor, attributes unchanged ---
v_write_chars:
    and bh, 7
    call get_cursor
    call cell_offset
    call limit_count
    jcxz 2f
    push es
    mov dx, VGA_TEXT_SEG
    mov es, dx
1:  mov es:[di], al
    add di, 2
    loop 1b
    pop es
2:  ret

# ---- 0Eh: teletype output of AL on the shown page -------------------------
# Like a terminal: BEL (07h) is silent here, BS (08h) moves left without
# erasing (not past column 0), CR (0Dh) returns to column 0, LF (0Ah) goes
# down a line, scrolling the page at the bottom; other characters are
# written (keeping the cell's attribute) and the cursor advances, to the
# next line at the end of one. BH is not read: like IBM's AT BIOS, the
# output goes to the active page (RBIL: early PC BIOSes needed BH to be
# the active page; BL, the colour, matters only in graphics modes).
v_teletype:
    mov bh, [BDA_ACTIVE_PAGE]
    xor ah, ah                      # keep the attribute
    jmp tty_char

# ---- 0Fh: get mode -> AL = mode, AH = columns, BH = active page ----------
# AL bit 7 repeats the last mode set's "keep the screen" bit (IBM VGA).
v_get_mode:
    mov al, [BDA_VIDEO_CTL]
    and al, 0x80
    or al, [BDA_VIDEO_MODE]
    mov ah, [BDA_COLUMNS]
    mov [bp + F_AX], ax
    mov al, [BDA_ACTIVE_PAGE]
    mov [bp + F_BX + 1], al
    ret

# ---- 12h: alternate select; only BL=10h, "get EGA information" -----------
# BH = 0 (colour mode), BL = 3 (256 KiB of video memory), CH = 0 (feature
# connector bits), CL = the switch settings (the BDA's 0488h, low nibble).
v_alternate_select:
    cmp bl, 0x10
    jne 1f
    mov word ptr [bp + F_BX], 0x0003
    movzx cx, byte ptr [BDA_VIDEO_SWITCHES]
    and cl, 0x0F
    mov [bp + F_CX], cx
1:  ret

# ---- 13h: write string -------------------------------------------------
# ES:BP = the string, CX = its length, BH = page, DH, DL = where it starts.
# AL bit 0: leave the cursor after the string (else it stays where it
# was); AL bit 1: the string alternates characters and attributes (else BL
# is every character's attribute). Characters go out as in teletype
# output (BEL, BS, CR and LF act, the page scrolls), on page BH.
v_write_string:
    cmp al, 3
    ja 9f
    and bh, 7
    jcxz 9f
    mov di, dx                      # DI = where the string starts
    call get_cursor
    push dx                         # the cursor now, to put it back
    mov dx, di
    call set_cursor
    mov dl, al                      # DL = the mode
    mov si, [bp + F_BP]
1:  mov al, es:[si]
    inc si
    test dl, 0x02
    jz 2f
    mov bl, es:[si]                 # this character's own attribute
    inc si
2:  mov ah, 1                       # write the attribute too
    call tty_char
    loop 1b
    pop dx
    test byte ptr [bp + F_AX], 0x01
    jnz 9f
    call set_cursor                 # back where it was
9:  ret

# ---- 1Ah: display combination; only AL=00h, "get" --------------------------
# AL = 1Ah (supported), BL = 08h (VGA with a colour analog display), BH =
# 00h (no second display).
v_display_combination:
    test al, al
    jnz 1f
    mov byte ptr [bp + F_AX], 0x1A
    mov word ptr [bp + F_BX], 0x0008
1:  ret

# ---- the screen helpers (DS = BDA) ---------------------------------------

# get_cursor: DX = the cursor position (row, column) of page BH.
get_cursor:
    push bx
    movzx bx, bh
    add bx, bx
    mov dx, [BDA_CURSOR_POS + bx]
    pop bx
    ret

# set_cursor: page BH's cursor to DX (row, column); the CRTC's too when
# page BH is the one shown.
set_cursor:
    push bx
    movzx bx, bh
    add bx, bx
    mov [BDA_CURSOR_POS + bx], dx
    pop bx
    cmp bh, [BDA_ACTIVE_PAGE]
    jne 1f
    call crtc_cursor
1:  ret

# cell_offset: DI = the offset in video memory (segment B800h) of row DH,
# column DL of page BH.
cell_offset:
    push ax
    movzx di, bh
    imul di, word ptr [BDA_PAGE_SIZE]
    movzx ax, dh
    imul ax, word ptr [BDA_COLUMNS]
    add al, dl
    adc ah, 0
    add ax, ax                      # two bytes a cell
    add di, ax
    pop ax
    ret

# limit_count: CX cells from offset DI, cut where video memory ends.
limit_count:
    push ax
    mov ax, TEXT_MEMORY_BYTES
    sub ax, di
    shr ax, 1
    cmp cx, ax
    jbe 1f
    mov cx, ax
1:  pop ax
    ret

# crtc_write_pair: CRTC register BL = AH and register BL + 1 = AL (the
# CRTC keeps 16-bit values as a high register and the low one after it).
crtc_write_pair:
    push ax
    push dx
    mov dx, [BDA_CRTC_PORT]
    push ax
    mov al, bl
    out dx, al                      # index
    inc dx
    mov al, ah
    out dx, al                      # data
    dec dx
    mov al, bl
    inc ax
    out dx, al
    inc dx
    pop ax
    out dx, al
    pop dx
    pop ax
    ret

# crtc_cursor: the CRTC's cursor location from the shown page's cursor.
crtc_cursor:
    push ax
    push bx
    push dx
    push di
    mov bh, [BDA_ACTIVE_PAGE]
    call get_cursor
    call cell_offset
    mov ax, di
    shr ax, 1                       # in cells from the start of memory
    mov bl, CRTC_CURSOR_LOCATION
    call crtc_write_pair
    pop di
    pop dx
    pop bx
    pop ax
    ret

# crtc_cursor_shape: the CRTC's cursor scan lines (0Ah start, 0Bh end)
# from the shape CX that a program asked for.
crtc_cursor_shape:
    push ax
    push bx
    push cx
    test byte ptr [BDA_VIDEO_CTL], 0x01
    jnz 1f                          # emulation off: the lines as given
    call cursor_emulate
1:  mov ax, cx
    mov bl, CRTC_CURSOR_START
    call crtc_write_pair
    pop cx
    pop bx
    pop ax
    ret

# cursor_emulate: CX (CH start, CL end) rewritten for the VGA's cell.
# Programs written for the CGA ask for scan lines of its 8-line character
# cell (06h-07h, the underline; 00h-07h, a block); mode 3's cells are 16
# lines high (BDA 0485h). The VGA BIOS moves such shapes to the bottom of
# the taller cell. IBM's rule, as DOSBox reconstructs it
# (INT10_SetCursorShape), with H the cell's last line (15):
#   - bits 5-7 of either value set (bit 5: cursor off): as given;
#   - end above start (a shape that wraps): if end is 0, as given, else
#     from end to H;
#   - end at most 3 (a cursor in the top lines): as given;
#   - more than 3 lines tall: to H, from half height if it started
#     below line 2 (04h-07h: 08h-0Fh; 00h-07h: 00h-0Fh, the block);
#   - otherwise (a thin line): as far above H as it was above end, and
#     in cells taller than 12 lines one line higher (06h-07h: 0Dh-0Eh,
#     the underline mode 3's own CRTC table has).
cursor_emulate:
    push ax
    mov al, ch
    or al, cl
    test al, 0xE0
    jnz 9f
    mov al, [BDA_CHAR_HEIGHT]
    dec al                          # AL = H
    cmp cl, ch
    jae 1f
    test cl, cl                     # end above start
    jz 9f
    mov ch, cl
    mov cl, al
    jmp 9f
1:  cmp cl, 3
    jbe 9f
    mov ah, ch
    add ah, 2
    cmp ah, cl
    jae 3f
    mov cl, al                      # tall: down to H
    cmp ch, 2
    jbe 9f
    inc al
    shr al, 1
    mov ch, al                      # from half height
    jmp 9f
3:  sub ch, cl                      # thin: start - end + H, end = H
    add ch, al
    mov cl, al
    cmp al, 12
    jbe 9f
    dec ch
    dec cl
9:  pop ax
    ret

# tty_char: teletype output of AL on page BH (see 0Eh above); AH nonzero
# writes attribute BL with the character, AH = 0 keeps the cell's. All
# registers are kept.
tty_char:
    push ax
    push bx
    push cx
    push dx
    push si
    push di
    call get_cursor                 # DX = (row, column)
    cmp al, 0x07
    je 9f                           # BEL: no speaker
    cmp al, 0x08
    jne 1f
    test dl, dl                     # BS: one column left
    jz 8f
    dec dl
    jmp 8f
1:  cmp al, 0x0D
    jne 2f
    xor dl, dl                      # CR
    jmp 8f
2:  cmp al, 0x0A
    je 4f                           # LF
    call cell_offset
    push es
    mov cx, VGA_TEXT_SEG
    mov es, cx
    mov es:[di], al
    test ah, ah
    jz 3f
    mov es:[di + 1], bl
3:  pop es
    inc dl
    cmp dl, [BDA_COLUMNS]
    jb 8f
    xor dl, dl                      # past the last column: next line
4:  cmp dh, [BDA_ROWS]
    jae 5f
    inc dh
    jmp 8f
    # At the bottom the page scrolls up a line. The new line takes the
    # attribute of the cell under the cursor (IBM's BIOS reads it with
    # function 08h), so text written in a colour keeps its background.
5:  call cell_offset
    push es
    mov cx, VGA_TEXT_SEG
    mov es, cx
    mov cl, es:[di + 1]
    pop es
    push bx
    push dx
    movzx si, bh
    imul si, word ptr [BDA_PAGE_SIZE]
    mov bh, cl
    mov ax, 0x0601                  # up, one line
    xor cx, cx                      # the whole page
    mov dh, [BDA_ROWS]
    mov dl, [BDA_COLUMNS]
    dec dl
    call scroll_window
    pop dx
    pop bx
8:  call set_cursor
9:  pop di
    pop si
    pop dx
    pop cx
    pop bx
    pop ax
    ret

# scroll_window: AH = 06h (up) or 07h (down), AL = lines (0: blank the
# whole window), BH = attribute of the lines blanked, CH, CL = top row and
# left column, DH, DL = bottom row and right column (cut to the screen),
# SI = offset of the page in video memory. All registers are kept: it
# saves them as int10_handler does, so the F_ offsets find them.
#
# Scrolling up by n moves each row of the window n rows up, starting at
# the top, then blanks the n rows at the bottom; scrolling down does the
# same from the bottom. Rows are copied whole, so none overwrites a row
# not yet copied.
    .set SW_WIDTH, -2               # cells a row
    .set SW_STEP, -4                # bytes from one row to the next one done
    .set SW_FROM, -6                # bytes from a row to the row copied into it
    .set SW_COPIES, -8              # rows copied
    .set SW_BLANKS, -10             # rows blanked
scroll_window:
    pushad
    push ds
    push es
    mov bp, sp
    sub sp, 10
    mov bl, [BDA_ROWS]              # cut the window to the screen
    cmp dh, bl
    jbe 1f
    mov dh, bl
1:  mov bl, [BDA_COLUMNS]
    dec bl
    cmp dl, bl
    jbe 2f
    mov dl, bl
2:  cmp ch, dh
    ja 9f                           # an empty window
    cmp cl, dl
    ja 9f
    mov bl, dl
    sub bl, cl
    inc bl
    movzx di, bl
    mov [bp + SW_WIDTH], di
    mov bl, dh
    sub bl, ch
    inc bl                          # BL = the window's height
    test al, al
    jz 3f
    cmp al, bl
    jbe 4f
3:  mov al, bl                      # blank every row
4:  movzx di, al
    mov [bp + SW_BLANKS], di
    sub bl, al
    movzx di, bl
    mov [bp + SW_COPIES], di
    mov bx, [BDA_COLUMNS]
    add bx, bx                      # BX = bytes a row
    movzx di, al
    imul di, bx
    mov [bp + SW_FROM], di
    mov [bp + SW_STEP], bx
    cmp ah, 0x07
    jne 5f
    neg word ptr [bp + SW_FROM]     # down: from the bottom row upwards
    neg word ptr [bp + SW_STEP]
    mov ch, dh
5:  movzx di, ch                    # DI = the first row's left cell
    imul di, word ptr [BDA_COLUMNS]
    movzx dx, cl
    add di, dx
    add di, di
    add di, si
    mov ah, [bp + F_BX + 1]         # AX = a blank cell (attribute BH)
    mov al, ' '
    mov dx, VGA_TEXT_SEG
    mov ds, dx
    mov es, dx
    mov dx, [bp + SW_COPIES]
6:  test dx, dx
    jz 7f
    mov si, di
    add si, [bp + SW_FROM]
    mov cx, [bp + SW_WIDTH]
    push di
    rep movsw
    pop di
    add di, [bp + SW_STEP]
    dec dx
    jmp 6b
7:  mov dx, [bp + SW_BLANKS]
8:  test dx, dx
    jz 9f
    mov cx, [bp + SW_WIDTH]
    push di
    rep stosw
    pop di
    add di, [bp + SW_STEP]
    dec dx
    jmp 8b
9:  mov sp, bp
    pop es
    pop ds
    popad
    ret
