//! Guard mappings around guest RAM: host memory mapped right before and
//! right after the RAM mapping and filled with a pattern, so a test can
//! tell whether code that should stay inside guest RAM wrote next to it
//! (the robustness tests' engines, the device fuzzer's devices).

use machine::Machine;

/// Host memory mapped right before and right after guest RAM, filled with
/// a pattern: an engine that wrote outside the RAM mapping would most
/// likely hit one of them.
pub struct Guards {
    pub regions: Vec<(*mut u8, usize)>,
}

const GUARD_LEN: usize = 64 << 10;
const GUARD_BYTE: u8 = 0xA5;

impl Guards {
    /// Maps the guards around the RAM of `m` where the address space is
    /// free (none where it is not: `regions` says which exist).
    pub fn around(m: &Machine) -> Guards {
        let base = m.mem.host_base() as usize;
        let mut regions = Vec::new();
        for want in [base.wrapping_sub(GUARD_LEN), base + m.mem.size()] {
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping;
            // it fails (or, on kernels without it, maps elsewhere, which we
            // undo) instead. The region is ours until munmap.
            let p = unsafe {
                libc::mmap(
                    want as *mut libc::c_void,
                    GUARD_LEN,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                continue;
            }
            if p as usize != want {
                // SAFETY: `p` is the mapping just created, GUARD_LEN long.
                unsafe { libc::munmap(p, GUARD_LEN) };
                continue;
            }
            // SAFETY: `p` points at GUARD_LEN writable bytes we mapped.
            unsafe { std::ptr::write_bytes(p.cast::<u8>(), GUARD_BYTE, GUARD_LEN) };
            regions.push((p.cast::<u8>(), GUARD_LEN));
        }
        Guards { regions }
    }

    /// True while every guard still holds only its pattern.
    pub fn intact(&self) -> bool {
        self.regions.iter().all(|&(p, len)| {
            // SAFETY: the region stays mapped until `drop`.
            let s = unsafe { std::slice::from_raw_parts(p, len) };
            s.iter().all(|&b| b == GUARD_BYTE)
        })
    }
}

impl Drop for Guards {
    fn drop(&mut self) {
        for &(p, len) in &self.regions {
            // SAFETY: unmapping exactly what `around` mapped.
            unsafe { libc::munmap(p.cast(), len) };
        }
    }
}
