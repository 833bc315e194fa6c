//! The 8042 keyboard controller and its PS/2 keyboard through the `Device`
//! interface: what a BIOS sends, the A20 gate and reset line, scan code
//! translation, the keyboard's commands, IRQ 1 as keys are read, and typed
//! text arriving whole.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::i8042::{I8042, REGION_COMMAND, REGION_DATA};
use machine::devices::ps2kbd::{parse_key_text, Key, KeyTextError, Ps2Keyboard, ScanSet};
use machine::MachineStop;

/// A controller with the IRQ line changes and requests it produced.
struct Rig {
    c: I8042,
    irq: Vec<(u8, bool)>,
    req: Vec<Request>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            c: I8042::new(),
            irq: vec![],
            req: vec![],
        }
    }
    fn inb(&mut self, port: u16) -> u8 {
        let region = if port == 0x60 {
            REGION_DATA
        } else {
            REGION_COMMAND
        };
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.c.pio_read(region, 0, 1, &mut cx) as u8
    }
    fn outb(&mut self, port: u16, v: u8) {
        let region = if port == 0x60 {
            REGION_DATA
        } else {
            REGION_COMMAND
        };
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.c.pio_write(region, 0, 1, v as u32, &mut cx);
    }
    fn status(&mut self) -> u8 {
        self.inb(0x64)
    }
    /// Everything waiting in the output buffer, read as a polling driver
    /// does (status, then data while OBF).
    fn drain(&mut self) -> Vec<u8> {
        let mut v = vec![];
        while self.status() & 0x01 != 0 {
            v.push(self.inb(0x60));
        }
        v
    }
    /// A controller command with its answer.
    fn cmd(&mut self, c: u8) -> Vec<u8> {
        self.outb(0x64, c);
        self.drain()
    }
    /// A byte to the keyboard and everything it answers.
    fn kbd(&mut self, b: u8) -> Vec<u8> {
        self.outb(0x60, b);
        self.drain()
    }
    fn key(&mut self, k: Key, pressed: bool) {
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.c.key_event(k, pressed, &mut cx);
    }
    fn tap(&mut self, k: Key) {
        self.key(k, true);
        self.key(k, false);
    }
    fn type_text(&mut self, s: &str) -> usize {
        let mut cx = IoCtx::new(0, &mut self.irq, &mut self.req);
        self.c.type_text(s, &mut cx).unwrap()
    }
    fn irq_changes(&mut self) -> Vec<(u8, bool)> {
        std::mem::take(&mut self.irq)
    }
    fn requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.req)
    }
    fn set_command_byte(&mut self, v: u8) {
        self.outb(0x64, 0x60);
        self.outb(0x60, v);
    }
}

#[test]
fn power_on_state_is_what_a_bios_leaves() {
    let mut r = Rig::new();
    assert_eq!(r.status(), 0x14, "system flag, not inhibited, empty");
    assert_eq!(r.cmd(0x20), [0x65], "translate, aux off, sys, kbd irq");
    assert_eq!(r.status() & 0x08, 0x08, "last write was a command");
    assert_eq!(r.cmd(0xD0), [0xCF], "reset high, A20 on, idle lines high");
    assert_eq!(r.cmd(0xC0), [0x80], "input port: not inhibited");
    assert_eq!(r.c.keyboard().scan_set(), ScanSet::Set2);
    assert!(r.c.keyboard().scanning());
    assert!(r.irq_changes().iter().all(|&(l, _)| l == 1));
    assert!(r.requests().is_empty());
}

#[test]
fn bios_style_initialisation() {
    let mut r = Rig::new();
    // SeaBIOS's ps2_keyboard_setup, step by step.
    r.outb(0x64, 0xAD);
    r.outb(0x64, 0xA7);
    assert!(r.drain().is_empty());
    assert_eq!(r.cmd(0x20)[0] & 0x30, 0x30, "both interfaces disabled");
    assert_eq!(r.cmd(0xAA), [0x55], "self test passed");
    assert_eq!(r.status() & 0x04, 0x04, "system flag");
    assert_eq!(r.cmd(0xAB), [0x00], "keyboard interface test passed");
    assert_eq!(r.cmd(0xA9), [0x00], "aux interface test: lines idle");
    // Keyboard commands with the keyboard interface enabled, irqs off.
    r.set_command_byte(0x30 & !0x10 | 0x20);
    assert_eq!(r.kbd(0xFF), [0xFA, 0xAA], "reset: ACK, BAT passed");
    assert_eq!(r.kbd(0xF5), [0xFA], "default, disable scanning");
    assert!(!r.c.keyboard().scanning());
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x02), [0xFA], "scan code set 2");
    r.set_command_byte(0x61);
    assert_eq!(r.cmd(0x20), [0x61]);
    assert_eq!(r.status() & 0x04, 0, "status follows command byte bit 2");
    assert_eq!(r.kbd(0xF4), [0xFA], "enable scanning");
    assert!(r.c.keyboard().scanning());
    // The BIOS sets the LEDs from its shift flags.
    assert_eq!(r.kbd(0xED), [0xFA]);
    assert_eq!(r.kbd(0x02), [0xFA]);
    assert_eq!(r.c.keyboard().leds(), 0x02, "NumLock");
    assert_eq!(r.kbd(0xEE), [0xEE], "echo");
    assert_eq!(r.kbd(0xF3), [0xFA]);
    assert_eq!(r.kbd(0x20), [0xFA], "typematic rate");
    assert_eq!(r.c.keyboard().typematic(), 0x20);
    let s = r.c.stats();
    assert_eq!(s.commands.self_test, 1);
    assert_eq!(s.commands.kbd_test, 1);
    assert_eq!(s.keyboard.resets, 1);
    assert!(r.requests().is_empty());
}

#[test]
fn identify_answers_mf2_translated_or_not() {
    let mut r = Rig::new();
    assert_eq!(r.kbd(0xF2), [0xFA, 0xAB, 0x41], "83 through the 8042 table");
    r.set_command_byte(0x25);
    assert_eq!(r.kbd(0xF2), [0xFA, 0xAB, 0x83]);
}

#[test]
fn unknown_keyboard_command_asks_for_resend_and_resend_repeats() {
    let mut r = Rig::new();
    r.set_command_byte(0x25);
    assert_eq!(r.kbd(0xEF), [0xFE]);
    assert_eq!(r.kbd(0x12), [0xFE], "a stray parameter");
    assert_eq!(r.kbd(0xEE), [0xEE]);
    assert_eq!(r.kbd(0xFE), [0xEE], "resend: the last byte again");
    assert_eq!(r.c.stats().keyboard.unknown_commands, 2);
}

#[test]
fn a20_through_the_output_port() {
    let mut r = Rig::new();
    r.outb(0x64, 0xD1);
    r.outb(0x60, 0xDD); // A20 off, reset line high
    assert_eq!(r.requests(), [Request::A20(false)]);
    assert_eq!(r.cmd(0xD0)[0] & 0x03, 0x01, "reads back: A20 off");
    r.outb(0x64, 0xD1);
    r.outb(0x60, 0xDD);
    assert!(r.requests().is_empty(), "no change, no request");
    r.outb(0x64, 0xD1);
    r.outb(0x60, 0xDF);
    assert_eq!(r.requests(), [Request::A20(true)]);
    assert_eq!(r.cmd(0xD0)[0] & 0x03, 0x03);
    // Port 0x92 turned it off: the board tells the controller.
    r.c.set_a20_line(false);
    assert!(r.requests().is_empty());
    assert_eq!(r.cmd(0xD0)[0] & 0x02, 0, "0xD0 shows the shared gate");
    assert!(!r.c.a20());
    // The HP-style shortcuts.
    r.outb(0x64, 0xDF);
    assert_eq!(r.requests(), [Request::A20(true)]);
    r.outb(0x64, 0xDD);
    assert_eq!(r.requests(), [Request::A20(false)]);
    assert_eq!(r.c.stats().a20_changes, 4);
}

#[test]
fn reset_line_pulses() {
    let mut r = Rig::new();
    r.outb(0x64, 0xFE);
    assert_eq!(r.requests(), [Request::Stop(MachineStop::Reset)]);
    r.outb(0x64, 0xFF);
    r.outb(0x64, 0xFD); // pulses bit 1 only
    assert!(r.requests().is_empty());
    r.outb(0x64, 0xF0);
    assert_eq!(r.requests(), [Request::Stop(MachineStop::Reset)]);
    r.outb(0x64, 0xD1);
    r.outb(0x60, 0x02); // bit 0 low: reset, A20 unchanged
    assert_eq!(r.requests(), [Request::Stop(MachineStop::Reset)]);
    assert_eq!(r.cmd(0xD0)[0] & 0x01, 0x01, "the line returns high");
    assert_eq!(r.c.stats().resets, 3);
}

#[test]
fn translation_set2_to_set1() {
    let mut r = Rig::new();
    r.tap(Key::A);
    assert_eq!(r.drain(), [0x1E, 0x9E], "F0 1C becomes 9E");
    r.tap(Key::Up);
    assert_eq!(r.drain(), [0xE0, 0x48, 0xE0, 0xC8], "E0 75, E0 F0 75");
    r.tap(Key::F7);
    assert_eq!(r.drain(), [0x41, 0xC1], "F7's 83");
    // Translation off: the keyboard's own set 2.
    r.set_command_byte(0x25);
    r.tap(Key::A);
    assert_eq!(r.drain(), [0x1C, 0xF0, 0x1C]);
    r.tap(Key::RightCtrl);
    assert_eq!(r.drain(), [0xE0, 0x14, 0xE0, 0xF0, 0x14]);
}

#[test]
fn print_screen_and_pause_as_real_keyboards_send_them() {
    let mut r = Rig::new();
    r.tap(Key::PrintScreen);
    assert_eq!(r.drain(), [0xE0, 0x2A, 0xE0, 0x37, 0xE0, 0xB7, 0xE0, 0xAA]);
    r.tap(Key::Pause);
    assert_eq!(r.drain(), [0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]);
    r.key(Key::LeftCtrl, true);
    r.tap(Key::Pause);
    r.tap(Key::PrintScreen);
    r.key(Key::LeftCtrl, false);
    assert_eq!(
        r.drain(),
        [0x1D, 0xE0, 0x46, 0xE0, 0xC6, 0xE0, 0x37, 0xE0, 0xB7, 0x9D],
        "Ctrl+Pause is Break, Ctrl+PrintScreen has no fake shift"
    );
    r.key(Key::LeftAlt, true);
    r.tap(Key::PrintScreen);
    r.key(Key::LeftAlt, false);
    assert_eq!(
        r.drain(),
        [0x38, 0x54, 0xD4, 0xB8],
        "Alt+PrintScreen: SysRq"
    );
}

#[test]
fn scanning_disabled_holds_host_keys_until_enabled() {
    let mut r = Rig::new();
    assert_eq!(r.kbd(0xF5), [0xFA]);
    r.tap(Key::B);
    assert!(r.drain().is_empty());
    assert_eq!(r.c.host_keys_pending(), 2);
    assert_eq!(r.kbd(0xF4), [0xFA, 0x30, 0xB0], "ACK first, then the key");
    assert_eq!(r.c.host_keys_pending(), 0);
}

#[test]
fn buffer_clearing_commands_give_unsent_keys_back() {
    let mut r = Rig::new();
    // The output buffer holds A's make; the keyboard has the rest.
    r.tap(Key::A);
    r.tap(Key::S);
    assert_eq!(r.c.keyboard().buffered(), 5, "F0 1C 1B F0 1B");
    // F4 clears the keyboard's buffer: its ACK comes after the byte
    // already in the controller, then the keys, encoded again.
    assert_eq!(r.kbd(0xF4), [0x1E, 0xFA, 0x9E, 0x1F, 0x9F]);
    assert_eq!(r.c.stats().keyboard.events_requeued, 3);
}

#[test]
fn scan_code_set_switch_and_query() {
    let mut r = Rig::new();
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x00), [0xFA, 0x41], "set 2, translated as 8042s do");
    r.set_command_byte(0x25);
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x00), [0xFA, 0x02], "set 2, untranslated");
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x01), [0xFA]);
    assert_eq!(r.c.keyboard().scan_set(), ScanSet::Set1);
    r.tap(Key::A);
    r.tap(Key::Home);
    assert_eq!(r.drain(), [0x1E, 0x9E, 0xE0, 0x47, 0xE0, 0xC7]);
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x03), [0xFA]);
    r.tap(Key::Home);
    assert_eq!(r.drain(), [0x6E, 0xF0, 0x6E], "set 3: one byte per key");
    assert_eq!(r.kbd(0xF0), [0xFA]);
    assert_eq!(r.kbd(0x00), [0xFA, 0x03]);
    assert_eq!(r.kbd(0xFF), [0xFA, 0xAA]);
    assert_eq!(r.c.keyboard().scan_set(), ScanSet::Set2, "reset: set 2");
}

#[test]
fn irq1_level_follows_the_output_buffer_one_byte_at_a_time() {
    let mut r = Rig::new();
    r.tap(Key::A);
    assert_eq!(r.irq_changes(), [(1, true)], "make code waiting");
    assert_eq!(r.status() & 0x01, 0x01);
    assert_eq!(r.inb(0x60), 0x1E);
    // Low with the read, high again with the break code: a new edge.
    assert_eq!(r.irq_changes(), [(1, false), (1, true)]);
    assert_eq!(r.inb(0x60), 0x9E);
    assert_eq!(r.irq_changes(), [(1, false)]);
    assert_eq!(r.status() & 0x01, 0);
    assert_eq!(r.inb(0x60), 0x9E, "an empty buffer reads its last byte");
    assert!(r.irq_changes().is_empty());
    // Interrupts off in the command byte: no line, data still there.
    r.set_command_byte(0x64);
    r.tap(Key::S);
    assert!(r.irq_changes().is_empty());
    assert_eq!(r.drain(), [0x1F, 0x9F]);
    assert!(r.irq_changes().is_empty());
    // Enabling interrupts with a byte waiting raises the line.
    r.tap(Key::D);
    r.set_command_byte(0x65);
    assert_eq!(r.irq_changes(), [(1, true)]);
    assert_eq!(r.c.stats().keys_delivered, 4);
}

#[test]
fn keyboard_interface_disable_holds_bytes() {
    let mut r = Rig::new();
    r.outb(0x64, 0xAD);
    r.tap(Key::Z);
    assert_eq!(r.status() & 0x01, 0);
    assert!(r.irq_changes().is_empty());
    r.outb(0x64, 0xAE);
    assert_eq!(r.drain(), [0x2C, 0xAC]);
    // Writing to the keyboard enables its interface (Bochs).
    r.outb(0x64, 0xAD);
    assert_eq!(r.kbd(0xEE), [0xEE]);
    assert_eq!(r.cmd(0x20)[0] & 0x10, 0);
}

#[test]
fn controller_answer_displaces_an_unread_key_without_losing_it() {
    let mut r = Rig::new();
    r.tap(Key::Q);
    assert_eq!(r.cmd(0x20), [0x65, 0x10, 0x90], "answer first, then Q");
    assert_eq!(r.c.stats().displaced_keyboard_bytes, 1);
    // The same with a translated break code (F0 15) in the buffer.
    r.tap(Key::Q);
    assert_eq!(r.inb(0x60), 0x10);
    assert_eq!(r.cmd(0xAA), [0x55, 0x90]);
}

#[test]
fn ram_and_output_buffer_writes() {
    let mut r = Rig::new();
    r.outb(0x64, 0x7F);
    r.outb(0x60, 0xA5);
    assert_eq!(r.cmd(0x3F), [0xA5], "RAM byte 31");
    // 0xD2: as if from the keyboard, untranslated, IRQ 1.
    r.irq_changes();
    r.outb(0x64, 0xD2);
    r.outb(0x60, 0x1C);
    assert_eq!(r.status() & 0x21, 0x01);
    assert_eq!(r.irq_changes(), [(1, true)]);
    assert_eq!(r.inb(0x60), 0x1C);
    r.irq_changes();
    // 0xD3: as if from the auxiliary port: status bit 5, IRQ 12 if enabled.
    r.outb(0x64, 0xD3);
    r.outb(0x60, 0x5A);
    assert_eq!(r.status() & 0x21, 0x21);
    assert!(r.irq_changes().is_empty(), "aux interrupt off");
    assert_eq!(r.inb(0x60), 0x5A);
    r.set_command_byte(0x47);
    r.outb(0x64, 0xD3);
    r.outb(0x60, 0xA5);
    assert_eq!(r.irq_changes(), [(12, true)]);
    assert_eq!(r.inb(0x60), 0xA5);
    assert_eq!(r.irq_changes(), [(12, false)]);
    // 0xD4 with no mouse: timeout, FE from the auxiliary port.
    r.outb(0x64, 0xD4);
    r.outb(0x60, 0xF2);
    assert_eq!(r.status() & 0x61, 0x61);
    assert_eq!(r.inb(0x60), 0xFE);
    assert_eq!(r.status() & 0x61, 0);
}

#[test]
fn a_new_command_abandons_a_pending_parameter() {
    let mut r = Rig::new();
    r.outb(0x64, 0xD1);
    r.outb(0x64, 0xAE);
    // Goes to the keyboard now, not to the output port.
    assert_eq!(r.kbd(0xEE), [0xEE]);
    assert!(r.requests().is_empty());
}

#[test]
fn unknown_commands_and_any_byte_anywhere_never_panic() {
    let mut r = Rig::new();
    r.outb(0x64, 0x00);
    r.outb(0x64, 0xC1);
    assert_eq!(r.c.stats().commands.unknown, 2);
    // Every byte to both ports, and reads, in a fixed pseudo-random order.
    let mut x: u32 = 12345;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let v = (x >> 16) as u8;
        match (x >> 8) & 3 {
            0 => r.outb(0x64, v),
            1 => r.outb(0x60, v),
            2 => {
                r.inb(0x60);
            }
            _ => r.tap(Key::ALL[v as usize % Key::ALL.len()]),
        }
    }
    // Wide and stray accesses.
    let mut cx = IoCtx::new(0, &mut r.irq, &mut r.req);
    r.c.pio_read(7, 3, 4, &mut cx);
    r.c.pio_write(7, 3, 4, 0xFFFF_FFFF, &mut cx);
    r.c.pio_read(REGION_COMMAND, 0, 4, &mut cx);
}

#[test]
fn machine_reset_keeps_host_keys() {
    let mut r = Rig::new();
    r.type_text("hi");
    assert_eq!(r.inb(0x60), 0x23, "h");
    r.set_command_byte(0x25);
    r.outb(0x64, 0xAD);
    let mut cx = IoCtx::new(0, &mut r.irq, &mut r.req);
    r.c.reset(&mut cx);
    assert_eq!(r.c.command_byte(), 0x65);
    assert_eq!(r.drain(), [0xA3, 0x17, 0x97], "h's break, then i");
}

#[test]
fn parse_key_text_on_a_us_layout() {
    use Key::*;
    let ls = parse_key_text("ls -l\\n").unwrap();
    let taps = |keys: &[Key]| -> Vec<(Key, bool)> {
        keys.iter().flat_map(|&k| [(k, true), (k, false)]).collect()
    };
    assert_eq!(ls, taps(&[L, S, Space, Minus, L, Enter]));
    assert_eq!(parse_key_text("ls -l\n").unwrap(), ls, "a real newline too");
    assert_eq!(
        parse_key_text("A!").unwrap(),
        [
            (LeftShift, true),
            (A, true),
            (A, false),
            (LeftShift, false),
            (LeftShift, true),
            (Digit1, true),
            (Digit1, false),
            (LeftShift, false),
        ]
    );
    assert_eq!(
        parse_key_text("\\t\\b\\e\\x1b\\\\\\x41").unwrap(),
        [
            taps(&[Tab, Backspace, Escape, Escape, Backslash]),
            vec![(LeftShift, true), (A, true), (A, false), (LeftShift, false)],
        ]
        .concat()
    );
    assert_eq!(
        parse_key_text("\\x03").unwrap(),
        [(LeftCtrl, true), (C, true), (C, false), (LeftCtrl, false)],
        "^C"
    );
    let e = parse_key_text("ok é").unwrap_err();
    assert_eq!(e, KeyTextError::Unrepresentable { ch: 'é', pos: 3 });
    assert!(e.to_string().contains("'é'") && e.to_string().contains("position 3"));
    assert!(matches!(
        parse_key_text("a\\q"),
        Err(KeyTextError::BadEscape { pos: 1, .. })
    ));
    assert!(matches!(
        parse_key_text("\\x4"),
        Err(KeyTextError::BadEscape { pos: 0, .. })
    ));
    assert!(matches!(
        parse_key_text("\\xff"),
        Err(KeyTextError::BadEscape { pos: 0, .. })
    ));
    assert!(matches!(
        parse_key_text("\\"),
        Err(KeyTextError::BadEscape { pos: 0, .. })
    ));
    assert!(parse_key_text("\\x00").is_err(), "NUL has no key");
}

#[test]
fn ten_thousand_characters_arrive_without_loss() {
    // Printable ASCII and newlines in a fixed pseudo-random order.
    let mut x: u32 = 7;
    let text: String = (0..10_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            match (x >> 24) % 97 {
                95 => '\n',
                96 => '\t',
                n => char::from(b' ' + n as u8),
            }
        })
        .collect();
    let escaped = text.replace('\\', "\\\\");
    let events = parse_key_text(&escaped).unwrap();
    let expected: Vec<u8> = events
        .iter()
        .flat_map(|&(k, p)| k.make_break(ScanSet::Set1, p))
        .collect();
    let mut r = Rig::new();
    assert_eq!(r.type_text(&escaped), events.len());
    assert!(r.c.host_keys_pending() > 0, "most wait host-side");
    assert!(
        r.c.keyboard().buffered() <= 16,
        "the keyboard's buffer is bounded"
    );
    // An interrupt handler: one byte per IRQ 1 edge.
    let mut got = Vec::with_capacity(expected.len());
    let mut level = false;
    let mut edges = 0;
    loop {
        for (line, l) in r.irq_changes() {
            assert_eq!(line, 1);
            edges += (l && !level) as usize;
            level = l;
        }
        if !level {
            break;
        }
        got.push(r.inb(0x60));
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "every byte, in order");
    assert_eq!(edges, expected.len(), "one edge per byte");
    let s = r.c.stats();
    assert_eq!(s.keys_delivered, events.len() as u64);
    assert_eq!(s.keyboard.key_events, events.len() as u64);
    assert_eq!(s.keyboard.bytes_dropped, 0);
}

#[test]
fn set1_follows_from_set2_for_known_keys() {
    let s1 = ScanSet::Set1;
    assert_eq!(Key::A.make_break(s1, true), [0x1E]);
    assert_eq!(Key::A.make_break(s1, false), [0x9E]);
    assert_eq!(Key::Escape.make_break(s1, true), [0x01]);
    assert_eq!(Key::F7.make_break(s1, true), [0x41]);
    assert_eq!(Key::Up.make_break(s1, false), [0xE0, 0xC8]);
    assert_eq!(Key::KpDivide.make_break(s1, true), [0xE0, 0x35]);
    assert_eq!(
        Key::KpEnter.make_break(ScanSet::Set2, false),
        [0xE0, 0xF0, 0x5A]
    );
    assert_eq!(Key::LeftMeta.make_break(ScanSet::Set3, true), [0x8B]);
    assert!(Key::Pause.make_break(ScanSet::Set2, false).is_empty());
}

#[test]
fn every_key_has_distinct_codes_in_every_set() {
    for set in [ScanSet::Set1, ScanSet::Set2, ScanSet::Set3] {
        let mut seen = std::collections::HashMap::new();
        for k in Key::ALL {
            let make = k.make_break(set, true);
            assert!(!make.is_empty());
            if let Some(other) = seen.insert(make.clone(), k) {
                panic!("{k:?} and {other:?} share {make:02X?} in {set:?}");
            }
            if set == ScanSet::Set1 && make.len() <= 2 {
                // Set-1 break = make with bit 7 (after any E0).
                let mut brk = make.clone();
                *brk.last_mut().unwrap() |= 0x80;
                assert_eq!(k.make_break(set, false), brk, "{k:?}");
            }
        }
    }
}

#[test]
fn keyboard_alone_answers_the_set_query_untranslated() {
    let mut k = Ps2Keyboard::new();
    let answers = |k: &mut Ps2Keyboard, b: u8| -> Vec<u8> {
        k.write(b);
        std::iter::from_fn(|| k.next_byte().map(|s| s.byte)).collect()
    };
    assert_eq!(answers(&mut k, 0xF0), [0xFA]);
    assert_eq!(answers(&mut k, 0x00), [0xFA, 0x02]);
    // A command where a parameter was awaited starts that command.
    assert_eq!(answers(&mut k, 0xED), [0xFA]);
    assert_eq!(answers(&mut k, 0xEE), [0xEE]);
    assert_eq!(answers(&mut k, 0x05), [0xFE], "no longer the LED byte");
    assert_eq!(k.leds(), 0);
    // Set-3 key type commands: acknowledged, their key lists too.
    assert_eq!(answers(&mut k, 0xFB), [0xFA]);
    assert_eq!(answers(&mut k, 0x1C), [0xFA]);
    assert_eq!(answers(&mut k, 0xF8), [0xFA]);
}
