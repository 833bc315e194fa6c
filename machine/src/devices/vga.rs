//! VGA in 80x25 colour text mode: the text buffer at 0xB8000 and the
//! register file a text-mode guest touches (IBM VGA Technical Reference;
//! FreeVGA's register descriptions).
//!
//! The text buffer is ordinary guest RAM (two bytes a cell: character, then
//! attribute), read straight from `GuestMemory` when the screen is wanted, so
//! every engine, KVM included, writes it at full speed. What the registers
//! add: the cursor position and shape and the display start address (CRTC),
//! the blink/intensity choice (attribute controller mode register bit 3),
//! the palette, and the retrace status bits that guests poll.

use crate::bus::{Device, IoCtx};
use crate::clock::NS_PER_SEC;
use crate::GuestMemory;

/// Physical address of the colour text buffer.
pub const TEXT_BASE: u64 = 0xB8000;
pub const COLS: usize = 80;
pub const ROWS: usize = 25;

/// CRTC register indices (IBM VGA Technical Reference, CRT controller).
mod crtc {
    pub const CURSOR_START: usize = 0x0A;
    pub const CURSOR_END: usize = 0x0B;
    pub const START_HIGH: usize = 0x0C;
    pub const START_LOW: usize = 0x0D;
    pub const CURSOR_HIGH: usize = 0x0E;
    pub const CURSOR_LOW: usize = 0x0F;
    /// Bit 5 of Cursor Start disables the cursor.
    pub const CURSOR_DISABLE: u8 = 1 << 5;
    pub const COUNT: usize = 0x19;
}

/// Mode 03h timing: 720x400 at 70 Hz, 449 scan lines a frame of which 400
/// are displayed; vertical sync lines 412-413 (VGA mode 03h CRTC values).
const LINES: u64 = 449;
const LINE_NS: u64 = NS_PER_SEC / 70 / LINES;
const FRAME_NS: u64 = LINE_NS * LINES;
const VISIBLE_LINES: u64 = 400;
const VSYNC_START: u64 = 412;
const VSYNC_END: u64 = 414;
/// Horizontal: 720 of 900 pixels a line are displayed (mode 03h horizontal
/// total 0x5F + 5 = 100 characters of 9 pixels, 80 displayed).
const H_VISIBLE_NUM: u64 = 720;
const H_TOTAL_NUM: u64 = 900;

/// One character cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Cell {
    pub ch: u8,
    pub attr: u8,
}

/// The text screen as the guest left it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Screen {
    /// ROWS x COLS cells, row-major.
    pub cells: Vec<Cell>,
    /// Cursor (row, column), None when disabled or off screen.
    pub cursor: Option<(usize, usize)>,
    /// Cursor start and end scan lines (0-31; a 16-line cell shows 0-15).
    pub cursor_shape: (u8, u8),
    /// Attribute bit 7 means blink (true) or bright background (false).
    pub blink_enabled: bool,
    /// The 16 text colours as RGB, from the palette and DAC.
    pub palette: [[u8; 3]; 16],
}

impl Screen {
    pub fn cell(&self, row: usize, col: usize) -> Cell {
        self.cells[row * COLS + col]
    }

    /// The screen as text: one line per row, trailing blanks trimmed, the
    /// trailing empty rows dropped, characters mapped from code page 437.
    pub fn text(&self) -> String {
        let mut lines: Vec<String> = self
            .cells
            .chunks(COLS)
            .map(|row| {
                let s: String = row.iter().map(|c| cp437(c.ch)).collect();
                s.trim_end_matches([' ', '\u{0}']).to_string()
            })
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut out = lines.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// True when no cell holds a visible character.
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|c| c.ch == 0 || c.ch == b' ')
    }
}

/// Code page 437 to Unicode (the VGA ROM font's character set).
pub fn cp437(b: u8) -> char {
    const LOW: [char; 32] = [
        ' ', '☺', '☻', '♥', '♦', '♣', '♠', '•', '◘', '○', '◙', '♂', '♀', '♪', '♫', '☼', '►', '◄',
        '↕', '‼', '¶', '§', '▬', '↨', '↑', '↓', '→', '←', '∟', '↔', '▲', '▼',
    ];
    const HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";
    match b {
        0 => ' ',
        1..=31 => LOW[b as usize],
        0x7F => '⌂',
        0x20..=0x7E => b as char,
        _ => HIGH.chars().nth(b as usize - 0x80).unwrap_or('?'),
    }
}

/// The default EGA/VGA text palette (attribute registers 0-15 select DAC
/// entries 0-5, 0x14, 7, 0x38-0x3F) as 8-bit RGB.
const DEFAULT_RGB: [[u8; 3]; 16] = [
    [0x00, 0x00, 0x00],
    [0x00, 0x00, 0xAA],
    [0x00, 0xAA, 0x00],
    [0x00, 0xAA, 0xAA],
    [0xAA, 0x00, 0x00],
    [0xAA, 0x00, 0xAA],
    [0xAA, 0x55, 0x00],
    [0xAA, 0xAA, 0xAA],
    [0x55, 0x55, 0x55],
    [0x55, 0x55, 0xFF],
    [0x55, 0xFF, 0x55],
    [0x55, 0xFF, 0xFF],
    [0xFF, 0x55, 0x55],
    [0xFF, 0x55, 0xFF],
    [0xFF, 0xFF, 0x55],
    [0xFF, 0xFF, 0xFF],
];

/// Attribute controller palette registers after a mode 03h set.
const DEFAULT_ATTR_PALETTE: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
];

pub struct Vga {
    misc: u8,
    crtc_index: u8,
    crtc: [u8; crtc::COUNT],
    seq_index: u8,
    seq: [u8; 5],
    gc_index: u8,
    gc: [u8; 9],
    /// Attribute controller: index/data flip-flop at 0x3C0.
    attr_flip: bool,
    attr_index: u8,
    attr: [u8; 0x15],
    /// DAC: 256 entries of 6-bit RGB.
    dac: Box<[[u8; 3]; 256]>,
    dac_write_index: u8,
    dac_read_index: u8,
    dac_component: u8,
    dac_pel_mask: u8,
}

impl Default for Vga {
    fn default() -> Self {
        Self::new()
    }
}

impl Vga {
    /// A byte written to port BASE + `offset`.
    fn write_port(&mut self, offset: u16, v: u8) {
        let port = BASE + offset;
        match port {
            0x3B4 | 0x3D4 if (port == 0x3D4) == self.colour() => self.crtc_index = v,
            0x3B5 | 0x3D5 if (port == 0x3D5) == self.colour() => {
                let i = self.crtc_index as usize;
                // CRTC registers 0-7 are write-protected when bit 7 of the
                // vertical retrace end register (0x11) is set, except bit 4
                // of the overflow register (0x07).
                let protect = self.crtc[0x11] & 0x80 != 0;
                if i < crtc::COUNT {
                    if protect && i < 7 {
                    } else if protect && i == 7 {
                        self.crtc[7] = (self.crtc[7] & !0x10) | (v & 0x10);
                    } else {
                        self.crtc[i] = v;
                    }
                }
            }
            0x3C0 => {
                if !self.attr_flip {
                    self.attr_index = v & 0x3F;
                } else if let Some(r) = self.attr.get_mut((self.attr_index & 0x1F) as usize) {
                    *r = v;
                }
                self.attr_flip = !self.attr_flip;
            }
            0x3C2 => self.misc = v,
            0x3C4 => self.seq_index = v,
            0x3C5 => {
                if let Some(r) = self.seq.get_mut(self.seq_index as usize) {
                    *r = v;
                }
            }
            0x3C6 => self.dac_pel_mask = v,
            0x3C7 => {
                self.dac_read_index = v;
                self.dac_component = 0;
            }
            0x3C8 => {
                self.dac_write_index = v;
                self.dac_component = 0;
            }
            0x3C9 => {
                self.dac[self.dac_write_index as usize][self.dac_component as usize] = v & 0x3F;
                self.dac_component += 1;
                if self.dac_component == 3 {
                    self.dac_component = 0;
                    self.dac_write_index = self.dac_write_index.wrapping_add(1);
                }
            }
            0x3CE => self.gc_index = v,
            0x3CF => {
                if let Some(r) = self.gc.get_mut(self.gc_index as usize) {
                    *r = v;
                }
            }
            _ => {}
        }
    }

    /// The registers as a BIOS leaves them after setting mode 03h.
    pub fn new() -> Vga {
        let mut crtc = [0u8; crtc::COUNT];
        // Mode 03h CRTC values (IBM VGA Technical Reference, table of
        // mode register values).
        let mode3: [u8; crtc::COUNT] = [
            0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00,
            0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
        ];
        crtc.copy_from_slice(&mode3);
        let mut attr = [0u8; 0x15];
        attr[..16].copy_from_slice(&DEFAULT_ATTR_PALETTE);
        // Mode control: text, blink enabled (bit 3), line graphics (bit 2).
        attr[0x10] = 0x0C;
        attr[0x12] = 0x0F;
        attr[0x13] = 0x08;
        let mut dac = Box::new([[0u8; 3]; 256]);
        for (i, rgb) in DEFAULT_RGB.iter().enumerate() {
            dac[DEFAULT_ATTR_PALETTE[i] as usize] = rgb.map(|c| c >> 2);
        }
        Vga {
            // Colour emulation (bit 0: CRTC at 0x3D4), RAM enabled.
            misc: 0x67,
            crtc_index: 0,
            crtc,
            seq_index: 0,
            seq: [0x03, 0x00, 0x03, 0x00, 0x02],
            gc_index: 0,
            gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF],
            attr_flip: false,
            attr_index: 0x20,
            attr,
            dac,
            dac_write_index: 0,
            dac_read_index: 0,
            dac_component: 0,
            dac_pel_mask: 0xFF,
        }
    }

    fn crtc16(&self, hi: usize, lo: usize) -> usize {
        ((self.crtc[hi] as usize) << 8) | self.crtc[lo] as usize
    }

    /// Cursor location register (cell index from the start of video memory).
    pub fn cursor_location(&self) -> usize {
        self.crtc16(crtc::CURSOR_HIGH, crtc::CURSOR_LOW)
    }

    /// Display start address (cell index).
    pub fn start_address(&self) -> usize {
        self.crtc16(crtc::START_HIGH, crtc::START_LOW)
    }

    /// The screen: 80x25 cells from the display start address.
    pub fn screen(&self, mem: &GuestMemory) -> Screen {
        let start = self.start_address();
        let mut cells = vec![Cell::default(); COLS * ROWS];
        for (i, cell) in cells.iter_mut().enumerate() {
            // The 32 KiB text window at 0xB8000 wraps (16K cells).
            let a = TEXT_BASE + (((start + i) * 2) & 0x7FFF) as u64;
            if let Some(w) = mem.read_u16(a) {
                *cell = Cell {
                    ch: w as u8,
                    attr: (w >> 8) as u8,
                };
            }
        }
        let loc = self.cursor_location();
        let cursor_on = self.crtc[crtc::CURSOR_START] & crtc::CURSOR_DISABLE == 0;
        let cursor = loc
            .checked_sub(start)
            .filter(|&rel| cursor_on && rel < COLS * ROWS)
            .map(|rel| (rel / COLS, rel % COLS));
        let mut palette = [[0u8; 3]; 16];
        for (i, p) in palette.iter_mut().enumerate() {
            let idx = (self.attr[i] & 0x3F) as usize | ((self.attr[0x14] as usize & 0x0C) << 4);
            let rgb = self.dac[idx & self.dac_pel_mask as usize];
            // 6-bit DAC values to 8 bits.
            *p = rgb.map(|c| (c << 2) | (c >> 4));
        }
        Screen {
            cells,
            cursor,
            cursor_shape: (
                self.crtc[crtc::CURSOR_START] & 0x1F,
                self.crtc[crtc::CURSOR_END] & 0x1F,
            ),
            blink_enabled: self.attr[0x10] & 0x08 != 0,
            palette,
        }
    }

    /// Input status 1 (0x3DA): bit 0 = display disabled (horizontal or
    /// vertical blanking), bit 3 = vertical retrace, computed from virtual
    /// time so that polling guests behave the same on every run.
    fn input_status_1(&self, now: u64) -> u8 {
        let in_frame = now % FRAME_NS;
        let line = in_frame / LINE_NS;
        let in_line = in_frame % LINE_NS;
        let hblank = in_line * H_TOTAL_NUM >= LINE_NS * H_VISIBLE_NUM;
        let vblank = line >= VISIBLE_LINES;
        let vretrace = (VSYNC_START..VSYNC_END).contains(&line);
        (u8::from(hblank || vblank)) | (u8::from(vretrace) << 3)
    }

    /// True when the CRTC answers at 0x3Dx (colour) rather than 0x3Bx.
    fn colour(&self) -> bool {
        self.misc & 1 != 0
    }
}

/// Offsets within the mapped range 0x3B0-0x3DF.
const BASE: u16 = 0x3B0;

impl Device for Vga {
    fn name(&self) -> &'static str {
        "VGA text mode"
    }

    fn pio_read(&mut self, _region: usize, offset: u16, size: u8, cx: &mut IoCtx) -> u32 {
        let port = BASE + offset;
        let v = match port {
            0x3B4 | 0x3D4 if (port == 0x3D4) == self.colour() => self.crtc_index as u32,
            0x3B5 | 0x3D5 if (port == 0x3D5) == self.colour() => {
                self.crtc
                    .get(self.crtc_index as usize)
                    .copied()
                    .unwrap_or(0xFF) as u32
            }
            0x3BA | 0x3DA if (port == 0x3DA) == self.colour() => {
                // Reading input status 1 resets the attribute flip-flop to
                // "index".
                self.attr_flip = false;
                self.input_status_1(cx.now) as u32
            }
            0x3C0 => self.attr_index as u32,
            0x3C1 => self
                .attr
                .get((self.attr_index & 0x1F) as usize)
                .copied()
                .unwrap_or(0) as u32,
            // Input status 0: bit 4 = switch sense, set on a colour monitor.
            0x3C2 => 0x10,
            0x3C4 => self.seq_index as u32,
            0x3C5 => self
                .seq
                .get(self.seq_index as usize)
                .copied()
                .unwrap_or(0xFF) as u32,
            0x3C6 => self.dac_pel_mask as u32,
            // DAC state: 0 after a write index was set, 3 after a read index.
            0x3C7 => 0,
            0x3C8 => self.dac_write_index as u32,
            0x3C9 => {
                let v = self.dac[self.dac_read_index as usize][self.dac_component as usize];
                self.dac_component += 1;
                if self.dac_component == 3 {
                    self.dac_component = 0;
                    self.dac_read_index = self.dac_read_index.wrapping_add(1);
                }
                v as u32
            }
            0x3CC => self.misc as u32,
            0x3CE => self.gc_index as u32,
            0x3CF => self.gc.get(self.gc_index as usize).copied().unwrap_or(0xFF) as u32,
            _ => 0xFF,
        };
        // A word read of an index/data pair reads index then data.
        if size > 1 {
            let hi = self.pio_read(_region, offset + 1, 1, cx);
            return v | (hi << 8);
        }
        v
    }

    fn pio_write(&mut self, _region: usize, offset: u16, size: u8, value: u32, _cx: &mut IoCtx) {
        // `OUT DX, AX` to an index port writes the index then the data byte
        // to the next port, as on real VGA hardware.
        self.write_port(offset, value as u8);
        if size > 1 && offset + 1 < 0x30 {
            self.write_port(offset + 1, (value >> 8) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Request;

    fn io<R>(f: impl FnOnce(&mut IoCtx) -> R, now: u64) -> R {
        let (mut irq, mut req): (Vec<(u8, bool)>, Vec<Request>) = (vec![], vec![]);
        let mut cx = IoCtx::new(now, &mut irq, &mut req);
        f(&mut cx)
    }
    fn out(v: &mut Vga, port: u16, val: u8) {
        io(|cx| v.pio_write(0, port - BASE, 1, val as u32, cx), 0)
    }
    fn inb(v: &mut Vga, port: u16) -> u8 {
        io(|cx| v.pio_read(0, port - BASE, 1, cx), 0) as u8
    }

    #[test]
    fn cursor_registers_place_the_cursor() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut v = Vga::new();
        // Cursor at row 3, column 5 = cell 245 = 0x00F5.
        out(&mut v, 0x3D4, 0x0E);
        out(&mut v, 0x3D5, 0x00);
        out(&mut v, 0x3D4, 0x0F);
        out(&mut v, 0x3D5, 0xF5);
        out(&mut v, 0x3D4, 0x0F);
        assert_eq!(inb(&mut v, 0x3D5), 0xF5);
        mem.write(TEXT_BASE, b"H\x07i\x1f").unwrap();
        let s = v.screen(&mem);
        assert_eq!(s.cursor, Some((3, 5)));
        assert_eq!(s.cursor_shape, (0x0D, 0x0E));
        assert_eq!(
            s.cell(0, 1),
            Cell {
                ch: b'i',
                attr: 0x1F
            }
        );
        assert_eq!(s.text(), "Hi\n");
        // Cursor start bit 5 hides the cursor.
        out(&mut v, 0x3D4, 0x0A);
        out(&mut v, 0x3D5, 0x20);
        assert_eq!(v.screen(&mem).cursor, None);
        // A word write sets index and data at once.
        io(|cx| v.pio_write(0, 0x3D4 - BASE, 2, 0x0E0A, cx), 0);
        assert_eq!(v.crtc[0x0A], 0x0E);
    }

    #[test]
    fn start_address_scrolls_the_screen() {
        let mut mem = GuestMemory::new(1 << 20).unwrap();
        let mut v = Vga::new();
        mem.write(TEXT_BASE + 160, b"x\x07").unwrap();
        out(&mut v, 0x3D4, 0x0D);
        out(&mut v, 0x3D5, 80);
        assert_eq!(v.screen(&mem).cell(0, 0).ch, b'x');
    }

    #[test]
    fn retrace_bits_follow_virtual_time_and_reset_the_flip_flop() {
        let mut v = Vga::new();
        let line_ns = LINE_NS;
        assert_eq!(v.input_status_1(0), 0);
        assert_eq!(
            v.input_status_1(line_ns * 405 + 10),
            1,
            "vertical blanking, no sync"
        );
        assert_eq!(v.input_status_1(line_ns * 412 + 10), 9, "vertical retrace");
        assert_eq!(v.input_status_1(line_ns - 1), 1, "horizontal blanking");
        out(&mut v, 0x3C0, 0x10);
        assert!(v.attr_flip);
        inb(&mut v, 0x3DA);
        assert!(!v.attr_flip);
        // Attribute mode control bit 3 off: bright backgrounds, no blink.
        out(&mut v, 0x3C0, 0x10);
        out(&mut v, 0x3C0, 0x04);
        let mem = GuestMemory::new(1 << 20).unwrap();
        assert!(!v.screen(&mem).blink_enabled);
    }

    #[test]
    fn default_palette_and_dac() {
        let mem = GuestMemory::new(1 << 20).unwrap();
        let mut v = Vga::new();
        let s = v.screen(&mem);
        assert_eq!(s.palette[6], [0xAA, 0x55, 0x00], "brown, not dark yellow");
        assert_eq!(s.palette[15], [0xFF, 0xFF, 0xFF]);
        out(&mut v, 0x3C8, 0x01);
        for c in [0x3F, 0, 0] {
            out(&mut v, 0x3C9, c);
        }
        assert_eq!(v.screen(&mem).palette[1], [0xFF, 0, 0]);
        out(&mut v, 0x3C7, 0x01);
        assert_eq!(
            [inb(&mut v, 0x3C9), inb(&mut v, 0x3C9), inb(&mut v, 0x3C9)],
            [0x3F, 0, 0]
        );
    }

    #[test]
    fn cp437_mapping() {
        assert_eq!(cp437(b'A'), 'A');
        assert_eq!(cp437(0x01), '☺');
        assert_eq!(cp437(0xB0), '░');
        assert_eq!(cp437(0xDB), '█');
        assert_eq!(cp437(0xFF), '\u{a0}');
        assert_eq!(cp437(0xE1), 'ß');
    }
}
