//! Exit ports: QEMU's isa-debug-exit at 0xF4 and Bochs' shutdown port 0x8900.
//!
//! isa-debug-exit (QEMU hw/misc/debugexit.c): any write of value v stops the
//! machine; QEMU then exits with status (v << 1) | 1, and so does ringlab.
//! Bochs (iodev/unmapped.cc): writing the bytes "Shutdown" in sequence to
//! port 0x8900 powers the machine off.

use crate::bus::{Device, IoCtx, Request};
use crate::MachineStop;

pub struct DebugExit;

impl Device for DebugExit {
    fn name(&self) -> &'static str {
        "isa-debug-exit (0xF4)"
    }
    fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        cx.request(Request::Stop(MachineStop::Exit(value)));
    }
}

#[derive(Default)]
pub struct BochsShutdown {
    matched: usize,
}

const SHUTDOWN: &[u8] = b"Shutdown";

impl Device for BochsShutdown {
    fn name(&self) -> &'static str {
        "Bochs shutdown port (0x8900)"
    }
    fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, value: u32, cx: &mut IoCtx) {
        let b = value as u8;
        if b == SHUTDOWN[self.matched] {
            self.matched += 1;
        } else {
            self.matched = usize::from(b == SHUTDOWN[0]);
        }
        if self.matched == SHUTDOWN.len() {
            self.matched = 0;
            cx.request(Request::Stop(MachineStop::Shutdown));
        }
    }
}
