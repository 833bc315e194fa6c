//! System control port A (0x92): fast A20 gate and fast reset (PS/2 and
//! later PCs; documented in IBM's PS/2 technical reference and in every
//! chipset datasheet since, e.g. Intel 82371AB PIIX4 "Port 92h").
//!
//! Bit 1 enables A20; bit 0 written as 1 pulses the CPU reset line.
//! Reads return the last value with bit 0 clear.

use crate::bus::{Device, IoCtx, Request};
use crate::MachineStop;

pub struct Port92 {
    value: u8,
}

impl Default for Port92 {
    fn default() -> Self {
        // ringlab powers on with A20 enabled, as QEMU and most BIOSes leave it.
        Port92 { value: 0x02 }
    }
}

impl Port92 {
    pub fn a20_enabled(&self) -> bool {
        self.value & 0x02 != 0
    }

    /// The board's one A20 gate changed (from this port or the 8042's
    /// output port): bit 1 reads it.
    pub fn set_a20_line(&mut self, on: bool) {
        self.value = (self.value & !0x02) | if on { 0x02 } else { 0 };
    }
}

impl Device for Port92 {
    fn name(&self) -> &'static str {
        "system control port A (0x92)"
    }
    fn pio_read(&mut self, _r: usize, _o: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
        (self.value & !0x01) as u32
    }
    fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        let v = value as u8;
        let old = self.value;
        self.value = v & !0x01;
        if (old ^ v) & 0x02 != 0 {
            cx.request(Request::A20(v & 0x02 != 0));
        }
        if v & 0x01 != 0 {
            cx.request(Request::Stop(MachineStop::Reset));
        }
    }
}
