//! Intel 8259A programmable interrupt controller: the PC/AT's cascaded pair.
//!
//! Register-level model of the 8259A (Intel datasheet 231468, "8259A
//! Programmable Interrupt Controller"): the interrupt request, in-service and
//! mask registers, the priority resolver with rotation, the four
//! initialization command words and the three operation command words, the
//! poll command, special mask mode, special fully nested mode, automatic EOI,
//! edge- and level-triggered inputs, and both INTA formats (8086 and
//! MCS-80/85).
//!
//! Wiring (PC/AT). The master is mapped at 0x20-0x21 (region 0), the slave
//! at 0xA0-0xA1 (region 1); offset 0 is A0 = 0, offset 1 is A0 = 1. ISA lines
//! 0-7 are the master's IR0-7 and lines 8-15 the slave's IR0-7. The slave's
//! INT output drives the master's IR2, and the CAS lines connect them, so a
//! slave programmed with ID 2 answers when the master acknowledges IR2. Line
//! 2 is not a separate wire: the AT moved the PC's IRQ2 slot pin (B4) to the
//! slave's IR1, so [`Pic::set_irq`] treats line 2 as line 9. The master/slave
//! roles come from the SP/EN pins (tied high on the master, low on the
//! slave); ICW4's BUF and M/S bits are kept but the PC has no bus transceiver
//! on SP/EN, so they do not change the roles.
//!
//! The INT output. The datasheet's interrupt sequence has the 8259A "send an
//! INT to the CPU" and, if the request is gone by the first INTA, "issue an
//! interrupt level 7" ("the request was too short in duration"). So INT, once
//! raised, stays raised until the INTA sequence (or a poll, or ICW1) even if
//! the request is withdrawn or masked meanwhile; the CPU then gets the
//! spurious IR7 vector of the chip that has nothing to give, with no ISR bit
//! set. On the slave the master has already accepted its IR2 request, so the
//! master's ISR bit 2 *is* set and needs an EOI, as on real PCs (the
//! well-known spurious IRQ15). Bochs models INT the same way.
//!
//! Power-on. The datasheet leaves the state before initialization
//! undefined. Both chips start with every line masked (IMR = 0xFF), nothing
//! requested or in service, IR7 lowest priority, and they raise no INT until
//! their first initialization sequence is complete (nor while one is in
//! progress), so nothing reaches the CPU before the guest has chosen vectors.
//!
//! Accesses wider than a byte act on the low byte; reads return it
//! zero-extended. (A real AT's bus would split a word access to this 8-bit
//! device into two byte cycles; no PC software relies on that here.)

use crate::bus::{Device, IoCtx};

/// Index of the master chip (also its bus region).
pub const MASTER: usize = 0;
/// Index of the slave chip (also its bus region).
pub const SLAVE: usize = 1;

/// The master input driven by the slave's INT output.
const CASCADE_IR: u8 = 2;
/// Where ISA line 2 ends up on the AT (the slave's IR1).
const AT_IRQ2_LINE: u8 = 9;
/// The level a chip reports when it has nothing to acknowledge.
const SPURIOUS_IR: u8 = 7;
/// What the CPU reads when no chip drives the data bus during INTA.
const FLOATING_BUS: u8 = 0xFF;

// ICW1 (A0 = 0, D4 = 1).
const ICW1_IC4: u8 = 0x01; // ICW4 will follow
const ICW1_SNGL: u8 = 0x02; // single chip: no ICW3
const ICW1_ADI: u8 = 0x04; // MCS-80/85 call address interval 4 (else 8)
const ICW1_LTIM: u8 = 0x08; // level-triggered inputs
const ICW1_INIT: u8 = 0x10; // marks ICW1 among even-port writes
const ICW1_A7_A5: u8 = 0xE0; // MCS-80/85 vector address bits A7-A5
const ICW1_A7_A6: u8 = 0xC0; // ... of which A7-A6 with interval 8

// ICW2: T7-T3 of the vector in 8086 mode; D2-D0 are ignored.
const ICW2_VECTOR: u8 = 0xF8;
// ICW3 on a slave: its ID, D2-D0.
const ICW3_SLAVE_ID: u8 = 0x07;
/// The slave address the datasheet says ICW1 sets (init step d).
const RESET_SLAVE_ID: u8 = 7;

// ICW4.
const ICW4_UPM: u8 = 0x01; // 8086/8088 mode (else MCS-80/85)
const ICW4_AEOI: u8 = 0x02;
const ICW4_SFNM: u8 = 0x10; // special fully nested mode

// Even-port writes other than ICW1 are told apart by D4-D3.
const OCW_SELECT: u8 = 0x18;
const OCW3_TAG: u8 = 0x08; // D4-D3 = 01; OCW2 has 00

// OCW3.
const OCW3_RIS: u8 = 0x01; // read ISR (else IRR) ...
const OCW3_RR: u8 = 0x02; // ... if RR is set
const OCW3_P: u8 = 0x04; // poll command
const OCW3_SMM: u8 = 0x20; // special mask mode on/off ...
const OCW3_ESMM: u8 = 0x40; // ... if ESMM is set

// OCW2: R, SL, EOI in D7-D5, the level in D2-D0.
const OCW2_LEVEL: u8 = 0x07;
const OCW2_ROTATE_AEOI_CLEAR: u8 = 0b000;
const OCW2_NONSPECIFIC_EOI: u8 = 0b001;
const OCW2_NOP: u8 = 0b010;
const OCW2_SPECIFIC_EOI: u8 = 0b011;
const OCW2_ROTATE_AEOI_SET: u8 = 0b100;
const OCW2_ROTATE_NONSPECIFIC_EOI: u8 = 0b101;
const OCW2_SET_PRIORITY: u8 = 0b110;
const OCW2_ROTATE_SPECIFIC_EOI: u8 = 0b111;

/// The poll word's I bit: an interrupt was pending (W2-W0 hold its level).
const POLL_INTERRUPT: u8 = 0x80;

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PicStats {
    /// INTA sequences run by the CPU.
    pub acknowledges: u64,
    /// INTA sequences answered with the master's spurious IR7 vector.
    pub spurious_master: u64,
    /// INTA sequences answered with the slave's spurious IR7 vector.
    pub spurious_slave: u64,
    /// INTA sequences no chip answered (the cascade address matched no
    /// slave ID), reading a floating bus.
    pub unanswered: u64,
    /// Poll reads (OCW3 P).
    pub polls: u64,
    /// EOI commands of any kind (OCW2), both chips.
    pub eois: u64,
}

/// Where a chip is in its initialization sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    /// Not initializing: odd-port writes are OCW1.
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug)]
struct Chip {
    /// Wired as the master (SP/EN high).
    master: bool,
    icw1: u8,
    /// OCW1 written since the last ICW1: the mask is the guest's choice,
    /// not ICW1's "all clear".
    mask_written: bool,
    icw2: u8,
    icw3: u8,
    icw4: u8,
    init: Init,
    /// A complete initialization sequence has been written.
    initialized: bool,
    /// The IR pins' levels.
    input: u8,
    irr: u8,
    isr: u8,
    imr: u8,
    /// The level with the lowest priority; the next one up is the highest.
    lowest: u8,
    /// OCW3 read register select: ISR (true) or IRR.
    read_isr: bool,
    /// A poll command waits for the next read.
    poll: bool,
    special_mask: bool,
    /// Rotate in automatic EOI mode (OCW2).
    rotate_aeoi: bool,
    /// The INT output (latched until INTA, see the module comment).
    int: bool,
}

impl Chip {
    fn new(master: bool) -> Chip {
        Chip {
            master,
            icw1: 0,
            mask_written: false,
            icw2: 0,
            icw3: 0,
            icw4: 0,
            init: Init::Ready,
            initialized: false,
            input: 0,
            irr: 0,
            isr: 0,
            imr: 0xFF,
            lowest: 7,
            read_isr: false,
            poll: false,
            special_mask: false,
            rotate_aeoi: false,
            int: false,
        }
    }

    fn level_triggered(&self) -> bool {
        self.icw1 & ICW1_LTIM != 0
    }

    fn single(&self) -> bool {
        self.icw1 & ICW1_SNGL != 0
    }

    fn aeoi(&self) -> bool {
        self.icw4 & ICW4_AEOI != 0
    }

    /// A slave hangs off input `ir` (master in cascade mode, ICW3 bit set).
    fn has_slave_on(&self, ir: u8) -> bool {
        self.master && !self.single() && self.icw3 & (1 << ir) != 0
    }

    /// A slave in cascade mode answers INTA when the CAS lines carry its ID.
    fn answers_cascade(&self, cas: u8) -> bool {
        !self.master && self.initialized && !self.single() && self.icw3 & ICW3_SLAVE_ID == cas
    }

    /// Levels from the highest priority to the lowest.
    fn by_priority(&self) -> impl Iterator<Item = u8> {
        let lowest = self.lowest;
        (1..=8).map(move |i| (lowest + i) & 7)
    }

    /// The ISR bits that hold off lower levels: in special mask mode a
    /// masked level does not (datasheet, "Special Mask Mode": a mask bit
    /// "inhibits further interrupts at that level and enables interrupts
    /// from all other levels ... that are not masked").
    fn effective_isr(&self) -> u8 {
        if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        }
    }

    /// The priority resolver: the level INTA (or a poll) would acknowledge
    /// now, if any. A request wins when it is unmasked and no level of
    /// higher (or, in fully nested mode, equal) priority is in service. In
    /// special fully nested mode the master lets a slave's input through
    /// while that same input is in service, so a slave can nest its own
    /// higher-priority requests (datasheet, "Special Fully Nested Mode").
    fn resolve(&self) -> Option<u8> {
        if !self.initialized || self.init != Init::Ready {
            return None;
        }
        let req = self.irr & !self.imr;
        if req == 0 {
            return None;
        }
        let isr = self.effective_isr();
        let sfnm = self.icw4 & ICW4_SFNM != 0;
        for ir in self.by_priority() {
            let bit = 1 << ir;
            if isr & bit != 0 {
                let nested_slave = sfnm && self.has_slave_on(ir) && req & bit != 0;
                return nested_slave.then_some(ir);
            }
            if req & bit != 0 {
                return Some(ir);
            }
        }
        None
    }

    /// Raises INT if the resolver has a request; only INTA, a poll or ICW1
    /// lower it.
    fn update_int(&mut self) {
        if self.resolve().is_some() {
            self.int = true;
        }
    }

    /// An IR pin changes level. Edge-triggered: a rising edge sets the IRR
    /// bit; the request must stay high until INTA, so a falling input clears
    /// it again (datasheet, "Edge and Level Triggered Modes": otherwise a
    /// default IR7 occurs). Level-triggered: IRR follows the pin.
    fn set_input(&mut self, ir: u8, level: bool) {
        let bit = 1 << ir;
        let rising = level && self.input & bit == 0;
        if level {
            self.input |= bit;
        } else {
            self.input &= !bit;
        }
        if self.level_triggered() {
            self.irr = (self.irr & !bit) | (self.input & bit);
        } else if rising {
            self.irr |= bit;
        } else if !level {
            self.irr &= !bit;
        }
        self.update_int();
    }

    /// The first part of an INTA sequence (or a poll) on this chip: lowers
    /// INT, resolves priority, sets the ISR bit and, in edge mode, clears
    /// the IRR bit. None when nothing is requesting: the spurious case.
    fn begin_acknowledge(&mut self) -> Option<u8> {
        self.int = false;
        let ir = self.resolve()?;
        let bit = 1 << ir;
        self.isr |= bit;
        if !self.level_triggered() {
            self.irr &= !bit;
        }
        Some(ir)
    }

    /// The end of the sequence: automatic EOI clears the ISR bit at the
    /// trailing edge of the last INTA, rotating if asked to.
    fn end_acknowledge(&mut self, ir: Option<u8>) {
        if let (Some(ir), true) = (ir, self.aeoi()) {
            self.isr &= !(1 << ir);
            if self.rotate_aeoi {
                self.lowest = ir;
            }
        }
        self.update_int();
    }

    /// The byte INTA puts on the bus for level `ir`. In 8086 mode, T7-T3
    /// from ICW2 and the level. In MCS-80/85 mode the second INTA byte is
    /// the low byte of the CALL address (datasheet Table 1): A7-A5 and the
    /// level at interval 4, A7-A6 and the level at interval 8. An x86 CPU
    /// reads that byte as the vector.
    fn vector(&self, ir: u8) -> u8 {
        if self.icw4 & ICW4_UPM != 0 {
            (self.icw2 & ICW2_VECTOR) | ir
        } else if self.icw1 & ICW1_ADI != 0 {
            (self.icw1 & ICW1_A7_A5) | (ir << 2)
        } else {
            (self.icw1 & ICW1_A7_A6) | (ir << 3)
        }
    }

    /// The highest-priority in-service level a non-specific EOI clears. In
    /// special mask mode a masked ISR bit is not cleared by it (datasheet,
    /// "End of Interrupt").
    fn highest_in_service(&self) -> Option<u8> {
        let isr = self.effective_isr();
        self.by_priority().find(|&ir| isr & (1 << ir) != 0)
    }

    /// ICW1: starts the initialization sequence. The datasheet lists what
    /// it does: the edge sense circuit is reset (IRR is cleared, a line
    /// already high needs a new rising edge; level-triggered IRR just
    /// follows the pins), IMR is cleared, IR7 gets the lowest priority, the
    /// slave address becomes 7, special mask mode is cleared and the read
    /// register is IRR; without IC4 every ICW4 function is zero. INT drops.
    /// The ISR is not in that list and is kept (QEMU and Bochs clear it);
    /// so are the OCW2 "rotate in AEOI" flag and a pending poll, which we
    /// clear as well since both belong to the old programming.
    fn icw1(&mut self, value: u8) {
        self.icw1 = value;
        self.init = Init::Icw2;
        self.irr = if self.level_triggered() {
            self.input
        } else {
            0
        };
        self.imr = 0;
        self.mask_written = false;
        self.lowest = 7;
        self.icw3 = RESET_SLAVE_ID;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_aeoi = false;
        if value & ICW1_IC4 == 0 {
            self.icw4 = 0;
        }
        self.int = false;
    }

    /// A write to the odd port: ICW2-4 during initialization, else OCW1.
    fn write_odd(&mut self, value: u8) {
        let initializing = self.init != Init::Ready;
        self.init = match self.init {
            Init::Icw2 => {
                self.icw2 = value;
                if !self.single() {
                    Init::Icw3
                } else if self.icw1 & ICW1_IC4 != 0 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            Init::Icw3 => {
                self.icw3 = value;
                if self.icw1 & ICW1_IC4 != 0 {
                    Init::Icw4
                } else {
                    Init::Ready
                }
            }
            Init::Icw4 => {
                self.icw4 = value;
                Init::Ready
            }
            Init::Ready => {
                self.imr = value;
                self.mask_written = true;
                Init::Ready
            }
        };
        if initializing && self.init == Init::Ready {
            self.initialized = true;
        }
        self.update_int();
    }

    /// OCW2: EOI and rotation commands.
    fn ocw2(&mut self, value: u8) {
        let level = value & OCW2_LEVEL;
        match value >> 5 {
            OCW2_NONSPECIFIC_EOI => {
                if let Some(ir) = self.highest_in_service() {
                    self.isr &= !(1 << ir);
                }
            }
            OCW2_ROTATE_NONSPECIFIC_EOI => {
                if let Some(ir) = self.highest_in_service() {
                    self.isr &= !(1 << ir);
                    self.lowest = ir;
                }
            }
            OCW2_SPECIFIC_EOI => self.isr &= !(1 << level),
            OCW2_ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << level);
                self.lowest = level;
            }
            OCW2_SET_PRIORITY => self.lowest = level,
            OCW2_ROTATE_AEOI_SET => self.rotate_aeoi = true,
            OCW2_ROTATE_AEOI_CLEAR => self.rotate_aeoi = false,
            OCW2_NOP => {}
            _ => unreachable!("three bits"),
        }
        self.update_int();
    }

    /// OCW3: special mask mode, poll, read register select. A poll takes
    /// precedence over the register select for the next read.
    fn ocw3(&mut self, value: u8) {
        if value & OCW3_ESMM != 0 {
            self.special_mask = value & OCW3_SMM != 0;
        }
        if value & OCW3_RR != 0 {
            self.read_isr = value & OCW3_RIS != 0;
        }
        if value & OCW3_P != 0 {
            self.poll = true;
        }
        self.update_int();
    }

    /// The poll command's read: acts as INTA without the vector and returns
    /// the poll word (I = 1 and W2-W0 = the level, or 0 if nothing).
    fn poll_read(&mut self) -> u8 {
        self.poll = false;
        let ir = self.begin_acknowledge();
        self.end_acknowledge(ir);
        ir.map_or(0, |ir| POLL_INTERRUPT | ir)
    }
}

/// The master/slave 8259A pair.
pub struct Pic {
    chips: [Chip; 2],
    stats: PicStats,
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    /// Both chips in the power-on state described in the module comment.
    pub fn new() -> Pic {
        Pic {
            chips: [Chip::new(true), Chip::new(false)],
            stats: PicStats::default(),
        }
    }

    /// Drives ISA interrupt line `line` (0-15; 8-15 are the slave's IR0-7;
    /// 2 is the slave's IR1 as on the AT). Other numbers are ignored.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        let line = if line == CASCADE_IR {
            AT_IRQ2_LINE
        } else {
            line
        };
        match line {
            0..=7 => self.chips[MASTER].set_input(line, level),
            8..=15 => {
                self.chips[SLAVE].set_input(line - 8, level);
                self.sync_cascade();
            }
            _ => {}
        }
    }

    /// The master's INT output to the CPU's INTR pin.
    pub fn intr(&self) -> bool {
        self.chips[MASTER].int
    }

    /// The CPU's INTA sequence: returns the vector. The master resolves
    /// priority and sets its ISR bit; if that input has a slave, it puts the
    /// level on CAS2-0 and the slave with that ID resolves its own priority
    /// and supplies the vector. A chip with no request left gives its IR7
    /// vector without setting an ISR bit (the master's ISR bit for the slave
    /// stays set). If no slave answers the cascade address the bus floats
    /// and the CPU reads 0xFF.
    pub fn acknowledge(&mut self) -> u8 {
        self.stats.acknowledges += 1;
        let Some(ir) = self.chips[MASTER].begin_acknowledge() else {
            self.chips[MASTER].end_acknowledge(None);
            self.stats.spurious_master += 1;
            return self.chips[MASTER].vector(SPURIOUS_IR);
        };
        let vector = if !self.chips[MASTER].has_slave_on(ir) {
            self.chips[MASTER].vector(ir)
        } else if self.chips[SLAVE].answers_cascade(ir) {
            let slave = &mut self.chips[SLAVE];
            let sir = slave.begin_acknowledge();
            slave.end_acknowledge(sir);
            if sir.is_none() {
                self.stats.spurious_slave += 1;
            }
            let v = slave.vector(sir.unwrap_or(SPURIOUS_IR));
            self.sync_cascade();
            v
        } else {
            self.stats.unanswered += 1;
            FLOATING_BUS
        };
        self.chips[MASTER].end_acknowledge(Some(ir));
        vector
    }

    /// Both IRRs, the slave's in the high byte.
    pub fn irr(&self) -> u16 {
        self.pair(|c| c.irr)
    }

    /// Both ISRs, the slave's in the high byte.
    pub fn isr(&self) -> u16 {
        self.pair(|c| c.isr)
    }

    /// Both IMRs, the slave's in the high byte.
    pub fn imr(&self) -> u16 {
        self.pair(|c| c.imr)
    }

    /// The vector base a chip ([`MASTER`] or [`SLAVE`]) was given in ICW2
    /// (8086 mode: T7-T3, the low three bits clear).
    pub fn vector_base(&self, chip: usize) -> u8 {
        self.chips[chip & 1].icw2 & ICW2_VECTOR
    }

    /// True once a chip has been through a complete initialization sequence.
    pub fn initialized(&self, chip: usize) -> bool {
        self.chips[chip & 1].initialized
    }

    /// True once the guest wrote a chip's mask (OCW1) after its last ICW1
    /// (which clears the mask: until OCW1, an unmasked line is not the
    /// guest's choice).
    pub fn mask_written(&self, chip: usize) -> bool {
        self.chips[chip & 1].mask_written
    }

    pub fn stats(&self) -> &PicStats {
        &self.stats
    }

    fn pair(&self, f: impl Fn(&Chip) -> u8) -> u16 {
        f(&self.chips[MASTER]) as u16 | (f(&self.chips[SLAVE]) as u16) << 8
    }

    /// The slave's INT pin is the master's IR2 input.
    fn sync_cascade(&mut self) {
        let int = self.chips[SLAVE].int;
        self.chips[MASTER].set_input(CASCADE_IR, int);
    }

    fn write(&mut self, chip: usize, a0: u16, value: u8) {
        let c = &mut self.chips[chip];
        if a0 & 1 == 1 {
            c.write_odd(value);
        } else if value & ICW1_INIT != 0 {
            c.icw1(value);
        } else if value & OCW_SELECT == OCW3_TAG {
            c.ocw3(value);
        } else {
            if matches!(
                value >> 5,
                OCW2_NONSPECIFIC_EOI
                    | OCW2_SPECIFIC_EOI
                    | OCW2_ROTATE_NONSPECIFIC_EOI
                    | OCW2_ROTATE_SPECIFIC_EOI
            ) {
                self.stats.eois += 1;
            }
            c.ocw2(value);
        }
        if chip == SLAVE {
            self.sync_cascade();
        }
    }

    fn read(&mut self, chip: usize, a0: u16) -> u8 {
        let c = &mut self.chips[chip];
        // The poll command makes the next read of either port the poll word
        // (datasheet: "the next RD pulse to the 8259A").
        if c.poll {
            self.stats.polls += 1;
            let word = c.poll_read();
            if chip == SLAVE {
                self.sync_cascade();
            }
            return word;
        }
        if a0 & 1 == 1 {
            c.imr
        } else if c.read_isr {
            c.isr
        } else {
            c.irr
        }
    }
}

impl Device for Pic {
    fn name(&self) -> &'static str {
        "8259A PIC"
    }

    fn pio_read(&mut self, region: usize, offset: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
        match region {
            MASTER | SLAVE => self.read(region, offset) as u32,
            _ => 0xFF,
        }
    }

    fn pio_write(&mut self, region: usize, offset: u16, _size: u8, value: u32, _cx: &mut IoCtx) {
        if matches!(region, MASTER | SLAVE) {
            self.write(region, offset, value as u8);
        }
    }
}
