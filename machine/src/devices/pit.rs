//! Intel 8254 programmable interval timer (0x40-0x43) and port 0x61.
//! SKELETON: interface only; the full model is being written.

use crate::bus::{Device, IoCtx};

#[derive(Default)]
pub struct Pit {}

impl Pit {
    pub fn new() -> Pit {
        Pit {}
    }
}

impl Device for Pit {
    fn name(&self) -> &'static str {
        "8254 PIT"
    }
    fn pio_read(&mut self, _region: usize, _offset: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
        0
    }
}
