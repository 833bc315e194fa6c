//! National Semiconductor / TI PC16550D UART (the "16550A"), the PC's COM1.
//!
//! Register-level model of the PC16550D (TI datasheet SNLS378): receiver
//! buffer / transmitter holding register, interrupt enable and
//! identification, FIFO control, line control with the divisor latch, modem
//! control with loopback, line status, modem status and scratch registers.
//! The chip is mapped at 0x3F8 (8 ports, region 0); its INTR output goes to
//! the ISA IRQ line given to [`Uart16550::new`].
//!
//! The wiring of INTR. On IBM's PC/AT serial adapter INTR reaches the bus
//! through a buffer enabled by the chip's OUT2 pin (MCR bit 3), so a guest
//! must set OUT2 to get interrupts; [`Uart16550::with_out2_gate`] builds
//! that adapter. ringlab's PC board wires INTR straight to the line, as
//! QEMU's and Bochs' boards do ([`Uart16550::new`]): the guests OS courses
//! use are written against those, and xv6's `uartinit` writes MCR = 0 and
//! still takes its console input by interrupt.
//!
//! The far end of the serial line is the host: a terminal that is always
//! connected (CTS, DSR and DCD asserted), receives every transmitted byte
//! ([`Uart16550::output`]) and sends bytes through an unbounded queue
//! ([`Uart16550::push_input`]).
//!
//! Timing. Transmission is instantaneous: a byte written to THR reaches the
//! host (or, in loopback, the receiver) during the write, so THRE and TEMT are
//! set again right after every write; a guest polling LSR never waits.
//! Reception is equally instantaneous: bytes move from the host queue into
//! the receiver whenever it has room, so the host never overruns the guest.
//! The only timed behaviour is the FIFO character timeout (datasheet 8.6.2,
//! "FIFO Interrupt Mode Operation"), measured in virtual nanoseconds from the
//! programmed divisor and character format.
//!
//! Power-on state. The datasheet's Master Reset clears LCR (5-bit words) and
//! leaves the divisor latch undefined. A PC guest normally starts after
//! firmware that has used the port, and guests loaded directly (multiboot,
//! boot sectors) commonly print without programming it, so the model starts
//! in the state Bochs gives its UARTs at power-on: 8N1 (LCR = 0x03) at 9600
//! baud (divisor 12). Every other register has its Master Reset value
//! (datasheet Table IV).

use std::collections::VecDeque;

use crate::bus::{Device, IoCtx};

// Register offsets from the base port (datasheet Table II).
const REG_DATA: u16 = 0; // RBR (read), THR (write), DLL when DLAB = 1
const REG_IER: u16 = 1; // IER, DLM when DLAB = 1
const REG_IIR_FCR: u16 = 2; // IIR (read), FCR (write)
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const REG_MSR: u16 = 6;
const REG_SCR: u16 = 7;
const NUM_PORTS: u16 = 8;

// Interrupt Enable Register. Bits 4-7 are always 0.
const IER_ERBFI: u8 = 0x01; // received data available (and character timeout)
const IER_ETBEI: u8 = 0x02; // transmitter holding register empty
const IER_ELSI: u8 = 0x04; // receiver line status
const IER_EDSSI: u8 = 0x08; // modem status
const IER_MASK: u8 = 0x0F;

// Interrupt Identification Register (datasheet Table V).
const IIR_NONE: u8 = 0x01; // bit 0 = 1: no interrupt pending
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RX_DATA: u8 = 0x04;
const IIR_CHAR_TIMEOUT: u8 = 0x0C;
const IIR_THRE: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_FIFOS_ENABLED: u8 = 0xC0; // bits 6-7 follow FCR bit 0

// FIFO Control Register.
const FCR_ENABLE: u8 = 0x01;
const FCR_CLEAR_RX: u8 = 0x02;
const FCR_DMA_MODE: u8 = 0x08; // selects RXRDY/TXRDY pin behaviour only
const FCR_TRIGGER: u8 = 0xC0;

// Line Control Register.
const LCR_WORD_LENGTH: u8 = 0x03; // 00 = 5 bits .. 11 = 8 bits
const LCR_STOP_BITS: u8 = 0x04; // 1.5 stop bits for 5-bit words, else 2
const LCR_PARITY_ENABLE: u8 = 0x08;
const LCR_BREAK: u8 = 0x40;
const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;

// Modem Control Register. Bits 5-7 are always 0.
const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const MCR_MASK: u8 = 0x1F;

// Line Status Register.
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_PE: u8 = 0x04;
const LSR_FE: u8 = 0x08;
const LSR_BI: u8 = 0x10;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const LSR_RX_FIFO_ERROR: u8 = 0x80;
/// The bits that raise a receiver line status interrupt and that a read of
/// LSR clears. The host line never garbles a character, so PE and FE are
/// never set here (loopback neither: the receiver checks what the
/// transmitter generated with the same LCR); OE and BI are.
const LSR_ERRORS: u8 = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// Modem Status Register.
const MSR_DCTS: u8 = 0x01;
const MSR_DDSR: u8 = 0x02;
const MSR_TERI: u8 = 0x04; // trailing edge of RI (RI went from on to off)
const MSR_DDCD: u8 = 0x08;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;

/// Depth of the receiver FIFO; the 16450-compatible mode holds one byte (RBR).
const FIFO_LEN: usize = 16;
/// The PC's 1.8432 MHz crystal divided by 16: the baud rate at divisor 1.
const BASE_BAUD: u64 = 115_200;
/// Divisor for 9600 baud, the rate PC firmware leaves the port at.
const DIVISOR_9600: u16 = 12;
/// The character timeout fires after this many character times (8.6.2).
const TIMEOUT_CHARS: u64 = 4;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Where the host end of the line gets the bytes it sends, pulled one at a
/// time whenever the receiver can take one and the guest looks (reads RBR,
/// LSR or IIR, or enables the receive interrupt). A source that blocks in
/// [`next`](Self::next) until it has a byte (a file or pipe) makes the
/// arrival points depend only on the guest's own accesses, so the same
/// input gives the same run; one that never blocks (a terminal) delivers
/// what has arrived, and [`Uart16550::poll_input`] takes later bytes in.
pub trait SerialInput: Send {
    /// The next byte, or None when there is none now (or ever again).
    fn next(&mut self) -> Option<u8>;
    /// True once the source has ended (EOF): it is not asked again.
    fn ended(&self) -> bool;
}

/// What the host sends down the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostRx {
    Byte(u8),
    /// The line held at spacing for longer than a character: a break.
    Break,
}

/// A character in the receiver, with the LSR error bits (PE, FE, BI) that
/// belong to it; they are shown in LSR when it reaches the top of the FIFO.
#[derive(Clone, Copy, Debug)]
struct RxChar {
    data: u8,
    errors: u8,
}

/// Typing a script at a prompt (`--type-after`): the host holds its bytes
/// until the guest has transmitted `prompt`, sends one line (through its
/// '\n'), and holds again, as a person at a terminal waits for the shell.
/// The hold depends only on what the guest transmitted, so a scripted
/// session is as deterministic as the guest.
#[derive(Clone, Debug)]
struct PromptPacing {
    prompt: Vec<u8>,
    /// The last `prompt.len()` bytes transmitted.
    tail: VecDeque<u8>,
    /// Waiting for the prompt before the next line.
    holding: bool,
    /// The input ended and the guest printed the prompt again: reported
    /// once as a stop request.
    done: DoneState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DoneState {
    Running,
    /// To be requested at the end of the current access.
    Pending,
    Requested,
}

impl PromptPacing {
    /// Records a transmitted byte; true when it completes the prompt.
    fn observe(&mut self, byte: u8) -> bool {
        if self.tail.len() == self.prompt.len() {
            self.tail.pop_front();
        }
        self.tail.push_back(byte);
        self.tail.iter().eq(self.prompt.iter())
    }
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UartStats {
    /// Bytes sent to the host.
    pub tx_bytes: u64,
    /// Bytes written while LCR's break bit held the line at spacing.
    pub tx_dropped_in_break: u64,
    /// Bytes looped back to the receiver (MCR LOOP).
    pub loopback_bytes: u64,
    /// Characters (bytes and breaks) taken from the host queue.
    pub rx_chars: u64,
    /// Characters lost to receiver overrun.
    pub overruns: u64,
    /// Low-to-high transitions of the IRQ line.
    pub irq_raised: u64,
    /// Lines sent at the guest's prompt (`--type-after`).
    pub lines_typed: u64,
}

pub struct Uart16550 {
    irq: u8,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    divisor: u16,
    /// FCR bits as last programmed (FIFO enable, DMA mode, trigger level);
    /// FCR itself is write-only.
    fcr: u8,
    /// OE, PE, FE, BI as latched since the last LSR read.
    lsr_errors: u8,
    /// LSR bit 7: an erroneous character is in the FIFO (FIFO mode only).
    fifo_error: bool,
    /// DCTS, DDSR, TERI, DDCD since the last MSR read.
    msr_delta: u8,
    /// The receiver: the RX FIFO, or RBR alone (at most one byte) in 16450
    /// mode.
    rx: VecDeque<RxChar>,
    /// What RBR reads when the receiver is empty: the last byte it held.
    rbr_last: u8,
    /// Bytes from the host not yet taken in by the receiver.
    host_rx: VecDeque<HostRx>,
    /// Where more host bytes come from once `host_rx` is empty.
    source: Option<Box<dyn SerialInput>>,
    /// The source ended (EOF), remembered.
    source_ended: bool,
    /// The THRE interrupt condition (datasheet Table V): set when THR
    /// becomes empty or ETBEI is enabled, cleared by a THR write or an IIR
    /// read that reports it.
    thre_pending: bool,
    /// Virtual time of the last character received or read from the FIFO:
    /// the start of the character timeout.
    rx_timer_start: u64,
    /// The character timeout condition has occurred (cleared by reading a
    /// character).
    timeout_fired: bool,
    /// The level last driven onto the IRQ line.
    irq_level: bool,
    /// INTR reaches the IRQ line only with MCR OUT2 (the IBM adapter).
    out2_gate: bool,
    /// Input held for the guest's prompt, when set.
    pacing: Option<PromptPacing>,
    out: Vec<u8>,
    stats: UartStats,
}

impl Uart16550 {
    /// A UART in its power-on state (see the module comment) with INTR
    /// wired to ISA line `irq`, as on ringlab's PC board.
    pub fn new(irq: u8) -> Uart16550 {
        Uart16550::wired(irq, false)
    }

    /// A UART on IBM's PC/AT serial adapter: INTR reaches ISA line `irq`
    /// only while MCR OUT2 is set.
    pub fn with_out2_gate(irq: u8) -> Uart16550 {
        Uart16550::wired(irq, true)
    }

    fn wired(irq: u8, out2_gate: bool) -> Uart16550 {
        Uart16550 {
            irq,
            ier: 0,
            lcr: LCR_8N1,
            mcr: 0,
            scr: 0,
            divisor: DIVISOR_9600,
            fcr: 0,
            lsr_errors: 0,
            fifo_error: false,
            msr_delta: 0,
            rx: VecDeque::with_capacity(FIFO_LEN),
            rbr_last: 0,
            host_rx: VecDeque::new(),
            source: None,
            source_ended: false,
            thre_pending: false,
            rx_timer_start: 0,
            timeout_fired: false,
            irq_level: false,
            out2_gate,
            pacing: None,
            out: Vec::new(),
            stats: UartStats::default(),
        }
    }

    /// The bytes the guest transmitted to the host since the last
    /// [`take_output`](Self::take_output) (or since power-on). Bytes sent in
    /// loopback mode never reach the host and are not here.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Takes the bytes transmitted since the last take; [`output`](Self::output)
    /// is empty afterwards.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The host sends `data`: queued without bound and fed to the receiver
    /// as it has room.
    pub fn push_input(&mut self, data: &[u8], cx: &mut IoCtx) {
        self.host_rx.extend(data.iter().map(|&b| HostRx::Byte(b)));
        self.after_host_input(cx);
    }

    /// The host sends a break (the line held at spacing for more than a
    /// character time): received as a 0 byte with LSR BI (datasheet, LSR
    /// bit 4: only one character is loaded into the FIFO per break).
    pub fn push_break(&mut self, cx: &mut IoCtx) {
        self.host_rx.push_back(HostRx::Break);
        self.after_host_input(cx);
    }

    /// Connects the host end of the line to `source` (see [`SerialInput`]).
    pub fn attach_input(&mut self, source: Box<dyn SerialInput>) {
        self.source = Some(source);
        self.source_ended = false;
    }

    /// Holds the host's bytes until the guest transmits `prompt`, then sends
    /// one line and holds again (see `PromptPacing`); None sends as
    /// soon as the receiver has room. Once the input has ended and the
    /// guest transmits the prompt again, the UART asks the machine to stop
    /// ([`MachineStop::InputDone`](crate::MachineStop::InputDone)).
    pub fn set_prompt_pacing(&mut self, prompt: Option<&[u8]>) {
        self.pacing = prompt.filter(|p| !p.is_empty()).map(|p| PromptPacing {
            prompt: p.to_vec(),
            tail: VecDeque::with_capacity(p.len()),
            holding: true,
            done: DoneState::Running,
        });
    }

    /// Takes in what a non-blocking source has received since the guest
    /// last looked (the frontend calls this periodically), once the guest
    /// receives by interrupt (IER bit 0). Before that a byte taken in at
    /// some moment of host time could be thrown away by the guest's own
    /// set-up (a FIFO reset), and a polling guest takes bytes when it
    /// looks anyway.
    pub fn poll_input(&mut self, cx: &mut IoCtx) {
        if self.source.is_some() && self.ier & IER_ERBFI != 0 {
            self.after_host_input(cx);
        }
    }

    /// True once the attached source has ended (EOF) and everything it sent
    /// has been taken in by the receiver.
    pub fn input_ended(&self) -> bool {
        self.source_ended && self.host_rx.is_empty()
    }

    /// Host bytes not yet taken in by the receiver.
    pub fn pending_input(&self) -> usize {
        self.host_rx.len()
    }

    pub fn stats(&self) -> &UartStats {
        &self.stats
    }

    fn after_host_input(&mut self, cx: &mut IoCtx) {
        self.poll_timeout(cx.now);
        self.fill_from_host(cx.now);
        self.update_irq(cx);
    }

    /// Asks the machine to stop once a paced script has ended (see
    /// [`set_prompt_pacing`](Self::set_prompt_pacing)).
    fn report_done(&mut self, cx: &mut IoCtx) {
        if let Some(p) = &mut self.pacing {
            if p.done == DoneState::Pending {
                p.done = DoneState::Requested;
                cx.request(crate::bus::Request::Stop(crate::MachineStop::InputDone));
            }
        }
    }

    // ---- derived state --------------------------------------------------

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_LEN
        } else {
            1
        }
    }

    /// RX FIFO interrupt trigger level, FCR bits 6-7 (datasheet Table IV).
    fn trigger_level(&self) -> usize {
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    fn word_length(&self) -> u32 {
        5 + (self.lcr & LCR_WORD_LENGTH) as u32
    }

    /// The data bits a character of the programmed word length carries: the
    /// transmitter shifts out only these, the receiver assembles only these.
    fn word_mask(&self) -> u8 {
        (0xFFu16 >> (8 - self.word_length())) as u8
    }

    /// One character on the line in half bit times: start bit, data bits,
    /// parity bit, and 1, 1.5 (5-bit words with LCR bit 2) or 2 stop bits.
    fn char_half_bits(&self) -> u64 {
        let bits = 1 + self.word_length() as u64 + (self.lcr & LCR_PARITY_ENABLE != 0) as u64;
        let stop_half_bits = match (self.lcr & LCR_STOP_BITS != 0, self.word_length()) {
            (false, _) => 2,
            (true, 5) => 3,
            (true, _) => 4,
        };
        2 * bits + stop_half_bits
    }

    /// When the character timeout expires if nothing is received or read.
    /// None with divisor 0: the datasheet leaves that divisor undefined;
    /// here the baud generator is stopped, so the timer never counts.
    fn timeout_deadline(&self) -> Option<u64> {
        if self.divisor == 0 {
            return None;
        }
        // Character time = half_bits / 2 * divisor / 115200 s; at most
        // 4 * 24 * 65535 * 1e9, well inside u64. Rounded up so the deadline
        // is never early.
        let ns = (TIMEOUT_CHARS * self.char_half_bits() * self.divisor as u64 * NS_PER_SEC)
            .div_ceil(2 * BASE_BAUD);
        Some(self.rx_timer_start.saturating_add(ns))
    }

    /// What the modem control inputs read (MSR bits 4-7). In loopback they
    /// are wired to the modem control outputs (datasheet, MCR bit 4: RTS to
    /// CTS, DTR to DSR, OUT1 to RI, OUT2 to DCD); otherwise the host
    /// terminal is connected and ready: CTS, DSR and DCD on, no ring.
    fn modem_inputs(&self) -> u8 {
        if self.loopback() {
            let m = self.mcr;
            (if m & MCR_RTS != 0 { MSR_CTS } else { 0 })
                | (if m & MCR_DTR != 0 { MSR_DSR } else { 0 })
                | (if m & MCR_OUT1 != 0 { MSR_RI } else { 0 })
                | (if m & MCR_OUT2 != 0 { MSR_DCD } else { 0 })
        } else {
            MSR_CTS | MSR_DSR | MSR_DCD
        }
    }

    /// The received data available condition: the FIFO at or above its
    /// trigger level, or RBR full in 16450 mode.
    fn rx_data_available(&self) -> bool {
        if self.fifo_enabled() {
            self.rx.len() >= self.trigger_level()
        } else {
            !self.rx.is_empty()
        }
    }

    /// The highest-priority enabled interrupt, as its IIR bits 0-3
    /// (datasheet Table V).
    fn pending_interrupt(&self) -> Option<u8> {
        let ier = self.ier;
        if ier & IER_ELSI != 0 && self.lsr_errors & LSR_ERRORS != 0 {
            Some(IIR_LINE_STATUS)
        } else if ier & IER_ERBFI != 0 && self.rx_data_available() {
            Some(IIR_RX_DATA)
        } else if ier & IER_ERBFI != 0 && self.timeout_fired {
            Some(IIR_CHAR_TIMEOUT)
        } else if ier & IER_ETBEI != 0 && self.thre_pending {
            Some(IIR_THRE)
        } else if ier & IER_EDSSI != 0 && self.msr_delta != 0 {
            Some(IIR_MODEM_STATUS)
        } else {
            None
        }
    }

    /// Drives the IRQ line if its level changed. With the OUT2 gate (the
    /// IBM PC/AT adapter) INTR reaches the bus through a buffer enabled by
    /// the OUT2 pin, so only MCR OUT2 lets the interrupt out, and in
    /// loopback the chip forces OUT2 inactive (datasheet, MCR bit 4), which
    /// disconnects the line too.
    fn update_irq(&mut self, cx: &mut IoCtx) {
        let gated = self.out2_gate && (self.mcr & MCR_OUT2 == 0 || self.loopback());
        let level = self.pending_interrupt().is_some() && !gated;
        if level != self.irq_level {
            self.irq_level = level;
            if level {
                self.stats.irq_raised += 1;
            }
            cx.set_irq(self.irq, level);
        }
    }

    // ---- receiver -------------------------------------------------------

    /// Restarts the character timeout: a character was received or read.
    fn restart_rx_timer(&mut self, now: u64) {
        self.rx_timer_start = now;
    }

    /// Sets the timeout condition once 4 character times passed with
    /// characters in the FIFO and no reception or read (datasheet 8.6.2).
    fn poll_timeout(&mut self, now: u64) {
        if self.fifo_enabled() && !self.rx.is_empty() && !self.timeout_fired {
            if let Some(t) = self.timeout_deadline() {
                if now >= t {
                    self.timeout_fired = true;
                }
            }
        }
    }

    /// A complete character arrives in the receiver shift register.
    fn receive(&mut self, c: RxChar, now: u64) {
        // The timer restarts on reception unless a timeout has already
        // occurred; that one is cleared only by reading the FIFO (8.6.2 C).
        if !self.timeout_fired {
            self.restart_rx_timer(now);
        }
        if self.rx.len() >= self.rx_capacity() {
            // LSR bit 1: in FIFO mode the character in the shift register is
            // lost and the FIFO kept; in 16450 mode the new character
            // overwrites RBR, destroying the previous one.
            self.lsr_errors |= LSR_OE;
            self.stats.overruns += 1;
            if !self.fifo_enabled() {
                self.rx[0] = c;
                self.lsr_errors |= c.errors;
            }
            return;
        }
        if self.rx.is_empty() {
            // It is at the top of the FIFO at once: its errors show in LSR.
            self.lsr_errors |= c.errors;
        }
        if c.errors != 0 && self.fifo_enabled() {
            self.fifo_error = true;
        }
        self.rx.push_back(c);
    }

    /// Moves host characters into the receiver while it has room. In
    /// loopback the serial input is disconnected (MCR bit 4), so the host
    /// waits.
    fn fill_from_host(&mut self, now: u64) {
        if self.loopback() {
            return;
        }
        while self.rx.len() < self.rx_capacity() {
            if self.pacing.as_ref().is_some_and(|p| p.holding) {
                break;
            }
            let next = match self.host_rx.pop_front() {
                Some(c) => Some(c),
                None => self.pull(),
            };
            let c = match next {
                None => break,
                Some(HostRx::Byte(b)) => {
                    if b == b'\n' {
                        if let Some(p) = &mut self.pacing {
                            // The line is sent: wait for the next prompt.
                            p.holding = true;
                            self.stats.lines_typed += 1;
                        }
                    }
                    RxChar {
                        data: b & self.word_mask(),
                        errors: 0,
                    }
                }
                Some(HostRx::Break) => RxChar {
                    data: 0,
                    errors: LSR_BI,
                },
            };
            self.stats.rx_chars += 1;
            self.receive(c, now);
        }
    }

    /// The next byte from the source, if there is one.
    fn pull(&mut self) -> Option<HostRx> {
        let src = self.source.as_mut()?;
        match src.next() {
            Some(b) => Some(HostRx::Byte(b)),
            None => {
                if src.ended() {
                    self.source = None;
                    self.source_ended = true;
                }
                None
            }
        }
    }

    fn clear_rx(&mut self) {
        self.rx.clear();
        self.fifo_error = false;
        self.timeout_fired = false;
    }

    fn read_rbr(&mut self, now: u64) -> u8 {
        let Some(c) = self.rx.pop_front() else {
            return self.rbr_last;
        };
        self.rbr_last = c.data;
        if self.fifo_enabled() {
            // Reading a character clears a timeout and restarts the timer.
            self.timeout_fired = false;
            self.restart_rx_timer(now);
        }
        if let Some(top) = self.rx.front() {
            self.lsr_errors |= top.errors;
        }
        self.fill_from_host(now);
        c.data
    }

    fn read_lsr(&mut self, now: u64) -> u8 {
        // The guest looks at the line: a source's next byte arrives now.
        if self.rx.is_empty() {
            self.fill_from_host(now);
        }
        let mut v = self.lsr_errors | LSR_THRE | LSR_TEMT;
        if !self.rx.is_empty() {
            v |= LSR_DR;
        }
        if self.fifo_enabled() && self.fifo_error {
            v |= LSR_RX_FIFO_ERROR;
        }
        // Reading LSR clears OE, PE, FE and BI; bit 7 stays set only if
        // errors other than the one just reported remain in the FIFO.
        self.lsr_errors &= !LSR_ERRORS;
        self.fifo_error = self.rx.iter().skip(1).any(|c| c.errors != 0);
        v
    }

    // ---- transmitter ----------------------------------------------------

    fn write_thr(&mut self, value: u8, now: u64) {
        // Only the programmed word length is shifted out (LCR bits 0-1).
        let byte = value & self.word_mask();
        if self.loopback() {
            // The transmitter shift register feeds the receiver; SOUT is
            // held marking, so the host sees nothing.
            self.stats.loopback_bytes += 1;
            self.receive(
                RxChar {
                    data: byte,
                    errors: 0,
                },
                now,
            );
        } else if self.lcr & LCR_BREAK != 0 {
            // SOUT is forced to spacing: the host receives a break, not
            // this character.
            self.stats.tx_dropped_in_break += 1;
        } else {
            self.stats.tx_bytes += 1;
            self.out.push(byte);
            let prompted = match &mut self.pacing {
                Some(p) => p.observe(byte) && p.holding,
                None => false,
            };
            if prompted {
                self.release_line(now);
            }
        }
        // Writing THR clears the THRE interrupt; the character leaves at
        // once, so THR is empty again and the condition is set again.
        self.thre_pending = true;
    }

    /// The guest printed its prompt: the next line goes, or, when the input
    /// has ended, the run is done.
    fn release_line(&mut self, now: u64) {
        if let Some(p) = &mut self.pacing {
            p.holding = false;
        }
        self.fill_from_host(now);
        if self.source.is_none() && self.host_rx.is_empty() && self.rx.is_empty() {
            if let Some(p) = &mut self.pacing {
                if p.done == DoneState::Running {
                    p.done = DoneState::Pending;
                }
            }
        }
    }

    // ---- other registers ------------------------------------------------

    fn write_ier(&mut self, value: u8, now: u64) {
        let enabled = value & !self.ier;
        self.ier = value & IER_MASK;
        if enabled & IER_ERBFI != 0 {
            self.fill_from_host(now);
        }
        // Enabling ETBEI while THR is empty (always, here) raises THRE.
        if enabled & IER_ETBEI != 0 {
            self.thre_pending = true;
        }
    }

    fn read_iir(&mut self, now: u64) -> u8 {
        if self.rx.is_empty() {
            self.fill_from_host(now);
        }
        let id = self.pending_interrupt();
        if id == Some(IIR_THRE) {
            // Reading IIR clears THRE only when it is the source shown.
            self.thre_pending = false;
        }
        let fifo = if self.fifo_enabled() {
            IIR_FIFOS_ENABLED
        } else {
            0
        };
        id.unwrap_or(IIR_NONE) | fifo
    }

    fn write_fcr(&mut self, value: u8, now: u64) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.fifo_enabled() {
            // Switching between FIFO and 16450 mode empties the FIFOs.
            self.clear_rx();
        }
        if enable {
            // The other bits are programmed only together with bit 0.
            self.fcr = value & (FCR_ENABLE | FCR_DMA_MODE | FCR_TRIGGER);
            if value & FCR_CLEAR_RX != 0 {
                self.clear_rx();
            }
            // Bit 2 clears the transmit FIFO, which is always empty here
            // since transmission is instantaneous.
        } else {
            self.fcr = 0;
        }
        self.fill_from_host(now);
    }

    fn write_mcr(&mut self, value: u8, now: u64) {
        let before = self.modem_inputs();
        self.mcr = value & MCR_MASK;
        let after = self.modem_inputs();
        let changed = before ^ after;
        if changed & MSR_CTS != 0 {
            self.msr_delta |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.msr_delta |= MSR_DDSR;
        }
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.msr_delta |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            self.msr_delta |= MSR_DDCD;
        }
        // Leaving loopback reconnects the serial input.
        self.fill_from_host(now);
    }

    fn read_msr(&mut self) -> u8 {
        let v = self.msr_delta | self.modem_inputs();
        self.msr_delta = 0;
        v
    }

    fn read_reg(&mut self, offset: u16, now: u64) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.divisor as u8,
            REG_DATA => self.read_rbr(now),
            REG_IER if dlab => (self.divisor >> 8) as u8,
            REG_IER => self.ier,
            REG_IIR_FCR => self.read_iir(now),
            REG_LCR => self.lcr,
            REG_MCR => self.mcr,
            REG_LSR => self.read_lsr(now),
            REG_MSR => self.read_msr(),
            REG_SCR => self.scr,
            // Past the chip's 8 ports (a wide access at the top).
            _ => 0xFF,
        }
    }

    fn write_reg(&mut self, offset: u16, value: u8, now: u64) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_DATA if dlab => self.divisor = (self.divisor & 0xFF00) | value as u16,
            REG_DATA => self.write_thr(value, now),
            REG_IER if dlab => self.divisor = (self.divisor & 0x00FF) | (value as u16) << 8,
            REG_IER => self.write_ier(value, now),
            REG_IIR_FCR => self.write_fcr(value, now),
            REG_LCR => self.lcr = value,
            REG_MCR => self.write_mcr(value, now),
            // LSR is for factory testing only ("writing to this register is
            // not recommended") and MSR is read-only: writes are ignored.
            REG_LSR | REG_MSR => {}
            REG_SCR => self.scr = value,
            _ => {}
        }
    }
}

impl Device for Uart16550 {
    fn name(&self) -> &'static str {
        "16550A UART"
    }

    /// An 8-bit ISA device: a wider access is split into byte accesses at
    /// consecutive offsets, as the bus does.
    fn pio_read(&mut self, _region: usize, offset: u16, size: u8, cx: &mut IoCtx) -> u32 {
        self.poll_timeout(cx.now);
        let mut v = 0u32;
        for i in 0..size.min(4) as u16 {
            let b = match offset.checked_add(i) {
                Some(o) if o < NUM_PORTS => self.read_reg(o, cx.now),
                _ => 0xFF,
            };
            v |= (b as u32) << (8 * i);
        }
        self.update_irq(cx);
        v
    }

    fn pio_write(&mut self, _region: usize, offset: u16, size: u8, value: u32, cx: &mut IoCtx) {
        self.poll_timeout(cx.now);
        for i in 0..size.min(4) as u16 {
            if let Some(o) = offset.checked_add(i).filter(|&o| o < NUM_PORTS) {
                self.write_reg(o, (value >> (8 * i)) as u8, cx.now);
            }
        }
        self.update_irq(cx);
        self.report_done(cx);
    }

    /// The character timeout, while it could still change the interrupt
    /// output: FIFO mode, ERBFI on, data below the trigger level (at or above
    /// it, the received-data interrupt is already asserted).
    fn next_deadline(&self) -> Option<u64> {
        let waiting = self.fifo_enabled()
            && self.ier & IER_ERBFI != 0
            && !self.rx.is_empty()
            && self.rx.len() < self.trigger_level()
            && !self.timeout_fired;
        if waiting {
            self.timeout_deadline()
        } else {
            None
        }
    }

    fn tick(&mut self, cx: &mut IoCtx) {
        self.poll_timeout(cx.now);
        self.update_irq(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Request;

    const IRQ: u8 = 4;

    /// A UART with a clock and the IRQ line changes it produced.
    struct Rig {
        u: Uart16550,
        now: u64,
        irq: Vec<(u8, bool)>,
        req: Vec<Request>,
    }

    impl Rig {
        /// On IBM's adapter (OUT2 gates INTR), as most tests here check the
        /// chip's own interrupt logic through that gate.
        fn new() -> Rig {
            Rig::with(Uart16550::with_out2_gate(IRQ))
        }
        fn with(u: Uart16550) -> Rig {
            Rig {
                u,
                now: 0,
                irq: vec![],
                req: vec![],
            }
        }
        fn rd(&mut self, off: u16) -> u8 {
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.u.pio_read(0, off, 1, &mut cx) as u8
        }
        fn wr(&mut self, off: u16, v: u8) {
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.u.pio_write(0, off, 1, v as u32, &mut cx);
        }
        fn input(&mut self, data: &[u8]) {
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.u.push_input(data, &mut cx);
        }
        /// Advances time to `t` and ticks as the bus would.
        fn advance(&mut self, t: u64) {
            self.now = t;
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            for _ in 0..64 {
                match self.u.next_deadline() {
                    Some(d) if d <= t => self.u.tick(&mut cx),
                    _ => break,
                }
            }
        }
        /// The IRQ line changes since the last call.
        fn irq_changes(&mut self) -> Vec<(u8, bool)> {
            std::mem::take(&mut self.irq)
        }
        fn set_divisor(&mut self, d: u16) {
            let lcr = self.rd(REG_LCR);
            self.wr(REG_LCR, lcr | LCR_DLAB);
            self.wr(0, d as u8);
            self.wr(1, (d >> 8) as u8);
            self.wr(REG_LCR, lcr);
        }
    }

    #[test]
    fn power_on_registers() {
        let mut r = Rig::new();
        assert_eq!(r.rd(REG_LSR), 0x60, "THRE and TEMT, no data");
        assert_eq!(r.rd(REG_IIR_FCR), 0x01, "no interrupt, FIFOs off");
        assert_eq!(r.rd(REG_IER), 0x00);
        assert_eq!(r.rd(REG_LCR), 0x03, "8N1");
        assert_eq!(r.rd(REG_MCR), 0x00);
        assert_eq!(r.rd(REG_MSR), 0xB0, "host terminal: DCD, DSR, CTS");
        assert_eq!(r.rd(REG_SCR), 0x00);
        r.wr(REG_LCR, 0x83);
        assert_eq!((r.rd(0), r.rd(1)), (12, 0), "divisor 12: 9600 baud");
        assert!(r.irq_changes().is_empty());
        assert_eq!(r.u.next_deadline(), None);
    }

    #[test]
    fn transmit_reaches_host_and_leaves_thr_empty() {
        let mut r = Rig::new();
        r.wr(0, b'h');
        assert_eq!(r.rd(REG_LSR), 0x60, "THRE and TEMT right after the write");
        r.wr(0, b'i');
        assert_eq!(r.u.output(), b"hi");
        assert_eq!(r.u.take_output(), b"hi");
        assert_eq!(r.u.output(), b"", "output() holds what came since the take");
        r.wr(0, b'!');
        assert_eq!(r.u.take_output(), b"!");
        assert_eq!(r.u.stats().tx_bytes, 3);
    }

    #[test]
    fn received_byte_sets_dr_and_reading_rbr_takes_it() {
        let mut r = Rig::new();
        r.input(b"xy");
        // 16450 mode: RBR holds one byte, the other waits in the host queue.
        assert_eq!(r.u.pending_input(), 1);
        assert_eq!(r.rd(REG_LSR), 0x61);
        assert_eq!(r.rd(0), b'x');
        assert_eq!(r.rd(REG_LSR), 0x61, "y moved in as RBR emptied");
        assert_eq!(r.rd(0), b'y');
        assert_eq!(r.rd(REG_LSR), 0x60);
        assert_eq!(r.rd(0), b'y', "an empty RBR reads its last byte");
        assert_eq!(r.u.stats().rx_chars, 2);
    }

    #[test]
    fn divisor_latch_does_not_disturb_thr_or_ier() {
        let mut r = Rig::new();
        r.wr(REG_IER, 0xFF);
        assert_eq!(r.rd(REG_IER), 0x0F, "IER bits 4-7 read 0");
        r.wr(REG_IER, 0x05);
        r.wr(REG_LCR, 0x83);
        r.wr(0, 0x01);
        r.wr(1, 0x80);
        assert_eq!((r.rd(0), r.rd(1)), (0x01, 0x80));
        assert_eq!(r.rd(REG_LCR), 0x83);
        r.wr(REG_LCR, 0x03);
        assert_eq!(r.u.output(), b"", "DLL write is not a transmission");
        assert_eq!(r.rd(REG_IER), 0x05, "DLM write left IER alone");
        r.wr(0, b'a');
        assert_eq!(r.u.output(), b"a");
        r.wr(REG_LCR, 0x83);
        assert_eq!((r.rd(0), r.rd(1)), (0x01, 0x80), "THR write left DLL alone");
    }

    #[test]
    fn word_length_masks_transmitted_and_received_bytes() {
        let mut r = Rig::new();
        for (lcr, expect) in [(0x00, 0x1F), (0x01, 0x3F), (0x02, 0x7F), (0x03, 0xFF)] {
            r.wr(REG_LCR, lcr);
            r.wr(0, 0xFF);
            assert_eq!(r.u.take_output(), vec![expect], "LCR {lcr:#04x}");
        }
        r.wr(REG_LCR, 0x00);
        r.wr(0, b'H');
        assert_eq!(r.u.take_output(), vec![b'H' & 0x1F]);
        r.wr(REG_LCR, 0x02);
        r.input(&[0xC1]);
        assert_eq!(r.rd(0), 0x41, "a 7-bit receiver assembles 7 data bits");
    }

    #[test]
    fn loopback_returns_bytes_and_mirrors_mcr_in_msr() {
        let mut r = Rig::new();
        r.wr(REG_MCR, MCR_LOOP);
        // CTS, DSR and DCD dropped from the host's levels to RTS, DTR, OUT2
        // (all off): three delta bits.
        assert_eq!(r.rd(REG_MSR), 0x0B);
        assert_eq!(r.rd(REG_MSR), 0x00, "reading MSR clears the deltas");
        r.wr(0, b'Z');
        assert_eq!(r.u.output(), b"", "nothing reaches the host");
        assert_eq!(r.rd(REG_LSR), 0x61);
        assert_eq!(r.rd(0), b'Z');
        // All four outputs on: CTS, DSR, RI, DCD on; RI's rising edge is no
        // trailing edge.
        r.wr(REG_MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2);
        assert_eq!(r.rd(REG_MSR), 0xFB);
        r.wr(REG_MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
        assert_eq!(r.rd(REG_MSR), 0xB4, "RI off: TERI");
        r.wr(REG_MCR, MCR_LOOP | MCR_RTS);
        assert_eq!(r.rd(REG_MSR), 0x10 | MSR_DDSR | MSR_DDCD);
        // The serial input is disconnected in loopback: host bytes wait.
        r.input(b"h");
        assert_eq!(r.rd(REG_LSR), 0x60);
        r.wr(REG_MCR, 0x00);
        assert_eq!(r.rd(REG_MSR), 0xB0 | MSR_DDSR | MSR_DDCD);
        assert_eq!(r.rd(0), b'h');
        assert_eq!(r.u.stats().loopback_bytes, 1);
        assert_eq!(r.u.stats().tx_bytes, 0);
    }

    #[test]
    fn iir_priorities_and_clearing() {
        let mut r = Rig::new();
        r.wr(REG_MCR, MCR_LOOP); // modem status deltas pending
        r.wr(0, b'a');
        r.wr(0, b'b'); // RBR full: overrun
        r.wr(REG_IER, 0x0F); // enabling ETBEI raises THRE
        assert_eq!(r.rd(REG_IIR_FCR), IIR_LINE_STATUS);
        assert_eq!(
            r.rd(REG_IIR_FCR),
            IIR_LINE_STATUS,
            "IIR read does not clear it"
        );
        assert_eq!(r.rd(REG_LSR), 0x63, "DR, OE, THRE, TEMT");
        assert_eq!(r.rd(REG_IIR_FCR), IIR_RX_DATA);
        assert_eq!(r.rd(0), b'b', "16450 overrun overwrote RBR");
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE);
        // That read reported THRE and so cleared it.
        assert_eq!(r.rd(REG_IIR_FCR), IIR_MODEM_STATUS);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_MODEM_STATUS);
        assert_eq!(r.rd(REG_MSR), 0x0B);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_NONE);
        // A THR write empties THR again at once: THRE again.
        r.wr(0, b'c');
        assert_eq!(
            r.rd(REG_IIR_FCR),
            IIR_RX_DATA,
            "received data outranks THRE"
        );
        r.rd(0);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_NONE);
        // Disabled sources are not reported.
        r.wr(REG_IER, 0x00);
        r.wr(0, b'd');
        r.wr(0, b'e');
        assert_eq!(r.rd(REG_IIR_FCR), IIR_NONE);
        r.wr(REG_IER, IER_ELSI);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_LINE_STATUS);
    }

    #[test]
    fn thre_interrupt_on_etbei_enable() {
        let mut r = Rig::new();
        r.wr(REG_IER, IER_ETBEI);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_NONE);
        r.wr(REG_IER, IER_ETBEI);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_NONE, "ETBEI was already on");
        r.wr(REG_IER, 0);
        r.wr(REG_IER, IER_ETBEI | IER_ERBFI);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE);
        r.wr(0, b'x');
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE, "THR emptied again");
    }

    #[test]
    fn irq_line_reaches_the_pic_only_with_out2() {
        let mut r = Rig::new();
        r.wr(REG_IER, IER_ETBEI);
        assert!(r.irq_changes().is_empty(), "OUT2 off: INTR not connected");
        r.wr(REG_MCR, MCR_OUT2);
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_THRE);
        assert_eq!(r.irq_changes(), vec![(IRQ, false)]);
        r.wr(REG_IER, 0);
        r.wr(REG_IER, IER_ETBEI);
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        r.wr(REG_MCR, 0);
        assert_eq!(r.irq_changes(), vec![(IRQ, false)]);
        // Loopback forces the OUT2 pin inactive: still disconnected.
        r.wr(REG_MCR, MCR_LOOP | MCR_OUT2);
        assert!(r.irq_changes().is_empty());
        assert_eq!(
            r.rd(REG_IIR_FCR),
            IIR_THRE,
            "the chip's own INTR is still on"
        );
        r.wr(REG_MCR, MCR_OUT2);
        r.wr(REG_IER, IER_ERBFI);
        r.input(b"q");
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        r.rd(0);
        assert_eq!(r.irq_changes(), vec![(IRQ, false)]);
        assert_eq!(r.u.stats().irq_raised, 3);
    }

    #[test]
    fn fifo_trigger_levels() {
        for (fcr, level) in [(0x01u8, 1usize), (0x41, 4), (0x81, 8), (0xC1, 14)] {
            let mut r = Rig::new();
            r.wr(REG_IIR_FCR, fcr);
            assert_eq!(r.rd(REG_IIR_FCR), 0xC1, "FIFOs enabled, nothing pending");
            r.wr(REG_MCR, MCR_OUT2);
            r.wr(REG_IER, IER_ERBFI);
            r.input(&vec![b'.'; level - 1]);
            assert!(r.irq_changes().is_empty(), "below trigger {level}");
            r.input(b"!");
            assert_eq!(r.irq_changes(), vec![(IRQ, true)], "at trigger {level}");
            assert_eq!(r.rd(REG_IIR_FCR), 0xC4);
            r.rd(0);
            assert_eq!(r.irq_changes(), vec![(IRQ, false)], "below trigger again");
            assert_eq!(r.rd(REG_IIR_FCR), 0xC1);
        }
    }

    #[test]
    fn fifo_holds_sixteen_and_fcr_clears() {
        let mut r = Rig::new();
        r.wr(REG_IIR_FCR, FCR_ENABLE);
        let data: Vec<u8> = (0..20).collect();
        r.input(&data);
        assert_eq!(r.u.pending_input(), 4, "16 in the FIFO, the rest waits");
        assert_eq!(r.rd(REG_LSR), 0x61, "no overrun from the host");
        assert_eq!(r.rd(0), 0);
        assert_eq!(r.u.pending_input(), 3);
        // Clearing the RX FIFO makes room for the rest.
        r.wr(REG_IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        assert_eq!(r.u.pending_input(), 0);
        assert_eq!((r.rd(0), r.rd(0), r.rd(0)), (17, 18, 19));
        assert_eq!(r.rd(REG_LSR), 0x60);
        // Leaving FIFO mode empties the FIFO.
        r.input(b"ab");
        r.wr(REG_IIR_FCR, 0);
        assert_eq!(r.rd(REG_IIR_FCR), 0x01);
        assert_eq!(r.rd(REG_LSR), 0x60);
    }

    #[test]
    fn character_timeout_after_four_character_times() {
        let mut r = Rig::new();
        r.set_divisor(1); // 115200 baud; 8N1 is 10 bits a character
        r.wr(REG_IIR_FCR, 0xC1); // trigger level 14
        r.wr(REG_MCR, MCR_OUT2);
        r.wr(REG_IER, IER_ERBFI);
        r.now = 1_000;
        r.input(b"abc");
        // 4 * 10 bits / 115200 baud = 347222.2 ns, rounded up.
        let deadline = 1_000 + 347_223;
        assert_eq!(r.u.next_deadline(), Some(deadline));
        r.advance(deadline - 1);
        assert_eq!(r.rd(REG_IIR_FCR), 0xC1, "not yet");
        r.advance(deadline);
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        assert_eq!(r.u.next_deadline(), None);
        r.wr(REG_IER, IER_ERBFI | IER_ETBEI);
        assert_eq!(r.rd(REG_IIR_FCR), 0xCC, "timeout outranks THRE");
        assert_eq!(r.rd(REG_IIR_FCR), 0xCC, "IIR read does not clear it");
        r.wr(REG_IER, IER_ERBFI);
        // Reading a character clears it and restarts the timer.
        r.now = deadline + 500;
        assert_eq!(r.rd(0), b'a');
        assert_eq!(r.irq_changes(), vec![(IRQ, false)]);
        assert_eq!(r.rd(REG_IIR_FCR), 0xC1);
        assert_eq!(r.u.next_deadline(), Some(deadline + 500 + 347_223));
        // A received character restarts it too.
        r.now = deadline + 1_000;
        r.input(b"d");
        assert_eq!(r.u.next_deadline(), Some(deadline + 1_000 + 347_223));
        // Emptying the FIFO ends it.
        for _ in 0..3 {
            r.rd(0);
        }
        assert_eq!(r.u.next_deadline(), None);
        assert_eq!(r.rd(REG_LSR), 0x60);
    }

    #[test]
    fn character_time_follows_divisor_and_format() {
        let mut r = Rig::new();
        r.set_divisor(12);
        r.wr(REG_LCR, 0x0E); // 7 data bits, parity, 2 stop bits: 11 bits
        r.wr(REG_IIR_FCR, 0x41);
        r.wr(REG_IER, IER_ERBFI);
        r.input(b"x");
        // 4 * 11 * 12 / 115200 s = 4583333.3 ns.
        assert_eq!(r.u.next_deadline(), Some(4_583_334));
        r.wr(REG_LCR, 0x04); // 5 data bits, 1.5 stop bits: 7.5 bits
        assert_eq!(r.u.next_deadline(), Some(3_125_000));
        r.wr(REG_LCR, 0x03);
        r.set_divisor(0);
        assert_eq!(r.u.next_deadline(), None, "divisor 0: no baud clock");
        // No timeout in 16450 mode, nor without ERBFI.
        r.set_divisor(1);
        r.wr(REG_IER, 0);
        assert_eq!(r.u.next_deadline(), None);
        r.wr(REG_IER, IER_ERBFI);
        assert!(r.u.next_deadline().is_some());
        r.wr(REG_IIR_FCR, 0);
        r.input(b"y");
        assert_eq!(r.rd(REG_LSR), 0x61);
        assert_eq!(r.u.next_deadline(), None);
    }

    #[test]
    fn timeout_seen_when_erbfi_enabled_late() {
        let mut r = Rig::new();
        r.set_divisor(1);
        r.wr(REG_IIR_FCR, 0xC1);
        r.input(b"a");
        r.advance(10_000_000);
        r.wr(REG_MCR, MCR_OUT2);
        r.wr(REG_IER, IER_ERBFI);
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        assert_eq!(r.rd(REG_IIR_FCR), 0xCC);
    }

    #[test]
    fn overrun_in_fifo_mode_keeps_the_fifo() {
        let mut r = Rig::new();
        r.wr(REG_IIR_FCR, FCR_ENABLE);
        r.wr(REG_MCR, MCR_LOOP | MCR_OUT2);
        r.wr(REG_IER, IER_ELSI);
        for b in 0..17u8 {
            r.wr(0, b);
        }
        assert_eq!(r.rd(REG_IIR_FCR), 0xC6, "receiver line status");
        assert_eq!(r.rd(REG_LSR), 0x63, "DR, OE, THRE, TEMT");
        assert_eq!(r.rd(REG_LSR), 0x61, "OE cleared by the read");
        assert_eq!(r.rd(REG_IIR_FCR), 0xC1);
        let got: Vec<u8> = (0..16).map(|_| r.rd(0)).collect();
        assert_eq!(got, (0..16).collect::<Vec<u8>>(), "the 17th was lost");
        assert_eq!(r.rd(REG_LSR), 0x60);
        assert_eq!(r.u.stats().overruns, 1);
    }

    #[test]
    fn break_from_host_sets_bi_and_fifo_error() {
        let mut r = Rig::new();
        r.wr(REG_IIR_FCR, FCR_ENABLE);
        r.input(b"a");
        let mut cx = IoCtx::new(r.now, &mut r.irq, &mut r.req);
        r.u.push_break(&mut cx);
        r.u.push_input(b"b", &mut cx);
        assert_eq!(r.rd(REG_LSR), 0xE1, "DR, THRE, TEMT, error in FIFO");
        assert_eq!(r.rd(0), b'a');
        assert_eq!(r.rd(REG_LSR), 0xF1, "break char at the top: BI");
        assert_eq!(r.rd(REG_LSR), 0x61, "no further errors in the FIFO");
        assert_eq!(r.rd(0), 0x00, "a break reads as 0");
        assert_eq!(r.rd(0), b'b');
        assert_eq!(r.rd(REG_LSR), 0x60);
    }

    #[test]
    fn break_bit_keeps_bytes_off_the_line() {
        let mut r = Rig::new();
        r.wr(REG_LCR, LCR_BREAK | LCR_8N1);
        r.wr(0, b'A');
        assert_eq!(r.u.output(), b"");
        r.wr(REG_LCR, LCR_8N1);
        r.wr(0, b'B');
        assert_eq!(r.u.output(), b"B");
        assert_eq!(r.u.stats().tx_dropped_in_break, 1);
    }

    #[test]
    fn scratch_register() {
        let mut r = Rig::new();
        r.wr(REG_SCR, 0x5A);
        assert_eq!(r.rd(REG_SCR), 0x5A);
        r.wr(REG_LCR, 0x83);
        assert_eq!(r.rd(REG_SCR), 0x5A, "not banked by DLAB");
        r.wr(REG_SCR, 0xA5);
        r.wr(REG_LCR, 0x03);
        assert_eq!(r.rd(REG_SCR), 0xA5);
    }

    #[test]
    fn wide_accesses_are_split_into_bytes() {
        let mut r = Rig::new();
        let mut cx = IoCtx::new(0, &mut r.irq, &mut r.req);
        r.u.pio_write(0, REG_MCR, 2, 0x1234, &mut cx); // MCR, then LSR (ignored)
        assert_eq!(r.u.pio_read(0, REG_MCR, 2, &mut cx), 0x6014);
        assert_eq!(
            r.u.pio_read(0, REG_MSR, 4, &mut cx),
            0xFFFF_0000 | 0x4B,
            "RI from OUT1"
        );
    }

    /// A source that hands out a fixed text and counts how often it was
    /// asked, then ends.
    struct Script {
        data: std::collections::VecDeque<u8>,
        asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl SerialInput for Script {
        fn next(&mut self) -> Option<u8> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.data.pop_front()
        }
        fn ended(&self) -> bool {
            self.data.is_empty()
        }
    }

    #[test]
    fn a_source_is_pulled_only_when_the_guest_looks_and_its_end_is_kept() {
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut r = Rig::new();
        r.u.attach_input(Box::new(Script {
            data: b"ab".iter().copied().collect(),
            asked: asked.clone(),
        }));
        let n = || asked.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(n(), 0, "nothing is pulled before the guest looks");
        r.wr(REG_SCR, 1);
        assert_eq!(n(), 0, "nor on unrelated accesses");
        // 16450 mode: one byte at a time, each when the guest looks.
        assert_eq!(r.rd(REG_LSR) & LSR_DR, LSR_DR);
        assert_eq!(n(), 1);
        assert_eq!(r.rd(REG_DATA), b'a');
        assert_eq!(r.rd(REG_LSR) & LSR_DR, LSR_DR, "b arrived as RBR emptied");
        assert!(!r.u.input_ended());
        assert_eq!(r.rd(REG_DATA), b'b');
        assert!(r.u.input_ended(), "EOF seen as RBR emptied, and remembered");
        assert_eq!(r.rd(REG_LSR) & LSR_DR, 0);
        let before = n();
        r.rd(REG_LSR);
        r.rd(REG_IIR_FCR);
        assert_eq!(n(), before, "an ended source is not asked again");
    }

    #[test]
    fn enabling_the_receive_interrupt_takes_a_byte_in() {
        let mut r = Rig::new();
        r.wr(REG_MCR, MCR_OUT2);
        r.u.attach_input(Box::new(Script {
            data: b"z".iter().copied().collect(),
            asked: Default::default(),
        }));
        r.irq_changes();
        r.wr(REG_IER, IER_ERBFI);
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        assert_eq!(r.rd(REG_IIR_FCR), IIR_RX_DATA);
        assert_eq!(r.rd(REG_DATA), b'z');
    }

    #[test]
    fn on_the_pc_board_intr_reaches_the_line_without_out2() {
        // xv6's uartinit: FIFOs off, MCR = 0, then the receive interrupt.
        let mut r = Rig::with(Uart16550::new(IRQ));
        r.wr(REG_MCR, 0);
        r.wr(REG_IER, IER_ERBFI);
        r.input(b"k");
        assert_eq!(r.irq_changes(), vec![(IRQ, true)]);
        assert_eq!(r.rd(REG_DATA), b'k');
        assert_eq!(r.irq_changes(), vec![(IRQ, false)]);
    }

    /// The source of a paced script, as a pipe on stdin: every byte at
    /// once, then EOF.
    fn script(text: &[u8]) -> Box<Script> {
        Box::new(Script {
            data: text.iter().copied().collect(),
            asked: Default::default(),
        })
    }

    /// Reads what the receiver holds now (16450 mode, polled).
    fn drain(r: &mut Rig) -> Vec<u8> {
        let mut got = vec![];
        while r.rd(REG_LSR) & LSR_DR != 0 {
            got.push(r.rd(REG_DATA));
        }
        got
    }

    fn print(r: &mut Rig, text: &[u8]) {
        for &b in text {
            r.wr(REG_DATA, b);
        }
    }

    #[test]
    fn paced_input_waits_for_the_prompt_and_sends_one_line_at_a_time() {
        let mut r = Rig::with(Uart16550::new(IRQ));
        r.u.set_prompt_pacing(Some(b"$ "));
        r.u.attach_input(script(b"ls\necho hi\n"));
        assert!(drain(&mut r).is_empty(), "nothing before the first prompt");
        print(&mut r, b"init: starting sh\n$");
        assert!(drain(&mut r).is_empty(), "half a prompt is no prompt");
        print(&mut r, b" ");
        assert_eq!(drain(&mut r), b"ls\n", "one line, then hold");
        print(&mut r, b"ls\nREADME\n");
        assert!(drain(&mut r).is_empty());
        print(&mut r, b"$ ");
        assert_eq!(drain(&mut r), b"echo hi\n");
        assert!(r.req.is_empty(), "the input has not been seen to end yet");
        assert_eq!(r.u.stats().lines_typed, 2);
        // The prompt after the last line: the script is done.
        print(&mut r, b"echo hi\nhi\n$ ");
        assert_eq!(
            r.req,
            vec![Request::Stop(crate::MachineStop::InputDone)],
            "asked once"
        );
        print(&mut r, b"$ ");
        assert_eq!(r.req.len(), 1, "and only once");
    }

    #[test]
    fn a_paced_line_raises_the_receive_interrupt_at_the_prompt() {
        let mut r = Rig::with(Uart16550::new(IRQ));
        r.u.set_prompt_pacing(Some(b"> "));
        r.u.attach_input(script(b"x\n"));
        r.wr(REG_IER, IER_ERBFI);
        assert!(r.irq_changes().is_empty(), "held: no data, no interrupt");
        print(&mut r, b"> ");
        assert_eq!(r.irq_changes(), vec![(IRQ, true)], "the line arrives");
        assert_eq!(drain(&mut r), b"x\n");
    }
}
