//! Debug console at port 0xE9 (Bochs' "port E9 hack", QEMU's -debugcon).
//!
//! Bytes written are collected; a read returns 0xE9 so a guest can detect
//! that the port exists, as Bochs and QEMU do.

use crate::bus::{Device, IoCtx};

#[derive(Default)]
pub struct DebugCon {
    out: Vec<u8>,
}

impl DebugCon {
    pub fn output(&self) -> &[u8] {
        &self.out
    }
}

impl Device for DebugCon {
    fn name(&self) -> &'static str {
        "debug console (port 0xE9)"
    }
    fn pio_read(&mut self, _r: usize, _o: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
        0xE9
    }
    fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, value: u32, _cx: &mut IoCtx) {
        self.out.push(value as u8);
    }
}
