//! Intel 8042 keyboard controller (the PC/AT and PS/2 "KBC") at 0x60/0x64.
//!
//! Register-level model of the controller as the IBM PC AT Technical
//! Reference ("Keyboard Controller") and the IBM PS/2 "Keyboard and
//! Auxiliary Device Controller" reference describe its firmware: the status
//! register, the output buffer, the command byte (internal RAM byte 0) and
//! the rest of the 32-byte RAM, the controller commands at 0x64, the input
//! and output ports (A20 gate, reset line), and the set-2 to set-1 scan code
//! translation. Facts checked against QEMU `hw/input/pckbd.c`, Bochs
//! `iodev/keyboard.cc` and SeaBIOS `src/hw/ps2port.c` (what a BIOS sends).
//! The PS/2 keyboard on the first port is [`Ps2Keyboard`], owned by the
//! controller as the cable ties them; no mouse is attached to the second
//! (auxiliary) port.
//!
//! Mapping: the data port 0x60 is region 0 and the status/command port
//! 0x64 is region 1, one port each. Accesses wider than a byte act on the
//! low byte; reads return it zero-extended. IRQ 1 carries keyboard-side
//! bytes, IRQ 12 auxiliary-port bytes.
//!
//! Timing. Commands and keyboard transfers complete at once: IBF always
//! reads 0. The output buffer is refilled from the keyboard immediately
//! when the guest reads 0x60 (as QEMU does), never by a timer, so bytes
//! arrive one at a time as the guest consumes them, at points that depend
//! only on the guest's accesses and on when the host injected keys, the
//! same on every engine. IRQ 1 is a level (high while the output buffer
//! holds a keyboard-side byte and command byte bit 0 is set); a read drops
//! it and an immediate refill raises it again, an edge that an
//! edge-triggered 8259A latches in IRR until the handler's EOI.
//! Consequences to know: keys injected before a guest programs its 8259A
//! leave IRQ 1 high across ICW1, which needs a new edge, so a driver that
//! waits for interrupts without draining 0x60 first (xv6) never sees them;
//! and a guest that drains at most 16 bytes at start-up (Linux's
//! i8042_flush) gives up if more host keys wait. Inject keys once the guest
//! is up.
//!
//! Power-on state: as a PC leaves it after its BIOS (ringlab boots guests
//! without one): command byte 0x65 (translate, auxiliary port disabled,
//! system flag, keyboard interrupt; SeaBIOS leaves 0x61, plus the system
//! flag POST sets), status 0x14 (system flag, not inhibited), output port
//! 0xCF (reset line high, A20 on, unused lines high as in QEMU).
//!
//! Choices where the references are silent or differ:
//! - A controller response (0x20, 0xAA, 0xD0, ...) goes into the output
//!   buffer at once, as the real firmware overwrites it ("devices should be
//!   disabled before issuing commands that return data"); an unread
//!   keyboard byte it displaces is given back to the keyboard and sent
//!   again later, so no key is lost.
//! - A byte written to the keyboard while command byte bit 4 disables its
//!   interface enables it (Bochs; the AT BIOS sends LED commands after
//!   0xAD and still gets the ACK).
//! - 0xA9 (auxiliary interface test) answers 0x00: with no device the clock
//!   and data lines idle high, which is what the test checks. 0xD4 (write
//!   to the auxiliary device) gets no clock from a device: the status
//!   register shows a timeout (bit 6) with 0xFE as an auxiliary byte, as
//!   PS/2 controllers report an absent device.
//! - 0xAA sets the system flag and answers 0x55; nothing else is reset
//!   (QEMU, Bochs). 0xD1 with bit 0 clear pulses the reset line: the output
//!   port keeps bit 0 set afterwards. The A20 gate is shared with port 0x92:
//!   the board reports every change with [`I8042::set_a20_line`].
//! - The input port (0xC0) reads 0x80, keyboard not inhibited (QEMU, Bochs).

use crate::bus::{Device, IoCtx, Request};
use crate::devices::ps2kbd::{
    parse_key_text, Key, KeyTextError, Ps2Keyboard, Ps2KeyboardStats, Sent, BREAK_PREFIX,
};
use crate::MachineStop;

/// The ISA line of the keyboard (first port) interrupt.
pub const KBD_IRQ: u8 = 1;
/// The ISA line of the auxiliary (mouse) port interrupt.
pub const AUX_IRQ: u8 = 12;
/// Region of the data port (0x60).
pub const REGION_DATA: usize = 0;
/// Region of the status (read) and command (write) port (0x64).
pub const REGION_COMMAND: usize = 1;

// Status register (port 0x64 read).
const ST_OBF: u8 = 0x01; // output buffer full
const ST_SYS: u8 = 0x04; // system flag (IBF, 0x02, is always clear)
const ST_CMD: u8 = 0x08; // last write was to 0x64
const ST_NOT_INHIBITED: u8 = 0x10; // keylock switch off
const ST_AUX_OBF: u8 = 0x20; // the byte came from the auxiliary port
const ST_TIMEOUT: u8 = 0x40; // (parity error, 0x80, never happens)

// Command byte (RAM byte 0).
const CB_KBD_INT: u8 = 0x01;
const CB_AUX_INT: u8 = 0x02;
const CB_SYS: u8 = 0x04;
const CB_KBD_DISABLE: u8 = 0x10;
const CB_AUX_DISABLE: u8 = 0x20;
const CB_TRANSLATE: u8 = 0x40;
const POWER_ON_COMMAND_BYTE: u8 = CB_TRANSLATE | CB_AUX_DISABLE | CB_SYS | CB_KBD_INT;

// Output port (P2).
const OP_RESET: u8 = 0x01; // 0 holds the CPU in reset
const OP_A20: u8 = 0x02;
const OP_KBD_IRQ: u8 = 0x10; // IRQ 1 (keyboard OBF interrupt)
const OP_AUX_IRQ: u8 = 0x20; // IRQ 12
/// Lines with nothing modelled: 2-3 unused, 6-7 keyboard clock and data
/// idle high (QEMU's 0xCC).
const OP_IDLE_HIGH: u8 = 0xCC;

/// Input port (P1): bit 7 set, keyboard not inhibited by the keylock.
const INPUT_PORT: u8 = 0x80;

// Controller commands (port 0x64 write).
const C_READ_RAM_FIRST: u8 = 0x20; // 0x20 reads the command byte
const C_READ_RAM_LAST: u8 = 0x3F;
const C_WRITE_RAM_FIRST: u8 = 0x60; // 0x60 writes the command byte
const C_WRITE_RAM_LAST: u8 = 0x7F;
const C_AUX_DISABLE: u8 = 0xA7;
const C_AUX_ENABLE: u8 = 0xA8;
const C_AUX_TEST: u8 = 0xA9;
const C_SELF_TEST: u8 = 0xAA;
const C_KBD_TEST: u8 = 0xAB;
const C_KBD_DISABLE: u8 = 0xAD;
const C_KBD_ENABLE: u8 = 0xAE;
const C_READ_INPUT: u8 = 0xC0;
const C_READ_OUTPUT: u8 = 0xD0;
const C_WRITE_OUTPUT: u8 = 0xD1;
const C_WRITE_KBD_OBUF: u8 = 0xD2;
const C_WRITE_AUX_OBUF: u8 = 0xD3;
const C_WRITE_AUX: u8 = 0xD4;
const C_A20_OFF: u8 = 0xDD;
const C_A20_ON: u8 = 0xDF;
const C_PULSE_FIRST: u8 = 0xF0; // F0-FF: pulse output port bits 3-0 (0 = pulse)

// Controller responses.
const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_OK: u8 = 0x00;
/// What an absent auxiliary device "answers" (with the timeout bit).
const AUX_NO_DEVICE: u8 = 0xFE;

const RAM_LEN: usize = 32;

/// The 8042's set-2 to set-1 translation table (IBM PS/2 keyboard
/// controller reference; the same in QEMU and Bochs). A set-2 byte `b`
/// becomes `SET2_TO_SET1[b]`; the controller turns an F0 prefix into bit 7
/// of the byte after it. 0x00 (overrun) becomes FF, the set-1 overrun code;
/// F7's odd 83 becomes 41; bytes 0x85 and up pass unchanged, so ACK, BAT
/// and the E0/E1 prefixes go through as they are.
#[rustfmt::skip]
pub const SET2_TO_SET1: [u8; 256] = {
    let low: [u8; 0x80] = [
        // 0x00
        0xFF, 0x43, 0x41, 0x3F, 0x3D, 0x3B, 0x3C, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3E, 0x0F, 0x29, 0x59,
        // 0x10
        0x65, 0x38, 0x2A, 0x70, 0x1D, 0x10, 0x02, 0x5A, 0x66, 0x71, 0x2C, 0x1F, 0x1E, 0x11, 0x03, 0x5B,
        // 0x20
        0x67, 0x2E, 0x2D, 0x20, 0x12, 0x05, 0x04, 0x5C, 0x68, 0x39, 0x2F, 0x21, 0x14, 0x13, 0x06, 0x5D,
        // 0x30
        0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5E, 0x6A, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5F,
        // 0x40
        0x6B, 0x33, 0x25, 0x17, 0x18, 0x0B, 0x0A, 0x60, 0x6C, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0C, 0x61,
        // 0x50
        0x6D, 0x73, 0x28, 0x74, 0x1A, 0x0D, 0x62, 0x6E, 0x3A, 0x36, 0x1C, 0x1B, 0x75, 0x2B, 0x63, 0x76,
        // 0x60
        0x55, 0x56, 0x77, 0x78, 0x79, 0x7A, 0x0E, 0x7B, 0x7C, 0x4F, 0x7D, 0x4B, 0x47, 0x7E, 0x7F, 0x6F,
        // 0x70
        0x52, 0x53, 0x50, 0x4C, 0x4D, 0x48, 0x01, 0x45, 0x57, 0x4E, 0x51, 0x4A, 0x37, 0x49, 0x46, 0x54,
    ];
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i < 0x80 { low[i] } else { i as u8 };
        i += 1;
    }
    // F7 (set 2 0x83) and Alt+PrintScreen "SysRq" (0x84).
    t[0x83] = 0x41;
    t[0x84] = 0x54;
    t
};

/// Translates a set-2 byte sequence to set 1 as the 8042 does (used for
/// the keyboard's own set 1, which the table was made to reproduce).
pub fn translate_to_set1(set2: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(set2.len());
    let mut brk = false;
    for &b in set2 {
        if b == BREAK_PREFIX {
            brk = true;
        } else {
            out.push(SET2_TO_SET1[b as usize] | if brk { 0x80 } else { 0 });
            brk = false;
        }
    }
    out
}

/// Where the byte in the output buffer came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// From the keyboard: the raw bytes it took (two for a translated F0
    /// pair), to give back if a controller response displaces it.
    Keyboard(Vec<Sent>),
    /// The controller's own response, or 0xD2: keyboard side, IRQ 1.
    Controller,
    /// 0xD3, or the no-device answer to 0xD4: auxiliary side, IRQ 12.
    Aux,
}

#[derive(Clone, Debug)]
struct OutputBuffer {
    value: u8,
    source: Source,
}

/// Controller commands, counted by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommandCounts {
    pub read_ram: u64,
    pub write_ram: u64,
    pub aux_enable_disable: u64,
    pub aux_test: u64,
    pub self_test: u64,
    pub kbd_test: u64,
    pub kbd_enable_disable: u64,
    pub read_input_port: u64,
    pub read_output_port: u64,
    pub write_output_port: u64,
    pub write_kbd_obuf: u64,
    pub write_aux_obuf: u64,
    pub write_aux: u64,
    pub a20_on_off: u64,
    pub pulse: u64,
    /// Ignored: not a command this controller knows.
    pub unknown: u64,
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct I8042Stats {
    pub commands: CommandCounts,
    /// Bytes written to 0x60 and passed on to the keyboard.
    pub keyboard_writes: u64,
    /// Reads of the status register (0x64): a polling driver at work.
    pub status_reads: u64,
    /// Bytes the guest read from a full output buffer.
    pub bytes_delivered: u64,
    /// Reads of 0x60 with the output buffer empty (they return the last
    /// byte again).
    pub empty_reads: u64,
    /// Host key events whose first byte the guest has read.
    pub keys_delivered: u64,
    /// Unread keyboard bytes a controller response displaced (given back to
    /// the keyboard, not lost).
    pub displaced_keyboard_bytes: u64,
    /// Unread controller or auxiliary bytes a new one overwrote.
    pub overwritten_bytes: u64,
    /// A20 gate changes this controller requested.
    pub a20_changes: u64,
    /// CPU resets requested (0xD1 bit 0 clear, 0xF0-0xFE pulses).
    pub resets: u64,
    pub irq1_raised: u64,
    pub irq12_raised: u64,
    pub keyboard: Ps2KeyboardStats,
}

pub struct I8042 {
    /// See `idle_polls`.
    idle_polls: u32,
    /// Internal RAM; byte 0 is the command byte.
    ram: [u8; RAM_LEN],
    /// Status bit 3: the last write was to 0x64.
    last_write_command: bool,
    timeout: bool,
    obuf: Option<OutputBuffer>,
    /// What 0x60 reads when the output buffer is empty (QEMU: the last
    /// byte, which EMM386 needs).
    last_read: u8,
    /// A command waiting for its parameter byte at 0x60.
    awaiting: Option<u8>,
    /// Translation saw F0 and waits for the byte it modifies.
    translate_break: Option<Sent>,
    /// The A20 gate as the board last reported it (or this controller set).
    a20: bool,
    irq1: bool,
    irq12: bool,
    kbd: Ps2Keyboard,
    stats: I8042Stats,
}

impl Default for I8042 {
    fn default() -> Self {
        Self::new()
    }
}

impl I8042 {
    /// A controller and keyboard in their power-on state (see the module
    /// comment), A20 on.
    pub fn new() -> I8042 {
        let mut ram = [0; RAM_LEN];
        ram[0] = POWER_ON_COMMAND_BYTE;
        I8042 {
            idle_polls: 0,
            ram,
            last_write_command: false,
            timeout: false,
            obuf: None,
            last_read: 0,
            awaiting: None,
            translate_break: None,
            a20: true,
            irq1: false,
            irq12: false,
            kbd: Ps2Keyboard::new(),
            stats: I8042Stats::default(),
        }
    }

    /// Back to the power-on registers and keyboard state (a machine reset).
    /// Host key events still waiting stay queued and the counters keep
    /// counting; the A20 gate is the board's to report.
    pub fn reset(&mut self, cx: &mut IoCtx) {
        // An unread key goes back to the keyboard, whose power-on returns
        // unsent events to the host queue.
        if let Some(OutputBuffer {
            source: Source::Keyboard(sent),
            ..
        }) = self.obuf.take()
        {
            for s in sent.into_iter().rev() {
                self.kbd.unsend(s);
            }
        }
        if let Some(f0) = self.translate_break.take() {
            self.kbd.unsend(f0);
        }
        let mut kbd = std::mem::take(&mut self.kbd);
        kbd.power_on();
        let old = std::mem::take(self);
        self.kbd = kbd;
        self.a20 = old.a20;
        self.stats = old.stats;
        // Drive the lines from their old levels to the new ones.
        self.irq1 = old.irq1;
        self.irq12 = old.irq12;
        self.pump(cx);
    }

    /// The board reports the A20 gate whenever it changes, from any source
    /// (port 0x92 or this controller), so 0xD0 reads the real gate. Emits
    /// no request.
    pub fn set_a20_line(&mut self, on: bool) {
        self.a20 = on;
    }

    /// The A20 gate as this controller last knew it.
    pub fn a20(&self) -> bool {
        self.a20
    }

    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    pub fn keyboard(&self) -> &Ps2Keyboard {
        &self.kbd
    }

    /// The host presses or releases a key. Nothing is lost: the event waits
    /// until the keyboard and the output buffer take it.
    pub fn key_event(&mut self, key: Key, pressed: bool, cx: &mut IoCtx) {
        self.kbd.key_event(key, pressed);
        self.pump(cx);
    }

    /// Several host key events, in order.
    pub fn key_events<I>(&mut self, events: I, cx: &mut IoCtx)
    where
        I: IntoIterator<Item = (Key, bool)>,
    {
        for (k, p) in events {
            self.kbd.key_event(k, p);
        }
        self.pump(cx);
    }

    /// Types `text` (see [`parse_key_text`] for the escapes): all of
    /// it or, on an error, none of it. Returns the number of key events.
    pub fn type_text(&mut self, text: &str, cx: &mut IoCtx) -> Result<usize, KeyTextError> {
        let events = parse_key_text(text)?;
        let n = events.len();
        self.key_events(events, cx);
        Ok(n)
    }

    /// Host key events not yet taken by the keyboard.
    pub fn host_keys_pending(&self) -> usize {
        self.kbd.pending_host_events()
    }

    /// Reads of the status register so far.
    pub fn status_reads(&self) -> u64 {
        self.stats.status_reads
    }

    /// Consecutive status reads that found the output buffer empty, with
    /// no write to the controller between them: a driver polling for a
    /// key (a set-up sequence writes between its reads).
    pub fn idle_polls(&self) -> u32 {
        self.idle_polls
    }

    pub fn stats(&self) -> I8042Stats {
        let mut s = self.stats.clone();
        s.keyboard = self.kbd.stats().clone();
        s
    }

    // ---- output buffer and interrupts ------------------------------------

    fn status(&self) -> u8 {
        let mut s = ST_NOT_INHIBITED;
        if self.ram[0] & CB_SYS != 0 {
            s |= ST_SYS;
        }
        if let Some(o) = &self.obuf {
            s |= ST_OBF;
            if o.source == Source::Aux {
                s |= ST_AUX_OBF;
            }
        }
        if self.last_write_command {
            s |= ST_CMD;
        }
        if self.timeout {
            s |= ST_TIMEOUT;
        }
        s
    }

    fn output_port(&self) -> u8 {
        OP_IDLE_HIGH
            | OP_RESET
            | if self.a20 { OP_A20 } else { 0 }
            | if self.irq1 { OP_KBD_IRQ } else { 0 }
            | if self.irq12 { OP_AUX_IRQ } else { 0 }
    }

    /// Drives IRQ 1 and IRQ 12 to the levels the output buffer and the
    /// command byte call for, when they change.
    fn update_irqs(&mut self, cx: &mut IoCtx) {
        let cb = self.ram[0];
        let (l1, l12) = match &self.obuf {
            None => (false, false),
            Some(o) if o.source == Source::Aux => (false, cb & CB_AUX_INT != 0),
            Some(_) => (cb & CB_KBD_INT != 0, false),
        };
        if l1 != self.irq1 {
            self.irq1 = l1;
            self.stats.irq1_raised += l1 as u64;
            cx.set_irq(KBD_IRQ, l1);
        }
        if l12 != self.irq12 {
            self.irq12 = l12;
            self.stats.irq12_raised += l12 as u64;
            cx.set_irq(AUX_IRQ, l12);
        }
    }

    /// Puts a controller-generated byte in the output buffer, displacing
    /// whatever is there (see the module comment).
    fn load(&mut self, value: u8, source: Source) {
        match self.obuf.take().map(|o| o.source) {
            Some(Source::Keyboard(sent)) => {
                self.stats.displaced_keyboard_bytes += 1;
                for s in sent.into_iter().rev() {
                    self.kbd.unsend(s);
                }
            }
            Some(_) => self.stats.overwritten_bytes += 1,
            None => {}
        }
        self.timeout = false;
        self.obuf = Some(OutputBuffer { value, source });
    }

    /// Moves the keyboard's next byte into an empty output buffer while the
    /// keyboard interface is enabled, translating set 2 to set 1 when
    /// command byte bit 6 asks (an F0 prefix sets bit 7 of the next byte).
    fn fill_from_keyboard(&mut self) {
        if self.obuf.is_some() || self.ram[0] & CB_KBD_DISABLE != 0 {
            return;
        }
        while let Some(s) = self.kbd.next_byte() {
            if self.ram[0] & CB_TRANSLATE == 0 {
                // Translation switched off after an F0: it goes out as is.
                if let Some(f0) = self.translate_break.take() {
                    self.kbd.unsend(s);
                    self.obuf = Some(OutputBuffer {
                        value: f0.byte,
                        source: Source::Keyboard(vec![f0]),
                    });
                    return;
                }
                self.obuf = Some(OutputBuffer {
                    value: s.byte,
                    source: Source::Keyboard(vec![s]),
                });
                return;
            }
            if s.byte == BREAK_PREFIX && self.translate_break.is_none() {
                self.translate_break = Some(s);
                continue;
            }
            let mut sent = Vec::with_capacity(2);
            let mut value = SET2_TO_SET1[s.byte as usize];
            if let Some(f0) = self.translate_break.take() {
                sent.push(f0);
                value |= 0x80;
            }
            sent.push(s);
            self.obuf = Some(OutputBuffer {
                value,
                source: Source::Keyboard(sent),
            });
            return;
        }
    }

    /// After anything that may have changed the output buffer, the keyboard
    /// or the command byte: refill, then drive the lines.
    fn pump(&mut self, cx: &mut IoCtx) {
        self.fill_from_keyboard();
        self.update_irqs(cx);
    }

    // ---- port accesses ------------------------------------------------

    fn read_data(&mut self, cx: &mut IoCtx) -> u8 {
        match self.obuf.take() {
            Some(o) => {
                self.stats.bytes_delivered += 1;
                if let Source::Keyboard(sent) = &o.source {
                    if sent.iter().any(Sent::starts_key) {
                        self.stats.keys_delivered += 1;
                    }
                }
                self.last_read = o.value;
                self.timeout = false;
            }
            None => self.stats.empty_reads += 1,
        }
        // The line drops with the read; a refill raises it again: an edge.
        self.update_irqs(cx);
        self.pump(cx);
        self.last_read
    }

    fn write_data(&mut self, value: u8, cx: &mut IoCtx) {
        self.last_write_command = false;
        match self.awaiting.take() {
            Some(c @ C_WRITE_RAM_FIRST..=C_WRITE_RAM_LAST) => {
                self.ram[(c - C_WRITE_RAM_FIRST) as usize] = value;
            }
            Some(C_WRITE_OUTPUT) => self.write_output_port(value, cx),
            Some(C_WRITE_KBD_OBUF) => self.load(value, Source::Controller),
            Some(C_WRITE_AUX_OBUF) => self.load(value, Source::Aux),
            Some(C_WRITE_AUX) => {
                // No device clocks the byte in: timeout, FE from "aux".
                self.load(AUX_NO_DEVICE, Source::Aux);
                self.timeout = true;
            }
            _ => {
                self.stats.keyboard_writes += 1;
                self.ram[0] &= !CB_KBD_DISABLE;
                self.kbd.write(value);
            }
        }
        self.pump(cx);
    }

    fn write_output_port(&mut self, value: u8, cx: &mut IoCtx) {
        self.set_a20_from_controller(value & OP_A20 != 0, cx);
        if value & OP_RESET == 0 {
            self.request_reset(cx);
        }
    }

    fn set_a20_from_controller(&mut self, on: bool, cx: &mut IoCtx) {
        if on != self.a20 {
            self.a20 = on;
            self.stats.a20_changes += 1;
            cx.request(Request::A20(on));
        }
    }

    fn request_reset(&mut self, cx: &mut IoCtx) {
        self.stats.resets += 1;
        cx.request(Request::Stop(MachineStop::Reset));
    }

    fn write_command(&mut self, cmd: u8, cx: &mut IoCtx) {
        self.last_write_command = true;
        // A new command abandons one still waiting for its parameter.
        self.awaiting = None;
        let c = &mut self.stats.commands;
        match cmd {
            C_READ_RAM_FIRST..=C_READ_RAM_LAST => {
                c.read_ram += 1;
                let v = self.ram[(cmd - C_READ_RAM_FIRST) as usize];
                self.load(v, Source::Controller);
            }
            C_WRITE_RAM_FIRST..=C_WRITE_RAM_LAST => {
                c.write_ram += 1;
                self.awaiting = Some(cmd);
            }
            C_AUX_DISABLE => {
                c.aux_enable_disable += 1;
                self.ram[0] |= CB_AUX_DISABLE;
            }
            C_AUX_ENABLE => {
                c.aux_enable_disable += 1;
                self.ram[0] &= !CB_AUX_DISABLE;
            }
            C_AUX_TEST => {
                c.aux_test += 1;
                self.load(INTERFACE_OK, Source::Controller);
            }
            C_SELF_TEST => {
                c.self_test += 1;
                self.ram[0] |= CB_SYS;
                self.load(SELF_TEST_OK, Source::Controller);
            }
            C_KBD_TEST => {
                c.kbd_test += 1;
                self.load(INTERFACE_OK, Source::Controller);
            }
            C_KBD_DISABLE => {
                c.kbd_enable_disable += 1;
                self.ram[0] |= CB_KBD_DISABLE;
            }
            C_KBD_ENABLE => {
                c.kbd_enable_disable += 1;
                self.ram[0] &= !CB_KBD_DISABLE;
            }
            C_READ_INPUT => {
                c.read_input_port += 1;
                self.load(INPUT_PORT, Source::Controller);
            }
            C_READ_OUTPUT => {
                c.read_output_port += 1;
                let v = self.output_port();
                self.load(v, Source::Controller);
            }
            C_WRITE_OUTPUT => {
                c.write_output_port += 1;
                self.awaiting = Some(cmd);
            }
            C_WRITE_KBD_OBUF => {
                c.write_kbd_obuf += 1;
                self.awaiting = Some(cmd);
            }
            C_WRITE_AUX_OBUF => {
                c.write_aux_obuf += 1;
                self.awaiting = Some(cmd);
            }
            C_WRITE_AUX => {
                c.write_aux += 1;
                self.awaiting = Some(cmd);
            }
            C_A20_OFF | C_A20_ON => {
                c.a20_on_off += 1;
                self.set_a20_from_controller(cmd == C_A20_ON, cx);
            }
            C_PULSE_FIRST..=0xFF => {
                c.pulse += 1;
                // Bits 3-0 select the lines to pulse low (0 = pulse); only
                // bit 0, the reset line, has an effect (0xFE, 0xF0, ...).
                if cmd & OP_RESET == 0 {
                    self.request_reset(cx);
                }
            }
            _ => c.unknown += 1,
        }
        self.pump(cx);
    }
}

impl Device for I8042 {
    fn name(&self) -> &'static str {
        "8042 keyboard controller"
    }

    fn pio_read(&mut self, region: usize, _offset: u16, _size: u8, cx: &mut IoCtx) -> u32 {
        match region {
            REGION_DATA => self.read_data(cx) as u32,
            REGION_COMMAND => {
                self.stats.status_reads += 1;
                let st = self.status();
                // A driver waiting for a key reads the status again and
                // again and finds the output buffer empty.
                if st & 0x01 == 0 {
                    self.idle_polls = self.idle_polls.saturating_add(1);
                } else {
                    self.idle_polls = 0;
                }
                st as u32
            }
            _ => 0xFF,
        }
    }

    fn pio_write(&mut self, region: usize, _offset: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        self.idle_polls = 0;
        match region {
            REGION_DATA => self.write_data(value as u8, cx),
            REGION_COMMAND => self.write_command(value as u8, cx),
            _ => {}
        }
    }
}
