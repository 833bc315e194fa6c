//! The chips of the PC, one file each.

pub mod ata;
pub mod debugcon;
pub mod exit;
pub mod pic;
pub mod pit;
pub mod port92;
pub mod post;
pub mod rom;
pub mod uart;
pub mod vga;
