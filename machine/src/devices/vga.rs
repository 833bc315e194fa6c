//! VGA text mode. SKELETON.
use crate::bus::Device;
use crate::GuestMemory;
#[derive(Default)]
pub struct Vga {}
pub struct Screen {}
impl Vga {
    pub fn new() -> Vga {
        Vga {}
    }
    pub fn screen(&self, _m: &GuestMemory) -> Screen {
        Screen {}
    }
}
impl Device for Vga {
    fn name(&self) -> &'static str {
        "VGA"
    }
}
