//! Guest RAM as KVM memory slots, with the A20 gate.
//!
//! With A20 enabled the machine's RAM is one slot at guest-physical 0. With
//! A20 disabled (port 0x92 bit 1 clear, as after reset on a PC) address line
//! 20 is forced to zero, so every odd megabyte reads and writes the even
//! megabyte below it: the 8086 wraparound that real-mode code at FFFF:0010
//! and above relies on. KVM has no A20 gate of its own, so the engine maps
//! RAM megabyte by megabyte, each odd megabyte as an alias slot over the
//! host memory of the even one below it.

/// One KVM memory slot: `size` bytes at guest-physical `phys`, backed by
/// the RAM mapping at byte `host_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub phys: u64,
    pub size: u64,
    pub host_offset: u64,
}

const MIB: u64 = 1 << 20;

/// The slots for `ram` bytes of RAM with the A20 gate open or closed.
pub fn slots(ram: u64, a20: bool) -> Vec<Slot> {
    if a20 || ram <= MIB {
        return vec![Slot {
            phys: 0,
            size: ram,
            host_offset: 0,
        }];
    }
    let mut out: Vec<Slot> = Vec::new();
    let mut phys = 0;
    while phys < ram {
        let size = MIB.min(ram - phys);
        let host_offset = phys & !MIB;
        // Even megabytes map to themselves and odd ones alias the even one
        // below, so no two neighbours are contiguous on the host side.
        out.push(Slot {
            phys,
            size,
            host_offset,
        });
        phys += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a20_open_is_one_slot() {
        assert_eq!(
            slots(32 * MIB, true),
            vec![Slot {
                phys: 0,
                size: 32 * MIB,
                host_offset: 0
            }]
        );
    }

    #[test]
    fn a20_closed_aliases_odd_megabytes() {
        let s = slots(3 * MIB + 4096, false);
        let want = [
            (0, MIB, 0),
            (MIB, MIB, 0),
            (2 * MIB, MIB, 2 * MIB),
            (3 * MIB, 4096, 2 * MIB),
        ];
        assert_eq!(s.len(), want.len());
        for (slot, (phys, size, off)) in s.iter().zip(want) {
            assert_eq!((slot.phys, slot.size, slot.host_offset), (phys, size, off));
        }
    }

    #[test]
    fn small_ram_needs_no_alias() {
        assert_eq!(slots(640 * 1024, false).len(), 1);
    }

    #[test]
    fn every_address_maps_as_the_a20_mask_says() {
        let ram = 5 * MIB;
        let s = slots(ram, false);
        for addr in (0..ram).step_by(4096 * 7 + 3) {
            let slot = s
                .iter()
                .find(|sl| addr >= sl.phys && addr < sl.phys + sl.size)
                .expect("covered");
            assert_eq!(slot.host_offset + (addr - slot.phys), addr & !MIB);
        }
    }
}
