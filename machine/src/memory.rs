//! Guest physical RAM: one page-aligned anonymous mapping.
//!
//! The same bytes are handed to KVM as a user memory region, read by the VGA
//! model at 0xB8000 and accessed by the interpreter and the translator through
//! their software TLBs. Every accessor here is bounds-checked; the raw pointer
//! escape hatch (`host_ptr`) is only handed out for ranges inside the mapping.
//!
//! Code-page tracking: engines that cache decoded or translated code call
//! `mark_code_page` for every page they cached from. Any write through this
//! type to such a page clears the mark and queues the page number; engines
//! drain the queue with `take_written_code_pages` and drop their caches for
//! those pages. Engines that write guest RAM through raw pointers must not
//! take a raw write path to a marked page (check `is_code_page` when filling
//! a TLB entry) or must call `note_write` themselves.

use std::ptr::NonNull;

/// Size of a page, the unit of code tracking and of KVM memory slots.
pub const PAGE_SIZE: usize = 4096;
/// log2(PAGE_SIZE).
pub const PAGE_SHIFT: u32 = 12;

/// Smallest and largest RAM sizes ringlab accepts. The upper bound keeps RAM
/// below the 4 GiB hole where a ROM is mapped (0xFFFC0000 and up) and the
/// whole of RAM addressable by a 32-bit guest.
pub const MIN_RAM: usize = 1 << 20;
pub const MAX_RAM: usize = 3 << 30;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("RAM size {0} bytes is not a multiple of 4 KiB")]
    Unaligned(usize),
    #[error("RAM size {size} bytes is outside {min}..={max}")]
    BadSize { size: usize, min: usize, max: usize },
    /// mmap refused; `source` is the OS's reason.
    #[error("cannot map {size} bytes of guest RAM")]
    Map {
        size: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("physical range {addr:#x}+{len:#x} lies outside RAM ({size:#x} bytes)")]
    OutOfRange { addr: u64, len: usize, size: usize },
    #[error("physical range {addr:#x}+{len:#x} is read-only (ROM)")]
    ReadOnly { addr: u64, len: usize },
}

/// Errors compare by kind and by their text with their cause's (an
/// `io::Error` has no equality of its own).
impl PartialEq for MemoryError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && crate::Chain(self).to_string() == crate::Chain(other).to_string()
    }
}

impl Eq for MemoryError {}

pub struct GuestMemory {
    base: NonNull<u8>,
    size: usize,
    /// Unique among every mapping this process made (`id`).
    id: u64,
    /// One bit per page: some engine cached code decoded from this page.
    code_pages: Vec<u64>,
    /// Pages that held cached code and were written since the last drain.
    written_code_pages: Vec<u32>,
    /// A read-only range [start, end) (the firmware ROM's alias below
    /// 1 MiB): writes through this type fail with `ReadOnly`, and engines
    /// must not hand out raw write pointers into it (`is_read_only_page`).
    read_only: (u64, u64),
}

/// The next `GuestMemory::id`.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("size", &self.size)
            .finish()
    }
}

impl GuestMemory {
    /// Maps `size` bytes of zeroed guest RAM.
    pub fn new(size: usize) -> Result<Self, MemoryError> {
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryError::Unaligned(size));
        }
        if !(MIN_RAM..=MAX_RAM).contains(&size) {
            return Err(MemoryError::BadSize {
                size,
                min: MIN_RAM,
                max: MAX_RAM,
            });
        }
        Self::map(size)
    }

    /// A page-aligned mapping of any page multiple (a ROM image's host copy).
    pub(crate) fn map(size: usize) -> Result<Self, MemoryError> {
        if !size.is_multiple_of(PAGE_SIZE) || size == 0 {
            return Err(MemoryError::Unaligned(size));
        }
        // SAFETY: an anonymous private mapping with no address hint; the
        // kernel picks a page-aligned address that overlaps nothing we own.
        // MAP_NORESERVE: RAM is touched lazily, a 3 GiB guest costs nothing
        // until it writes.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemoryError::Map {
                size,
                source: std::io::Error::last_os_error(),
            });
        }
        // Transparent huge pages where the host offers them (Linux's
        // default, "madvise", needs the ask): the first touch of each
        // 2 MiB costs one fault instead of 512. A kernel that clears its
        // free memory, as xv6 fills every page it frees, spent a third of
        // its boot in the host's page-fault path (perf, bt). Only advice:
        // without THP the pages stay 4 KiB.
        // SAFETY: the range is exactly the mapping just made.
        unsafe {
            libc::madvise(p, size, libc::MADV_HUGEPAGE);
        }
        let pages = size / PAGE_SIZE;
        Ok(GuestMemory {
            base: NonNull::new(p.cast::<u8>()).expect("mmap returned null without MAP_FAILED"),
            size,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            code_pages: vec![0; pages.div_ceil(64)],
            written_code_pages: Vec::new(),
            read_only: (0, 0),
        })
    }

    /// This mapping's identity: never 0, and never the same for two
    /// mappings of one process, even after one is dropped and another
    /// takes its address. A cache of host pointers into guest RAM (the
    /// interpreter's TLB) keeps the id it was filled under and drops its
    /// pointers when it is handed another memory.
    #[inline]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes [start, end) read-only (see the field); page aligned.
    pub fn set_read_only(&mut self, start: u64, end: u64) {
        self.read_only = (start, end);
    }

    /// The read-only range, empty when there is none.
    pub fn read_only_range(&self) -> (u64, u64) {
        self.read_only
    }

    /// True when `page` lies in the read-only range.
    #[inline]
    pub fn is_read_only_page(&self, page: u32) -> bool {
        let a = (page as u64) << PAGE_SHIFT;
        a >= self.read_only.0 && a < self.read_only.1
    }

    fn check_writable(&self, addr: u64, len: usize) -> Result<(), MemoryError> {
        let (lo, hi) = self.read_only;
        if addr < hi && addr + len as u64 > lo {
            return Err(MemoryError::ReadOnly { addr, len });
        }
        Ok(())
    }

    /// Writes `data` even into the read-only range: for loading a ROM.
    pub fn write_rom(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let a = self.check(addr, data.len())?;
        self.as_mut_slice()[a..a + data.len()].copy_from_slice(data);
        self.note_write(addr, data.len());
        Ok(())
    }

    /// RAM size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Host address of guest physical address 0, for KVM's memory slot.
    /// Accessing it is only sound for offsets below `size()`.
    pub fn host_base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// True when `[addr, addr+len)` lies inside RAM.
    #[inline]
    pub fn contains(&self, addr: u64, len: usize) -> bool {
        addr.checked_add(len as u64)
            .is_some_and(|end| end <= self.size as u64)
    }

    /// Host pointer to `len` bytes at `addr`, or None if any of them lies
    /// outside RAM. The pointer stays valid as long as `self` lives.
    #[inline]
    pub fn host_ptr(&self, addr: u64, len: usize) -> Option<*mut u8> {
        if self.contains(addr, len) {
            // SAFETY: addr < size was just checked, so the offset stays
            // inside the mapping.
            Some(unsafe { self.base.as_ptr().add(addr as usize) })
        } else {
            None
        }
    }

    #[inline]
    fn check(&self, addr: u64, len: usize) -> Result<usize, MemoryError> {
        if self.contains(addr, len) {
            Ok(addr as usize)
        } else {
            Err(MemoryError::OutOfRange {
                addr,
                len,
                size: self.size,
            })
        }
    }

    /// The whole of RAM as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes, readable, and lives as long as
        // self. Guest-visible concurrent writers (a KVM vCPU) only run while
        // the engine holds `&mut Machine`, so no one writes during this borrow.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.size) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.size) }
    }

    /// Copies RAM at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let a = self.check(addr, buf.len())?;
        buf.copy_from_slice(&self.as_slice()[a..a + buf.len()]);
        Ok(())
    }

    /// Copies `data` into RAM at `addr`, noting writes to code pages.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let a = self.check(addr, data.len())?;
        self.check_writable(addr, data.len())?;
        self.as_mut_slice()[a..a + data.len()].copy_from_slice(data);
        self.note_write(addr, data.len());
        Ok(())
    }

    /// Copies `data` into RAM at `addr` without noting a code-page write:
    /// for an engine that tracks its cached code at a finer grain and knows
    /// these bytes hold none of it.
    pub fn write_untracked(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let a = self.check(addr, data.len())?;
        self.check_writable(addr, data.len())?;
        self.as_mut_slice()[a..a + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Fills `len` bytes at `addr` with `byte`.
    pub fn fill(&mut self, addr: u64, len: usize, byte: u8) -> Result<(), MemoryError> {
        let a = self.check(addr, len)?;
        self.check_writable(addr, len)?;
        self.as_mut_slice()[a..a + len].fill(byte);
        self.note_write(addr, len);
        Ok(())
    }

    /// A borrowed view of `len` bytes at `addr`.
    #[inline]
    pub fn slice(&self, addr: u64, len: usize) -> Result<&[u8], MemoryError> {
        let a = self.check(addr, len)?;
        Ok(&self.as_slice()[a..a + len])
    }

    #[inline]
    pub fn read_u8(&self, addr: u64) -> Option<u8> {
        self.slice(addr, 1).ok().map(|s| s[0])
    }
    #[inline]
    pub fn read_u16(&self, addr: u64) -> Option<u16> {
        self.slice(addr, 2)
            .ok()
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    #[inline]
    pub fn read_u32(&self, addr: u64) -> Option<u32> {
        self.slice(addr, 4)
            .ok()
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    #[inline]
    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let s = self.slice(addr, 8).ok()?;
        Some(u64::from_le_bytes(s.try_into().expect("slice of 8")))
    }
    pub fn write_u8(&mut self, addr: u64, v: u8) -> Result<(), MemoryError> {
        self.write(addr, &[v])
    }
    pub fn write_u16(&mut self, addr: u64, v: u16) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }
    pub fn write_u32(&mut self, addr: u64, v: u32) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }
    pub fn write_u64(&mut self, addr: u64, v: u64) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Records that some engine cached code decoded from `page`.
    pub fn mark_code_page(&mut self, page: u32) {
        if let Some(w) = self.code_pages.get_mut(page as usize / 64) {
            *w |= 1 << (page % 64);
        }
    }

    /// True when `page` holds code that some engine cached.
    #[inline]
    pub fn is_code_page(&self, page: u32) -> bool {
        self.code_pages
            .get(page as usize / 64)
            .is_some_and(|w| w & (1 << (page % 64)) != 0)
    }

    /// Records a write of `len` bytes at `addr` made behind this type's back
    /// (by an engine through a host pointer): queues any code page it touched.
    #[inline]
    pub fn note_write(&mut self, addr: u64, len: usize) {
        if len == 0 {
            return;
        }
        let first = addr >> PAGE_SHIFT;
        let last = (addr + len as u64 - 1) >> PAGE_SHIFT;
        for page in first..=last {
            let page = page as u32;
            if self.is_code_page(page) {
                self.code_pages[page as usize / 64] &= !(1 << (page % 64));
                self.written_code_pages.push(page);
            }
        }
    }

    /// True when some code page was written since the last drain.
    #[inline]
    pub fn has_written_code_pages(&self) -> bool {
        !self.written_code_pages.is_empty()
    }

    /// Drains the list of code pages written since the last call.
    pub fn take_written_code_pages(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.written_code_pages)
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: base and size are exactly what mmap returned and nothing
        // borrows self any more.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(
            GuestMemory::new(4097).unwrap_err(),
            MemoryError::Unaligned(4097)
        );
        assert!(matches!(
            GuestMemory::new(4096),
            Err(MemoryError::BadSize { .. })
        ));
    }

    #[test]
    fn bounds_checked_accessors() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        assert_eq!(m.host_base() as usize % PAGE_SIZE, 0);
        m.write_u32(0xFFFFC, 0xDEADBEEF).unwrap();
        assert_eq!(m.read_u32(0xFFFFC), Some(0xDEADBEEF));
        assert_eq!(m.read_u32(0xFFFFD), None);
        assert!(m.write_u32(0xFFFFE, 1).is_err());
        assert!(m.write_u8(u64::MAX, 1).is_err());
        assert!(m.host_ptr(u64::MAX - 1, 4).is_none());
        assert_eq!(m.read_u8(0x100000), None);
    }

    #[test]
    fn code_page_writes_are_reported_once() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        m.mark_code_page(7);
        assert!(m.is_code_page(7));
        m.write_u8(6 * 4096, 1).unwrap();
        assert!(!m.has_written_code_pages());
        // A write straddling pages 6 and 7 touches the code page.
        m.write_u16(7 * 4096 - 1, 0x1234).unwrap();
        assert_eq!(m.take_written_code_pages(), vec![7]);
        assert!(!m.is_code_page(7));
        m.write_u8(7 * 4096, 1).unwrap();
        assert!(m.take_written_code_pages().is_empty());
    }
}
