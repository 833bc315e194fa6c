//! POST code port 0x80, where BIOSes report their progress.
//!
//! Every byte written is recorded in order. Reads return 0xFF as on QEMU's
//! isa bus (the port is write-only on a POST card); IN from 0x80 is still a
//! real port access, which is why the nanobenchmark uses it.

use crate::bus::{Device, IoCtx};

#[derive(Default)]
pub struct PostCodes {
    codes: Vec<u8>,
    /// Each write asks the machine to stop (`Machine::set_stop_on_post`).
    pub stop_on_write: bool,
}

impl PostCodes {
    /// Every code written, in order.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// The distinct codes in order of first appearance.
    pub fn distinct(&self) -> Vec<u8> {
        let mut seen = [false; 256];
        self.codes
            .iter()
            .copied()
            .filter(|&c| !std::mem::replace(&mut seen[c as usize], true))
            .collect()
    }
}

impl Device for PostCodes {
    fn name(&self) -> &'static str {
        "POST code port (0x80)"
    }
    fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        if self.stop_on_write {
            cx.request(crate::bus::Request::Stop(crate::MachineStop::PostCode(
                value as u8,
            )));
        }
        // Bounded: a guest looping on OUT 0x80 must not grow host memory
        // without end. Keep the first million codes.
        if self.codes.len() < 1 << 20 {
            self.codes.push(value as u8);
        }
    }
}
