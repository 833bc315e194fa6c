//! Guest RAM as KVM memory slots, with the A20 gate.
//!
//! With A20 enabled the machine's RAM is one slot at guest-physical 0. With
//! A20 disabled (port 0x92 bit 1 clear, as after reset on a PC) address line
//! 20 is forced to zero, so every odd megabyte reads and writes the even
//! megabyte below it: the 8086 wraparound that real-mode code at FFFF:0010
//! and above relies on. KVM has no A20 gate of its own, so the engine maps
//! RAM megabyte by megabyte, each odd megabyte as an alias slot over the
//! host memory of the even one below it.
//!
//! A firmware ROM (`Machine::load_rom`) adds read-only slots: its low alias
//! (the top of the first megabyte, in RAM) is cut out of the RAM slots as a
//! read-only piece, and its high alias (the top of 4 GiB) is a read-only
//! slot over the ROM's own host copy. Guest writes to read-only slots come
//! back as MMIO exits, which the machine ignores and counts, as a ROM does.
//!
//! The slots point into one machine's memory, so the engine is bound to
//! that machine (`Mapping::check`): handed another, it refuses to run
//! rather than let a guest reach memory the engine does not own.

use crate::apic_shadow::ApicShadow;
use crate::error::KvmError;
use kvm_ioctls::VmFd;
use machine::Machine;

/// The memory slots KVM has, and what they were made from.
pub(crate) struct Mapping {
    /// The machine's RAM mapping (host address, length) the slots point
    /// into: the machine this engine was created for.
    bound: (usize, usize),
    /// That RAM's process-unique id (`GuestMemory::id`): a later machine
    /// whose RAM happens to be mapped at the same address is still another
    /// machine.
    bound_id: u64,
    /// Slots in use (numbered from 0).
    slots: u32,
    /// Whether A20 was open and which ROM was mapped when they were made.
    a20: bool,
    rom_size: Option<u64>,
    /// KVM_CAP_READONLY_MEM: read-only slots (for a ROM).
    readonly_mem: bool,
    /// The ROM's slots are mapped writable for the moment (`update`'s
    /// `rom_writable`; see `stall::drop_rom_write`).
    rom_writable: bool,
    /// The local APIC's register page as a read-only slot (the last slot
    /// number the host allows), where the host can map memory read-only.
    pub apic: Option<ApicShadow>,
}

impl Mapping {
    /// Binds to `m`'s RAM; no slot is made yet (`update` makes them).
    /// `memslots`: how many slots the host allows.
    pub fn new(m: &Machine, readonly_mem: bool, memslots: usize) -> Result<Mapping, KvmError> {
        let apic = match (readonly_mem, memslots) {
            (true, n) if n > 1 => Some(ApicShadow::new(n as u32 - 1)?),
            _ => None,
        };
        Ok(Mapping {
            bound: ram_of(m),
            bound_id: m.mem.id(),
            slots: 0,
            a20: true,
            rom_size: None,
            readonly_mem,
            rom_writable: false,
            apic,
        })
    }

    /// `m` is the machine the slots were made for.
    pub fn check(&self, m: &Machine) -> Result<(), KvmError> {
        let got = ram_of(m);
        if got != self.bound || m.mem.id() != self.bound_id {
            return Err(KvmError::OtherMachine {
                bound_at: self.bound.0,
                bound_len: self.bound.1,
                got_at: got.0,
                got_len: got.1,
                bound_id: self.bound_id,
                got_id: m.mem.id(),
            });
        }
        Ok(())
    }

    /// (Re)makes the slots when the A20 gate or the ROM changed (and at
    /// the start). `rom_writable` maps the ROM's slots writable (for one
    /// instruction: a write the CPU makes itself, which KVM cannot hand to
    /// user space, `stall::drop_rom_write`).
    pub fn update(&mut self, vm: &VmFd, m: &Machine, rom_writable: bool) -> Result<(), KvmError> {
        self.check(m)?;
        if let Some(apic) = &mut self.apic {
            apic.update(vm, m)?;
        }
        let a20 = m.a20_mask() & (1 << 20) != 0;
        let rom = m.rom_map();
        let rom_size = rom.as_ref().map(|r| r.size as u64);
        if self.slots > 0
            && a20 == self.a20
            && rom_size == self.rom_size
            && rom_writable == self.rom_writable
        {
            return Ok(());
        }
        if rom.is_some() && !self.readonly_mem {
            return Err(KvmError::Unsupported(
                "this host's KVM cannot map memory read-only (no KVM_CAP_READONLY_MEM), \
                 which the firmware ROM needs"
                    .into(),
            ));
        }
        let set = |slot: u32, s: Slot| {
            let host = match (s.rom, &rom) {
                (false, _) => m.mem.host_base() as u64,
                (true, Some(r)) => r.host as u64,
                (true, None) => unreachable!("`slots` makes a ROM slot only for a ROM"),
            };
            let region = kvm_bindings::kvm_userspace_memory_region {
                slot,
                flags: if s.read_only && !rom_writable {
                    kvm_bindings::KVM_MEM_READONLY
                } else {
                    0
                },
                guest_phys_addr: s.phys,
                memory_size: s.size,
                userspace_addr: host + s.host_offset,
            };
            // SAFETY: the region lies inside the machine's RAM mapping, or
            // the ROM's host copy (`slots` keeps host_offset + size within
            // them), both page aligned and owned by the machine. That
            // machine outlives the guest's use of them: `check` above and
            // at every run, step and state import refuses any other
            // machine, and the engine (whose VM holds the slots) is
            // created from `&mut` that machine and run only with it. A
            // size of zero deletes the slot.
            unsafe { vm.set_user_memory_region(region) }
        };
        for slot in 0..self.slots {
            let gone = Slot {
                phys: 0,
                size: 0,
                host_offset: 0,
                read_only: false,
                rom: false,
            };
            set(slot, gone).map_err(KvmError::ioctl("KVM_SET_USER_MEMORY_REGION (delete)"))?;
        }
        let want = slots(m.mem.size() as u64, a20, rom_size);
        for (i, s) in want.iter().enumerate() {
            set(i as u32, *s).map_err(KvmError::ioctl(format!(
                "KVM_SET_USER_MEMORY_REGION (slot {i} of {}, A20 {})",
                want.len(),
                if a20 { "open" } else { "closed" }
            )))?;
        }
        self.slots = want.len() as u32;
        self.a20 = a20;
        self.rom_size = rom_size;
        self.rom_writable = rom_writable;
        Ok(())
    }
}

/// The host address and length of `m`'s RAM mapping.
fn ram_of(m: &Machine) -> (usize, usize) {
    (m.mem.host_base() as usize, m.mem.size())
}

/// One KVM memory slot: `size` bytes at guest-physical `phys`, backed by
/// the RAM mapping (or, with `rom`, the ROM's host copy) at byte
/// `host_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub phys: u64,
    pub size: u64,
    pub host_offset: u64,
    pub read_only: bool,
    pub rom: bool,
}

const MIB: u64 = 1 << 20;

/// A RAM slot.
fn ram_slot(phys: u64, size: u64, host_offset: u64) -> Slot {
    Slot {
        phys,
        size,
        host_offset,
        read_only: false,
        rom: false,
    }
}

/// The slots for `ram` bytes of RAM with the A20 gate open or closed, and
/// a ROM of `rom` bytes if one is loaded.
pub fn slots(ram: u64, a20: bool, rom: Option<u64>) -> Vec<Slot> {
    let base = ram_slots(ram, a20);
    let Some(rom) = rom else {
        return base;
    };
    // Cut the low alias [MIB - rom, MIB) of the host RAM out of every slot
    // that maps it (with A20 closed the odd megabytes alias it too).
    let (lo, hi) = (MIB - rom, MIB);
    let mut out = Vec::new();
    for s in base {
        let (h0, h1) = (s.host_offset, s.host_offset + s.size);
        let cuts = [h0, lo.clamp(h0, h1), hi.clamp(h0, h1), h1];
        for w in cuts.windows(2) {
            if w[1] > w[0] {
                out.push(Slot {
                    phys: s.phys + (w[0] - h0),
                    size: w[1] - w[0],
                    host_offset: w[0],
                    read_only: w[0] >= lo && w[1] <= hi,
                    rom: false,
                });
            }
        }
    }
    out.push(Slot {
        phys: (1 << 32) - rom,
        size: rom,
        host_offset: 0,
        read_only: true,
        rom: true,
    });
    out
}

fn ram_slots(ram: u64, a20: bool) -> Vec<Slot> {
    if a20 || ram <= MIB {
        return vec![ram_slot(0, ram, 0)];
    }
    let mut out: Vec<Slot> = Vec::new();
    let mut phys = 0;
    while phys < ram {
        let size = MIB.min(ram - phys);
        let host_offset = phys & !MIB;
        // Even megabytes map to themselves and odd ones alias the even one
        // below, so no two neighbours are contiguous on the host side.
        out.push(ram_slot(phys, size, host_offset));
        phys += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a20_open_is_one_slot() {
        assert_eq!(slots(32 * MIB, true, None), vec![ram_slot(0, 32 * MIB, 0)]);
    }

    #[test]
    fn a20_closed_aliases_odd_megabytes() {
        let s = slots(3 * MIB + 4096, false, None);
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
        assert_eq!(slots(640 * 1024, false, None).len(), 1);
    }

    #[test]
    fn every_address_maps_as_the_a20_mask_says() {
        let ram = 5 * MIB;
        let s = slots(ram, false, None);
        for addr in (0..ram).step_by(4096 * 7 + 3) {
            let slot = s
                .iter()
                .find(|sl| addr >= sl.phys && addr < sl.phys + sl.size)
                .expect("covered");
            assert_eq!(slot.host_offset + (addr - slot.phys), addr & !MIB);
        }
    }

    #[test]
    fn a_rom_is_cut_out_of_ram_and_mapped_at_4_gib() {
        let rom = 128 << 10;
        for a20 in [true, false] {
            let s = slots(4 * MIB, a20, Some(rom));
            // Every RAM address is covered once; the ROM's low alias, and
            // with A20 closed its alias at 2 MiB - 128 KiB, is read-only.
            for addr in (0..4 * MIB).step_by(4096) {
                let hits: Vec<&Slot> = s
                    .iter()
                    .filter(|sl| !sl.rom && addr >= sl.phys && addr < sl.phys + sl.size)
                    .collect();
                assert_eq!(hits.len(), 1, "{addr:#x}");
                let host = hits[0].host_offset + (addr - hits[0].phys);
                let in_rom = (MIB - rom..MIB).contains(&host);
                assert_eq!(hits[0].read_only, in_rom, "{addr:#x} a20 {a20}");
            }
            let high = s.iter().find(|sl| sl.rom).expect("high alias");
            assert_eq!((high.phys, high.size), ((1 << 32) - rom, rom));
            assert!(high.read_only);
        }
    }
}
