//! Intel 8259A programmable interrupt controller pair (master 0x20, slave 0xA0).
//! SKELETON: interface only; the full model is being written.

use crate::bus::{Device, IoCtx};

pub struct Pic {
    irr: u16,
    imr: u16,
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    pub fn new() -> Pic {
        Pic {
            irr: 0,
            imr: 0xFFFF,
        }
    }
    /// Drives input line `line` (0-15; 8-15 are the slave's IR0-7).
    pub fn set_irq(&mut self, line: u8, level: bool) {
        if level {
            self.irr |= 1 << line;
        }
    }
    /// The master's INT output to the CPU.
    pub fn intr(&self) -> bool {
        self.irr & !self.imr != 0
    }
    /// INTA cycle: the vector for the CPU.
    pub fn acknowledge(&mut self) -> u8 {
        0
    }
}

impl Device for Pic {
    fn name(&self) -> &'static str {
        "8259A PIC"
    }
    fn pio_read(&mut self, _region: usize, _offset: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
        0
    }
}
