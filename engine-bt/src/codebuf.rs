//! The translation cache's memory: one anonymous mapping that is either
//! writable (while the translator emits code into it) or executable (while
//! translated code runs), never both (W^X).

use std::ptr::NonNull;

pub struct CodeBuf {
    base: NonNull<u8>,
    size: usize,
    used: usize,
    executable: bool,
}

impl CodeBuf {
    pub fn new(size: usize) -> Result<CodeBuf, String> {
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {} MiB for the translation cache: {}",
                size >> 20,
                std::io::Error::last_os_error()
            ));
        }
        Ok(CodeBuf {
            base: NonNull::new(p as *mut u8).ok_or("mmap returned null")?,
            size,
            used: 0,
            executable: false,
        })
    }

    /// Host address where the next code will go.
    pub fn next_addr(&self) -> u64 {
        self.base.as_ptr() as u64 + self.used as u64
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn capacity(&self) -> usize {
        self.size
    }

    fn protect(&mut self, exec: bool) {
        if self.executable == exec {
            return;
        }
        let prot = if exec {
            libc::PROT_READ | libc::PROT_EXEC
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: the range is exactly our own mapping.
        let r = unsafe { libc::mprotect(self.base.as_ptr() as *mut libc::c_void, self.size, prot) };
        assert_eq!(r, 0, "mprotect of the translation cache failed");
        self.executable = exec;
    }

    /// Appends `code` (assembled for `next_addr()`); None when full.
    pub fn push(&mut self, code: &[u8]) -> Option<u64> {
        if self.used + code.len() > self.size {
            return None;
        }
        self.protect(false);
        let at = self.next_addr();
        // SAFETY: `used + len <= size`, inside the writable mapping, and
        // nothing executes from it while it is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(
                code.as_ptr(),
                self.base.as_ptr().add(self.used),
                code.len(),
            )
        };
        self.used += code.len();
        // Keep blocks 16-byte aligned.
        self.used = (self.used + 15) & !15;
        self.used = self.used.min(self.size);
        Some(at)
    }

    /// Forgets everything after the first `keep` bytes (the entry and exit
    /// stubs): the cache is flushed when full.
    pub fn truncate(&mut self, keep: usize) {
        self.used = keep;
    }

    /// Overwrites `bytes.len()` bytes of emitted code at host address
    /// `addr` (a chain patch).
    pub fn patch(&mut self, addr: u64, bytes: &[u8]) {
        let base = self.base.as_ptr() as u64;
        assert!(addr >= base && addr + bytes.len() as u64 <= base + self.used as u64);
        self.protect(false);
        // SAFETY: inside the emitted part of our writable mapping (checked
        // above); nothing runs from it while it is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len());
        }
    }

    /// Makes the code executable before running it.
    pub fn seal(&mut self) {
        self.protect(true);
    }
}

impl Drop for CodeBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps our own mapping; no code from it runs any more.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.size) };
    }
}
