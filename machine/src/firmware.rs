//! ringlab's BIOS: the firmware ROM built from `machine/firmware/*.S` (see
//! `bios.S` there, written to be read top to bottom). It runs as guest code
//! from the reset vector on every engine.

/// The 64 KiB ROM image, mapped at 0xF0000 and 0xFFFF0000 by
/// `Machine::load_rom`.
pub const BIOS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bios.bin"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rom_has_a_reset_vector_date_and_model() {
        assert_eq!(BIOS.len(), 0x10000);
        // JMP FAR F000:E05B.
        assert_eq!(&BIOS[0xFFF0..0xFFF5], &[0xEA, 0x5B, 0xE0, 0x00, 0xF0]);
        assert_eq!(&BIOS[0xFFF5..0xFFFD], b"12/06/26");
        assert_eq!(BIOS[0xFFFE], 0xFC);
    }

    /// An OS that finds no MP floating pointer in the EBDA searches the
    /// ROM at F0000-FFFFF (MPS 1.4, 4.0): the BIOS builds its pointer in
    /// the EBDA at POST and must leave no valid one in the ROM.
    #[test]
    fn the_rom_holds_no_mp_floating_pointer() {
        for (i, p) in BIOS.chunks_exact(16).enumerate() {
            let sum = p.iter().fold(0u8, |s, &b| s.wrapping_add(b));
            assert!(
                !(p.starts_with(b"_MP_") && sum == 0),
                "a floating pointer at F000:{:04X}",
                i * 16
            );
        }
    }
}
