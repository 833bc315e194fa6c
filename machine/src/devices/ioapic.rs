//! Intel 82093AA I/O APIC: 24 interrupt pins turned into APIC bus messages.
//!
//! Register-level model of the 82093AA (Intel datasheet 290566, "82093AA
//! I/O Advanced Programmable Interrupt Controller (IOAPIC)"): section 3.1,
//! the two memory-mapped registers IOREGSEL (offset 00h, the index, bits
//! 7:0) and IOWIN (offset 10h, the data, 32-bit accesses only); section 3.2,
//! the indexed registers IOAPICID (00h, ID in bits 27:24), IOAPICVER (01h,
//! 00170011h: 24 entries, version 11h), IOAPICARB (02h, loaded with the ID
//! whenever the ID is written) and the redirection table IOREDTBL0-23
//! (10h-3Fh, two 32-bit halves per pin: vector, delivery mode, destination
//! mode, delivery status, polarity, remote IRR, trigger mode, mask,
//! destination in bits 63:56); section 2, the pin semantics.
//!
//! Where it is. The board maps one region at 0xFEC00000 ([`IOAPIC_BASE`],
//! 20h bytes or a 4 KiB page). Offset 0 is IOREGSEL, offset 10h IOWIN (the
//! PIIX3 wires the chip's D/I# pin to address bit 4); other offsets read 0
//! and ignore writes, and IOWIN accesses that are not 32 bits wide read 0
//! and are dropped (the datasheet: "must be accessed as a Dword"; QEMU
//! does the same). Indexes outside the register map read 0.
//!
//! Pins. [`Ioapic::set_irq`] drives a pin's *electrical* level; the
//! redirection entry's polarity says which level is asserted (ISA lines
//! are active high). The board decides the wiring (ISA IRQ 0 on pin 2, ISA
//! IRQ n on pin n, as its MP table says). An edge-triggered pin sends one
//! message per rising edge of its asserted level; edges on a masked pin are
//! ignored, not held (datasheet, bit 16). A level-triggered pin sends while
//! asserted, then sets remote IRR and sends nothing more until an EOI for
//! its vector ([`Ioapic::eoi`]) clears it; the EOI sends again at once if
//! the pin is still asserted. Unmasking a level-triggered pin that is
//! asserted sends then (the level is sampled; QEMU does the same).
//! Changing an entry to edge-triggered clears its remote IRR, which Linux
//! relies on (QEMU's ioapic_fix_edge_remote_irr). SMI, NMI, INIT and ExtINT
//! entries are edge-triggered whatever their trigger mode bit says (SDM
//! 10.6.1 for the same encodings), so they send on rising edges.
//!
//! Messages. Nothing here knows the local APICs: a message is queued as an
//! [`ApicMessage`] for the board to take with [`Ioapic::take_messages`] and
//! give to the local APIC. Remote IRR is set when the message is queued
//! (the datasheet sets it when a local APIC accepts; the board delivers
//! every message at once). Delivery status therefore always reads idle.
//! Entries with a reserved delivery mode (011b, 110b) send nothing.
//!
//! Power-on. Every entry masked (bit 16), everything else 0, ID 0 unless
//! the board chooses another ([`Ioapic::with_id`]); nothing is sent until
//! the guest unmasks a pin.

use crate::bus::{Device, IoCtx};
use crate::devices::lapic::{
    ApicMessage, DeliveryMode, DestMode, Register, RegisterCounts, TriggerMode,
};

/// Where the I/O APIC's registers are.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Number of interrupt input pins (redirection entries).
pub const PINS: usize = 24;

/// Memory-mapped offsets.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;

// Indexed registers.
const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARBITRATION: u8 = 0x02;
const REG_TABLE: u8 = 0x10;
const REG_TABLE_END: u8 = REG_TABLE + 2 * PINS as u8 - 1;

/// Version 11h, maximum redirection entry 17h (24 pins).
const VERSION: u32 = 0x0017_0011;
const ID_SHIFT: u32 = 24;
const ID_MASK: u32 = 0x0F;

// Redirection entry fields (datasheet 3.2.4).
const RTE_VECTOR: u64 = 0xFF;
const RTE_DELIVERY_SHIFT: u64 = 8;
const RTE_LOGICAL: u64 = 1 << 11;
const RTE_POLARITY_LOW: u64 = 1 << 13;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
const RTE_DEST_SHIFT: u64 = 56;
/// Writable: vector, delivery mode, destination mode, polarity, trigger
/// mode, mask, destination. Delivery status and remote IRR are read-only;
/// bits 17-55 are reserved and read 0.
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;
/// Messages the board has not taken yet are kept up to this many.
const QUEUE_LIMIT: usize = 1024;

/// What the guest reaches through IOREGSEL and IOWIN, for access counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoReg {
    /// IOREGSEL itself.
    Select,
    Id,
    Version,
    Arbitration,
    /// Any half of any redirection entry.
    Redirection,
    /// IOWIN with an index outside the map.
    Reserved,
    /// Other offsets, and IOWIN accesses that are not 32-bit.
    Other,
}

impl Register for IoReg {
    const ALL: &'static [IoReg] = &[
        IoReg::Select,
        IoReg::Id,
        IoReg::Version,
        IoReg::Arbitration,
        IoReg::Redirection,
        IoReg::Reserved,
        IoReg::Other,
    ];
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            IoReg::Select => "IOREGSEL",
            IoReg::Id => "ID",
            IoReg::Version => "version",
            IoReg::Arbitration => "arbitration",
            IoReg::Redirection => "redirection table",
            IoReg::Reserved => "reserved",
            IoReg::Other => "other",
        }
    }
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoapicStats {
    /// Guest accesses per register class.
    pub registers: RegisterCounts<IoReg>,
    /// Messages sent, per pin.
    pub messages: [u64; PINS],
    /// EOI broadcasts received.
    pub eois: u64,
    /// Remote IRR bits those EOIs cleared.
    pub remote_irr_cleared: u64,
    /// Rising edges that arrived on masked edge-triggered pins (ignored).
    pub masked_edges: u64,
    /// Interrupts not sent because their entry has a reserved delivery mode.
    pub reserved_mode: u64,
    /// `set_irq` calls for pins that do not exist.
    pub bad_pins: u64,
    /// Messages dropped because the board let the queue fill up.
    pub dropped: u64,
}

/// The I/O APIC.
pub struct Ioapic {
    id: u8,
    regsel: u8,
    table: [u64; PINS],
    /// Electrical pin levels, bit n for pin n.
    levels: u32,
    out: Vec<ApicMessage>,
    stats: IoapicStats,
}

impl Default for Ioapic {
    fn default() -> Self {
        Self::new()
    }
}

impl Ioapic {
    /// The power-on state: ID 0, every entry masked.
    pub fn new() -> Ioapic {
        Ioapic {
            id: 0,
            regsel: 0,
            table: [RTE_MASKED; PINS],
            levels: 0,
            out: Vec::new(),
            stats: IoapicStats::default(),
        }
    }

    /// The power-on state with IOAPICID already `id` (bits 3:0), as the
    /// firmware that wrote the MP table would have programmed it.
    pub fn with_id(id: u8) -> Ioapic {
        Ioapic {
            id: id & ID_MASK as u8,
            ..Ioapic::new()
        }
    }

    /// A machine reset: the power-on state, same ID choice; statistics
    /// are kept.
    pub fn reset(&mut self, id: u8) {
        let stats = std::mem::take(&mut self.stats);
        *self = Ioapic::with_id(id);
        self.stats = stats;
    }

    pub fn stats(&self) -> &IoapicStats {
        &self.stats
    }

    /// IOAPICID bits 27:24.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Redirection entry `pin` as the guest would read it (0 past the end).
    /// The vector pin `pin` delivers, unless its entry is masked.
    pub fn pin_vector(&self, pin: u8) -> Option<u8> {
        let e = self.entry(pin);
        (e & RTE_MASKED == 0).then_some(e as u8)
    }

    pub fn entry(&self, pin: u8) -> u64 {
        self.table.get(pin as usize).copied().unwrap_or(0)
    }

    /// Drives pin `pin` (0-23) to electrical `level`.
    pub fn set_irq(&mut self, pin: u8, level: bool) {
        let p = pin as usize;
        if p >= PINS {
            self.stats.bad_pins += 1;
            return;
        }
        let was = self.asserted(p);
        if level {
            self.levels |= 1 << p;
        } else {
            self.levels &= !(1 << p);
        }
        let now = self.asserted(p);
        let e = self.table[p];
        if level_triggered(e) {
            self.service(p);
        } else if now && !was {
            if e & RTE_MASKED != 0 {
                self.stats.masked_edges += 1;
            } else {
                self.send(p);
            }
        }
    }

    /// An EOI broadcast from a local APIC for `vector`: clears remote IRR
    /// on every level-triggered entry with that vector, and sends again
    /// from those whose pin is still asserted.
    pub fn eoi(&mut self, vector: u8) {
        self.stats.eois += 1;
        for p in 0..PINS {
            let e = self.table[p];
            if e & RTE_VECTOR == vector as u64 && level_triggered(e) && e & RTE_REMOTE_IRR != 0 {
                self.table[p] &= !RTE_REMOTE_IRR;
                self.stats.remote_irr_cleared += 1;
                self.service(p);
            }
        }
    }

    /// Messages sent since the last call, in order.
    /// Messages wait for the board.
    #[inline]
    pub fn has_messages(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn take_messages(&mut self) -> Vec<ApicMessage> {
        std::mem::take(&mut self.out)
    }

    fn asserted(&self, p: usize) -> bool {
        let high = self.levels & (1 << p) != 0;
        high != (self.table[p] & RTE_POLARITY_LOW != 0)
    }

    /// A level-triggered pin: sends if asserted, unmasked and not waiting
    /// for an EOI.
    fn service(&mut self, p: usize) {
        let e = self.table[p];
        if level_triggered(e) && e & (RTE_MASKED | RTE_REMOTE_IRR) == 0 && self.asserted(p) {
            self.send(p);
        }
    }

    fn send(&mut self, p: usize) {
        let e = self.table[p];
        let delivery = match DeliveryMode::from_bits((e >> RTE_DELIVERY_SHIFT) as u32) {
            Some(DeliveryMode::StartUp) | None => {
                self.stats.reserved_mode += 1;
                return;
            }
            Some(m) => m,
        };
        let level = level_triggered(e);
        if level {
            self.table[p] |= RTE_REMOTE_IRR;
        }
        self.stats.messages[p] += 1;
        if self.out.len() >= QUEUE_LIMIT {
            self.stats.dropped += 1;
            return;
        }
        self.out.push(ApicMessage {
            vector: (e & RTE_VECTOR) as u8,
            delivery,
            dest_mode: if e & RTE_LOGICAL != 0 {
                DestMode::Logical
            } else {
                DestMode::Physical
            },
            dest: (e >> RTE_DEST_SHIFT) as u8,
            trigger: if level {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
        });
    }

    fn classify(&self) -> IoReg {
        match self.regsel {
            REG_ID => IoReg::Id,
            REG_VERSION => IoReg::Version,
            REG_ARBITRATION => IoReg::Arbitration,
            REG_TABLE..=REG_TABLE_END => IoReg::Redirection,
            _ => IoReg::Reserved,
        }
    }

    fn read_window(&self) -> u32 {
        match self.regsel {
            // The arbitration ID is loaded from the ID when it is written.
            REG_ID | REG_ARBITRATION => (self.id as u32) << ID_SHIFT,
            REG_VERSION => VERSION,
            r @ REG_TABLE..=REG_TABLE_END => {
                let e = self.table[(r - REG_TABLE) as usize / 2];
                if r & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_window(&mut self, value: u32) {
        match self.regsel {
            REG_ID => self.id = ((value >> ID_SHIFT) & ID_MASK) as u8,
            r @ REG_TABLE..=REG_TABLE_END => {
                let p = (r - REG_TABLE) as usize / 2;
                let old = self.table[p];
                let new = if r & 1 == 0 {
                    (old & !0xFFFF_FFFF) | value as u64
                } else {
                    (old & 0xFFFF_FFFF) | (value as u64) << 32
                };
                let mut e = (new & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if !level_triggered(e) {
                    e &= !RTE_REMOTE_IRR;
                }
                self.table[p] = e;
                // Polarity changes do not make edges; a level-triggered pin
                // that is now unmasked and asserted is sent.
                self.service(p);
            }
            // Version and arbitration are read-only; the rest is reserved.
            _ => {}
        }
    }
}

/// Whether an entry acts level-triggered: bit 15 set on a fixed or
/// lowest-priority entry. SMI, NMI, INIT and ExtINT are edge-triggered
/// whatever the trigger mode bit says (SDM 10.6.1, the same encodings).
fn level_triggered(e: u64) -> bool {
    e & RTE_LEVEL != 0
        && matches!(
            DeliveryMode::from_bits((e >> RTE_DELIVERY_SHIFT) as u32),
            Some(DeliveryMode::Fixed | DeliveryMode::LowestPriority)
        )
}

impl Device for Ioapic {
    fn name(&self) -> &'static str {
        "82093AA I/O APIC"
    }

    fn mmio_register_name(&self, _region: usize, offset: u64) -> Option<&'static str> {
        match offset {
            IOREGSEL => Some("IOREGSEL"),
            IOWIN => Some("IOWIN"),
            _ => None,
        }
    }

    fn mmio_read(&mut self, _region: usize, offset: u64, size: u8, _cx: &mut IoCtx) -> u64 {
        match offset {
            IOREGSEL => {
                self.stats.registers.count(IoReg::Select, false);
                self.regsel as u64
            }
            IOWIN if size == 4 => {
                self.stats.registers.count(self.classify(), false);
                self.read_window() as u64
            }
            _ => {
                self.stats.registers.count(IoReg::Other, false);
                0
            }
        }
    }

    fn mmio_write(&mut self, _region: usize, offset: u64, size: u8, value: u64, _cx: &mut IoCtx) {
        match offset {
            IOREGSEL => {
                self.stats.registers.count(IoReg::Select, true);
                self.regsel = value as u8;
            }
            IOWIN if size == 4 => {
                self.stats.registers.count(self.classify(), true);
                self.write_window(value as u32);
            }
            _ => self.stats.registers.count(IoReg::Other, true),
        }
    }
}
