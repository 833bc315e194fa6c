//! ringlab's BIOS at the console: INT 10h (machine/firmware/video.S) and
//! IRQ 1 with INT 16h (machine/firmware/keyboard.S), exercised by boot
//! sectors (tests/guests/bios-video*.S, bios-kbd*.S) that the BIOS boots
//! from the first hard disk on every engine (`tests::firmware`). Each
//! guest prints on COM1 what the screen's text cannot show (attributes,
//! cursor positions, CRTC registers, keystroke words); the transcript ends
//! with the final screen. Keys are typed on the PS/2 keyboard before the
//! machine starts; they reach the BIOS through the 8042 once POST has
//! enabled IRQ 1.

use machine::devices::ps2kbd::{parse_key_text, Key};
use machine::Machine;
use tests::firmware::boot_everywhere;

fn no_setup(_: &mut Machine) {}

/// Press and release `k`.
fn tap(k: Key) -> [(Key, bool); 2] {
    [(k, true), (k, false)]
}

/// `k` pressed and released while `m` is held.
fn chord(m: Key, k: Key) -> [(Key, bool); 4] {
    [(m, true), (k, true), (k, false), (m, false)]
}

/// 00h and the BDA, 01h (CGA shapes emulated on the 16-line cell), 02h,
/// 03h, 08h, 09h, 0Ah, 0Eh with BS, CR, BEL and a wrapping line.
#[test]
fn int10_text_mode_cursor_cells_and_teletype() {
    insta::assert_snapshot!("bios_video", boot_everywhere("bios-video", &no_setup));
}

/// 06h/07h on a window, AL=0, 13h modes 0, 1, 3, and teletype output
/// scrolling the page with the bottom line's attribute.
#[test]
fn int10_scrolling_and_strings() {
    insta::assert_snapshot!(
        "bios_video_scroll",
        boot_everywhere("bios-video-scroll", &no_setup)
    );
}

/// 05h and text on pages not shown, 0Fh, 12h BL=10h, 1Ah, and
/// unsupported functions leaving every register alone.
#[test]
fn int10_pages_and_information() {
    insta::assert_snapshot!(
        "bios_video_pages",
        boot_everywhere("bios-video-pages", &no_setup)
    );
}

/// The keys of the keyboard tests: plain, Shift, Ctrl and Alt
/// combinations, gray and keypad keys, function keys, the locks, a
/// character typed as Alt + keypad digits; 15 keystrokes, as many as the
/// buffer holds. Left Ctrl and right Alt stay held at the end.
fn typed_keys(m: &mut Machine) {
    use Key::*;
    let mut k = parse_key_text("aB\x03").unwrap(); // 1E61 3042 2E03
    k.extend(chord(LeftAlt, X)); // 2D00
    k.extend(tap(Up)); // 48E0
    k.extend(tap(F1)); // 3B00
    k.extend(tap(F11)); // 8500, enhanced only
    k.extend(chord(LeftCtrl, Up)); // 8DE0, enhanced only
    k.extend(chord(LeftAlt, Escape)); // 01F0, enhanced only
    k.extend(tap(Kp5)); // 4CF0, enhanced only
    k.extend(tap(NumLock));
    k.extend(tap(Kp5)); // 4C35
    k.extend(tap(CapsLock));
    k.extend(parse_key_text("qQ").unwrap()); // 1051 1071
    k.extend([(LeftAlt, true)]);
    k.extend(tap(Kp6));
    k.extend(tap(Kp5));
    k.extend([(LeftAlt, false)]); // 0041
    k.extend(tap(KpEnter)); // E00D
    k.extend([(LeftCtrl, true), (RightAlt, true)]);
    m.key_events(k);
}

/// INT 16h AH=11h/10h: every keystroke as stored (F0h as 00h), and the
/// shift flags of AH=02h and AH=12h.
#[test]
fn int16_enhanced_functions_return_every_keystroke() {
    insta::assert_snapshot!("bios_kbd", boot_everywhere("bios-kbd", &typed_keys));
}

/// INT 16h AH=01h/00h: the same keys, the Enhanced keyboard's own
/// keystrokes skipped and its gray keys converted.
#[test]
fn int16_standard_functions_skip_enhanced_keystrokes() {
    insta::assert_snapshot!("bios_kbd_std", boot_everywhere("bios-kbd-std", &typed_keys));
}

/// More keys for AH=10h: Ctrl + Break (empties the buffer, stores 0000h),
/// Pause (ignored: Num Lock stays off), gray Insert (insert mode on),
/// Print Screen (with Ctrl 7200h, alone nothing), right Ctrl and right
/// Alt, Shift/Ctrl + Tab, Alt + F12, Shift + keypad End (its digit), the
/// 102nd key, Alt + ";" (an F0h keystroke), Ctrl + 2, Scroll Lock.
fn more_keys(m: &mut Machine) {
    use Key::*;
    let mut k = parse_key_text("x").unwrap();
    k.extend(chord(LeftCtrl, Pause)); // 0000, "x" gone
    k.extend(tap(Pause));
    k.extend(tap(Insert)); // 52E0
    k.extend(chord(LeftCtrl, PrintScreen)); // 7200
    k.extend(tap(PrintScreen));
    k.extend(chord(RightCtrl, A)); // 1E01
    k.extend(chord(LeftShift, Tab)); // 0F00
    k.extend(chord(LeftCtrl, Tab)); // 9400
    k.extend(chord(LeftAlt, F12)); // 8C00
    k.extend(chord(RightShift, Kp1)); // 4F31
    k.extend(tap(IntlBackslash)); // 565C
    k.extend(chord(LeftAlt, Semicolon)); // 27F0
    k.extend(chord(LeftCtrl, Digit2)); // 0300
    k.extend(chord(RightAlt, A)); // 1E00
    k.extend(tap(ScrollLock));
    m.key_events(k);
}

#[test]
fn int16_break_pause_insert_print_screen_and_more() {
    insta::assert_snapshot!("bios_kbd_more", boot_everywhere("bios-kbd", &more_keys));
}

/// A full buffer drops keys; AH=05h stores a keystroke once there is room.
#[test]
fn int16_full_buffer_and_store() {
    let t = boot_everywhere("bios-kbd-full", &|m| {
        m.key_events(parse_key_text("abcdefghijklmnopqrst").unwrap())
    });
    insta::assert_snapshot!("bios_kbd_full", t);
}

/// Ctrl + Alt + Del restarts the machine (8042 command FEh, the run stops
/// with a reset) as soon as IRQ 1 sees it: once POST enables interrupts
/// (the interpreter and the translator take IRQ 1 right after POST's STI,
/// KVM a little later, while the boot sector waits for the timer). The
/// screen (POST's banner, which other parts of the BIOS change) is left
/// out.
#[test]
fn ctrl_alt_del_resets_the_machine() {
    use Key::*;
    let t = boot_everywhere("bios-kbd-full", &|m| {
        m.key_events([
            (LeftCtrl, true),
            (LeftAlt, true),
            (Delete, true),
            (Delete, false),
            (LeftAlt, false),
            (LeftCtrl, false),
        ])
    });
    let t = t.split("--- screen ---").next().unwrap();
    insta::assert_snapshot!("bios_ctrl_alt_del", t);
}
