//! Firmware ROM: an image of 64 to 256 KiB that a PC maps read-only at the
//! top of the first megabyte and again at the top of the 4 GiB address
//! space, where the CPU fetches its first instruction after reset
//! (FFFFFFF0, SDM Vol 3A 9.1.4).
//!
//! This device is the high alias, as MMIO: reads return the image, writes
//! are ignored and counted. The low alias lives in RAM, made read-only
//! (`Machine::load_rom`), so engines run it like any other code. The image
//! is also kept in a page-aligned mapping of its own, which the KVM engine
//! hands to KVM as a read-only memory slot.

use crate::bus::{Device, IoCtx};
use crate::memory::{GuestMemory, MemoryError};

pub const ROM_MIN: usize = 64 << 10;
pub const ROM_MAX: usize = 256 << 10;
/// The step ROM sizes come in.
pub const ROM_GRAIN: usize = 64 << 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RomError {
    #[error(
        "a ROM image must be 64, 128, 192 or 256 KiB (a multiple of 64 KiB between \
         {ROM_MIN} and {ROM_MAX} bytes); this one is {0} bytes"
    )]
    BadSize(usize),
    #[error(
        "the reset vector holds no code: the ROM's last 16 bytes (where the CPU starts, \
         at FFFFFFF0 and F000:FFF0) are all {0:#04x}"
    )]
    NoResetCode(u8),
    #[error("cannot map the ROM: a ROM is already loaded")]
    AlreadyLoaded,
    /// Its memory could not be made or written.
    #[error("cannot map the ROM")]
    Memory(#[source] MemoryError),
    /// Its address range is taken.
    #[error("cannot map the ROM")]
    Overlap(#[source] crate::bus::OverlapError),
}

/// Checks a ROM image: its size, and code at the reset vector.
pub fn validate(image: &[u8]) -> Result<(), RomError> {
    let n = image.len();
    if !(ROM_MIN..=ROM_MAX).contains(&n) || !n.is_multiple_of(ROM_GRAIN) {
        return Err(RomError::BadSize(n));
    }
    let vector = &image[n - 16..];
    if let Some(&b) = vector.first() {
        if matches!(b, 0x00 | 0xFF) && vector.iter().all(|&x| x == b) {
            return Err(RomError::NoResetCode(b));
        }
    }
    Ok(())
}

pub struct Rom {
    image: GuestMemory,
    writes: u64,
}

impl Rom {
    pub fn new(image: &[u8]) -> Result<Rom, RomError> {
        validate(image)?;
        let mut m = GuestMemory::map(image.len()).map_err(RomError::Memory)?;
        m.write_rom(0, image).map_err(RomError::Memory)?;
        Ok(Rom {
            image: m,
            writes: 0,
        })
    }

    pub fn size(&self) -> usize {
        self.image.size()
    }

    /// The image's page-aligned host copy (for a KVM read-only slot).
    pub fn host_base(&self) -> *mut u8 {
        self.image.host_base()
    }

    /// The byte at `offset` into the image.
    pub fn peek(&self, offset: u64) -> Option<u8> {
        self.image.read_u8(offset)
    }

    /// Writes the guest made to this alias (all ignored).
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

impl Device for Rom {
    fn name(&self) -> &'static str {
        "firmware ROM (high alias)"
    }

    fn mmio_read(&mut self, _r: usize, offset: u64, size: u8, _cx: &mut IoCtx) -> u64 {
        let mut buf = [0u8; 8];
        for (i, b) in buf.iter_mut().take(size as usize).enumerate() {
            *b = self.image.read_u8(offset + i as u64).unwrap_or(0xFF);
        }
        u64::from_le_bytes(buf)
    }

    fn mmio_write(&mut self, _r: usize, _offset: u64, _size: u8, _value: u64, _cx: &mut IoCtx) {
        self.writes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_reset_vector_are_checked() {
        let mut img = vec![0xFFu8; 64 << 10];
        assert_eq!(validate(&img), Err(RomError::NoResetCode(0xFF)));
        img[(64 << 10) - 16] = 0xEA; // JMP FAR
        assert_eq!(validate(&img), Ok(()));
        assert_eq!(validate(&img[..4096]), Err(RomError::BadSize(4096)));
        assert_eq!(
            validate(&vec![0xEA; 96 << 10]),
            Err(RomError::BadSize(96 << 10))
        );
        assert_eq!(
            validate(&vec![0xEA; 512 << 10]),
            Err(RomError::BadSize(512 << 10))
        );
        let msg = RomError::NoResetCode(0).to_string();
        assert!(msg.contains("reset vector"), "{msg}");
    }
}
