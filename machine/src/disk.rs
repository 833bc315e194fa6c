//! Disk images: the backing store behind an emulated ATA drive.
//!
//! A raw image: sector n is bytes n*512 .. n*512+511 of the file, nothing
//! else (no header), so any `dd` image, QEMU "raw" image or xv6 `fs.img`
//! works as is. The size must be a whole, non-zero number of 512-byte
//! sectors.
//!
//! Writes. A guest write goes to the file during the access (write-through,
//! one positioned write per block of sectors): there is no cache in ringlab
//! to lose, so an exit at any moment — a guest `outb` to the exit port, a
//! Ctrl-C, SIGTERM, a panic elsewhere — keeps every sector the guest was
//! told was written, each sector whole. Data sits in the host's page cache
//! until [`DiskImage::flush`] (`sync_data`), which the ATA FLUSH CACHE
//! command calls (and every write, while the guest has the drive's write
//! cache disabled), and `ringlab run` at the end of every run, a signal's
//! included; that matters only if the *host* crashes.
//!
//! Failed writes. A write can fail on the host: the file system is full
//! (ENOSPC), a quota, an I/O error. `pwrite` on a full file system may
//! write part of what it was given, and the part can end anywhere — in the
//! middle of a sector. So before a block is written its old contents are
//! read, and when a write stops part way the sectors before the stop are
//! new and whole, the sector it stopped in gets its old bytes back (they
//! were just written, so putting them back needs no new space), and the
//! ones after it were never touched: every sector is entirely old or
//! entirely new. [`DiskIoError::Write`] says which sector failed and how
//! many were written before it (the drive reports them to the guest), and
//! the first failure of a guest's command on a disk is kept for the user
//! in one line ([`DiskImage::take_failure`]); later ones are counted, not
//! repeated. The run goes on: the guest sees an error, as with a failing
//! real disk, and decides. Should putting the old bytes back fail too, the
//! error says the sector may be torn.
//!
//! Snapshot mode ([`DiskOpenOptions::snapshot`]) keeps writes in memory, one
//! copy-on-write 512-byte page per written sector, and never writes the file
//! (it is even opened read-only).
//!
//! Locking. An image is locked while its `DiskImage` lives (`flock(2)` via
//! `File::try_lock`), so two emulators — or two drives of one machine — never
//! write one image: a writable disk holds an exclusive lock. A disk that is
//! never written through (snapshot mode, or a file we may only read) holds a
//! shared lock: any number of readers may share an image, but not with a
//! writer. A conflict is [`DiskError::InUse`]. flock locks belong to the open
//! file, so a second `open` of the same path in the same process conflicts
//! too. The locks are advisory: a program that does not take them (`dd`) is
//! not stopped.
//!
//! Read-only files. When the file can be read but not opened for writing
//! (permissions, a read-only file system), the disk is read-only rather than
//! an error: [`DiskImage::read_only`] is true, [`DiskImage::warning`] says so
//! in one line for the user, and the drive ends every guest write with an
//! error (the ATA channel reports ABRT), writing nothing.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per sector: the only sector size ATA PIO disks here have.
pub const SECTOR_SIZE: usize = 512;
const SECTOR_BYTES: u64 = SECTOR_SIZE as u64;

/// How to open an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskOpenOptions {
    /// Keep guest writes in memory; the file is never written.
    pub snapshot: bool,
}

/// Why an image could not be opened. Each message is one line naming the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk image {}: no such file", .path.display())]
    Missing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("disk image {}: cannot be read", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("disk image {}: the file is empty (a disk needs at least one 512-byte sector)", .path.display())]
    Empty { path: PathBuf },
    #[error(
        "disk image {}: {size} bytes is not a whole number of 512-byte sectors",
        .path.display()
    )]
    NotWholeSectors { path: PathBuf, size: u64 },
    #[error(
        "disk image {}: already in use (locked by another program, or by another drive of this machine)",
        .path.display()
    )]
    InUse { path: PathBuf },
    #[error("disk image {}: cannot be locked", .path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a sector transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskIoError {
    #[error("{name}: sectors {lba}..{end} are past the end of the disk ({sectors} sectors)", end = .lba.saturating_add(*.count))]
    OutOfRange {
        name: String,
        lba: u64,
        count: u64,
        sectors: u64,
    },
    #[error("{name}: the disk is read-only")]
    ReadOnly { name: String },
    #[error("{name}: a transfer of {len} bytes is not a whole number of sectors")]
    PartialSector { name: String, len: usize },
    #[error("{name}: flushing to stable storage failed")]
    Flush {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{name}: I/O error at sector {lba}")]
    Io {
        name: String,
        lba: u64,
        #[source]
        source: io::Error,
    },
    /// A write stopped at sector `lba`: the `done` sectors before it are
    /// written whole; `lba` holds its old contents unless `torn`, and the
    /// sectors after it were not written.
    #[error(
        "{name}: writing sector {lba} failed{}",
        if *.torn { " (and its old contents could not be put back: it may be partly written)" } else { "" }
    )]
    Write {
        name: String,
        lba: u64,
        done: u64,
        torn: bool,
        #[source]
        source: io::Error,
    },
}

impl DiskIoError {
    /// Sectors written whole before a write failed (0 for every other
    /// error: nothing was written).
    pub fn sectors_written(&self) -> u64 {
        match self {
            DiskIoError::Write { done, .. } => *done,
            _ => 0,
        }
    }
}

/// The file behind a writable disk, written through [`Backing::write_at`]:
/// in tests, a fault injector can stand between the two.
struct Backing {
    file: File,
    /// The old contents of the block being written (kept to avoid an
    /// allocation per write).
    old: Vec<u8>,
    /// Test hook: how many more bytes a write may put in the file before
    /// the "file system" is full; a write crossing the limit is short (it
    /// stops exactly there, in mid-sector if that is where the limit
    /// falls) and the next one fails with ENOSPC, as a full file system
    /// behaves.
    #[cfg(test)]
    space: Option<u64>,
}

impl Backing {
    fn new(file: File) -> Backing {
        Backing {
            file,
            old: Vec::new(),
            #[cfg(test)]
            space: None,
        }
    }

    /// One `pwrite`: the bytes written, maybe fewer than `buf.len()`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(space) = self.space {
            if space == 0 {
                return Err(io::Error::from_raw_os_error(libc_enospc()));
            }
            let n = buf.len().min(space as usize);
            let n = self.file.write_at(&buf[..n], offset)?;
            self.space = Some(space - n as u64);
            return Ok(n);
        }
        self.file.write_at(buf, offset)
    }

    /// Writes `data` at sector `lba` so that each sector ends up entirely
    /// old or entirely new (see the module comment); Err(done, torn,
    /// error) when it stopped after `done` whole sectors.
    fn write_sectors(&mut self, lba: u64, data: &[u8]) -> Result<(), (u64, bool, io::Error)> {
        let offset = lba * SECTOR_BYTES;
        self.old.resize(data.len(), 0);
        self.file
            .read_exact_at(&mut self.old, offset)
            .map_err(|e| (0, false, e))?;
        let mut at = 0;
        let error = loop {
            if at == data.len() {
                return Ok(());
            }
            match self.write_at(&data[at..], offset + at as u64) {
                Ok(0) => break io::Error::from(io::ErrorKind::WriteZero),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break e,
            }
        };
        // The sector the write stopped in, if it stopped inside one: its
        // old bytes back (straight to the file: they are in place already,
        // so no new space is needed).
        let whole = at / SECTOR_SIZE;
        let start = whole * SECTOR_SIZE;
        let torn = at > start
            && self
                .file
                .write_all_at(&self.old[start..at], offset + start as u64)
                .is_err();
        Err((whole as u64, torn, error))
    }
}

/// ENOSPC, for the test fault injector (std has no constant for it).
#[cfg(test)]
fn libc_enospc() -> i32 {
    28 // ENOSPC on Linux (asm-generic/errno-base.h)
}

enum Store {
    /// Reads and writes go to the file.
    File(Backing),
    /// Reads come from the file unless the sector has been written since;
    /// writes stay here.
    Overlay {
        file: File,
        written: BTreeMap<u64, Box<[u8; SECTOR_SIZE]>>,
    },
    /// The whole image in memory ([`DiskImage::from_bytes`]).
    Memory(Vec<u8>),
}

/// A disk: a raw image file (or bytes in memory) of whole sectors.
pub struct DiskImage {
    /// The path as the user gave it, or a description: for messages.
    name: String,
    sectors: u64,
    store: Store,
    read_only: bool,
    snapshot: bool,
    warning: Option<String>,
    /// The first write or flush failure, for the user, until taken.
    failure: Option<String>,
    /// Writes and flushes that failed on the host.
    failures: u64,
}

impl std::fmt::Debug for DiskImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskImage")
            .field("name", &self.name)
            .field("sectors", &self.sectors)
            .field("read_only", &self.read_only)
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

/// How `open_inner` may open the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Read and write if the file allows, else read-only with a warning.
    Normal,
    /// As if opening for writing had been refused (tests: root may write
    /// any file, so permissions cannot make a read-only file here).
    #[cfg(test)]
    RefuseWrite,
}

impl DiskImage {
    /// Opens a raw image and locks it (see the module comment).
    pub fn open(path: impl AsRef<Path>, opts: DiskOpenOptions) -> Result<DiskImage, DiskError> {
        Self::open_inner(path.as_ref(), opts, Access::Normal)
    }

    fn open_inner(
        path: &Path,
        opts: DiskOpenOptions,
        access: Access,
    ) -> Result<DiskImage, DiskError> {
        let unreadable = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                DiskError::Missing {
                    path: path.to_owned(),
                    source,
                }
            } else {
                DiskError::Unreadable {
                    path: path.to_owned(),
                    source,
                }
            }
        };
        let open_read = || File::open(path).map_err(unreadable);
        let (file, writable, warning) = if opts.snapshot {
            (open_read()?, false, None)
        } else {
            let rw = match access {
                Access::Normal => OpenOptions::new().read(true).write(true).open(path),
                #[cfg(test)]
                Access::RefuseWrite => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            };
            match rw {
                Ok(f) => (f, true, None),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                    ) =>
                {
                    let f = open_read()?;
                    let w = format!(
                        "disk image {} is not writable ({e}): the guest gets a read-only disk \
                         and its writes fail",
                        path.display()
                    );
                    (f, false, Some(w))
                }
                Err(e) => return Err(unreadable(e)),
            }
        };
        let meta = file.metadata().map_err(unreadable)?;
        if meta.is_dir() {
            return Err(unreadable(io::Error::from(io::ErrorKind::IsADirectory)));
        }
        // Seeking to the end sizes block devices too (their metadata
        // length is 0).
        let size = (&file).seek(SeekFrom::End(0)).map_err(unreadable)?;
        if size == 0 {
            return Err(DiskError::Empty {
                path: path.to_owned(),
            });
        }
        if !size.is_multiple_of(SECTOR_BYTES) {
            return Err(DiskError::NotWholeSectors {
                path: path.to_owned(),
                size,
            });
        }
        let locked = if writable {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DiskError::InUse {
                    path: path.to_owned(),
                })
            }
            Err(TryLockError::Error(source)) => {
                return Err(DiskError::Lock {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let store = if opts.snapshot {
            Store::Overlay {
                file,
                written: BTreeMap::new(),
            }
        } else {
            Store::File(Backing::new(file))
        };
        Ok(DiskImage {
            name: path.display().to_string(),
            sectors: size / SECTOR_BYTES,
            store,
            read_only: !writable && !opts.snapshot,
            snapshot: opts.snapshot,
            warning,
            failure: None,
            failures: 0,
        })
    }

    /// Test hook: opens `path` as if the file could not be opened for
    /// writing.
    #[cfg(test)]
    pub(crate) fn open_refusing_write(path: &Path) -> Result<DiskImage, DiskError> {
        Self::open_inner(path, DiskOpenOptions::default(), Access::RefuseWrite)
    }

    /// A writable disk held in memory (tests, built-in images). `bytes`
    /// must be a whole, non-zero number of sectors.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<DiskImage, DiskError> {
        let path = PathBuf::from("(in-memory image)");
        if bytes.is_empty() {
            return Err(DiskError::Empty { path });
        }
        if !bytes.len().is_multiple_of(SECTOR_SIZE) {
            return Err(DiskError::NotWholeSectors {
                path,
                size: bytes.len() as u64,
            });
        }
        Ok(DiskImage {
            name: path.display().to_string(),
            sectors: (bytes.len() / SECTOR_SIZE) as u64,
            store: Store::Memory(bytes),
            read_only: false,
            snapshot: false,
            warning: None,
            failure: None,
            failures: 0,
        })
    }

    /// The image's path as given (or "(in-memory image)").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Guest writes fail (the file could not be opened for writing).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Guest writes are kept in memory, never written to the file.
    pub fn snapshot(&self) -> bool {
        self.snapshot
    }

    /// The image is held in memory, with no file behind it
    /// ([`DiskImage::from_bytes`]).
    pub fn in_memory(&self) -> bool {
        matches!(self.store, Store::Memory(_))
    }

    /// A one-line warning for the user, if opening went less well than
    /// asked (today: the file was not writable, so the disk is read-only).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    fn check(&self, lba: u64, len: usize) -> Result<u64, DiskIoError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(DiskIoError::PartialSector {
                name: self.name.clone(),
                len,
            });
        }
        let count = (len / SECTOR_SIZE) as u64;
        match lba.checked_add(count) {
            Some(end) if end <= self.sectors => Ok(count),
            _ => Err(DiskIoError::OutOfRange {
                name: self.name.clone(),
                lba,
                count,
                sectors: self.sectors,
            }),
        }
    }

    fn io_error(&self, lba: u64, source: io::Error) -> DiskIoError {
        DiskIoError::Io {
            name: self.name.clone(),
            lba,
            source,
        }
    }

    /// Reads `buf.len() / 512` sectors from `lba`; `buf.len()` must be a
    /// multiple of 512.
    pub fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskIoError> {
        let count = self.check(lba, buf.len())?;
        let offset = lba * SECTOR_BYTES;
        match &self.store {
            Store::Memory(bytes) => {
                let start = offset as usize;
                buf.copy_from_slice(&bytes[start..start + buf.len()]);
            }
            Store::File(b) => b
                .file
                .read_exact_at(buf, offset)
                .map_err(|e| self.io_error(lba, e))?,
            Store::Overlay { file, written } => {
                file.read_exact_at(buf, offset)
                    .map_err(|e| self.io_error(lba, e))?;
                for (&s, data) in written.range(lba..lba + count) {
                    let at = ((s - lba) as usize) * SECTOR_SIZE;
                    buf[at..at + SECTOR_SIZE].copy_from_slice(&data[..]);
                }
            }
        }
        Ok(())
    }

    /// Writes `data.len() / 512` sectors at `lba` (to the file, or to the
    /// snapshot overlay).
    pub fn write_sectors(&mut self, lba: u64, data: &[u8]) -> Result<(), DiskIoError> {
        self.check(lba, data.len())?;
        if self.read_only {
            return Err(DiskIoError::ReadOnly {
                name: self.name.clone(),
            });
        }
        let offset = lba * SECTOR_BYTES;
        match &mut self.store {
            Store::Memory(bytes) => {
                let start = offset as usize;
                bytes[start..start + data.len()].copy_from_slice(data);
            }
            Store::File(b) => {
                if let Err((done, torn, source)) = b.write_sectors(lba, data) {
                    return Err(DiskIoError::Write {
                        name: self.name.clone(),
                        lba: lba + done,
                        done,
                        torn,
                        source,
                    });
                }
            }
            Store::Overlay { written, .. } => {
                for (i, chunk) in data.chunks_exact(SECTOR_SIZE).enumerate() {
                    let mut page = Box::new([0u8; SECTOR_SIZE]);
                    page.copy_from_slice(chunk);
                    written.insert(lba + i as u64, page);
                }
            }
        }
        Ok(())
    }

    /// Makes written data durable on the host (`sync_data`); nothing to do
    /// for snapshot and in-memory disks.
    pub fn flush(&mut self) -> Result<(), DiskIoError> {
        let synced = match &self.store {
            Store::File(b) if !self.read_only => b.file.sync_data(),
            _ => Ok(()),
        };
        synced.map_err(|source| DiskIoError::Flush {
            name: self.name.clone(),
            source,
        })
    }

    /// Records that a guest's command failed because of `e` (the drive
    /// calls it): the first failure is kept for the user
    /// ([`DiskImage::take_failure`]), the others counted.
    pub(crate) fn note_failure(&mut self, e: &DiskIoError) {
        self.failures += 1;
        if self.failures == 1 {
            self.failure = Some(format!(
                "disk image {}; the guest's command ended with an error, and the run goes on \
                 (later failures on this disk are counted, not shown)",
                crate::Chain(e)
            ));
        }
    }

    /// The first write or flush that failed on the host, as one line for
    /// the user (naming the image, the sector and the OS's error), once:
    /// None afterwards, and before any failure.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// How many writes and flushes failed on the host.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Test hook: from now on writes may put only `bytes` more bytes into
    /// the file, then the file system is "full" (see [`Backing`]).
    #[cfg(test)]
    pub(crate) fn fill_after(&mut self, bytes: u64) {
        if let Store::File(b) = &mut self.store {
            b.space = Some(bytes);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A file in the temp directory, removed on drop.
    pub(crate) struct TempImage(pub PathBuf);

    impl TempImage {
        pub fn new(tag: &str, bytes: &[u8]) -> TempImage {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "ringlab-disk-{tag}-{}-{}.img",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, bytes).unwrap();
            TempImage(path)
        }
        pub fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.0).unwrap()
        }
    }

    impl Drop for TempImage {
        fn drop(&mut self) {
            // A temporary file left behind is harmless to the test.
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn pattern(sectors: usize) -> Vec<u8> {
        (0..sectors * SECTOR_SIZE)
            .map(|i| (i / SECTOR_SIZE * 7 + i) as u8)
            .collect()
    }

    #[test]
    fn write_through_reaches_the_file_at_once() {
        let img = TempImage::new("wt", &pattern(4));
        let mut d = DiskImage::open(&img.0, DiskOpenOptions::default()).unwrap();
        assert_eq!(d.sectors(), 4);
        assert!(!d.read_only() && !d.snapshot() && d.warning().is_none());
        d.write_sectors(3, &[0xAB; 1024]).unwrap_err(); // sectors 3..5 of 4
        d.write_sectors(1, &[0xAB; 1024]).unwrap();
        // Before any flush or drop, the file already has it.
        let on_disk = img.bytes();
        assert!(on_disk[512..1536].iter().all(|&b| b == 0xAB));
        assert_eq!(&on_disk[..512], &pattern(4)[..512]);
        let mut back = [0u8; 1536];
        d.read_sectors(0, &mut back).unwrap();
        assert_eq!(&back[..], &on_disk[..1536]);
        d.flush().unwrap();
    }

    #[test]
    fn range_and_length_errors() {
        let mut d = DiskImage::from_bytes(pattern(2)).unwrap();
        let mut buf = [0u8; 512];
        assert!(matches!(
            d.read_sectors(2, &mut buf),
            Err(DiskIoError::OutOfRange {
                lba: 2,
                count: 1,
                sectors: 2,
                ..
            })
        ));
        assert!(matches!(
            d.read_sectors(u64::MAX, &mut buf),
            Err(DiskIoError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.write_sectors(0, &[0; 100]),
            Err(DiskIoError::PartialSector { len: 100, .. })
        ));
        d.write_sectors(1, &[5; 512]).unwrap();
        d.read_sectors(1, &mut buf).unwrap();
        assert_eq!(buf, [5; 512]);
        assert!(DiskImage::from_bytes(vec![]).is_err());
        assert!(DiskImage::from_bytes(vec![0; 513]).is_err());
    }

    #[test]
    fn snapshot_keeps_writes_in_memory() {
        let img = TempImage::new("snap", &pattern(3));
        let mut d = DiskImage::open(&img.0, DiskOpenOptions { snapshot: true }).unwrap();
        assert!(d.snapshot() && !d.read_only());
        d.write_sectors(1, &[0x11; 512]).unwrap();
        let mut buf = vec![0u8; 3 * 512];
        d.read_sectors(0, &mut buf).unwrap();
        let mut expect = pattern(3);
        expect[512..1024].fill(0x11);
        assert_eq!(buf, expect);
        d.flush().unwrap();
        drop(d);
        assert_eq!(img.bytes(), pattern(3));
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_lives() {
        let img = TempImage::new("lock", &pattern(1));
        let rw = DiskOpenOptions::default();
        let snap = DiskOpenOptions { snapshot: true };
        let first = DiskImage::open(&img.0, rw).unwrap();
        let e = DiskImage::open(&img.0, rw).unwrap_err();
        assert!(matches!(e, DiskError::InUse { .. }), "{e}");
        assert!(e.to_string().contains(&img.0.display().to_string()));
        assert!(e.to_string().contains("in use"));
        // A snapshot reader cannot share with a writer either.
        assert!(matches!(
            DiskImage::open(&img.0, snap),
            Err(DiskError::InUse { .. })
        ));
        drop(first);
        // Readers share; a writer is then refused.
        let a = DiskImage::open(&img.0, snap).unwrap();
        let b = DiskImage::open(&img.0, snap).unwrap();
        assert!(matches!(
            DiskImage::open(&img.0, rw),
            Err(DiskError::InUse { .. })
        ));
        drop((a, b));
        DiskImage::open(&img.0, rw).unwrap();
    }

    #[test]
    fn open_errors_name_the_file_and_the_problem() {
        let missing = std::env::temp_dir().join("ringlab-disk-surely-missing.img");
        let e = DiskImage::open(&missing, DiskOpenOptions::default()).unwrap_err();
        assert!(matches!(e, DiskError::Missing { .. }));
        assert_eq!(
            e.to_string(),
            format!("disk image {}: no such file", missing.display())
        );
        assert!(std::error::Error::source(&e).is_some());

        let empty = TempImage::new("empty", &[]);
        let e = DiskImage::open(&empty.0, DiskOpenOptions::default()).unwrap_err();
        assert!(matches!(e, DiskError::Empty { .. }), "{e}");

        let odd = TempImage::new("odd", &[0; 1000]);
        let e = DiskImage::open(&odd.0, DiskOpenOptions { snapshot: true }).unwrap_err();
        assert!(matches!(e, DiskError::NotWholeSectors { size: 1000, .. }));
        assert!(e.to_string().contains("1000 bytes"));

        let dir = std::env::temp_dir();
        for snapshot in [false, true] {
            let e = DiskImage::open(&dir, DiskOpenOptions { snapshot }).unwrap_err();
            assert!(matches!(e, DiskError::Unreadable { .. }), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn a_full_file_system_leaves_every_sector_old_or_new() {
        let img = TempImage::new("full", &pattern(8));
        let mut d = DiskImage::open(&img.0, DiskOpenOptions::default()).unwrap();
        // Room for two sectors and 100 bytes of the third: the write of
        // sectors 1-4 stops in the middle of sector 3.
        d.fill_after(2 * SECTOR_BYTES + 100);
        let e = d.write_sectors(1, &[0xEE; 4 * SECTOR_SIZE]).unwrap_err();
        assert!(
            matches!(
                e,
                DiskIoError::Write {
                    lba: 3,
                    done: 2,
                    torn: false,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.sectors_written(), 2);
        let mut expect = pattern(8);
        expect[SECTOR_SIZE..3 * SECTOR_SIZE].fill(0xEE);
        // Sector 3 has its old bytes back, sector 4 was never touched.
        assert_eq!(img.bytes(), expect);
        assert_eq!(
            crate::Chain(&e).to_string(),
            format!(
                "{}: writing sector 3 failed: {}",
                img.0.display(),
                io::Error::from_raw_os_error(libc_enospc())
            )
        );
        // For the user: the first failure, once; the others counted.
        d.note_failure(&e);
        let w = d.take_failure().unwrap();
        assert!(w.starts_with(&format!("disk image {}", crate::Chain(&e))));
        assert!(!w.contains('\n'));
        let e = d.write_sectors(6, &[0xEE; SECTOR_SIZE]).unwrap_err();
        d.note_failure(&e);
        assert_eq!(d.take_failure(), None);
        assert_eq!(d.failures(), 2);
        assert_eq!(img.bytes(), expect);
        assert_eq!(img.bytes().len(), 8 * SECTOR_SIZE);
        // A limit on a sector boundary: nothing to put back.
        let mut d = DiskImage::open_after_drop(d, &img.0);
        d.fill_after(SECTOR_BYTES);
        let e = d.write_sectors(5, &[0x77; 2 * SECTOR_SIZE]).unwrap_err();
        assert!(matches!(
            e,
            DiskIoError::Write {
                lba: 6,
                done: 1,
                torn: false,
                ..
            }
        ));
        expect[5 * SECTOR_SIZE..6 * SECTOR_SIZE].fill(0x77);
        assert_eq!(img.bytes(), expect);
    }

    impl DiskImage {
        /// Drops `d` (its lock) and opens `path` again.
        fn open_after_drop(d: DiskImage, path: &Path) -> DiskImage {
            drop(d);
            DiskImage::open(path, DiskOpenOptions::default()).unwrap()
        }
    }

    #[test]
    fn an_unwritable_file_becomes_a_read_only_disk() {
        let img = TempImage::new("ro", &pattern(2));
        let mut d = DiskImage::open_refusing_write(&img.0).unwrap();
        assert!(d.read_only());
        let w = d.warning().unwrap();
        assert!(w.contains(&img.0.display().to_string()) && w.contains("read-only"));
        assert!(!w.contains('\n'));
        assert!(matches!(
            d.write_sectors(0, &[0; 512]),
            Err(DiskIoError::ReadOnly { .. })
        ));
        let mut buf = [0u8; 512];
        d.read_sectors(1, &mut buf).unwrap();
        assert_eq!(&buf[..], &pattern(2)[512..]);
        d.flush().unwrap();
        // Read-only disks share the image with other readers, not writers.
        DiskImage::open(&img.0, DiskOpenOptions { snapshot: true }).unwrap();
        assert!(matches!(
            DiskImage::open(&img.0, DiskOpenOptions::default()),
            Err(DiskError::InUse { .. })
        ));
        drop(d);
        assert_eq!(img.bytes(), pattern(2));
    }
}
