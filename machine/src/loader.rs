//! Image loaders: flat binaries (boot sectors) entered in real mode, and
//! multiboot v1 kernels (ELF32, or the "a.out kludge" address fields) entered
//! in protected mode as GRUB and QEMU `-kernel` enter them.
//!
//! Every loader checks the whole image before it writes a byte of guest RAM,
//! so a malformed image leaves memory as it was and yields a [`LoadError`]
//! naming the offending offset, address or size. Guest input never panics.
//!
//! Writes go through [`GuestMemory::write`] and [`GuestMemory::fill`], which
//! report written code pages to engines that cached decoded code.
//!
//! References: Multiboot Specification 0.6.96 (section 3.1 "OS image format",
//! 3.2 "Machine state", 3.3 "Boot information format"); System V ABI and the
//! Intel386 supplement for the ELF32 header and program headers.

use std::ops::Range;

use crate::cpu::{CpuState, Seg, Segment};
use crate::memory::{GuestMemory, MemoryError};

/// EAX at multiboot kernel entry (Multiboot spec 0.6.96, 3.2).
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// The magic word that starts a multiboot header (spec 3.1.2).
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;

/// The header must lie completely within the first 8192 bytes of the image,
/// 32-bit aligned (spec 3.1.1).
pub const MULTIBOOT_SEARCH_LEN: usize = 8192;

/// Where a flat image goes by default: the address a PC BIOS loads a boot
/// sector to.
pub const DEFAULT_FLAT_ADDR: u32 = 0x7C00;

/// Real mode reaches at most FFFF:FFFF, but a loader that wants CS:IP with
/// IP < 16 can only name entries below 1 MiB.
const REAL_MODE_LIMIT: u32 = 0x10_0000;

/// Multiboot header flags (spec 3.1.2). Bits 0-15 are requirements: a loader
/// that does not understand or cannot satisfy one must fail. Bits 16-31 are
/// optional features a loader may ignore.
mod mb_flag {
    /// Modules must be page aligned. ringlab loads no modules, so this holds.
    pub const PAGE_ALIGN: u32 = 1 << 0;
    /// mem_lower/mem_upper (and the memory map if available) must be passed.
    pub const MEMORY_INFO: u32 = 1 << 1;
    /// The video mode table must be available.
    pub const VIDEO_MODE: u32 = 1 << 2;
    /// The header's address fields are valid: load as the "a.out kludge".
    pub const AOUT_KLUDGE: u32 = 1 << 16;
    /// All requirement bits.
    pub const REQUIRED_MASK: u32 = 0xFFFF;
}

/// multiboot_info.flags bits ringlab sets (spec 3.3).
mod mbi_flag {
    pub const MEM: u32 = 1 << 0;
    pub const MMAP: u32 = 1 << 6;
    pub const BOOT_LOADER_NAME: u32 = 1 << 9;
}

/// Where extended memory starts (the memory map itself is
/// `firmware::memory_map`, the BIOS's E820 map).
const EXTENDED_START: u64 = 0x10_0000;

/// Physical memory a kernel may not load into: the VGA window, where the
/// bytes would land on the screen. (The rest of 640 KiB-1 MiB is RAM in
/// ringlab's machine, and GNU ld's default layout puts a headers-only
/// PT_LOAD just below 1 MiB, which GRUB and QEMU load too.)
const RESERVED_LOW: Range<u64> = 0xA_0000..0xC_0000;

/// mem_lower in KiB: the 640 KiB of conventional memory, as QEMU's
/// `-kernel` reports it (the memory map still marks the EBDA's last KiB
/// reserved).
const MEM_LOWER_KIB: u32 = 640;

/// The boot GDT (null, flat 32-bit ring-0 code at 0x08, flat data at 0x10),
/// the descriptors GRUB uses. CpuState::multiboot's caches match them but
/// for the accessed bit, which the CPU sets when a selector is loaded.
const BOOT_GDT: [u64; 3] = [0, 0x00CF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF];

/// Layout of the boot information block, offsets from its base.
const GDT_OFF: u32 = 0x00;
/// multiboot_info (spec 3.3): 116 bytes up to framebuffer color_info; fields
/// ringlab does not fill stay zero and their flags bits clear.
const INFO_OFF: u32 = 0x20;
const INFO_LEN: usize = 116;
const MMAP_OFF: u32 = 0xA0;
/// At most this many memory map entries (`firmware::memory_map`).
const MMAP_MAX: usize = 7;
/// One memory map entry: size (u32, not counting itself), base_addr (u64),
/// length (u64), type (u32).
const MMAP_ENTRY_LEN: usize = 24;
const MMAP_ENTRY_SIZE_FIELD: u32 = 20;
/// The handoff record for ringlab's BIOS (`firmware::HANDOFF_OFF`).
const HANDOFF_OFF: u32 = crate::firmware::HANDOFF_OFF;
const HANDOFF_LEN: u32 = 18;
const NAME_OFF: u32 = 0x170;
const BOOT_LOADER_NAME: &[u8] = b"ringlab\0";
const BOOT_INFO_LEN: u32 = NAME_OFF + BOOT_LOADER_NAME.len() as u32;
// The parts of the block do not overlap (at most four memory map entries),
// and the block fits below the boot sector address from every candidate.
const _: () = assert!(GDT_OFF as usize + 24 <= INFO_OFF as usize);
const _: () = assert!(INFO_OFF as usize + INFO_LEN <= MMAP_OFF as usize);
const _: () = assert!(MMAP_OFF as usize + MMAP_MAX * MMAP_ENTRY_LEN <= HANDOFF_OFF as usize);
const _: () = assert!(HANDOFF_OFF + HANDOFF_LEN <= NAME_OFF);
const _: () = assert!(0x7000 + BOOT_INFO_LEN <= DEFAULT_FLAT_ADDR);

/// Where the boot information block may go, tried in order: the first free
/// byte after the real-mode IVT (0-0x3FF) and the BIOS data area
/// (0x400-0x4FF), then page boundaries below the boot sector address. The
/// first that no kernel segment overlaps wins, so the choice is deterministic.
const BOOT_INFO_CANDIDATES: [u32; 8] = crate::firmware::HANDOFF_BLOCKS;

/// ELF32 constants (System V ABI, Intel386 supplement).
mod elf {
    pub const MAGIC: [u8; 4] = *b"\x7fELF";
    pub const EI_CLASS: usize = 4;
    pub const EI_DATA: usize = 5;
    pub const ELFCLASS32: u8 = 1;
    pub const ELFDATA2LSB: u8 = 1;
    pub const ET_EXEC: u16 = 2;
    pub const EM_386: u16 = 3;
    pub const PT_LOAD: u32 = 1;
    /// sizeof(Elf32_Ehdr) and sizeof(Elf32_Phdr).
    pub const EHDR_LEN: usize = 52;
    pub const PHDR_LEN: usize = 32;
    /// Elf32_Ehdr field offsets.
    pub const E_TYPE: usize = 16;
    pub const E_MACHINE: usize = 18;
    pub const E_ENTRY: usize = 24;
    pub const E_PHOFF: usize = 28;
    pub const E_PHENTSIZE: usize = 42;
    pub const E_PHNUM: usize = 44;
    /// Elf32_Phdr field offsets.
    pub const P_TYPE: usize = 0;
    pub const P_OFFSET: usize = 4;
    pub const P_VADDR: usize = 8;
    pub const P_PADDR: usize = 12;
    pub const P_FILESZ: usize = 16;
    pub const P_MEMSZ: usize = 20;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Flat,
    Multiboot,
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// None: guess with [`detect_format`].
    pub format: Option<ImageFormat>,
    /// Load address of a flat image (default 0x7C00). Multiboot kernels say
    /// where they go themselves, so this is an error for them.
    pub load_addr: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct LoadedImage {
    pub format: ImageFormat,
    /// The CPU state to start the guest in.
    pub entry: CpuState,
    /// (guest physical start, length) of each region of the image written,
    /// BSS included. The multiboot boot information is not listed.
    pub segments: Vec<(u32, u32)>,
    /// One line for the user, e.g. "multiboot ELF32, 2 segments, entry 0x100000".
    pub summary: String,
}

/// Why an image could not be loaded. For a.out-kludge kernels the one region
/// the address fields describe is "segment 0".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("image is empty")]
    Empty,
    #[error(
        "an ELF file without a multiboot header in its first 8 KiB: ringlab boots multiboot \
         v1 kernels (add the header) or raw images (--format flat loads the file's bytes as they are)"
    )]
    ElfWithoutMultiboot,
    #[error("flat image of {len:#x} bytes at {addr:#x} does not fit in RAM ({ram:#x} bytes)")]
    FlatTooBig { addr: u32, len: usize, ram: usize },
    #[error(
        "load address {0:#x} is at or above 1 MiB: a flat image is entered in real mode, \
         where CS:IP can only name the first 1 MiB"
    )]
    FlatAboveRealMode(u32),
    #[error(
        "load address {0:#x} given for a multiboot kernel: it says where it loads itself \
         (ELF program headers or the header's address fields)"
    )]
    LoadAddrWithMultiboot(u32),
    #[error("no multiboot header in the first 8 KiB")]
    NoMultibootHeader,
    #[error(
        "multiboot header at offset {offset:#x} has a bad checksum: \
         magic + flags + checksum = {sum:#x}, must be 0"
    )]
    BadChecksum { offset: usize, sum: u32 },
    #[error(
        "multiboot header at offset {offset:#x} needs {need} bytes but the image \
         (or its first 8 KiB) ends at {end:#x}"
    )]
    HeaderTruncated {
        offset: usize,
        need: usize,
        end: usize,
    },
    #[error(
        "multiboot header flags {flags:#x} require the video mode table (bit 2); \
         ringlab has no VBE or framebuffer information to give"
    )]
    VideoModeRequired { flags: u32 },
    #[error(
        "multiboot header flags {flags:#x} require feature bit {bit}, which ringlab does \
         not know (bits 0-15 must be understood by the loader)"
    )]
    UnsupportedRequiredFlag { flags: u32, bit: u32 },
    #[error(
        "multiboot address fields: header_addr {header_addr:#x} is below load_addr {load_addr:#x}"
    )]
    HeaderAddrBelowLoadAddr { header_addr: u32, load_addr: u32 },
    #[error(
        "multiboot address fields: loading starts {before:#x} bytes before the multiboot \
         header at file offset {offset:#x}, i.e. before the start of the file"
    )]
    LoadBeforeFileStart { before: u32, offset: usize },
    #[error(
        "multiboot address fields: load_end_addr {load_end_addr:#x} is not above \
         load_addr {load_addr:#x}"
    )]
    LoadEndNotAboveLoadAddr { load_addr: u32, load_end_addr: u32 },
    #[error(
        "multiboot address fields: bss_end_addr {bss_end_addr:#x} is below the end of \
         the loaded data {load_end:#x}"
    )]
    BssEndBelowLoadEnd { bss_end_addr: u32, load_end: u64 },
    #[error(
        "multiboot address fields ask for file bytes [{start:#x}, {end:#x}) but the image \
         has {len:#x} bytes (truncated)"
    )]
    AoutTruncated { start: usize, end: u64, len: usize },
    #[error(
        "no ELF magic at offset 0 and the multiboot header has no address fields \
         (flags bit 16): cannot tell where to load the kernel"
    )]
    NotElf,
    #[error(
        "not a 32-bit ELF: EI_CLASS is {0} (1 = ELFCLASS32, 2 = ELFCLASS64); multiboot v1 \
         loads ELF32 kernels only"
    )]
    NotElf32(u8),
    #[error("ELF is not little-endian: EI_DATA is {0} (ELFDATA2LSB is 1)")]
    NotLittleEndian(u8),
    #[error("ELF header truncated: the image has {len} bytes, an ELF32 header needs 52")]
    ElfHeaderTruncated { len: usize },
    #[error("ELF e_type is {0}, not ET_EXEC (2): only executables can be loaded")]
    NotExecutable(u16),
    #[error("ELF e_machine is {0}, not EM_386 (3)")]
    WrongMachine(u16),
    #[error("ELF e_phentsize is {0}, smaller than an Elf32_Phdr (32 bytes)")]
    BadPhentsize(u16),
    #[error(
        "ELF program header table truncated: {count} entries of {entsize} bytes at offset \
         {offset:#x} end at {end:#x}, past the end of the {len:#x}-byte image"
    )]
    PhdrsTruncated {
        offset: u32,
        count: u16,
        entsize: u16,
        end: u64,
        len: usize,
    },
    #[error("ELF has no PT_LOAD segment with bytes in memory")]
    NoLoadSegments,
    #[error("segment {index}: p_filesz {filesz:#x} is larger than p_memsz {memsz:#x}")]
    FileszAboveMemsz {
        index: usize,
        filesz: u32,
        memsz: u32,
    },
    #[error(
        "segment {index} truncated: file bytes [{start:#x}, {end:#x}) run past the end \
         of the {len:#x}-byte image"
    )]
    SegmentTruncated {
        index: usize,
        start: u32,
        end: u64,
        len: usize,
    },
    #[error(
        "segment {index} at physical [{start:#x}, {end:#x}) lies outside RAM ({ram:#x} bytes)"
    )]
    SegmentOutsideRam {
        index: usize,
        start: u64,
        end: u64,
        ram: usize,
    },
    #[error(
        "segment {index} at physical [{start:#x}, {end:#x}) overlaps [{:#x}, {:#x}), \
         the VGA window (video memory)",
        RESERVED_LOW.start,
        RESERVED_LOW.end
    )]
    SegmentInReservedArea { index: usize, start: u64, end: u64 },
    #[error(
        "segments {a} at physical [{a_start:#x}, {a_end:#x}) and {b} at \
         [{b_start:#x}, {b_end:#x}) overlap"
    )]
    SegmentsOverlap {
        a: usize,
        a_start: u64,
        a_end: u64,
        b: usize,
        b_start: u64,
        b_end: u64,
    },
    #[error(
        "segment {index} at physical [{start:#x}, {end:#x}) overlaps the firmware ROM's \
         read-only alias [{rom_start:#x}, {rom_end:#x})"
    )]
    SegmentInRom {
        index: usize,
        start: u64,
        end: u64,
        rom_start: u64,
        rom_end: u64,
    },
    #[error(
        "flat image of {len:#x} bytes at {addr:#x} overlaps the firmware ROM's read-only \
         alias [{rom_start:#x}, {rom_end:#x})"
    )]
    FlatInRom {
        addr: u32,
        len: usize,
        rom_start: u64,
        rom_end: u64,
    },
    #[error("entry point {entry:#x} is not inside any loaded segment")]
    EntryOutsideSegments { entry: u32 },
    #[error(
        "no room below 0x7c00 for the boot GDT and multiboot information: the kernel \
         occupies every candidate area"
    )]
    NoRoomForBootInfo,
    /// A guest RAM write failed. Every range is checked against RAM before
    /// loading starts, so this would be a loader bug, reported, not a panic.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// Guesses an image's format: `Multiboot` if a valid multiboot header (magic,
/// 4-byte aligned, checksum correct) lies in the first 8 KiB, else `Flat`.
/// None for an empty image, which is no format at all.
pub fn detect_format(image: &[u8]) -> Option<ImageFormat> {
    if image.is_empty() {
        None
    } else if find_header(image).is_ok() {
        Some(ImageFormat::Multiboot)
    } else {
        Some(ImageFormat::Flat)
    }
}

/// Loads `image` into guest RAM and returns the CPU state to start it in.
pub fn load(
    mem: &mut GuestMemory,
    image: &[u8],
    opts: &LoadOptions,
) -> Result<LoadedImage, LoadError> {
    if image.is_empty() {
        return Err(LoadError::Empty);
    }
    let format = opts
        .format
        .or_else(|| detect_format(image))
        .unwrap_or(ImageFormat::Flat);
    // An ELF file is never meant as a raw image: running its header as code
    // would only confuse. Say what is wrong unless the user asked for flat.
    if opts.format.is_none() && format == ImageFormat::Flat && image.starts_with(b"\x7fELF") {
        return Err(LoadError::ElfWithoutMultiboot);
    }
    match format {
        ImageFormat::Flat => load_flat(mem, image, opts.load_addr.unwrap_or(DEFAULT_FLAT_ADDR)),
        ImageFormat::Multiboot => match opts.load_addr {
            Some(addr) => Err(LoadError::LoadAddrWithMultiboot(addr)),
            None => load_multiboot(mem, image),
        },
    }
}

// ---------------------------------------------------------------------------
// Flat images

fn load_flat(mem: &mut GuestMemory, image: &[u8], addr: u32) -> Result<LoadedImage, LoadError> {
    if addr >= REAL_MODE_LIMIT {
        return Err(LoadError::FlatAboveRealMode(addr));
    }
    if !mem.contains(addr as u64, image.len()) {
        return Err(LoadError::FlatTooBig {
            addr,
            len: image.len(),
            ram: mem.size(),
        });
    }
    let (rom_start, rom_end) = mem.read_only_range();
    if overlaps(
        &(addr as u64..addr as u64 + image.len() as u64),
        &(rom_start..rom_end),
    ) {
        return Err(LoadError::FlatInRom {
            addr,
            len: image.len(),
            rom_start,
            rom_end,
        });
    }
    mem.write(addr as u64, image)?;

    // BIOSes jump to a boot sector at 0000:7C00 (boot sectors that care about
    // CS reload it with a far jump). Elsewhere the entry is the canonical
    // segment:offset with a 4-bit offset, so the image can reach up to
    // 64 KiB - 16 of itself without touching CS.
    let (cs, ip) = if addr == DEFAULT_FLAT_ADDR {
        (0, DEFAULT_FLAT_ADDR as u16)
    } else {
        ((addr >> 4) as u16, (addr & 0xF) as u16)
    };
    let mut entry = CpuState::boot_sector(ip);
    entry.segs[Seg::Cs as usize] = Segment::real_mode_code(cs);

    // The 0xAA55 signature at offset 510 is what a BIOS checks before it
    // jumps to a boot sector.
    let kind = if image.get(510..512) == Some(&[0x55, 0xAA][..]) {
        "boot sector"
    } else {
        "flat binary"
    };
    Ok(LoadedImage {
        format: ImageFormat::Flat,
        entry,
        segments: vec![(addr, image.len() as u32)],
        summary: format!(
            "{kind}, {} bytes at {addr:#x}, entry {cs:04x}:{ip:04x} (real mode)",
            image.len()
        ),
    })
}

// ---------------------------------------------------------------------------
// Multiboot

/// A multiboot header found in the image.
struct Header {
    /// File offset of the magic word.
    offset: usize,
    flags: u32,
}

/// The a.out kludge address fields (spec 3.1.3), present when flags bit 16
/// is set.
struct AddressFields {
    header_addr: u32,
    load_addr: u32,
    load_end_addr: u32,
    bss_end_addr: u32,
    entry_addr: u32,
}

/// One region to load: `file` bytes of the image copied to `dest`, then
/// zeros up to `memsz` bytes.
struct Piece {
    /// Program header index (0 for the a.out kludge), for error messages.
    index: usize,
    dest: u64,
    /// ELF virtual address of the segment (the physical one for the kludge).
    vaddr: u64,
    file: Range<usize>,
    memsz: u64,
}

impl Piece {
    fn dest_range(&self) -> Range<u64> {
        self.dest..self.dest + self.memsz
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Scans the first 8 KiB for the first 4-byte-aligned magic word whose
/// checksum holds. A magic with a bad checksum is reported only if no good
/// header follows (a stray 0x1BADB002 in data does not hide a real header).
fn find_header(image: &[u8]) -> Result<Header, LoadError> {
    let end = image.len().min(MULTIBOOT_SEARCH_LEN);
    let mut bad = None;
    let mut offset = 0;
    // magic, flags, checksum: 12 bytes that must all lie in the window.
    while offset + 12 <= end {
        if u32_at(image, offset) == MULTIBOOT_HEADER_MAGIC {
            let flags = u32_at(image, offset + 4);
            let sum = MULTIBOOT_HEADER_MAGIC
                .wrapping_add(flags)
                .wrapping_add(u32_at(image, offset + 8));
            if sum == 0 {
                return Ok(Header { offset, flags });
            }
            bad.get_or_insert(LoadError::BadChecksum { offset, sum });
        }
        offset += 4;
    }
    Err(bad.unwrap_or(LoadError::NoMultibootHeader))
}

/// Fails on requirement bits (0-15) ringlab cannot satisfy (spec 3.1.2).
fn check_required_flags(flags: u32) -> Result<(), LoadError> {
    if flags & mb_flag::VIDEO_MODE != 0 {
        return Err(LoadError::VideoModeRequired { flags });
    }
    let understood = mb_flag::PAGE_ALIGN | mb_flag::MEMORY_INFO;
    let unknown = flags & mb_flag::REQUIRED_MASK & !understood;
    if unknown != 0 {
        return Err(LoadError::UnsupportedRequiredFlag {
            flags,
            bit: unknown.trailing_zeros(),
        });
    }
    Ok(())
}

fn load_multiboot(mem: &mut GuestMemory, image: &[u8]) -> Result<LoadedImage, LoadError> {
    let header = find_header(image)?;
    check_required_flags(header.flags)?;

    let (kind, pieces, entry) = if header.flags & mb_flag::AOUT_KLUDGE != 0 {
        let fields = address_fields(image, &header)?;
        let (piece, entry) = aout_piece(image, &header, &fields)?;
        let pieces = vec![piece];
        check_pieces(mem, &pieces)?;
        ("a.out kludge", pieces, entry)
    } else {
        let (pieces, e_entry) = elf_pieces(image)?;
        check_pieces(mem, &pieces)?;
        let entry = elf_entry(&pieces, e_entry)?;
        ("ELF32", pieces, entry)
    };

    let base = BOOT_INFO_CANDIDATES
        .into_iter()
        .find(|&b| {
            let area = b as u64..(b + BOOT_INFO_LEN) as u64;
            !pieces.iter().any(|p| overlaps(&area, &p.dest_range()))
        })
        .ok_or(LoadError::NoRoomForBootInfo)?;

    // Everything is checked: from here on only writes inside RAM remain.
    for p in &pieces {
        let data = &image[p.file.clone()];
        mem.write(p.dest, data)?;
        let bss = p.memsz - data.len() as u64;
        mem.fill(p.dest + data.len() as u64, bss as usize, 0)?;
    }
    let mut block = boot_info(base, mem.size());
    handoff(&mut block, base, entry);
    mem.write(base as u64, &block)?;

    let n = pieces.len();
    Ok(LoadedImage {
        format: ImageFormat::Multiboot,
        entry: CpuState::multiboot(entry, base + INFO_OFF, base + GDT_OFF),
        segments: pieces
            .iter()
            .map(|p| (p.dest as u32, p.memsz as u32))
            .collect(),
        summary: format!(
            "multiboot {kind}, {n} segment{}, entry {entry:#x}",
            if n == 1 { "" } else { "s" }
        ),
    })
}

/// Reads the address fields (header offsets 12-31, spec 3.1.2).
fn address_fields(image: &[u8], h: &Header) -> Result<AddressFields, LoadError> {
    const NEED: usize = 32;
    let end = image.len().min(MULTIBOOT_SEARCH_LEN);
    if h.offset + NEED > end {
        return Err(LoadError::HeaderTruncated {
            offset: h.offset,
            need: NEED,
            end,
        });
    }
    let f = |i: usize| u32_at(image, h.offset + i);
    Ok(AddressFields {
        header_addr: f(12),
        load_addr: f(16),
        load_end_addr: f(20),
        bss_end_addr: f(24),
        entry_addr: f(28),
    })
}

/// The region the a.out kludge fields describe (spec 3.1.3): the file is
/// loaded from the header's offset minus (header_addr - load_addr), for
/// load_end_addr - load_addr bytes (0: to the end of the file), then zeroed
/// up to bss_end_addr (0: no BSS).
fn aout_piece(image: &[u8], h: &Header, a: &AddressFields) -> Result<(Piece, u32), LoadError> {
    let before =
        a.header_addr
            .checked_sub(a.load_addr)
            .ok_or(LoadError::HeaderAddrBelowLoadAddr {
                header_addr: a.header_addr,
                load_addr: a.load_addr,
            })?;
    let start = h
        .offset
        .checked_sub(before as usize)
        .ok_or(LoadError::LoadBeforeFileStart {
            before,
            offset: h.offset,
        })?;
    let file_len = if a.load_end_addr == 0 {
        (image.len() - start) as u64
    } else if a.load_end_addr <= a.load_addr {
        return Err(LoadError::LoadEndNotAboveLoadAddr {
            load_addr: a.load_addr,
            load_end_addr: a.load_end_addr,
        });
    } else {
        (a.load_end_addr - a.load_addr) as u64
    };
    let file_end = start as u64 + file_len;
    if file_end > image.len() as u64 {
        return Err(LoadError::AoutTruncated {
            start,
            end: file_end,
            len: image.len(),
        });
    }
    let load_end = a.load_addr as u64 + file_len;
    let memsz = if a.bss_end_addr == 0 {
        file_len
    } else if (a.bss_end_addr as u64) < load_end {
        return Err(LoadError::BssEndBelowLoadEnd {
            bss_end_addr: a.bss_end_addr,
            load_end,
        });
    } else {
        (a.bss_end_addr - a.load_addr) as u64
    };
    let piece = Piece {
        index: 0,
        dest: a.load_addr as u64,
        vaddr: a.load_addr as u64,
        file: start..file_end as usize,
        memsz,
    };
    if !piece.dest_range().contains(&(a.entry_addr as u64)) {
        return Err(LoadError::EntryOutsideSegments {
            entry: a.entry_addr,
        });
    }
    Ok((piece, a.entry_addr))
}

/// Validates the ELF32 header and returns its PT_LOAD segments (those with
/// bytes in memory) and e_entry.
fn elf_pieces(image: &[u8]) -> Result<(Vec<Piece>, u32), LoadError> {
    if image.get(..4) != Some(&elf::MAGIC[..]) {
        return Err(LoadError::NotElf);
    }
    // A multiboot image holds at least its 12-byte header, so the ident
    // bytes below exist; `get` keeps this true for any input.
    let class = image.get(elf::EI_CLASS).copied().unwrap_or(0);
    if class != elf::ELFCLASS32 {
        return Err(LoadError::NotElf32(class));
    }
    let data = image.get(elf::EI_DATA).copied().unwrap_or(0);
    if data != elf::ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian(data));
    }
    if image.len() < elf::EHDR_LEN {
        return Err(LoadError::ElfHeaderTruncated { len: image.len() });
    }
    let e_type = u16_at(image, elf::E_TYPE);
    if e_type != elf::ET_EXEC {
        return Err(LoadError::NotExecutable(e_type));
    }
    let machine = u16_at(image, elf::E_MACHINE);
    if machine != elf::EM_386 {
        return Err(LoadError::WrongMachine(machine));
    }
    let e_entry = u32_at(image, elf::E_ENTRY);
    let phoff = u32_at(image, elf::E_PHOFF);
    let entsize = u16_at(image, elf::E_PHENTSIZE);
    let count = u16_at(image, elf::E_PHNUM);
    if count > 0 && (entsize as usize) < elf::PHDR_LEN {
        return Err(LoadError::BadPhentsize(entsize));
    }
    let table_end = phoff as u64 + count as u64 * entsize as u64;
    if table_end > image.len() as u64 {
        return Err(LoadError::PhdrsTruncated {
            offset: phoff,
            count,
            entsize,
            end: table_end,
            len: image.len(),
        });
    }

    let mut pieces = Vec::new();
    for index in 0..count as usize {
        let ph = &image[phoff as usize + index * entsize as usize..][..elf::PHDR_LEN];
        if u32_at(ph, elf::P_TYPE) != elf::PT_LOAD {
            continue;
        }
        let offset = u32_at(ph, elf::P_OFFSET);
        let filesz = u32_at(ph, elf::P_FILESZ);
        let memsz = u32_at(ph, elf::P_MEMSZ);
        if filesz > memsz {
            return Err(LoadError::FileszAboveMemsz {
                index,
                filesz,
                memsz,
            });
        }
        let end = offset as u64 + filesz as u64;
        if end > image.len() as u64 {
            return Err(LoadError::SegmentTruncated {
                index,
                start: offset,
                end,
                len: image.len(),
            });
        }
        if memsz == 0 {
            continue;
        }
        pieces.push(Piece {
            index,
            dest: u32_at(ph, elf::P_PADDR) as u64,
            vaddr: u32_at(ph, elf::P_VADDR) as u64,
            file: offset as usize..end as usize,
            memsz: memsz as u64,
        });
    }
    if pieces.is_empty() {
        return Err(LoadError::NoLoadSegments);
    }
    Ok((pieces, e_entry))
}

/// e_entry is a virtual address. Like GRUB 2, find the segment whose virtual
/// range holds it and enter at the matching physical address, so kernels
/// linked at a higher-half address but loaded low (p_vaddr != p_paddr) start
/// where their code actually is. Paging is off at entry (spec 3.2).
fn elf_entry(pieces: &[Piece], e_entry: u32) -> Result<u32, LoadError> {
    let e = e_entry as u64;
    pieces
        .iter()
        .find(|p| p.vaddr <= e && e < p.vaddr + p.memsz)
        // check_pieces put every segment inside RAM (< 4 GiB).
        .map(|p| (p.dest + (e - p.vaddr)) as u32)
        .ok_or(LoadError::EntryOutsideSegments { entry: e_entry })
}

/// Every region inside RAM, outside the reserved low area and a ROM
/// mapped already (its low alias is read-only RAM: a write there would fail
/// half-way through the load), and disjoint from the others.
fn check_pieces(mem: &GuestMemory, pieces: &[Piece]) -> Result<(), LoadError> {
    let ram = mem.size();
    let (rom_start, rom_end) = mem.read_only_range();
    for p in pieces {
        let r = p.dest_range();
        if r.end > ram as u64 {
            return Err(LoadError::SegmentOutsideRam {
                index: p.index,
                start: r.start,
                end: r.end,
                ram,
            });
        }
        if overlaps(&r, &RESERVED_LOW) {
            return Err(LoadError::SegmentInReservedArea {
                index: p.index,
                start: r.start,
                end: r.end,
            });
        }
        if overlaps(&r, &(rom_start..rom_end)) {
            return Err(LoadError::SegmentInRom {
                index: p.index,
                start: r.start,
                end: r.end,
                rom_start,
                rom_end,
            });
        }
    }
    // Sorted by start, any overlap shows up between neighbours: if i < j
    // overlap, start(i+1) <= start(j) < end(i).
    let mut order: Vec<&Piece> = pieces.iter().collect();
    order.sort_by_key(|p| (p.dest, p.index));
    for w in order.windows(2) {
        let (x, y) = if w[0].index < w[1].index {
            (w[0], w[1])
        } else {
            (w[1], w[0])
        };
        let (xr, yr) = (x.dest_range(), y.dest_range());
        if overlaps(&xr, &yr) {
            return Err(LoadError::SegmentsOverlap {
                a: x.index,
                a_start: xr.start,
                a_end: xr.end,
                b: y.index,
                b_start: yr.start,
                b_end: yr.end,
            });
        }
    }
    Ok(())
}

/// The boot information block at `base`: boot GDT, multiboot_info, memory
/// map and boot loader name (spec 3.3).
fn boot_info(base: u32, ram: usize) -> Vec<u8> {
    let mut b = vec![0u8; BOOT_INFO_LEN as usize];
    fn put32(b: &mut [u8], off: u32, v: u32) {
        b[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
    }
    for (i, d) in BOOT_GDT.iter().enumerate() {
        let off = (GDT_OFF as usize) + i * 8;
        b[off..off + 8].copy_from_slice(&d.to_le_bytes());
    }

    let ram = ram as u64;
    let map = crate::firmware::memory_map(ram);
    debug_assert!(map.len() <= MMAP_MAX);
    for (i, &(addr, len, ty)) in map.iter().enumerate() {
        let off = MMAP_OFF as usize + i * MMAP_ENTRY_LEN;
        let e = &mut b[off..off + MMAP_ENTRY_LEN];
        e[0..4].copy_from_slice(&MMAP_ENTRY_SIZE_FIELD.to_le_bytes());
        e[4..12].copy_from_slice(&addr.to_le_bytes());
        e[12..20].copy_from_slice(&len.to_le_bytes());
        e[20..24].copy_from_slice(&ty.to_le_bytes());
    }

    // multiboot_info field offsets (spec 3.3).
    let info = |field: u32| INFO_OFF + field;
    put32(
        &mut b,
        info(0),
        mbi_flag::MEM | mbi_flag::MMAP | mbi_flag::BOOT_LOADER_NAME,
    );
    put32(&mut b, info(4), MEM_LOWER_KIB);
    // mem_upper: KiB of memory from 1 MiB up to the first hole, which in
    // ringlab is the end of RAM.
    put32(&mut b, info(8), ((ram - EXTENDED_START) / 1024) as u32);
    put32(&mut b, info(44), (map.len() * MMAP_ENTRY_LEN) as u32);
    put32(&mut b, info(48), base + MMAP_OFF);
    put32(&mut b, info(64), base + NAME_OFF);

    b[NAME_OFF as usize..].copy_from_slice(BOOT_LOADER_NAME);
    b
}

/// The handoff record for ringlab's BIOS (`firmware::HANDOFF_MAGIC`): a
/// kernel at `entry` with its boot information block at `base`.
fn handoff(b: &mut [u8], base: u32, entry: u32) {
    let h = HANDOFF_OFF as usize;
    b[h..h + 4].copy_from_slice(&crate::firmware::HANDOFF_MAGIC.to_le_bytes());
    b[h + 4..h + 8].copy_from_slice(&entry.to_le_bytes());
    b[h + 8..h + 12].copy_from_slice(&(base + INFO_OFF).to_le_bytes());
    b[h + 12..h + 14].copy_from_slice(&((BOOT_GDT.len() * 8 - 1) as u16).to_le_bytes());
    b[h + 14..h + 18].copy_from_slice(&(base + GDT_OFF).to_le_bytes());
}
