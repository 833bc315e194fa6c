//! ringlab's BIOS: the firmware ROM built from `machine/firmware/*.S` (see
//! `bios.S` there, written to be read top to bottom). It runs as guest code
//! from the reset vector on every engine.

/// The 64 KiB ROM image, mapped at 0xF0000 and 0xFFFF0000 by
/// `Machine::load_rom`.
pub const BIOS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bios.bin"));

/// The POST code the BIOS writes before it halts with nothing to boot
/// (bios.S, POST_NO_BOOT): the frontend turns that halt into an error.
pub const POST_NO_BOOT: u8 = 0xEB;

/// Address range types of the memory map (ACPI 6.x 15.1, multiboot 3.3).
pub const MAP_RAM: u32 = 1;
pub const MAP_RESERVED: u32 = 2;

/// Where the EBDA starts: the firmware keeps 1 KiB at the top of base
/// memory (machine/firmware/bios.S, EBDA_SEG).
pub const EBDA_START: u64 = 0x9_FC00;

/// The PC's physical memory map for `ram` bytes of RAM, as ringlab's BIOS
/// answers INT 15h E820 (machine/firmware/system.S builds the same list)
/// and as the multiboot loader passes it to a kernel: (base, length,
/// type), in address order. Conventional memory up to the EBDA; the EBDA;
/// the BIOS ROM's low alias; RAM from 1 MiB; the I/O APIC and local APIC
/// pages; the ROM's high alias below 4 GiB. The VGA window A0000-EFFFF is
/// a hole, as SeaBIOS lists it.
pub fn memory_map(ram: u64) -> Vec<(u64, u64, u32)> {
    let mut map = vec![
        (0, EBDA_START, MAP_RAM),
        (EBDA_START, 0xA_0000 - EBDA_START, MAP_RESERVED),
        (0xF_0000, 0x1_0000, MAP_RESERVED),
    ];
    if ram > 0x10_0000 {
        map.push((0x10_0000, ram - 0x10_0000, MAP_RAM));
    }
    map.push((crate::board::mmio::IOAPIC, 0x1000, MAP_RESERVED));
    map.push((crate::board::mmio::LAPIC, 0x1000, MAP_RESERVED));
    map.push((0xFFFF_0000, 0x1_0000, MAP_RESERVED));
    map
}

/// The record a loader leaves for the BIOS to start a kernel it loaded
/// (multiboot) instead of booting a disk: at `HANDOFF_OFF` in the boot
/// information block, which sits at one of `HANDOFF_BLOCKS`. INT 19h
/// (machine/firmware/boot.S) looks for `HANDOFF_MAGIC` there, clears it,
/// and enters the kernel in protected mode as a multiboot loader does.
/// Layout: magic (u32), entry (u32), multiboot info address (u32), then
/// the GDTR pseudo-descriptor to load (limit u16, base u32).
pub const HANDOFF_MAGIC: u32 = u32::from_le_bytes(*b"RLMB");
pub const HANDOFF_OFF: u32 = 0x150;
/// The addresses the loader may put its block at (`loader.rs`,
/// BOOT_INFO_CANDIDATES); boot.S searches the same list.
pub const HANDOFF_BLOCKS: [u32; 8] = [
    0x500, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_map_leaves_out_the_vga_hole_and_reserves_the_apics() {
        let m = memory_map(32 << 20);
        assert_eq!(m.len(), 7);
        assert_eq!(m[3], (0x10_0000, (32 << 20) - 0x10_0000, MAP_RAM));
        assert!(
            m.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
            "in order, disjoint"
        );
        // 1 MiB of RAM: nothing above it.
        assert_eq!(memory_map(1 << 20).len(), 6);
    }

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
