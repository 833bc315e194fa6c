//! The board: which chips the PC has, where each one answers, and which
//! interrupt line it drives.
//!
//! [`Board::pc`] is the one description of ringlab's PC. `Machine::new`
//! builds the chips it lists and maps them where it says; `ringlab board`
//! prints it; the firmware's MP table publishes its interrupt wiring. A chip
//! that needs an interrupt line claims it in an [`IrqLines`] registry, which
//! refuses a second owner, as Bochs' `register_irq` does: two devices on
//! one ISA line is a board bug, caught when the machine is built.
//!
//! # Interrupt wiring
//!
//! Every ISA IRQ line goes to two places at once, as on any PC with an
//! I/O APIC (Intel MultiProcessor Specification 1.4, 3.6.2 and 5.3,
//! "virtual wire mode"):
//!
//! - the 8259A pair: lines 0-7 to the master's IR0-IR7, lines 8-15 to the
//!   slave's IR0-IR7, the slave's INT on the master's IR2 (the cascade);
//! - the I/O APIC: line n to pin n, except line 0 (the PIT), which goes to
//!   pin 2 — the "interrupt source override" of the MP table and of ACPI's
//!   MADT, as on the PIIX/ICH chipsets QEMU models. Pins 16-23 are not
//!   connected (no PCI).
//!
//! The master 8259A's INT output reaches the CPU through the local APIC's
//! LINT0 pin, programmed ExtINT at reset ("virtual wire"), so a guest that
//! never touches the APICs sees a plain PC/AT. The NMI line (an
//! I/O-channel check, or `Machine::raise_nmi` from the host) reaches LINT1,
//! programmed NMI, and is gated by the NMI mask bit of port 0x70 (the RTC's
//! index register), as on the PC/AT.

use std::fmt;

/// What a chip is (the machine builds one of each listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChipKind {
    Pic,
    Pit,
    Rtc,
    Keyboard,
    Uart,
    Ata,
    Vga,
    DebugCon,
    PostCodes,
    Port92,
    DebugExit,
    BochsShutdown,
    IoApic,
    LocalApic,
}

/// One chip on the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chip {
    pub kind: ChipKind,
    /// Which of several of a kind (0 = the first: COM1, the primary ATA
    /// channel).
    pub unit: u8,
    pub name: &'static str,
    /// Port ranges (first, count), in the order the chip numbers its
    /// regions.
    pub ports: Vec<(u16, u16)>,
    /// MMIO ranges (first, length), after the port ranges in region order.
    pub mmio: Vec<(u64, u64)>,
    /// The ISA IRQ lines the chip drives.
    pub irqs: Vec<u8>,
}

/// Ports and lines of the standard PC chips (PC/AT, QEMU and Bochs
/// conventions).
pub mod ports {
    pub const PIC_MASTER: u16 = 0x20;
    pub const PIC_SLAVE: u16 = 0xA0;
    pub const PIT: u16 = 0x40;
    pub const KBC_DATA: u16 = 0x60;
    pub const SYSTEM_CONTROL_B: u16 = 0x61;
    pub const KBC_STATUS: u16 = 0x64;
    pub const RTC: u16 = 0x70;
    pub const POST: u16 = 0x80;
    pub const FAST_A20: u16 = 0x92;
    pub const DEBUG_EXIT: u16 = 0xF4;
    pub const ATA_SECONDARY: u16 = 0x170;
    pub const ATA_PRIMARY: u16 = 0x1F0;
    pub const ATA_SECONDARY_CTRL: u16 = 0x376;
    pub const VGA: u16 = 0x3B0;
    pub const ATA_PRIMARY_CTRL: u16 = 0x3F6;
    pub const COM1: u16 = 0x3F8;
    pub const DEBUGCON: u16 = 0xE9;
    pub const BOCHS_SHUTDOWN: u16 = 0x8900;
}

/// ISA IRQ lines of the standard devices.
pub mod irqs {
    pub const PIT: u8 = 0;
    pub const KEYBOARD: u8 = 1;
    pub const CASCADE: u8 = 2;
    pub const COM1: u8 = 4;
    pub const RTC: u8 = 8;
    /// The 8042's auxiliary (PS/2 mouse) port; no mouse is attached, but
    /// the controller can still raise it (command 0xD3).
    pub const MOUSE: u8 = 12;
    pub const ATA_PRIMARY: u8 = 14;
    pub const ATA_SECONDARY: u8 = 15;
}

/// Physical addresses of the APICs (Intel SDM Vol 3A 11.4.1; 82093AA
/// datasheet 3.0; MP specification 1.4 appendix B defaults).
pub mod mmio {
    pub const IOAPIC: u64 = 0xFEC0_0000;
    pub const IOAPIC_LEN: u64 = 0x1000;
    pub const LAPIC: u64 = 0xFEE0_0000;
    pub const LAPIC_LEN: u64 = 0x1000;
}

/// The I/O APIC's ID (its ID register and the MP table), after the one
/// CPU's local APIC ID 0, as QEMU numbers them.
pub const IOAPIC_ID: u8 = 1;

/// The I/O APIC pin an ISA IRQ line reaches (see the module comment).
pub const fn ioapic_pin(isa_line: u8) -> u8 {
    if isa_line == 0 {
        2
    } else {
        isa_line
    }
}

/// The whole board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    pub chips: Vec<Chip>,
}

impl Board {
    /// ringlab's PC: a PC/AT chip set with a 16550A on COM1, two ATA
    /// channels, an 8042 with a keyboard, the MC146818A, and the APICs of a
    /// uniprocessor MP system; plus the emulator ports (debug console 0xE9,
    /// isa-debug-exit 0xF4, Bochs' shutdown port).
    pub fn pc() -> Board {
        use ChipKind::*;
        let chip =
            |kind, unit, name, ports: &[(u16, u16)], mmio: &[(u64, u64)], irqs: &[u8]| Chip {
                kind,
                unit,
                name,
                ports: ports.to_vec(),
                mmio: mmio.to_vec(),
                irqs: irqs.to_vec(),
            };
        Board {
            chips: vec![
                chip(
                    Pic,
                    0,
                    "8259A PIC pair",
                    &[(ports::PIC_MASTER, 2), (ports::PIC_SLAVE, 2)],
                    &[],
                    &[irqs::CASCADE],
                ),
                chip(
                    Pit,
                    0,
                    "8254 PIT",
                    &[(ports::PIT, 4), (ports::SYSTEM_CONTROL_B, 1)],
                    &[],
                    &[irqs::PIT],
                ),
                chip(
                    Keyboard,
                    0,
                    "8042 keyboard controller",
                    &[(ports::KBC_DATA, 1), (ports::KBC_STATUS, 1)],
                    &[],
                    &[irqs::KEYBOARD, irqs::MOUSE],
                ),
                chip(
                    Rtc,
                    0,
                    "MC146818A RTC",
                    &[(ports::RTC, 2)],
                    &[],
                    &[irqs::RTC],
                ),
                chip(
                    Uart,
                    0,
                    "16550A UART (COM1)",
                    &[(ports::COM1, 8)],
                    &[],
                    &[irqs::COM1],
                ),
                chip(
                    Ata,
                    0,
                    "ATA channel 0 (primary)",
                    &[(ports::ATA_PRIMARY, 8), (ports::ATA_PRIMARY_CTRL, 1)],
                    &[],
                    &[irqs::ATA_PRIMARY],
                ),
                chip(
                    Ata,
                    1,
                    "ATA channel 1 (secondary)",
                    &[(ports::ATA_SECONDARY, 8), (ports::ATA_SECONDARY_CTRL, 1)],
                    &[],
                    &[irqs::ATA_SECONDARY],
                ),
                chip(Vga, 0, "VGA (text mode)", &[(ports::VGA, 0x30)], &[], &[]),
                chip(
                    DebugCon,
                    0,
                    "debug console",
                    &[(ports::DEBUGCON, 1)],
                    &[],
                    &[],
                ),
                chip(PostCodes, 0, "POST codes", &[(ports::POST, 1)], &[], &[]),
                chip(
                    Port92,
                    0,
                    "system control port A",
                    &[(ports::FAST_A20, 1)],
                    &[],
                    &[],
                ),
                // QEMU's isa-debug-exit with iosize=4.
                chip(
                    DebugExit,
                    0,
                    "isa-debug-exit",
                    &[(ports::DEBUG_EXIT, 4)],
                    &[],
                    &[],
                ),
                chip(
                    BochsShutdown,
                    0,
                    "Bochs shutdown port",
                    &[(ports::BOCHS_SHUTDOWN, 1)],
                    &[],
                    &[],
                ),
                chip(
                    IoApic,
                    0,
                    "82093AA I/O APIC",
                    &[],
                    &[(mmio::IOAPIC, mmio::IOAPIC_LEN)],
                    &[],
                ),
                chip(
                    LocalApic,
                    0,
                    "local APIC (CPU 0)",
                    &[],
                    &[(mmio::LAPIC, mmio::LAPIC_LEN)],
                    &[],
                ),
            ],
        }
    }

    /// The chip of `kind` and `unit`, if the board has it.
    /// The chip whose port ranges hold `port`.
    pub fn chip_at_port(&self, port: u16) -> Option<&Chip> {
        self.chips.iter().find(|c| {
            c.ports
                .iter()
                .any(|&(first, n)| port >= first && (port - first) < n)
        })
    }

    /// The ISA line wired to I/O APIC pin `pin`, if one is (the inverse of
    /// [`ioapic_pin`]).
    pub fn isa_line_at_pin(pin: u8) -> Option<u8> {
        (0..16).find(|&line| ioapic_pin(line) == pin)
    }

    pub fn chip(&self, kind: ChipKind, unit: u8) -> Option<&Chip> {
        self.chips.iter().find(|c| c.kind == kind && c.unit == unit)
    }

    /// Claims every chip's IRQ line in a fresh registry: the board is
    /// consistent when no two chips share a line.
    pub fn irq_lines(&self) -> Result<IrqLines, IrqConflict> {
        let mut lines = IrqLines::default();
        for c in &self.chips {
            for &l in &c.irqs {
                lines.claim(l, c.name)?;
            }
        }
        Ok(lines)
    }
}

impl fmt::Display for Board {
    /// The board as a table: chip, ports, MMIO, IRQ (and I/O APIC pin).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<28} {:<24} {:<24} IRQ", "chip", "ports", "MMIO")?;
        for c in &self.chips {
            let ports: Vec<String> = c
                .ports
                .iter()
                .map(|&(p, n)| {
                    if n == 1 {
                        format!("{p:#x}")
                    } else {
                        format!("{p:#x}-{:#x}", p as u32 + n as u32 - 1)
                    }
                })
                .collect();
            let mmio: Vec<String> = c
                .mmio
                .iter()
                .map(|&(a, n)| format!("{a:#x}-{:#x}", a + n - 1))
                .collect();
            let irq: Vec<String> = c
                .irqs
                .iter()
                .map(|&l| match l {
                    2 => "2 (cascade)".to_string(),
                    l => format!("{l} (I/O APIC pin {})", ioapic_pin(l)),
                })
                .collect();
            let irq = if irq.is_empty() {
                "-".to_string()
            } else {
                irq.join(", ")
            };
            writeln!(
                f,
                "{:<28} {:<24} {:<24} {}",
                c.name,
                if ports.is_empty() {
                    "-".to_string()
                } else {
                    ports.join(", ")
                },
                if mmio.is_empty() {
                    "-".to_string()
                } else {
                    mmio.join(", ")
                },
                irq
            )?;
        }
        Ok(())
    }
}

/// Two chips on one interrupt line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("IRQ {line} is already {owner}'s; {other} cannot have it too")]
pub struct IrqConflict {
    pub line: u8,
    pub owner: &'static str,
    pub other: &'static str,
}

/// Which chip owns each of the 16 ISA interrupt lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IrqLines {
    owners: [Option<&'static str>; 16],
}

impl IrqLines {
    /// Gives `line` to `owner`; refuses a line that has an owner already or
    /// that does not exist.
    pub fn claim(&mut self, line: u8, owner: &'static str) -> Result<(), IrqConflict> {
        let slot = self.owners.get_mut(line as usize).ok_or(IrqConflict {
            line,
            owner: "nobody (the ISA bus has lines 0-15)",
            other: owner,
        })?;
        match slot {
            Some(o) => Err(IrqConflict {
                line,
                owner: o,
                other: owner,
            }),
            None => {
                *slot = Some(owner);
                Ok(())
            }
        }
    }

    /// The owner of `line`, if any.
    pub fn owner(&self, line: u8) -> Option<&'static str> {
        self.owners.get(line as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pc_board_is_consistent() {
        let b = Board::pc();
        let lines = b.irq_lines().expect("no two chips share a line");
        assert_eq!(lines.owner(14), Some("ATA channel 0 (primary)"));
        assert_eq!(lines.owner(8), Some("MC146818A RTC"));
        assert_eq!(lines.owner(3), None);
        // No two port ranges overlap.
        let mut ports = vec![false; 0x10000];
        for c in &b.chips {
            for &(p, n) in &c.ports {
                for (q, used) in ports
                    .iter_mut()
                    .enumerate()
                    .skip(p as usize)
                    .take(n as usize)
                {
                    assert!(!*used, "port {q:#x} claimed twice");
                    *used = true;
                }
            }
        }
    }

    #[test]
    fn a_second_owner_is_refused() {
        let mut l = IrqLines::default();
        l.claim(4, "COM1").unwrap();
        let e = l.claim(4, "a mouse").unwrap_err();
        assert_eq!(
            e.to_string(),
            "IRQ 4 is already COM1's; a mouse cannot have it too"
        );
        assert!(l.claim(16, "x").is_err());
    }

    #[test]
    fn isa_lines_reach_the_io_apic_with_the_pit_override() {
        assert_eq!(ioapic_pin(0), 2);
        assert_eq!(ioapic_pin(1), 1);
        assert_eq!(ioapic_pin(14), 14);
    }

    #[test]
    fn ports_and_pins_lead_back_to_their_chips_and_lines() {
        let b = Board::pc();
        assert_eq!(b.chip_at_port(0x1F7).map(|c| c.kind), Some(ChipKind::Ata));
        assert_eq!(b.chip_at_port(0x3FD).map(|c| c.kind), Some(ChipKind::Uart));
        assert_eq!(b.chip_at_port(0x3F7).map(|c| c.unit), None, "not decoded");
        assert_eq!(Board::isa_line_at_pin(2), Some(0), "the PIT's override");
        assert_eq!(Board::isa_line_at_pin(14), Some(14));
        assert_eq!(Board::isa_line_at_pin(0), None, "pin 0 carries no ISA line");
        assert_eq!(Board::isa_line_at_pin(20), None);
    }
}
