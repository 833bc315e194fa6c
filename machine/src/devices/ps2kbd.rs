//! IBM PS/2 101/102-key ("Enhanced", MF II) keyboard behind the i8042.
//!
//! Follows the IBM PS/2 "Keyboard and Auxiliary Device Controller" and
//! "Keyboards (101- and 102-Key)" technical references: the commands from
//! the system (ED-FF) with their responses and scan-code sets 1, 2 and 3
//! (set 1 derived from set 2 through the 8042's translation table, which
//! lives with the controller in `i8042.rs`). Facts were checked against
//! QEMU `hw/input/ps2.c`, Bochs `iodev/keyboard.cc` and VirtualBox
//! `DevPS2K.cpp`.
//!
//! Host-independent keys. [`Key`] names the keys of the US 101/104-key
//! layout (plus the 102nd ISO key); a frontend maps its host key codes to
//! it, and [`parse_key_text`] turns text into press/release sequences on a
//! US layout for scripted typing.
//!
//! Buffers. The keyboard's output buffer holds [`BUFFER_LEN`] bytes of scan
//! codes, as on real keyboards and QEMU's PS/2 queue. Responses to commands
//! are kept apart and go first (VirtualBox: "command responses do not
//! disturb stored keystrokes and always have priority"). Host key events
//! wait in a separate, unbounded queue and are scanned into the buffer only
//! when their whole sequence fits, so typing any amount of text loses
//! nothing and never splits a sequence.
//!
//! Choices where the references differ or are silent:
//! - While scanning is disabled (F5) host key events wait in the host queue
//!   instead of being dropped as a real keyboard and QEMU drop them: to the
//!   guest that looks like keys pressed after scanning resumed, and scripted
//!   input survives a guest's keyboard initialisation.
//! - Commands that clear the output buffer (F4, F5, F6, FF, and F0 with a
//!   new set) return the events whose sequences had not started to leave to
//!   the host queue (re-encoded in the set then in force); only the rest of
//!   a sequence the controller already took part of is dropped.
//! - Set 3 sends make and break codes for every key (as after F8 "all keys
//!   make/break", QEMU's behaviour); F7-FD are acknowledged and otherwise
//!   ignored. No typematic repeat: the host sends repeated presses if it
//!   wants them. The "fake shift" prefixes real keyboards add to the gray
//!   navigation keys under NumLock or Shift are not sent (drivers discard
//!   them); PrintScreen and Pause do follow the modifiers (SysRq with Alt,
//!   E0 7C with Shift or Ctrl, Break with Ctrl).
//! - BAT completes at once (real keyboards take 300-500 ms).

use std::collections::VecDeque;

use crate::devices::i8042::translate_to_set1;

/// Scan-code bytes the keyboard buffers (IBM: 16 bytes; QEMU's queue too).
pub const BUFFER_LEN: usize = 16;
/// Command responses kept at most: a guest that sends commands without
/// reading the answers loses the oldest beyond this.
const RESPONSE_LEN: usize = 16;

// Commands from the system (IBM PS/2 keyboard reference, "Commands").
const CMD_SET_LEDS: u8 = 0xED;
const CMD_ECHO: u8 = 0xEE;
const CMD_SCAN_SET: u8 = 0xF0;
const CMD_IDENTIFY: u8 = 0xF2;
const CMD_TYPEMATIC: u8 = 0xF3;
const CMD_ENABLE: u8 = 0xF4;
const CMD_DEFAULT_DISABLE: u8 = 0xF5;
const CMD_SET_DEFAULT: u8 = 0xF6;
/// F7-FA: set all keys typematic / make-break / make / all three (set 3).
const CMD_ALL_KEYS_FIRST: u8 = 0xF7;
const CMD_ALL_KEYS_LAST: u8 = 0xFA;
/// FB-FD: set key type for the keys that follow (set 3).
const CMD_KEY_TYPE_FIRST: u8 = 0xFB;
const CMD_KEY_TYPE_LAST: u8 = 0xFD;
const CMD_RESEND: u8 = 0xFE;
const CMD_RESET: u8 = 0xFF;
/// Bytes at or above this are commands even where a parameter is awaited
/// (no parameter takes such a value; VirtualBox does the same).
const FIRST_COMMAND: u8 = CMD_SET_LEDS;

// Responses.
const ACK: u8 = 0xFA;
const BAT_OK: u8 = 0xAA;
const RESEND: u8 = 0xFE;
const ECHO: u8 = 0xEE;
/// Identify: an MF II keyboard answers AB 83 (the 8042 translates 83 to 41).
const ID: [u8; 2] = [0xAB, 0x83];

/// Typematic byte after reset: 500 ms delay, 10.9 characters per second.
const DEFAULT_TYPEMATIC: u8 = 0x2B;
/// The set-2 (and set-3) prefix of a break code.
pub const BREAK_PREFIX: u8 = 0xF0;
/// The prefix of the keys the 101-key keyboard added (both sets 1 and 2).
pub const EXTENDED_PREFIX: u8 = 0xE0;

/// The three scan-code sets of a PS/2 keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ScanSet {
    /// The PC/XT codes: make code, break = make | 0x80.
    Set1,
    /// The AT codes, every PS/2 keyboard's default: break = F0 make.
    Set2,
    /// The PS/2 "terminal" set: one byte per key, break = F0 make.
    Set3,
}

impl ScanSet {
    /// The number the F0 command uses for the set.
    pub fn number(self) -> u8 {
        match self {
            ScanSet::Set1 => 1,
            ScanSet::Set2 => 2,
            ScanSet::Set3 => 3,
        }
    }

    pub fn from_number(n: u8) -> Option<ScanSet> {
        match n {
            1 => Some(ScanSet::Set1),
            2 => Some(ScanSet::Set2),
            3 => Some(ScanSet::Set3),
            _ => None,
        }
    }
}

/// A key of the US 101/104-key layout (and the ISO 102nd key), named for
/// its US legend, independent of any host's key codes.
#[rustfmt::skip]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Key {
    Escape, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12,
    PrintScreen, ScrollLock, Pause,
    /// `` ` ~ ``
    Grave,
    Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9, Digit0,
    /// `- _`
    Minus,
    /// `= +`
    Equal,
    Backspace, Tab,
    A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W, X, Y, Z,
    /// `[ {`
    LeftBracket,
    /// `] }`
    RightBracket,
    /// `\ |` (key 29 above Enter)
    Backslash,
    CapsLock,
    /// `; :`
    Semicolon,
    /// `' "`
    Apostrophe,
    Enter,
    LeftShift,
    /// The ISO keyboard's extra key left of Z (key 45).
    IntlBackslash,
    /// `, <`
    Comma,
    /// `. >`
    Period,
    /// `/ ?`
    Slash,
    RightShift, LeftCtrl,
    /// Left Windows (GUI) key.
    LeftMeta,
    LeftAlt, Space, RightAlt,
    /// Right Windows (GUI) key.
    RightMeta,
    /// The application (context menu) key.
    Menu,
    RightCtrl,
    Insert, Home, PageUp, Delete, End, PageDown,
    Up, Left, Down, Right,
    NumLock, KpDivide, KpMultiply, KpMinus, KpPlus, KpEnter, KpDecimal,
    Kp0, Kp1, Kp2, Kp3, Kp4, Kp5, Kp6, Kp7, Kp8, Kp9,
}

/// A key's set-2 code.
#[derive(Clone, Copy)]
enum Set2 {
    Plain(u8),
    /// E0-prefixed: the keys the 101-key keyboard added.
    Ext(u8),
    PrintScreen,
    Pause,
}

impl Key {
    /// Every key, in the order of the enum.
    #[rustfmt::skip]
    pub const ALL: [Key; 105] = {
        use Key::*;
        [
            Escape, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12,
            PrintScreen, ScrollLock, Pause, Grave,
            Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9, Digit0,
            Minus, Equal, Backspace, Tab,
            A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W, X, Y, Z,
            LeftBracket, RightBracket, Backslash, CapsLock, Semicolon, Apostrophe, Enter,
            LeftShift, IntlBackslash, Comma, Period, Slash, RightShift, LeftCtrl, LeftMeta,
            LeftAlt, Space, RightAlt, RightMeta, Menu, RightCtrl,
            Insert, Home, PageUp, Delete, End, PageDown, Up, Left, Down, Right,
            NumLock, KpDivide, KpMultiply, KpMinus, KpPlus, KpEnter, KpDecimal,
            Kp0, Kp1, Kp2, Kp3, Kp4, Kp5, Kp6, Kp7, Kp8, Kp9,
        ]
    };

    /// The key's set-2 and set-3 codes (IBM keyboard reference, scan code
    /// tables; set 1 follows from set 2 through the 8042's translation table,
    /// [`crate::devices::i8042::SET2_TO_SET1`]).
    #[rustfmt::skip]
    fn codes(self) -> (Set2, u8) {
        use Key::*;
        use Set2::{Ext, Plain};
        match self {
            Escape => (Plain(0x76), 0x08), F1 => (Plain(0x05), 0x07), F2 => (Plain(0x06), 0x0F),
            F3 => (Plain(0x04), 0x17), F4 => (Plain(0x0C), 0x1F), F5 => (Plain(0x03), 0x27),
            F6 => (Plain(0x0B), 0x2F), F7 => (Plain(0x83), 0x37), F8 => (Plain(0x0A), 0x3F),
            F9 => (Plain(0x01), 0x47), F10 => (Plain(0x09), 0x4F), F11 => (Plain(0x78), 0x56),
            F12 => (Plain(0x07), 0x5E), PrintScreen => (Set2::PrintScreen, 0x57),
            ScrollLock => (Plain(0x7E), 0x5F), Pause => (Set2::Pause, 0x62),
            Grave => (Plain(0x0E), 0x0E), Digit1 => (Plain(0x16), 0x16),
            Digit2 => (Plain(0x1E), 0x1E), Digit3 => (Plain(0x26), 0x26),
            Digit4 => (Plain(0x25), 0x25), Digit5 => (Plain(0x2E), 0x2E),
            Digit6 => (Plain(0x36), 0x36), Digit7 => (Plain(0x3D), 0x3D),
            Digit8 => (Plain(0x3E), 0x3E), Digit9 => (Plain(0x46), 0x46),
            Digit0 => (Plain(0x45), 0x45), Minus => (Plain(0x4E), 0x4E),
            Equal => (Plain(0x55), 0x55), Backspace => (Plain(0x66), 0x66),
            Tab => (Plain(0x0D), 0x0D), A => (Plain(0x1C), 0x1C), B => (Plain(0x32), 0x32),
            C => (Plain(0x21), 0x21), D => (Plain(0x23), 0x23), E => (Plain(0x24), 0x24),
            F => (Plain(0x2B), 0x2B), G => (Plain(0x34), 0x34), H => (Plain(0x33), 0x33),
            I => (Plain(0x43), 0x43), J => (Plain(0x3B), 0x3B), K => (Plain(0x42), 0x42),
            L => (Plain(0x4B), 0x4B), M => (Plain(0x3A), 0x3A), N => (Plain(0x31), 0x31),
            O => (Plain(0x44), 0x44), P => (Plain(0x4D), 0x4D), Q => (Plain(0x15), 0x15),
            R => (Plain(0x2D), 0x2D), S => (Plain(0x1B), 0x1B), T => (Plain(0x2C), 0x2C),
            U => (Plain(0x3C), 0x3C), V => (Plain(0x2A), 0x2A), W => (Plain(0x1D), 0x1D),
            X => (Plain(0x22), 0x22), Y => (Plain(0x35), 0x35), Z => (Plain(0x1A), 0x1A),
            LeftBracket => (Plain(0x54), 0x54), RightBracket => (Plain(0x5B), 0x5B),
            Backslash => (Plain(0x5D), 0x5C), CapsLock => (Plain(0x58), 0x14),
            Semicolon => (Plain(0x4C), 0x4C), Apostrophe => (Plain(0x52), 0x52),
            Enter => (Plain(0x5A), 0x5A), LeftShift => (Plain(0x12), 0x12),
            IntlBackslash => (Plain(0x61), 0x13), Comma => (Plain(0x41), 0x41),
            Period => (Plain(0x49), 0x49), Slash => (Plain(0x4A), 0x4A),
            RightShift => (Plain(0x59), 0x59), LeftCtrl => (Plain(0x14), 0x11),
            LeftMeta => (Ext(0x1F), 0x8B), LeftAlt => (Plain(0x11), 0x19),
            Space => (Plain(0x29), 0x29), RightAlt => (Ext(0x11), 0x39),
            RightMeta => (Ext(0x27), 0x8C), Menu => (Ext(0x2F), 0x8D),
            RightCtrl => (Ext(0x14), 0x58), Insert => (Ext(0x70), 0x67), Home => (Ext(0x6C), 0x6E),
            PageUp => (Ext(0x7D), 0x6F), Delete => (Ext(0x71), 0x64), End => (Ext(0x69), 0x65),
            PageDown => (Ext(0x7A), 0x6D), Up => (Ext(0x75), 0x63), Left => (Ext(0x6B), 0x61),
            Down => (Ext(0x72), 0x60), Right => (Ext(0x74), 0x6A), NumLock => (Plain(0x77), 0x76),
            KpDivide => (Ext(0x4A), 0x77), KpMultiply => (Plain(0x7C), 0x7E),
            KpMinus => (Plain(0x7B), 0x84), KpPlus => (Plain(0x79), 0x7C),
            KpEnter => (Ext(0x5A), 0x79), KpDecimal => (Plain(0x71), 0x71),
            Kp0 => (Plain(0x70), 0x70), Kp1 => (Plain(0x69), 0x69), Kp2 => (Plain(0x72), 0x72),
            Kp3 => (Plain(0x7A), 0x7A), Kp4 => (Plain(0x6B), 0x6B), Kp5 => (Plain(0x73), 0x73),
            Kp6 => (Plain(0x74), 0x74), Kp7 => (Plain(0x6C), 0x6C), Kp8 => (Plain(0x75), 0x75),
            Kp9 => (Plain(0x7D), 0x7D),
        }
    }

    /// The bytes a keyboard in scan-code set `set` sends when the key is
    /// pressed (`pressed`) or released, with no modifier held. Pause has no
    /// break code in sets 1 and 2 (its make code is the whole press and
    /// release), so its release is empty there.
    pub fn make_break(self, set: ScanSet, pressed: bool) -> Vec<u8> {
        let (set2, set3) = self.codes();
        match set {
            ScanSet::Set3 => plain_set2_or_3(set3, pressed),
            ScanSet::Set2 => set2_sequence(set2, pressed),
            ScanSet::Set1 => translate_to_set1(&set2_sequence(set2, pressed)),
        }
    }
}

fn plain_set2_or_3(code: u8, pressed: bool) -> Vec<u8> {
    if pressed {
        vec![code]
    } else {
        vec![BREAK_PREFIX, code]
    }
}

fn set2_sequence(code: Set2, pressed: bool) -> Vec<u8> {
    match (code, pressed) {
        (Set2::Plain(c), _) => plain_set2_or_3(c, pressed),
        (Set2::Ext(c), true) => vec![EXTENDED_PREFIX, c],
        (Set2::Ext(c), false) => vec![EXTENDED_PREFIX, BREAK_PREFIX, c],
        // A "fake" left shift (E0 12) and the key's own E0 7C.
        (Set2::PrintScreen, true) => vec![0xE0, 0x12, 0xE0, 0x7C],
        (Set2::PrintScreen, false) => vec![0xE0, 0xF0, 0x7C, 0xE0, 0xF0, 0x12],
        // Ctrl (E1-prefixed 14) and NumLock (77), made and broken at once.
        (Set2::Pause, true) => vec![0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77],
        (Set2::Pause, false) => vec![],
    }
}

// ---- text to keystrokes -------------------------------------------------

/// Why a text cannot be typed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    /// A character no key of a US keyboard produces.
    #[error("character {ch:?} (U+{:04X}) at position {pos} has no key on a US keyboard", *ch as u32)]
    Unrepresentable { ch: char, pos: usize },
    /// A backslash escape that is not one of \n \r \t \b \e \\ \' \" \xNN.
    #[error("bad escape {text:?} at position {pos}")]
    BadEscape { text: String, pos: usize },
}

/// How a character is typed: the key and the modifiers held around it.
#[derive(Clone, Copy)]
struct Stroke {
    key: Key,
    shift: bool,
    ctrl: bool,
}

const fn plain(key: Key) -> Stroke {
    Stroke {
        key,
        shift: false,
        ctrl: false,
    }
}

const fn shifted(key: Key) -> Stroke {
    Stroke {
        key,
        shift: true,
        ctrl: false,
    }
}

/// The letter keys in alphabetical order.
const LETTERS: [Key; 26] = {
    use Key::*;
    [
        A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W, X, Y, Z,
    ]
};

const DIGITS: [Key; 10] = {
    use Key::*;
    [
        Digit0, Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9,
    ]
};

/// The US layout: which key (and Shift) types `c`. Control characters
/// that have a key of their own use it; the other C0 controls 0x01-0x1A
/// are Ctrl + letter, as a terminal produces them.
#[rustfmt::skip]
fn stroke_for(c: char) -> Option<Stroke> {
    use Key::*;
    let s = match c {
        'a'..='z' => plain(LETTERS[c as usize - 'a' as usize]),
        'A'..='Z' => shifted(LETTERS[c as usize - 'A' as usize]),
        '0'..='9' => plain(DIGITS[c as usize - '0' as usize]),
        ' ' => plain(Space),
        '\n' | '\r' => plain(Enter),
        '\t' => plain(Tab),
        '\x08' => plain(Backspace),
        '\x1b' => plain(Escape),
        '\x01'..='\x1a' => Stroke {
            key: LETTERS[c as usize - 1],
            shift: false,
            ctrl: true,
        },
        '!' => shifted(Digit1), '@' => shifted(Digit2), '#' => shifted(Digit3),
        '$' => shifted(Digit4), '%' => shifted(Digit5), '^' => shifted(Digit6),
        '&' => shifted(Digit7), '*' => shifted(Digit8), '(' => shifted(Digit9),
        ')' => shifted(Digit0),
        '`' => plain(Grave), '~' => shifted(Grave),
        '-' => plain(Minus), '_' => shifted(Minus),
        '=' => plain(Equal), '+' => shifted(Equal),
        '[' => plain(LeftBracket), '{' => shifted(LeftBracket),
        ']' => plain(RightBracket), '}' => shifted(RightBracket),
        '\\' => plain(Backslash), '|' => shifted(Backslash),
        ';' => plain(Semicolon), ':' => shifted(Semicolon),
        '\'' => plain(Apostrophe), '"' => shifted(Apostrophe),
        ',' => plain(Comma), '<' => shifted(Comma),
        '.' => plain(Period), '>' => shifted(Period),
        '/' => plain(Slash), '?' => shifted(Slash),
        _ => return None,
    };
    Some(s)
}

/// Turns `text` into key presses and releases on a US keyboard: each
/// character is pressed and released, inside a press and release of Left
/// Shift (capitals, shifted symbols) or Left Ctrl (control characters
/// 0x01-0x1A other than \b \t \n \r). Escapes as in C: `\n` and `\r` Enter,
/// `\t` Tab, `\b` Backspace, `\e` Escape, `\\`, `\'`, `\"`, and `\xNN` for
/// an ASCII character (two hex digits, below 0x80). Positions in errors
/// count characters from 0.
pub fn parse_key_text(s: &str) -> Result<Vec<(Key, bool)>, KeyTextError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::with_capacity(chars.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let pos = i;
        let c = if chars[i] == '\\' {
            let (c, used) = unescape(&chars[i..]).ok_or_else(|| KeyTextError::BadEscape {
                text: chars[i..chars.len().min(i + 4)].iter().collect(),
                pos,
            })?;
            i += used;
            c
        } else {
            i += 1;
            chars[pos]
        };
        let st = stroke_for(c).ok_or(KeyTextError::Unrepresentable { ch: c, pos })?;
        let modifier = if st.ctrl {
            Some(Key::LeftCtrl)
        } else if st.shift {
            Some(Key::LeftShift)
        } else {
            None
        };
        if let Some(m) = modifier {
            out.push((m, true));
        }
        out.push((st.key, true));
        out.push((st.key, false));
        if let Some(m) = modifier {
            out.push((m, false));
        }
    }
    Ok(out)
}

/// The character a backslash escape at the start of `s` stands for, and how
/// many characters it takes.
fn unescape(s: &[char]) -> Option<(char, usize)> {
    let c = match s.get(1)? {
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'b' => '\x08',
        'e' => '\x1b',
        '\\' => '\\',
        '\'' => '\'',
        '"' => '"',
        'x' => {
            let hi = s.get(2)?.to_digit(16)?;
            let lo = s.get(3)?.to_digit(16)?;
            let v = hi * 16 + lo;
            return (v < 0x80).then(|| (char::from(v as u8), 4));
        }
        _ => return None,
    };
    Some((c, 2))
}

// ---- the keyboard -------------------------------------------------------

/// A byte the keyboard sent to the controller, as the controller keeps it
/// until the guest reads it; given back with [`Ps2Keyboard::unsend`] when
/// the controller must put something else in its output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub byte: u8,
    origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Response,
    /// A scan code; the event it begins, on the first byte of a sequence.
    Scan(Option<(Key, bool)>),
}

impl Sent {
    /// True when this byte begins the sequence of a host key event.
    pub fn starts_key(&self) -> bool {
        matches!(self.origin, Origin::Scan(Some(_)))
    }
}

/// What the next byte from the system means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Command,
    Leds,
    Typematic,
    ScanSet,
    /// After FB-FD: set-3 key codes, acknowledged and ignored, until the
    /// next command.
    KeyList,
}

/// Modifier keys the keyboard tracks for PrintScreen and Pause.
const MOD_SHIFT: u8 = 0x01;
const MOD_CTRL: u8 = 0x02;
const MOD_ALT: u8 = 0x04;

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ps2KeyboardStats {
    /// Bytes received from the controller (commands and parameters).
    pub bytes_received: u64,
    pub resets: u64,
    pub resends: u64,
    /// Command bytes answered with Resend (FE) because they are unknown.
    pub unknown_commands: u64,
    /// Host key events scanned into the output buffer.
    pub key_events: u64,
    /// Bytes handed to the controller (responses and scan codes).
    pub bytes_sent: u64,
    /// Times a command cleared the output buffer.
    pub buffer_clears: u64,
    /// Events moved back to the host queue by those clears.
    pub events_requeued: u64,
    /// Bytes lost: the rest of a sequence cut by a clear, or responses
    /// beyond the response queue's bound.
    pub bytes_dropped: u64,
}

/// The keyboard: command interpreter, output buffer and host key queue.
pub struct Ps2Keyboard {
    set: ScanSet,
    scanning: bool,
    leds: u8,
    typematic: u8,
    awaiting: Awaiting,
    responses: VecDeque<u8>,
    /// Scan codes, each with the event it begins (first byte only).
    buffer: VecDeque<(u8, Option<(Key, bool)>)>,
    host: VecDeque<(Key, bool)>,
    mods_left: u8,
    mods_right: u8,
    last_sent: Option<u8>,
    stats: Ps2KeyboardStats,
}

impl Default for Ps2Keyboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Ps2Keyboard {
    /// A keyboard after its power-on BAT: set 2, scanning, LEDs off.
    pub fn new() -> Ps2Keyboard {
        Ps2Keyboard {
            set: ScanSet::Set2,
            scanning: true,
            leds: 0,
            typematic: DEFAULT_TYPEMATIC,
            awaiting: Awaiting::Command,
            responses: VecDeque::new(),
            buffer: VecDeque::with_capacity(BUFFER_LEN),
            host: VecDeque::new(),
            mods_left: 0,
            mods_right: 0,
            last_sent: None,
            stats: Ps2KeyboardStats::default(),
        }
    }

    /// Power-on reset (the machine's, not the FF command): everything back
    /// to [`new`](Self::new) except the host queue (which gets back the
    /// buffered events, as a clear does) and the counters.
    pub fn power_on(&mut self) {
        self.clear_buffer();
        let host = std::mem::take(&mut self.host);
        let stats = std::mem::take(&mut self.stats);
        *self = Ps2Keyboard::new();
        self.host = host;
        self.stats = stats;
        self.scan_host_events();
    }

    pub fn scan_set(&self) -> ScanSet {
        self.set
    }

    pub fn scanning(&self) -> bool {
        self.scanning
    }

    /// LED state from the last ED command: bit 0 ScrollLock, 1 NumLock,
    /// 2 CapsLock.
    pub fn leds(&self) -> u8 {
        self.leds
    }

    pub fn typematic(&self) -> u8 {
        self.typematic
    }

    pub fn stats(&self) -> &Ps2KeyboardStats {
        &self.stats
    }

    /// Host key events not yet scanned into the output buffer.
    pub fn pending_host_events(&self) -> usize {
        self.host.len()
    }

    /// Scan-code bytes in the output buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// True when the keyboard has a byte to send.
    pub fn has_output(&self) -> bool {
        !self.responses.is_empty() || !self.buffer.is_empty()
    }

    /// Discards host key events not yet scanned.
    pub fn clear_host_events(&mut self) {
        self.host.clear();
    }

    /// The host presses or releases `key`. The event waits in the unbounded
    /// host queue until scanning is enabled and its whole sequence fits in
    /// the output buffer; it is encoded in the scan-code set in force then.
    pub fn key_event(&mut self, key: Key, pressed: bool) {
        self.host.push_back((key, pressed));
        self.scan_host_events();
    }

    /// The next byte for the controller: a command response first, else a
    /// scan code.
    pub fn next_byte(&mut self) -> Option<Sent> {
        let sent = if let Some(b) = self.responses.pop_front() {
            Sent {
                byte: b,
                origin: Origin::Response,
            }
        } else {
            let (b, ev) = self.buffer.pop_front()?;
            self.scan_host_events();
            Sent {
                byte: b,
                origin: Origin::Scan(ev),
            }
        };
        self.stats.bytes_sent += 1;
        self.last_sent = Some(sent.byte);
        Some(sent)
    }

    /// Takes back a byte the controller could not keep; it will be the next
    /// one sent. Call in reverse order for several.
    pub fn unsend(&mut self, s: Sent) {
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_sub(1);
        match s.origin {
            Origin::Response => self.responses.push_front(s.byte),
            Origin::Scan(ev) => self.buffer.push_front((s.byte, ev)),
        }
    }

    /// A byte from the system (through the controller).
    pub fn write(&mut self, byte: u8) {
        self.stats.bytes_received += 1;
        if byte >= FIRST_COMMAND {
            self.command(byte);
            return;
        }
        match std::mem::replace(&mut self.awaiting, Awaiting::Command) {
            Awaiting::Leds => {
                self.leds = byte & 0x07;
                self.respond(&[ACK]);
            }
            Awaiting::Typematic => {
                self.typematic = byte & 0x7F;
                self.respond(&[ACK]);
            }
            Awaiting::ScanSet => match ScanSet::from_number(byte) {
                // 0 asks: ACK, then the set number, untranslated (the
                // 8042 turns 1/2/3 into 43/41/3F when translating).
                None if byte == 0 => self.respond(&[ACK, self.set.number()]),
                Some(set) => {
                    self.respond(&[ACK]);
                    if set != self.set {
                        self.set = set;
                        // Queued codes are in the old set: encode again.
                        self.clear_buffer();
                    }
                }
                // Not a set: acknowledged and ignored (VirtualBox).
                None => self.respond(&[ACK]),
            },
            Awaiting::KeyList => {
                self.awaiting = Awaiting::KeyList;
                self.respond(&[ACK]);
            }
            Awaiting::Command => {
                self.stats.unknown_commands += 1;
                self.respond(&[RESEND]);
            }
        }
    }

    fn command(&mut self, cmd: u8) {
        self.awaiting = Awaiting::Command;
        match cmd {
            CMD_SET_LEDS => {
                self.awaiting = Awaiting::Leds;
                self.respond(&[ACK]);
            }
            CMD_ECHO => self.respond(&[ECHO]),
            CMD_SCAN_SET => {
                self.awaiting = Awaiting::ScanSet;
                self.respond(&[ACK]);
            }
            CMD_IDENTIFY => self.respond(&[ACK, ID[0], ID[1]]),
            CMD_TYPEMATIC => {
                self.awaiting = Awaiting::Typematic;
                self.respond(&[ACK]);
            }
            CMD_ENABLE => {
                // "Clears its output buffer and starts scanning."
                self.clear_buffer();
                self.scanning = true;
                self.respond(&[ACK]);
                self.scan_host_events();
            }
            CMD_DEFAULT_DISABLE => {
                self.set_defaults();
                self.scanning = false;
                self.respond(&[ACK]);
            }
            CMD_SET_DEFAULT => {
                self.set_defaults();
                self.scanning = true;
                self.respond(&[ACK]);
                self.scan_host_events();
            }
            CMD_ALL_KEYS_FIRST..=CMD_ALL_KEYS_LAST => self.respond(&[ACK]),
            CMD_KEY_TYPE_FIRST..=CMD_KEY_TYPE_LAST => {
                self.awaiting = Awaiting::KeyList;
                self.respond(&[ACK]);
            }
            CMD_RESEND => {
                self.stats.resends += 1;
                if let Some(b) = self.last_sent {
                    self.respond(&[b]);
                }
            }
            CMD_RESET => {
                self.stats.resets += 1;
                self.responses.clear();
                self.set_defaults();
                self.scanning = true;
                self.respond(&[ACK, BAT_OK]);
                self.scan_host_events();
            }
            _ => {
                // EF, F1: not commands of this keyboard.
                self.stats.unknown_commands += 1;
                self.respond(&[RESEND]);
            }
        }
    }

    /// Power-on settings (F5, F6, FF): set 2, default typematic, LEDs off
    /// (QEMU and Bochs restore set 2 here too), output buffer cleared.
    fn set_defaults(&mut self) {
        self.set = ScanSet::Set2;
        self.typematic = DEFAULT_TYPEMATIC;
        self.leds = 0;
        self.clear_buffer();
    }

    fn respond(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.responses.len() >= RESPONSE_LEN {
                self.responses.pop_front();
                self.stats.bytes_dropped += 1;
            }
            self.responses.push_back(b);
        }
    }

    /// Empties the output buffer. Events whose sequences had not begun to
    /// leave go back to the front of the host queue, in order; the rest of
    /// a sequence already partly sent is dropped.
    fn clear_buffer(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        self.stats.buffer_clears += 1;
        let mut requeue = Vec::new();
        for (_, ev) in self.buffer.drain(..) {
            match ev {
                Some(e) => requeue.push(e),
                None if requeue.is_empty() => self.stats.bytes_dropped += 1,
                None => {}
            }
        }
        self.stats.events_requeued += requeue.len() as u64;
        for e in requeue.into_iter().rev() {
            self.host.push_front(e);
        }
    }

    /// Moves host events into the output buffer while scanning is on and
    /// each whole sequence fits.
    fn scan_host_events(&mut self) {
        while self.scanning {
            let Some(&(key, pressed)) = self.host.front() else {
                break;
            };
            let seq = self.sequence(key, pressed);
            if self.buffer.len() + seq.len() > BUFFER_LEN {
                break;
            }
            self.host.pop_front();
            self.track_modifier(key, pressed);
            self.stats.key_events += 1;
            for (i, &b) in seq.iter().enumerate() {
                let ev = (i == 0).then_some((key, pressed));
                self.buffer.push_back((b, ev));
            }
        }
    }

    fn mods(&self) -> u8 {
        self.mods_left | self.mods_right
    }

    fn track_modifier(&mut self, key: Key, pressed: bool) {
        let (side, bit) = match key {
            Key::LeftShift => (&mut self.mods_left, MOD_SHIFT),
            Key::RightShift => (&mut self.mods_right, MOD_SHIFT),
            Key::LeftCtrl => (&mut self.mods_left, MOD_CTRL),
            Key::RightCtrl => (&mut self.mods_right, MOD_CTRL),
            Key::LeftAlt => (&mut self.mods_left, MOD_ALT),
            Key::RightAlt => (&mut self.mods_right, MOD_ALT),
            _ => return,
        };
        if pressed {
            *side |= bit;
        } else {
            *side &= !bit;
        }
    }

    /// The bytes for a host event in the current set, with the modifier
    /// forms of PrintScreen and Pause (IBM keyboard reference, scan code
    /// set 1 and 2 notes): Alt+PrintScreen is SysRq (set 2: 84), Shift or
    /// Ctrl+PrintScreen drops the fake shift (E0 7C), Ctrl+Pause is Break
    /// (E0 7E E0 F0 7E, no break code).
    fn sequence(&self, key: Key, pressed: bool) -> Vec<u8> {
        let mods = self.mods();
        let set2 = match key {
            _ if self.set == ScanSet::Set3 => return key.make_break(ScanSet::Set3, pressed),
            Key::PrintScreen if mods & MOD_ALT != 0 => plain_set2_or_3(0x84, pressed),
            Key::PrintScreen if mods & (MOD_SHIFT | MOD_CTRL) != 0 => {
                set2_sequence(Set2::Ext(0x7C), pressed)
            }
            Key::Pause if mods & MOD_CTRL != 0 && pressed => {
                vec![0xE0, 0x7E, 0xE0, 0xF0, 0x7E]
            }
            _ => key.make_break(ScanSet::Set2, pressed),
        };
        match self.set {
            ScanSet::Set1 => translate_to_set1(&set2),
            _ => set2,
        }
    }
}
