//! The local APIC's register page as a read-only memory slot, so that the
//! guest's reads of it need no VM exit.
//!
//! The local APIC is the machine's model, in user space (no in-kernel
//! irqchip: every engine shares one APIC, and its events reach the trace).
//! Without help every access to its page is an MMIO exit, and some kernels
//! read it all the time: xv6's `mycpu()` reads the APIC ID in every
//! `pushcli`, so every `acquire` and `release` — 300 000 reads in a
//! three-command shell session, one every 140 instructions, each a VM exit
//! (about 100 µs under QEMU's emulated SVM).
//!
//! So the page is also a read-only slot at its guest-physical address,
//! backed by a host page that holds what a read of each register would
//! return (`machine::Machine::render_lapic_page`), rewritten before every
//! entry. Writes still exit (a write to a read-only slot is an MMIO exit)
//! and reach the model; reads are served by the page. Everything the model
//! holds changes only in user space — by a write, an interrupt delivered or
//! acknowledged, a device's message, the timer settled at an exit — so
//! every read sees exactly what the model would answer, except:
//!
//! - the timer's current count (TMCCT), which runs with time: it reads as
//!   of the last entry, so it moves in steps, at every exit (at the latest
//!   at the next device deadline or the loop's 100 ms slice, and at the
//!   timer's own expiry, which is a device deadline);
//! - a read of a reserved offset does not set ESR's illegal-register bit;
//! - the machine's per-register read counters (`--stats`) do not see these
//!   reads.
//!
//! Where the host cannot map memory read-only (no KVM_CAP_READONLY_MEM) or
//! while the machine's APIC is globally disabled, there is no slot and
//! every access exits, as before.

use crate::error::KvmError;
use kvm_ioctls::VmFd;
use machine::Machine;

/// The page size of the APIC's register page.
const PAGE: usize = 4096;
/// IA32_APIC_BASE's global enable bit (SDM Vol 3A 10.4.4).
const ENABLE: u64 = 1 << 11;

/// The host page and where it is mapped.
pub(crate) struct ApicShadow {
    page: *mut u8,
    slot: u32,
    /// Guest-physical address the slot maps now, if it does.
    mapped: Option<u64>,
    /// Times the page was rewritten (entries made with it mapped).
    pub refreshes: u64,
}

impl ApicShadow {
    /// A host page for slot number `slot`, zeroed by mmap (`render` writes
    /// only the registers' dwords); nothing mapped yet.
    pub fn new(slot: u32) -> Result<ApicShadow, KvmError> {
        // SAFETY: an anonymous private mapping of one page, at an address
        // the kernel picks; the result is checked before use.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(KvmError::Os {
                call: "mmap (the local APIC's shadow page)",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(ApicShadow {
            page: page.cast(),
            slot,
            mapped: None,
            refreshes: 0,
        })
    }

    /// Maps or unmaps the slot as the machine's APIC is enabled or not,
    /// and rewrites the page from the model. Called before every entry.
    pub fn update(&mut self, vm: &VmFd, m: &Machine) -> Result<(), KvmError> {
        let base = m.apic_base();
        let want = (base & ENABLE != 0).then_some(base & !0xFFF & 0xFFFF_FFFF);
        if want != self.mapped {
            let region = kvm_bindings::kvm_userspace_memory_region {
                slot: self.slot,
                flags: kvm_bindings::KVM_MEM_READONLY,
                guest_phys_addr: want.unwrap_or(0),
                memory_size: if want.is_some() { PAGE as u64 } else { 0 },
                userspace_addr: self.page as u64,
            };
            // SAFETY: the region is this struct's own page, which lives
            // until `drop`, after the engine's VM (the `Kvm` struct drops
            // its VM first: field order); a size of zero deletes the slot.
            unsafe { vm.set_user_memory_region(region) }.map_err(KvmError::ioctl(
                "KVM_SET_USER_MEMORY_REGION (local APIC page)",
            ))?;
            self.mapped = want;
        }
        if self.mapped.is_some() {
            // SAFETY: `page` is a live, writable mapping of PAGE bytes that
            // only this struct writes; KVM reads it only while the vCPU
            // runs, which it does not during this call.
            let page = unsafe { std::slice::from_raw_parts_mut(self.page, PAGE) };
            m.render_lapic_page(page);
            self.refreshes += 1;
        }
        Ok(())
    }
}

impl Drop for ApicShadow {
    fn drop(&mut self) {
        // SAFETY: `page` came from mmap with this length and is unmapped
        // once, here.
        unsafe { libc::munmap(self.page.cast(), PAGE) };
    }
}
