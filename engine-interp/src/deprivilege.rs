//! Trap-and-emulate mode (`--engine interp --deprivilege`), for the Popek
//! and Goldberg lab.
//!
//! It models the classic x86 monitor of the late 1990s before binary
//! translation: the guest's ring 0 runs in ring 1 ("ring compression"),
//! the processor's real descriptor tables, TSS and control registers are
//! the monitor's, and the guest's own copies are kept by the monitor.
//!
//! - **Privileged instructions** (CLI, STI, HLT, MOV CRn, LGDT, LIDT, LTR,
//!   IN/OUT with IOPL 0, INT, IRET, ...) fault with #GP at ring 1; the
//!   monitor catches the fault, emulates the instruction on the guest's
//!   virtual state and resumes. The result is right; the event says
//!   `trap_and_emulate`.
//! - **Sensitive but unprivileged instructions** do not fault at ring 1, so
//!   the monitor never sees them and they run on the real state: POPF
//!   silently ignores IF and IOPL (CPL 1 > IOPL 0), PUSHF shows the real IF
//!   (always 1: the monitor keeps interrupts on) and IOPL 0, SGDT/SIDT/SLDT/
//!   STR show the monitor's tables, SMSW the real CR0 (paging on), MOV from
//!   CS/SS and PUSH CS show RPL 1, LAR shows the compressed DPL 1. The event
//!   says `silently_wrong`. That is the lesson: x86 was not virtualizable
//!   by trap-and-emulate (Robin and Irvine, 2000).
//!
//! The mode applies to protected-mode ring 0; real mode and V86 run as
//! usual (a monitor of that era ran them in V86 mode), and rings 1-3 are
//! not affected.

use crate::cpu::Cpu;
use machine::cpu::{cr0, flags as f};
use machine::Handling;

/// Where the monitor's own tables are (the top 4 MiB of the linear address
/// space, which such monitors reserved for themselves).
pub const MONITOR_GDT_BASE: u32 = 0xFFC0_0000;
pub const MONITOR_GDT_LIMIT: u16 = 0x0FFF;
pub const MONITOR_IDT_BASE: u32 = 0xFFC0_1000;
pub const MONITOR_IDT_LIMIT: u16 = 0x07FF;
/// The monitor's TSS and LDT selectors.
pub const MONITOR_TR: u16 = 0x0FF8;
pub const MONITOR_LDTR: u16 = 0x0FF0;

/// The sensitive instructions that are not privileged (Robin and Irvine's
/// list for the Pentium, restricted to what ringlab implements).
const UNPRIVILEGED: &[&str] = &[
    "popf",
    "pushf",
    "sgdt",
    "sidt",
    "sldt",
    "str",
    "smsw",
    "mov from cs",
    "mov from ss",
    "push cs",
    "lar",
    "lsl",
    "verr",
    "verw",
];

impl Cpu {
    /// The guest's ring 0 is running deprivileged in ring 1.
    #[inline]
    pub fn deprivileged(&self) -> bool {
        self.deprivilege && self.cpl == 0 && self.protected() && !self.v86()
    }

    /// How the instruction `name` is handled at this point.
    pub fn handling(&self, name: &str) -> Handling {
        if !self.deprivileged() {
            self.handling
        } else if UNPRIVILEGED.contains(&name) {
            Handling::SilentlyWrong
        } else {
            Handling::TrapAndEmulate
        }
    }

    /// The RPL a selector read from CS or SS shows.
    #[inline]
    pub fn visible_rpl(&self, sel: u16) -> u16 {
        if self.deprivileged() {
            sel | 1
        } else {
            sel
        }
    }

    /// EFLAGS as PUSHF sees them: deprivileged, the real IF (the monitor
    /// keeps interrupts enabled) and the real IOPL (0).
    pub fn visible_eflags(&self, v: u32) -> u32 {
        if self.deprivileged() {
            (v | f::IF) & !f::IOPL
        } else {
            v
        }
    }

    /// CR0 as SMSW sees it: deprivileged, the monitor's (protected mode,
    /// paging and write protection on).
    pub fn visible_cr0(&self) -> u32 {
        if self.deprivileged() {
            self.cr0 | cr0::PE | cr0::PG | cr0::WP
        } else {
            self.cr0
        }
    }
}
