//! The translation cache's memory, W^X by double mapping: one memfd mapped
//! twice, once writable (where the translator emits and patches code) and
//! once executable (where translated code runs). No page is writable and
//! executable in the same mapping, and patching a chain costs a store, not
//! an mprotect: toggling one mapping between writable and executable made
//! every chain and unchain an mprotect with a TLB shootdown, which was most
//! of the translator's time on guests that flush their TLB often
//! (measured with perf on the nanobench lesson: change_pte_range on top).

use std::ptr::NonNull;

/// Setting up the translation cache's memory failed: which call, and the
/// OS's reason (kept as the source).
#[derive(Debug, thiserror::Error)]
#[error("translation cache: {call}")]
pub struct CodeBufError {
    pub call: String,
    #[source]
    pub source: std::io::Error,
}

impl CodeBufError {
    /// The error of the libc call that just failed (errno).
    fn last(call: impl Into<String>) -> CodeBufError {
        CodeBufError {
            call: call.into(),
            source: std::io::Error::last_os_error(),
        }
    }
}

pub struct CodeBuf {
    /// The writable view.
    rw: NonNull<u8>,
    /// The executable view of the same pages.
    rx: NonNull<u8>,
    size: usize,
    used: usize,
}

fn map(fd: libc::c_int, size: usize, prot: libc::c_int) -> Result<NonNull<u8>, CodeBufError> {
    // SAFETY: a shared mapping of our own memfd, no address hint; the
    // result is checked against MAP_FAILED.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), size, prot, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(CodeBufError::last(format!("mmap of {} KiB", size >> 10)));
    }
    NonNull::new(p as *mut u8).ok_or_else(|| CodeBufError {
        call: "mmap".into(),
        source: std::io::Error::other("returned a null mapping"),
    })
}

impl CodeBuf {
    pub fn new(size: usize) -> Result<CodeBuf, CodeBufError> {
        let err = CodeBufError::last;
        // SAFETY: a NUL-terminated name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"ringlab-bt-cache".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(err("memfd_create"));
        }
        // SAFETY: our own fd; sizes it before it is mapped.
        if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
            let e = err("ftruncate");
            // SAFETY: closing our own fd once.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let rw = map(fd, size, libc::PROT_READ | libc::PROT_WRITE);
        let rx = map(fd, size, libc::PROT_READ | libc::PROT_EXEC);
        // SAFETY: the mappings keep the memory; the fd is no longer needed.
        unsafe { libc::close(fd) };
        match (rw, rx) {
            (Ok(rw), Ok(rx)) => Ok(CodeBuf {
                rw,
                rx,
                size,
                used: 0,
            }),
            (Err(e), other) | (other, Err(e)) => {
                // One view failed: unmap the other if it was made.
                if let Ok(p) = other {
                    // SAFETY: unmapping a mapping made just above, which
                    // nothing refers to yet.
                    unsafe { libc::munmap(p.as_ptr() as *mut libc::c_void, size) };
                }
                Err(e)
            }
        }
    }

    /// Host address (in the executable view) where the next code will go.
    pub fn next_addr(&self) -> u64 {
        self.rx.as_ptr() as u64 + self.used as u64
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn capacity(&self) -> usize {
        self.size
    }

    /// Appends `code` (assembled for `next_addr()`); None when full.
    pub fn push(&mut self, code: &[u8]) -> Option<u64> {
        if self.used + code.len() > self.size {
            return None;
        }
        let at = self.next_addr();
        // SAFETY: `used + len <= size`: inside the writable view.
        unsafe {
            std::ptr::copy_nonoverlapping(
                code.as_ptr(),
                self.rw.as_ptr().add(self.used),
                code.len(),
            )
        };
        self.used += code.len();
        // Blocks 16-byte aligned. A hot loop's speed depends on where its
        // code falls in the host's 32- and 64-byte fetch windows, so on
        // where the blocks before it happen to end, whatever the
        // alignment: with the TLB's 16-byte entries (9 alternated rounds of
        // the suite) 32-byte alignment left prot16 11 % slower than
        // 16-byte and sort 16 % faster, and 64-byte left real16 15 %
        // slower. 16-byte alignment was the one where no member was slower
        // than before the change (BENCHMARKS.md).
        self.used = (self.used + 15) & !15;
        self.used = self.used.min(self.size);
        Some(at)
    }

    /// Forgets everything after the first `keep` bytes (the entry and exit
    /// stubs): the cache is flushed when full.
    pub fn truncate(&mut self, keep: usize) {
        self.used = keep;
    }

    /// The emitted code at host address `addr` (of the executable view).
    pub fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        let base = self.rx.as_ptr() as u64;
        assert!(addr >= base && addr + len as u64 <= base + self.used as u64);
        // SAFETY: inside the emitted part of the writable view (checked
        // above); nothing writes it while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.rw.as_ptr().add((addr - base) as usize), len) }
    }

    /// Overwrites `bytes.len()` bytes of emitted code at host address
    /// `addr` of the executable view (a chain patch). The dispatcher only
    /// patches between runs of translated code, on this thread, so no
    /// instruction is half-written while it executes.
    pub fn patch(&mut self, addr: u64, bytes: &[u8]) {
        let base = self.rx.as_ptr() as u64;
        assert!(addr >= base && addr + bytes.len() as u64 <= base + self.used as u64);
        let off = (addr - base) as usize;
        // SAFETY: inside the emitted part of the writable view (checked
        // above).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.rw.as_ptr().add(off), bytes.len());
        }
    }
}

impl Drop for CodeBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps our own two views; no code from them runs any more.
        unsafe {
            libc::munmap(self.rw.as_ptr() as *mut libc::c_void, self.size);
            libc::munmap(self.rx.as_ptr() as *mut libc::c_void, self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_written_in_one_view_runs_from_the_other_and_patches_apply() {
        let mut b = CodeBuf::new(1 << 16).unwrap();
        // mov eax, 7; ret
        let at = b.push(&[0xB8, 7, 0, 0, 0, 0xC3]).unwrap();
        assert_eq!(at, b.rx.as_ptr() as u64);
        // SAFETY: `at` holds the complete function just written.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(at as *const u8) };
        assert_eq!(f(), 7);
        b.patch(at + 1, &[42]);
        assert_eq!(f(), 42);
        assert_eq!(b.next_addr() % 16, 0);
    }
}
