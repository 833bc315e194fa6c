//! National Semiconductor 16550A UART (COM1 at 0x3F8, IRQ4).
//! SKELETON: interface only; the full model is being written.

use crate::bus::{Device, IoCtx};

pub struct Uart16550 {
    #[allow(dead_code)]
    irq: u8,
    out: Vec<u8>,
}

impl Uart16550 {
    pub fn new(irq: u8) -> Uart16550 {
        Uart16550 {
            irq,
            out: Vec::new(),
        }
    }
    pub fn output(&self) -> &[u8] {
        &self.out
    }
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    pub fn push_input(&mut self, _data: &[u8], _cx: &mut IoCtx) {}
}

impl Device for Uart16550 {
    fn name(&self) -> &'static str {
        "16550A UART"
    }
    fn pio_write(&mut self, _region: usize, offset: u16, _size: u8, value: u32, _cx: &mut IoCtx) {
        if offset == 0 {
            self.out.push(value as u8);
        }
    }
}
