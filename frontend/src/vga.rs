//! Showing the guest's VGA text screen: as pixels (the `--vga window`
//! minifb window), as coloured terminal text (`--vga term` and the step
//! UI).
//!
//! Pixels follow the VGA text mode's model (80x25 cells of 8x16 pixels,
//! 640x400): each cell's attribute byte selects a foreground colour (bits
//! 0-3) and a background colour (bits 4-6, or 4-7 when the attribute
//! controller's blink bit is off) from the 16-colour palette the machine
//! reports; with blinking on, bit 7 makes the character blink; the cursor
//! covers its start to end scan lines and blinks.
//!
//! The glyphs: the IBM VGA ROM font is not in any crate that builds here
//! (the `vga` crate needs nightly), so they come from GNU Unifont, whose
//! halfwidth glyphs are 8x16 bitmaps like the VGA's and cover every
//! character of code page 437 (mapped to Unicode by the machine's
//! `cp437`). A code point it lacks, or draws fullwidth, is a hollow box.

use machine::devices::vga::{cp437, Screen, COLS, ROWS};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

pub const CELL_W: usize = 8;
pub const CELL_H: usize = 16;
pub const WIDTH: usize = COLS * CELL_W;
pub const HEIGHT: usize = ROWS * CELL_H;

/// Frames per half period of the cursor blink and the character blink: a
/// VGA blinks the cursor every 16 frames and characters every 32 (at
/// about 70 Hz).
pub const CURSOR_HALF: u64 = 8;
pub const CHAR_HALF: u64 = 16;

/// The 16 scan lines of a character's glyph, bit 0 the leftmost pixel.
pub fn glyph(ch: u8) -> [u8; CELL_H] {
    if matches!(ch, 0 | 0x20 | 0xFF) {
        return [0; CELL_H];
    }
    match unifont::get_glyph(cp437(ch)) {
        // Unifont's rows have the leftmost pixel in bit 7.
        Some(unifont::Glyph::Halfwidth(rows)) => rows.map(u8::reverse_bits),
        _ => {
            let mut out = [0u8; CELL_H];
            out[2] = 0x7E;
            for row in out.iter_mut().take(12).skip(3) {
                *row = 0x42;
            }
            out[12] = 0x7E;
            out
        }
    }
}

fn rgb(c: [u8; 3]) -> u32 {
    (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32
}

/// The foreground and background palette indexes of an attribute, with
/// blinking characters shown as background in the off phase.
fn colours(s: &Screen, attr: u8, frame: u64) -> (usize, usize) {
    let fg = (attr & 0x0F) as usize;
    if s.blink_enabled {
        let bg = ((attr >> 4) & 0x07) as usize;
        let off = attr & 0x80 != 0 && (frame / CHAR_HALF) % 2 == 1;
        (if off { bg } else { fg }, bg)
    } else {
        (fg, (attr >> 4) as usize)
    }
}

/// Renders the screen into 640x400 0RGB pixels at blink frame `frame`.
pub fn render(s: &Screen, frame: u64) -> Vec<u32> {
    let mut px = vec![0u32; WIDTH * HEIGHT];
    for row in 0..ROWS {
        for col in 0..COLS {
            let cell = s.cell(row, col);
            let (fi, bi) = colours(s, cell.attr, frame);
            let (fg, bg) = (rgb(s.palette[fi]), rgb(s.palette[bi]));
            let g = glyph(cell.ch);
            for (y, bits) in g.iter().enumerate() {
                let base = (row * CELL_H + y) * WIDTH + col * CELL_W;
                for x in 0..CELL_W {
                    px[base + x] = if bits >> x & 1 != 0 { fg } else { bg };
                }
            }
        }
    }
    if let Some((row, col)) = s.cursor {
        let (start, end) = (s.cursor_shape.0 as usize, s.cursor_shape.1 as usize);
        if (frame / CURSOR_HALF).is_multiple_of(2) && start <= end && start < CELL_H {
            let (fi, _) = colours(s, s.cell(row, col).attr & 0x7F, 0);
            let fg = rgb(s.palette[fi]);
            for y in start..=end.min(CELL_H - 1) {
                let base = (row * CELL_H + y) * WIDTH + col * CELL_W;
                px[base..base + CELL_W].fill(fg);
            }
        }
    }
    px
}

/// FNV-1a over the pixels: the golden value the rendering tests compare.
pub fn pixel_hash(px: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in px {
        for b in p.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The top `rows` rows of the screen as coloured terminal lines.
pub fn term_lines(s: &Screen, rows: usize) -> Vec<Line<'static>> {
    let last = (0..ROWS)
        .rev()
        .find(|&r| {
            (0..COLS).any(|c| !matches!(s.cell(r, c).ch, 0 | 0x20) || s.cell(r, c).attr >> 4 != 0)
        })
        .map_or(0, |r| r + 1);
    (0..last.min(rows))
        .map(|row| {
            let spans: Vec<Span> = (0..COLS)
                .map(|col| {
                    let cell = s.cell(row, col);
                    let (fi, bi) = colours(s, cell.attr, 0);
                    let [fr, fg, fb] = s.palette[fi];
                    let [br, bg, bb] = s.palette[bi];
                    let ch = match cell.ch {
                        0 => ' ',
                        b => cp437(b),
                    };
                    Span::styled(
                        ch.to_string(),
                        Style::default()
                            .fg(Color::Rgb(fr, fg, fb))
                            .bg(Color::Rgb(br, bg, bb)),
                    )
                })
                .collect();
            Line::from(spans)
        })
        .collect()
}

/// The screen as ANSI-coloured text (24-bit colour), for `--vga term`.
pub fn ansi(s: &Screen) -> String {
    let mut out = String::new();
    for line in term_lines(s, ROWS) {
        let mut last: Option<Style> = None;
        for span in line.spans {
            if last != Some(span.style) {
                if let (Some(Color::Rgb(fr, fg, fb)), Some(Color::Rgb(br, bg, bb))) =
                    (span.style.fg, span.style.bg)
                {
                    out.push_str(&format!("\x1b[38;2;{fr};{fg};{fb};48;2;{br};{bg};{bb}m"));
                }
                last = Some(span.style);
            }
            out.push_str(&span.content);
        }
        out.push_str("\x1b[0m\n");
    }
    out
}

/// Where `--vga` shows the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VgaMode {
    /// Not shown (the default).
    #[default]
    None,
    /// A window (minifb), 640x400 pixels scaled to 1280x800.
    Window,
    /// Coloured text in the terminal (stderr), when the run ends.
    Term,
}

/// A minifb window showing the screen.
pub struct VgaWindow {
    win: minifb::Window,
    frame: u64,
}

impl VgaWindow {
    /// Opens the window, or says why it cannot (no display). The message
    /// ends with what to do instead, so minifb's reason is in it, in
    /// brackets, rather than a cause printed after it.
    pub fn open(title: &str) -> anyhow::Result<VgaWindow> {
        let opts = minifb::WindowOptions {
            scale: minifb::Scale::X2,
            ..minifb::WindowOptions::default()
        };
        let win = minifb::Window::new(title, WIDTH, HEIGHT, opts).map_err(|e| {
            anyhow::anyhow!("--vga window: cannot open a window ({e}); is there a display? --vga term draws the screen in the terminal")
        })?;
        Ok(VgaWindow { win, frame: 0 })
    }

    /// Draws the screen; false once the user closed the window.
    pub fn show(&mut self, s: &Screen) -> bool {
        if !self.win.is_open() {
            return false;
        }
        self.frame += 1;
        let px = render(s, self.frame);
        self.win.update_with_buffer(&px, WIDTH, HEIGHT).is_ok()
    }

    /// The keys pressed and released in the window since the last call,
    /// as PS/2 key events for the guest's keyboard (held keys repeat, as a
    /// keyboard's typematic repeat sends make codes again).
    pub fn take_keys(&mut self) -> Vec<(machine::devices::ps2kbd::Key, bool)> {
        let mut out = Vec::new();
        for k in self.win.get_keys_pressed(minifb::KeyRepeat::Yes) {
            out.extend(guest_key(k).map(|g| (g, true)));
        }
        for k in self.win.get_keys_released() {
            out.extend(guest_key(k).map(|g| (g, false)));
        }
        out
    }

    /// Keeps showing `s` (blinking) until the window is closed or Esc.
    pub fn wait_closed(&mut self, s: &Screen) {
        self.win.set_target_fps(60);
        while self.win.is_open() && !self.win.is_key_down(minifb::Key::Escape) {
            if !self.show(s) {
                break;
            }
        }
    }
}

/// The PS/2 key a window key is (None for keys a PC keyboard lacks).
fn guest_key(k: minifb::Key) -> Option<machine::devices::ps2kbd::Key> {
    use machine::devices::ps2kbd::Key as G;
    use minifb::Key as K;
    Some(match k {
        K::Key0 => G::Digit0,
        K::Key1 => G::Digit1,
        K::Key2 => G::Digit2,
        K::Key3 => G::Digit3,
        K::Key4 => G::Digit4,
        K::Key5 => G::Digit5,
        K::Key6 => G::Digit6,
        K::Key7 => G::Digit7,
        K::Key8 => G::Digit8,
        K::Key9 => G::Digit9,
        K::A => G::A,
        K::B => G::B,
        K::C => G::C,
        K::D => G::D,
        K::E => G::E,
        K::F => G::F,
        K::G => G::G,
        K::H => G::H,
        K::I => G::I,
        K::J => G::J,
        K::K => G::K,
        K::L => G::L,
        K::M => G::M,
        K::N => G::N,
        K::O => G::O,
        K::P => G::P,
        K::Q => G::Q,
        K::R => G::R,
        K::S => G::S,
        K::T => G::T,
        K::U => G::U,
        K::V => G::V,
        K::W => G::W,
        K::X => G::X,
        K::Y => G::Y,
        K::Z => G::Z,
        K::F1 => G::F1,
        K::F2 => G::F2,
        K::F3 => G::F3,
        K::F4 => G::F4,
        K::F5 => G::F5,
        K::F6 => G::F6,
        K::F7 => G::F7,
        K::F8 => G::F8,
        K::F9 => G::F9,
        K::F10 => G::F10,
        K::F11 => G::F11,
        K::F12 => G::F12,
        K::Down => G::Down,
        K::Left => G::Left,
        K::Right => G::Right,
        K::Up => G::Up,
        K::Apostrophe => G::Apostrophe,
        K::Backquote => G::Grave,
        K::Backslash => G::Backslash,
        K::Comma => G::Comma,
        K::Equal => G::Equal,
        K::LeftBracket => G::LeftBracket,
        K::Minus => G::Minus,
        K::Period => G::Period,
        K::RightBracket => G::RightBracket,
        K::Semicolon => G::Semicolon,
        K::Slash => G::Slash,
        K::Backspace => G::Backspace,
        K::Delete => G::Delete,
        K::End => G::End,
        K::Enter => G::Enter,
        K::Escape => G::Escape,
        K::Home => G::Home,
        K::Insert => G::Insert,
        K::Menu => G::Menu,
        K::PageDown => G::PageDown,
        K::PageUp => G::PageUp,
        K::Pause => G::Pause,
        K::Space => G::Space,
        K::Tab => G::Tab,
        K::NumLock => G::NumLock,
        K::CapsLock => G::CapsLock,
        K::ScrollLock => G::ScrollLock,
        K::LeftShift => G::LeftShift,
        K::RightShift => G::RightShift,
        K::LeftCtrl => G::LeftCtrl,
        K::RightCtrl => G::RightCtrl,
        K::NumPad0 => G::Kp0,
        K::NumPad1 => G::Kp1,
        K::NumPad2 => G::Kp2,
        K::NumPad3 => G::Kp3,
        K::NumPad4 => G::Kp4,
        K::NumPad5 => G::Kp5,
        K::NumPad6 => G::Kp6,
        K::NumPad7 => G::Kp7,
        K::NumPad8 => G::Kp8,
        K::NumPad9 => G::Kp9,
        K::NumPadDot => G::KpDecimal,
        K::NumPadSlash => G::KpDivide,
        K::NumPadAsterisk => G::KpMultiply,
        K::NumPadMinus => G::KpMinus,
        K::NumPadPlus => G::KpPlus,
        K::NumPadEnter => G::KpEnter,
        K::LeftAlt => G::LeftAlt,
        K::RightAlt => G::RightAlt,
        K::LeftSuper => G::LeftMeta,
        K::RightSuper => G::RightMeta,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::devices::vga::Cell;

    #[test]
    fn window_keys_map_to_distinct_pc_keys() {
        use std::collections::HashSet;
        let keys = [
            minifb::Key::A,
            minifb::Key::Enter,
            minifb::Key::NumPadEnter,
            minifb::Key::LeftCtrl,
            minifb::Key::RightCtrl,
            minifb::Key::Up,
            minifb::Key::Key0,
        ];
        let mapped: HashSet<_> = keys.iter().filter_map(|&k| guest_key(k)).collect();
        assert_eq!(mapped.len(), keys.len());
        assert_eq!(guest_key(minifb::Key::F13), None);
        assert_eq!(
            guest_key(minifb::Key::NumPadEnter),
            Some(machine::devices::ps2kbd::Key::KpEnter)
        );
    }

    fn screen() -> Screen {
        // The default VGA palette's first 16 DAC colours.
        let mut palette = [[0u8; 3]; 16];
        for (i, p) in palette.iter_mut().enumerate() {
            let hi = if i & 8 != 0 { 0x55 } else { 0 };
            let lo = 0xAA;
            *p = [
                hi + if i & 4 != 0 { lo } else { 0 },
                hi + if i & 2 != 0 { lo } else { 0 },
                hi + if i & 1 != 0 { lo } else { 0 },
            ];
        }
        palette[6] = [0xAA, 0x55, 0x00]; // brown
        let mut cells = vec![
            Cell {
                ch: b' ',
                attr: 0x07
            };
            ROWS * COLS
        ];
        for (i, b) in b"Hello, VGA".iter().enumerate() {
            cells[i] = Cell { ch: *b, attr: 0x1F };
        }
        cells[COLS] = Cell {
            ch: 0xDB,
            attr: 0x8C,
        }; // blinking red block
        cells[COLS + 1] = Cell {
            ch: 0xC9,
            attr: 0x0E,
        }; // box corner
        Screen {
            cells,
            cursor: Some((1, 2)),
            cursor_shape: (14, 15),
            blink_enabled: true,
            palette,
        }
    }

    #[test]
    fn pixels_follow_attributes_blink_and_cursor() {
        let s = screen();
        let on = render(&s, 0);
        assert_eq!(on.len(), 640 * 400);
        // 'H' at (0,0): white (15) on blue (1), pixel for pixel.
        let h = glyph(b'H');
        for y in 0..16 {
            for x in 0..8 {
                let want = if h[y] >> x & 1 != 0 {
                    0xFFFFFF
                } else {
                    0x0000AA
                };
                assert_eq!(on[y * WIDTH + x], want, "H at {x},{y}");
            }
        }
        let art: Vec<String> = h
            .iter()
            .map(|r| {
                (0..8)
                    .map(|x| if r >> x & 1 != 0 { '#' } else { '.' })
                    .collect()
            })
            .collect();
        // Unifont's H: blank above and below, two uprights and one bar.
        assert_eq!(art[0], "........");
        assert_eq!(art[15], "........");
        let bars = art.iter().filter(|r| r.matches('#').count() >= 5).count();
        assert_eq!(bars, 1, "{art:?}");
        // The blinking full block (0xDB): red in the on phase, its
        // background (black) in the off phase.
        assert_eq!(on[16 * WIDTH + 3], 0xFF5555);
        let off = render(&s, CHAR_HALF);
        assert_eq!(off[16 * WIDTH + 3], 0x000000);
        // The cursor at row 1 column 2: scan lines 14-15 in the cell's
        // foreground (light grey on a blank cell) in the on phase only.
        let cur = (16 + 14) * WIDTH + 2 * 8;
        assert_eq!(on[cur], 0xAAAAAA);
        assert_eq!(render(&s, CURSOR_HALF)[cur], 0x000000);
        // With blinking off, bit 7 selects a bright background.
        let mut bright = s.clone();
        bright.blink_enabled = false;
        let px = render(&bright, CHAR_HALF);
        assert_eq!(px[16 * WIDTH + 3], 0xFF5555, "no blink");
        assert_eq!(glyph(0xDB), [0xFF; 16], "the full block fills the cell");
    }

    #[test]
    fn golden_rendering_hash() {
        // The whole frame, pinned: any change to the font mapping, colours
        // or cursor drawing shows up here. (Reviewed as an image: set
        // RINGLAB_VGA_DUMP=FILE.ppm to write the frame.)
        let px = render(&screen(), 0);
        if let Some(path) = std::env::var_os("RINGLAB_VGA_DUMP") {
            let mut ppm = format!("P6 {WIDTH} {HEIGHT} 255\n").into_bytes();
            for p in &px {
                ppm.extend_from_slice(&p.to_be_bytes()[1..]);
            }
            std::fs::write(path, ppm).unwrap();
        }
        assert_eq!(pixel_hash(&px), 7161636569069447157);
    }

    #[test]
    fn terminal_lines_carry_the_colours() {
        let s = screen();
        let lines = term_lines(&s, 25);
        assert_eq!(lines.len(), 2);
        let first = &lines[0].spans[0];
        assert_eq!(first.content, "H");
        assert_eq!(first.style.fg, Some(Color::Rgb(0xFF, 0xFF, 0xFF)));
        assert_eq!(first.style.bg, Some(Color::Rgb(0, 0, 0xAA)));
        assert_eq!(lines[1].spans[1].content, "╔");
        assert!(ansi(&s).starts_with("\x1b[38;2;255;255;255;48;2;0;0;170mHello, VGA"));
    }
}
