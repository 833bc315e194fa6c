//! The chips of the PC, one file each.

pub mod ata;
pub mod debugcon;
pub mod exit;
pub mod i8042;
pub mod ioapic;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod port92;
pub mod post;
pub mod ps2kbd;
pub mod rom;
pub mod rtc;
pub mod uart;
pub mod vga;
