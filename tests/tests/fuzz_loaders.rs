//! Fuzzing the image loaders (issue 20, item 3): flat images, multiboot
//! ELF32 kernels, the multiboot "a.out kludge", and firmware ROM images.
//!
//! Property-based, with proptest (stable Rust, shrinking to a minimal
//! input). Each target mixes two kinds of input: arbitrary bytes, and
//! structure-aware images — a valid ELF or a.out-kludge kernel built from
//! random parameters, then a few of its fields overwritten with values
//! chosen to hit the edges (zero, just past RAM, just below 4 GiB, inside
//! the VGA window, overlapping another segment...). The properties:
//!
//! - the loader never panics;
//! - `Ok`: every segment lies in RAM, outside the VGA window, disjoint
//!   from the others; its bytes are the file's bytes then zeros (checked
//!   against a reference reading of the image written here); the entry is
//!   inside a segment; and RAM outside the segments and the multiboot boot
//!   information block is untouched, and so is host memory right around
//!   the RAM mapping (guard mappings, `tests::guards`);
//! - `Err`: RAM is untouched (the loader checks before it writes) and the
//!   message names the field or value at fault (a table per error kind).
//!
//! Every target counts its outcomes and asserts at the end that both loads
//! and errors happened, and that the error kinds the generators aim at
//! were reached: a generator that only ever produced rejected junk would
//! otherwise pass without testing anything.
//!
//! Cases per target are small enough for CI (the whole binary runs in a
//! few seconds in release); `PROPTEST_CASES=N` (proptest's own knob) runs
//! N cases per target instead, for a soak, and `PROPTEST_RNG_SEED=S`
//! other cases than CI's fixed seed (`tests::fuzz`). A failure prints the shrunk
//! input; the minimal inputs of every bug found are kept as named tests at
//! the end of this file.

use machine::devices::rom::{RomError, ROM_MAX};
use machine::loader::{self, ImageFormat, LoadError, LoadOptions, LoadedImage};
use machine::{Machine, MachineConfig};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tests::fuzz::{config, full_run};
use tests::guards::Guards;

/// The byte RAM is filled with before a load, so untouched RAM is visible.
const FILL: u8 = 0xA5;

/// The VGA window no kernel may load into (loader.rs, RESERVED_LOW).
const VGA_WINDOW: std::ops::Range<u64> = 0xA_0000..0xC_0000;

const MB_MAGIC: u32 = 0x1BAD_B002;

fn machine(ram_mib: usize, rom_first: bool) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(ram_mib << 20)).unwrap();
    if rom_first {
        m.load_rom(machine::firmware::BIOS).unwrap();
    }
    let size = m.mem.size();
    let (lo, _) = m.mem.read_only_range();
    // Below the ROM's low alias (when there is one): the ROM stays.
    let end = if rom_first { lo as usize } else { size };
    m.mem.fill(0, end, FILL).unwrap();
    if rom_first {
        m.mem.fill(0x10_0000, size - 0x10_0000, FILL).unwrap();
    }
    m
}

/// What an error message must mention: the field or value at fault.
fn expected_mention(e: &LoadError) -> Vec<String> {
    use LoadError::*;
    let s = |x: &str| vec![x.to_string()];
    match e {
        Empty => s("empty"),
        ElfWithoutMultiboot => s("multiboot header"),
        FlatTooBig { addr, len, .. } => vec![format!("{addr:#x}"), format!("{len:#x}")],
        FlatAboveRealMode(a) => vec![format!("{a:#x}"), "1 MiB".into()],
        LoadAddrWithMultiboot(a) => vec![format!("{a:#x}")],
        NoMultibootHeader => s("multiboot header"),
        BadChecksum { offset, .. } => vec!["checksum".into(), format!("{offset:#x}")],
        HeaderTruncated { offset, .. } => vec![format!("{offset:#x}")],
        VideoModeRequired { .. } => s("bit 2"),
        UnsupportedRequiredFlag { bit, .. } => vec![format!("bit {bit}")],
        HeaderAddrBelowLoadAddr { .. } => vec!["header_addr".into(), "load_addr".into()],
        LoadBeforeFileStart { .. } => s("start of the file"),
        LoadEndNotAboveLoadAddr { .. } => vec!["load_end_addr".into(), "load_addr".into()],
        BssEndBelowLoadEnd { .. } => s("bss_end_addr"),
        AoutTruncated { len, .. } => vec!["truncated".into(), format!("{len:#x}")],
        NotElf => s("ELF magic"),
        NotElf32(_) => s("EI_CLASS"),
        NotLittleEndian(_) => s("EI_DATA"),
        ElfHeaderTruncated { .. } => s("ELF header"),
        NotExecutable(_) => s("e_type"),
        WrongMachine(_) => s("e_machine"),
        BadPhentsize(_) => s("e_phentsize"),
        PhdrsTruncated { .. } => s("program header table"),
        NoLoadSegments => s("PT_LOAD"),
        FileszAboveMemsz { index, .. } => {
            vec![
                format!("segment {index}"),
                "p_filesz".into(),
                "p_memsz".into(),
            ]
        }
        SegmentTruncated { index, .. } => vec![format!("segment {index}")],
        SegmentOutsideRam { index, .. } => vec![format!("segment {index}"), "outside RAM".into()],
        // The range named must be the one checked.
        SegmentInReservedArea { index, .. } => vec![
            format!("segment {index}"),
            format!("{:#x}", VGA_WINDOW.start),
            format!("{:#x}", VGA_WINDOW.end),
        ],
        SegmentsOverlap { a, b, .. } => vec![format!("segments {a}"), format!("and {b}")],
        EntryOutsideSegments { entry } => vec![format!("{entry:#x}")],
        NoRoomForBootInfo => s("no room"),
        SegmentInRom { index, .. } => vec![format!("segment {index}"), "ROM".into()],
        FlatInRom { addr, .. } => vec![format!("{addr:#x}"), "ROM".into()],
        Memory(_) => vec![],
    }
}

/// Outcome counts of a target: "ok" or the error's kind.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, k: &str) {
        *self.0.lock().unwrap().entry(k.to_string()).or_default() += 1;
    }
    fn get(&self, k: &str) -> u64 {
        self.0.lock().unwrap().get(k).copied().unwrap_or(0)
    }
    fn kinds(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn report(&self, name: &str) -> String {
        format!("{name}: {:?}", self.0.lock().unwrap())
    }
}

fn kind(e: &LoadError) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

/// One segment as the reference reading of the image expects it: where it
/// goes, the file bytes it starts with, its size in memory.
#[derive(Debug)]
struct RefSegment {
    dest: u64,
    file: Vec<u8>,
    memsz: u64,
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

/// The first multiboot header with a good checksum in the first 8 KiB:
/// (offset, flags).
fn ref_header(img: &[u8]) -> Option<(usize, u32)> {
    let end = img.len().min(8192);
    (0..end.saturating_sub(11))
        .step_by(4)
        .find(|&o| {
            le32(img, o) == MB_MAGIC
                && MB_MAGIC
                    .wrapping_add(le32(img, o + 4))
                    .wrapping_add(le32(img, o + 8))
                    == 0
        })
        .map(|o| (o, le32(img, o + 4)))
}

/// The segments a successful multiboot load must have written, read from
/// the image independently of the loader (spec 3.1.3 for the a.out kludge;
/// the PT_LOAD program headers with bytes in memory for ELF).
fn ref_segments(img: &[u8]) -> Vec<RefSegment> {
    let (h, flags) = ref_header(img).expect("a loaded multiboot image has a header");
    if flags & (1 << 16) != 0 {
        let f = |i| le32(img, h + i);
        let (header_addr, load_addr, load_end, bss_end) = (f(12), f(16), f(20), f(24));
        let start = h - (header_addr - load_addr) as usize;
        let end = if load_end == 0 {
            img.len()
        } else {
            start + (load_end - load_addr) as usize
        };
        let memsz = if bss_end == 0 {
            (end - start) as u64
        } else {
            (bss_end - load_addr) as u64
        };
        return vec![RefSegment {
            dest: load_addr as u64,
            file: img[start..end].to_vec(),
            memsz,
        }];
    }
    let phoff = le32(img, 28) as usize;
    let entsize = le16(img, 42) as usize;
    let n = le16(img, 44) as usize;
    (0..n)
        .map(|i| &img[phoff + i * entsize..][..32])
        .filter(|ph| le32(ph, 0) == 1 && le32(ph, 20) != 0)
        .map(|ph| {
            let off = le32(ph, 4) as usize;
            RefSegment {
                dest: le32(ph, 12) as u64,
                file: img[off..off + le32(ph, 16) as usize].to_vec(),
                memsz: le32(ph, 20) as u64,
            }
        })
        .collect()
}

/// Loads `img` into a fresh machine and checks every property; returns
/// the outcome's kind for the tally.
fn check_load(
    img: &[u8],
    opts: &LoadOptions,
    ram_mib: usize,
    rom_first: bool,
) -> Result<String, TestCaseError> {
    let mut m = machine(ram_mib, rom_first);
    let guards = Guards::around(&m);
    let before = m.mem.as_slice().to_vec();
    let r = loader::load(&mut m.mem, img, opts);
    prop_assert!(guards.intact(), "host memory next to guest RAM changed");
    let after = m.mem.as_slice();
    let ram = after.len() as u64;
    match r {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.trim().is_empty(), "{e:?}: empty message");
            // Every range is checked before the first write: a failed
            // write is a loader bug (loader.rs says so).
            prop_assert!(
                !matches!(e, LoadError::Memory(_)),
                "a write failed half-way: {msg}"
            );
            for want in expected_mention(&e) {
                prop_assert!(
                    msg.contains(&want),
                    "{e:?}: the message {msg:?} does not mention {want:?}"
                );
            }
            if let Some(i) = (0..before.len()).find(|&i| before[i] != after[i]) {
                return Err(TestCaseError::fail(format!(
                    "{e:?} ({msg}), but RAM at {i:#x} changed"
                )));
            }
            Ok(kind(&e))
        }
        Ok(l) => {
            check_loaded(img, opts, &l, &before, after, ram, rom_first)?;
            Ok(format!("ok {:?}", l.format))
        }
    }
}

fn check_loaded(
    img: &[u8],
    opts: &LoadOptions,
    l: &LoadedImage,
    before: &[u8],
    after: &[u8],
    ram: u64,
    rom_first: bool,
) -> Result<(), TestCaseError> {
    // Ranges the load may have written.
    let mut written: Vec<(u64, u64)> = Vec::new();
    for (i, &(start, len)) in l.segments.iter().enumerate() {
        let (s, e) = (start as u64, start as u64 + len as u64);
        prop_assert!(e <= ram, "segment {i} [{s:#x}, {e:#x}) past RAM {ram:#x}");
        if rom_first {
            prop_assert!(
                e <= 0xF_0000 || s >= 0x10_0000,
                "segment {i} [{s:#x}, {e:#x}) over the ROM"
            );
        }
        for &(ws, we) in &written {
            prop_assert!(e <= ws || we <= s, "segments overlap: {:?}", l.segments);
        }
        written.push((s, e));
    }
    match l.format {
        ImageFormat::Flat => {
            let addr = opts.load_addr.unwrap_or(loader::DEFAULT_FLAT_ADDR) as usize;
            prop_assert_eq!(&l.segments, &vec![(addr as u32, img.len() as u32)]);
            prop_assert!(&after[addr..addr + img.len()] == img, "flat bytes differ");
            // Real mode: CS:IP names the load address.
            let cs = l.entry.segs[machine::cpu::Seg::Cs as usize].selector as usize;
            prop_assert_eq!(cs * 16 + l.entry.eip as usize, addr);
        }
        ImageFormat::Multiboot => {
            for (i, &(s, e)) in written.iter().enumerate() {
                prop_assert!(
                    e <= VGA_WINDOW.start || s >= VGA_WINDOW.end,
                    "segment {i} [{s:#x}, {e:#x}) in the VGA window"
                );
            }
            let refs = ref_segments(img);
            let got: Vec<(u32, u32)> = refs
                .iter()
                .map(|r| (r.dest as u32, r.memsz as u32))
                .collect();
            prop_assert_eq!(&l.segments, &got);
            for r in &refs {
                let d = r.dest as usize;
                prop_assert!(after[d..d + r.file.len()] == r.file[..], "file bytes");
                prop_assert!(
                    after[d + r.file.len()..d + r.memsz as usize]
                        .iter()
                        .all(|&b| b == 0),
                    "BSS not zero"
                );
            }
            let eip = l.entry.eip as u64;
            prop_assert!(
                written.iter().any(|&(s, e)| s <= eip && eip < e),
                "entry {eip:#x} outside {:?}",
                l.segments
            );
            // The boot information block: from the GDT (EBX - 0x20,
            // loader.rs's layout) to the end of the boot loader name whose
            // address multiboot_info holds at offset 64.
            let ebx = l.entry.regs[machine::cpu::EBX] as usize;
            let name = le32(after, ebx + 64) as usize;
            prop_assert_eq!(&after[name..name + 8], b"ringlab\0");
            let info = ((ebx - 0x20) as u64, name as u64 + 8);
            for &(s, e) in &written {
                prop_assert!(info.1 <= s || e <= info.0, "boot info over a segment");
            }
            written.push(info);
        }
    }
    let outside = |i: usize| {
        !written
            .iter()
            .any(|&(s, e)| s <= i as u64 && (i as u64) < e)
    };
    if let Some(i) = (0..before.len()).find(|&i| before[i] != after[i] && outside(i)) {
        return Err(TestCaseError::fail(format!(
            "RAM at {i:#x} changed outside the loaded ranges {written:x?}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Generators

/// 32-bit values at the edges that matter to a loader, or anything.
fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..0x40,
        0x7BF0u32..0x7C10,
        0x9_FFF0u32..0xA_0010,
        0xB_FFF0u32..0xC_0010,
        0xE_FFF0u32..0xF_0010,
        0xF_FFF0u32..0x10_0010,
        0x1F_FFF0u32..0x20_0010,
        0xFFFF_FF00u32..=u32::MAX,
        0x8000_0000u32..0x8000_0010,
        any::<u32>(),
    ]
}

fn apply(img: &mut [u8], muts: &[(usize, u8, u32)]) {
    for &(off, w, v) in muts {
        let w = w as usize;
        if off + w <= img.len() {
            img[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
    }
}

/// A multiboot ELF32 kernel: `segs` PT_LOAD segments of (file bytes, BSS,
/// extra alignment pages) from 1 MiB up, `higher_half` linking them at
/// 0xC0000000 + paddr, the multiboot header after the program headers with
/// `flags`. Then `fields` overwrite single header fields (see
/// `elf_fields`) with edge values; `bad_sum` breaks the checksum.
#[derive(Clone, Debug)]
struct ElfSpec {
    segs: Vec<(u16, u16, u8)>,
    higher_half: bool,
    gap_pages: u8,
    flags: u32,
    bad_sum: bool,
    entry_off: u16,
    /// One segment moved (p_paddr and p_vaddr) to where loaders must
    /// look twice: the VGA window, over segment 0, the ROM's low alias,
    /// the boot information's areas.
    moved: Option<(usize, u32)>,
    fields: Vec<(usize, u32)>,
}

fn elf_spec() -> impl Strategy<Value = ElfSpec> {
    (
        prop::collection::vec((0u16..0x300, 0u16..0x2000, 0u8..4), 1..4),
        any::<bool>(),
        0u8..3,
        prop_oneof![
            8 => Just(0u32),
            4 => Just(2u32),
            2 => Just(3u32),
            1 => Just(4u32),
            1 => Just(0x20u32),
            1 => any::<u32>().prop_map(|f| f & !(1 << 16)),
        ],
        prop::bool::weighted(0.05),
        0u16..0x300,
        prop::option::weighted(
            0.3,
            (
                any::<usize>(),
                prop_oneof![
                    0x9_F000u32..0xC_1000,
                    0x10_0000u32..0x10_0800,
                    0xE_F000u32..0x10_0000,
                    0x400u32..0x8000,
                ],
            ),
        ),
        prop::collection::vec((any::<usize>(), edge_u32()), 0..3),
    )
        .prop_map(
            |(segs, higher_half, gap_pages, flags, bad_sum, entry_off, moved, fields)| ElfSpec {
                segs,
                higher_half,
                gap_pages,
                flags,
                bad_sum,
                entry_off,
                moved,
                fields,
            },
        )
}

/// The fields of an ELF kernel with `n` program headers and its multiboot
/// header at `mb` that the generator overwrites: (offset, width).
fn elf_fields(n: usize, mb: usize) -> Vec<(usize, u8)> {
    // EI_CLASS, EI_DATA, e_type, e_machine, e_entry, e_phoff,
    // e_phentsize, e_phnum.
    let mut f = vec![
        (4, 1),
        (5, 1),
        (16, 2),
        (18, 2),
        (24, 4),
        (28, 4),
        (42, 2),
        (44, 2),
    ];
    for i in 0..n {
        // p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz.
        f.extend((0..6).map(|k| (52 + i * 32 + k * 4, 4u8)));
    }
    f.extend([(mb + 4, 4), (mb + 8, 4)]);
    f
}

fn build_elf(s: &ElfSpec) -> Vec<u8> {
    let n = s.segs.len();
    let phoff = 52;
    let mb = (phoff + n * 32 + 3) & !3;
    let mut data_off = mb + 12;
    let mut img = vec![0u8; data_off];
    img[..4].copy_from_slice(b"\x7fELF");
    img[4] = 1; // ELFCLASS32
    img[5] = 1; // ELFDATA2LSB
    img[6] = 1; // EV_CURRENT
    let put16 =
        |img: &mut Vec<u8>, o: usize, v: u16| img[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |img: &mut Vec<u8>, o: usize, v: u32| img[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut img, 16, 2); // ET_EXEC
    put16(&mut img, 18, 3); // EM_386
    put32(&mut img, 20, 1);
    put32(&mut img, 28, phoff as u32);
    put16(&mut img, 40, 52);
    put16(&mut img, 42, 32);
    put16(&mut img, 44, n as u16);
    let link = if s.higher_half { 0xC000_0000 } else { 0 };
    let mut paddr = 0x10_0000u32;
    let mut entry = None;
    for (i, &(filesz, bss, align_pages)) in s.segs.iter().enumerate() {
        let ph = phoff + i * 32;
        put32(&mut img, ph, 1); // PT_LOAD
        put32(&mut img, ph + 4, data_off as u32);
        put32(&mut img, ph + 8, paddr + link);
        put32(&mut img, ph + 12, paddr);
        put32(&mut img, ph + 16, filesz as u32);
        put32(&mut img, ph + 20, filesz as u32 + bss as u32);
        put32(&mut img, ph + 24, 7);
        put32(&mut img, ph + 28, 0x1000);
        let memsz = filesz as u32 + bss as u32;
        if memsz > 0 && entry.is_none() {
            entry = Some(paddr + link + s.entry_off as u32 % memsz);
        }
        img.extend((0..filesz).map(|b| (b as u8) ^ (i as u8 * 0x35) ^ 0x5A));
        data_off += filesz as usize;
        paddr = (paddr + memsz + 0xFFF) & !0xFFF;
        paddr += (align_pages as u32 + s.gap_pages as u32) * 0x1000;
    }
    put32(&mut img, 24, entry.unwrap_or(0x10_0000 + link));
    put32(&mut img, mb, MB_MAGIC);
    put32(&mut img, mb + 4, s.flags);
    let sum = 0u32.wrapping_sub(MB_MAGIC).wrapping_sub(s.flags);
    put32(&mut img, mb + 8, sum ^ s.bad_sum as u32);
    if let Some((i, addr)) = s.moved {
        let ph = phoff + (i % n) * 32;
        put32(&mut img, ph + 8, addr.wrapping_add(link));
        put32(&mut img, ph + 12, addr);
    }
    let table = elf_fields(n, mb);
    let muts: Vec<_> = s
        .fields
        .iter()
        .map(|&(i, v)| {
            let (off, w) = table[i % table.len()];
            (off, w, v)
        })
        .collect();
    apply(&mut img, &muts);
    img
}

/// A multiboot a.out-kludge kernel: `pre` bytes, then the header at
/// offset `pre` with its address fields, then `body` bytes; loaded at
/// `load_addr` (from the file's start), `load_end` (0 or to the end of the
/// body minus `short`), BSS of `bss` (or none), entry `entry_off` in.
#[derive(Clone, Debug)]
struct AoutSpec {
    pre: u16,
    body: u16,
    load_addr: u32,
    load_end_zero: bool,
    short: u16,
    bss: Option<u16>,
    entry_off: u16,
    extra_flags: u32,
    muts: Vec<(usize, u8, u32)>,
}

fn aout_spec() -> impl Strategy<Value = AoutSpec> {
    (
        (0u16..0x800).prop_map(|p| p & !3),
        0u16..0x800,
        prop_oneof![
            4 => Just(0x10_0000u32),
            1 => Just(0x7000u32),
            1 => Just(0x9_F000u32),
            1 => Just(0x1F_F000u32),
            1 => Just(0xF_0000u32),
            // Over the boot information's candidate areas (0x500-0x7FFF).
            2 => Just(0x500u32),
            1 => edge_u32(),
        ],
        any::<bool>(),
        prop_oneof![4 => Just(0u16), 1 => 0u16..0x40],
        prop::option::of(prop_oneof![3 => 0u16..0x4000, 1 => 0x6000u16..0x9000]),
        0u16..0x1000,
        prop_oneof![4 => Just(0u32), 1 => Just(2u32), 1 => Just(1 << 3)],
        // Mutations reach the header's address fields (offset pre+12..32)
        // through `apply`'s relative form below.
        prop::collection::vec(
            (
                0usize..36,
                prop_oneof![Just(1u8), Just(2), Just(4)],
                edge_u32(),
            ),
            0..2,
        ),
    )
        .prop_map(
            |(pre, body, load_addr, load_end_zero, short, bss, entry_off, extra_flags, muts)| {
                AoutSpec {
                    pre,
                    body,
                    load_addr,
                    load_end_zero,
                    short,
                    bss,
                    entry_off,
                    extra_flags,
                    muts,
                }
            },
        )
}

fn build_aout(s: &AoutSpec) -> Vec<u8> {
    let h = s.pre as usize;
    let len = h + 32 + s.body as usize;
    let mut img: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let flags = (1 << 16) | s.extra_flags;
    let la = s.load_addr;
    let file_len = (len - s.short.min(s.body) as usize) as u32;
    let load_end = if s.load_end_zero {
        0
    } else {
        la.wrapping_add(file_len)
    };
    let bss_end = s
        .bss
        .map_or(0, |b| la.wrapping_add(file_len).wrapping_add(b as u32));
    let memsz = file_len + s.bss.unwrap_or(0) as u32;
    let fields = [
        MB_MAGIC,
        flags,
        0u32.wrapping_sub(MB_MAGIC).wrapping_sub(flags),
        la.wrapping_add(h as u32),
        la,
        load_end,
        bss_end,
        la.wrapping_add(s.entry_off as u32 % memsz.max(1)),
    ];
    for (i, f) in fields.iter().enumerate() {
        img[h + 4 * i..h + 4 * i + 4].copy_from_slice(&f.to_le_bytes());
    }
    let muts: Vec<_> = s.muts.iter().map(|&(o, w, v)| (h + 12 + o, w, v)).collect();
    apply(&mut img, &muts);
    img
}

/// Load options: the format given or detected, a flat load address or not.
fn options() -> impl Strategy<Value = LoadOptions> {
    (
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(ImageFormat::Flat)),
            1 => Just(Some(ImageFormat::Multiboot)),
        ],
        prop_oneof![3 => Just(None), 1 => edge_u32().prop_map(Some)],
    )
        .prop_map(|(format, load_addr)| LoadOptions { format, load_addr })
}

fn ram_mib() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(2usize), 1 => Just(1usize), 1 => Just(4usize)]
}

/// Runs `strategy`'s cases through `check`, tallying outcomes; returns
/// the tally for the caller's reachability assertions.
fn run_target<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<String, TestCaseError>,
) -> Tally {
    let tally = Tally::default();
    let mut runner = TestRunner::new(config(cases));
    let r = runner.run(&strategy, |v| {
        let k = check(v)?;
        tally.add(&k);
        Ok(())
    });
    if let Err(e) = r {
        panic!("{name}: {e}");
    }
    eprintln!("{}", tally.report(name));
    tally
}

#[test]
fn fuzz_arbitrary_bytes() {
    let t = run_target(
        "arbitrary bytes",
        600,
        (
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(any::<u8>(), 0..1200),
                // Multiboot magic words sprinkled over random bytes.
                prop::collection::vec(prop_oneof![any::<u32>(), Just(MB_MAGIC)], 0..300)
                    .prop_map(|w| w.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ],
            options(),
            ram_mib(),
            any::<bool>(),
        ),
        |(img, opts, ram, rom)| check_load(&img, &opts, ram, rom),
    );
    // The generators reach what they aim at (in a run as long as CI's).
    if !full_run(600) {
        return;
    }
    assert!(t.get("ok Flat") > 0, "{}", t.report("arbitrary"));
    assert!(t.kinds() >= 6, "{}", t.report("arbitrary"));
}

#[test]
fn fuzz_multiboot_elf() {
    let t = run_target(
        "multiboot ELF",
        800,
        (
            elf_spec(),
            prop_oneof![6 => Just(LoadOptions::default()), 1 => options()],
            ram_mib(),
            prop::bool::weighted(0.2),
        ),
        |(spec, opts, ram, rom)| check_load(&build_elf(&spec), &opts, ram, rom),
    );
    // The generators reach what they aim at (in a run as long as CI's).
    if !full_run(800) {
        return;
    }
    let r = t.report("multiboot ELF");
    assert!(t.get("ok Multiboot") >= 50, "{r}");
    for k in [
        "SegmentOutsideRam",
        "EntryOutsideSegments",
        "FileszAboveMemsz",
        "SegmentTruncated",
        "PhdrsTruncated",
        "SegmentsOverlap",
        "SegmentInReservedArea",
        "UnsupportedRequiredFlag",
        "NoLoadSegments",
        "SegmentInRom",
    ] {
        assert!(t.get(k) > 0, "never reached {k}: {r}");
    }
}

#[test]
fn fuzz_multiboot_aout_kludge() {
    let t = run_target(
        "multiboot a.out kludge",
        800,
        (aout_spec(), ram_mib(), prop::bool::weighted(0.2)),
        |(spec, ram, rom)| check_load(&build_aout(&spec), &LoadOptions::default(), ram, rom),
    );
    // The generators reach what they aim at (in a run as long as CI's).
    if !full_run(800) {
        return;
    }
    let r = t.report("a.out kludge");
    assert!(t.get("ok Multiboot") >= 50, "{r}");
    for k in [
        "SegmentOutsideRam",
        "EntryOutsideSegments",
        "HeaderAddrBelowLoadAddr",
        "LoadBeforeFileStart",
        "BssEndBelowLoadEnd",
        "AoutTruncated",
        "SegmentInReservedArea",
        "SegmentInRom",
        "NoRoomForBootInfo",
    ] {
        assert!(t.get(k) > 0, "never reached {k}: {r}");
    }
}

/// ROM images: sizes around the accepted ones, reset vectors of code, of
/// 0x00, of 0xFF. Loaded: both aliases read the image, writes to either
/// are ignored, a second ROM is refused, RAM below the low alias is
/// untouched. Refused: nothing mapped, RAM untouched.
#[test]
fn fuzz_rom_images() {
    let t = run_target(
        "ROM images",
        120,
        (
            prop_oneof![
                Just(64usize << 10),
                Just(128 << 10),
                Just(192 << 10),
                Just(256 << 10),
                Just(0),
                Just(16),
                Just((64 << 10) - 1),
                Just((64 << 10) + 1),
                Just(96 << 10),
                Just(320 << 10),
            ],
            prop_oneof![Just(0x00u8), Just(0xFF), Just(0xEA), any::<u8>()],
            prop_oneof![Just(0x00u8), Just(0xFF), any::<u8>()],
            0usize..16,
            any::<u32>(),
        ),
        |(size, vector, other, pos, probe)| {
            let mut img: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
            if size >= 16 {
                img[size - 16..].fill(other);
                img[size - 16 + pos] = vector;
            }
            let mut m = machine(2, false);
            let before = m.mem.as_slice().to_vec();
            match m.load_rom(&img) {
                Err(e) => {
                    let msg = e.to_string();
                    match &e {
                        RomError::BadSize(n) => {
                            prop_assert_eq!(*n, size);
                            prop_assert!(msg.contains(&size.to_string()), "{}", msg);
                        }
                        RomError::NoResetCode(b) => {
                            prop_assert!(msg.contains("reset vector"), "{}", msg);
                            prop_assert!(img[size - 16..].iter().all(|x| x == b));
                        }
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                    prop_assert!(m.rom_map().is_none());
                    prop_assert!(m.mem.as_slice() == &before[..], "RAM changed");
                    Ok(kind_rom(&e))
                }
                Ok(map) => {
                    prop_assert!(size % (64 << 10) == 0 && size <= ROM_MAX && size > 0);
                    prop_assert_eq!(map.low as usize, 0x10_0000 - size);
                    let off = probe as usize % size;
                    let hi = (map.high + off as u64) as u32;
                    prop_assert_eq!(m.read_phys(hi, 1) as u8, img[off]);
                    prop_assert_eq!(m.peek_phys(map.low + off as u32), Some(img[off]));
                    m.write_phys(hi, 1, !img[off] as u64);
                    m.write_phys(map.low + off as u32, 1, !img[off] as u64);
                    prop_assert_eq!(m.read_phys(hi, 1) as u8, img[off]);
                    prop_assert_eq!(m.peek_phys(map.low + off as u32), Some(img[off]));
                    prop_assert_eq!(m.rom_writes(), 2);
                    prop_assert_eq!(m.load_rom(&img).unwrap_err(), RomError::AlreadyLoaded);
                    let low = map.low as usize;
                    prop_assert!(m.mem.as_slice()[..low] == before[..low], "RAM changed");
                    Ok("ok".into())
                }
            }
        },
    );
    // The generators reach what they aim at (in a run as long as CI's).
    if !full_run(120) {
        return;
    }
    let r = t.report("ROM");
    for k in ["ok", "BadSize", "NoResetCode"] {
        assert!(t.get(k) > 0, "never reached {k}: {r}");
    }
}

fn kind_rom(e: &RomError) -> String {
    format!("{e:?}")
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------
// Regression tests: the minimal inputs of what the targets above found.

/// Found by `fuzz_multiboot_aout_kludge`: the error for a segment in the
/// VGA window named [0x9fc00, 0x100000) while the loader checks
/// [0xa0000, 0xc0000) (a kernel at 0xc0000 loads fine), so the message
/// sent the user to the wrong range.
#[test]
fn reserved_area_error_names_the_range_checked() {
    let spec = AoutSpec {
        pre: 0,
        body: 0,
        load_addr: 0x9_FFF0,
        load_end_zero: false,
        short: 0,
        bss: None,
        entry_off: 0,
        extra_flags: 0,
        muts: vec![],
    };
    let mut m = machine(2, false);
    let e = loader::load(&mut m.mem, &build_aout(&spec), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, LoadError::SegmentInReservedArea { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("[0xa0000, 0xc0000)"), "{msg}");
}

/// Found by `fuzz_arbitrary_bytes` and `fuzz_multiboot_aout_kludge` with
/// the ROM mapped before the image was loaded: loads into the ROM's low
/// alias (read-only RAM) failed with a bare memory error, which loader.rs
/// calls a loader bug (it checks every range before writing). With two
/// segments it is worse: the one before the ROM was written, then the
/// write over the ROM failed, leaving a half-loaded kernel in RAM. Both are now refused up front, naming the
/// segment (or the load address) and the ROM.
#[test]
fn segment_over_a_mapped_rom_is_refused_before_any_write() {
    let spec = ElfSpec {
        segs: vec![(0x10, 0, 0), (0x10, 0, 0)],
        higher_half: false,
        gap_pages: 0,
        flags: 0,
        bad_sum: false,
        entry_off: 0,
        moved: None,
        // Segment 1's p_paddr (elf_fields: 8 ELF header fields, then six
        // per program header) in the ROM's low alias.
        fields: vec![(8 + 6 + 3, 0xF_0000)],
    };
    let img = build_elf(&spec);
    let mut m = machine(2, true);
    let before = m.mem.as_slice().to_vec();
    let e = loader::load(&mut m.mem, &img, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, LoadError::SegmentInRom { index: 1, .. }),
        "{e:?}"
    );
    assert!(m.mem.as_slice() == &before[..], "segment 0 was written");
    assert!(e.to_string().contains("ROM"), "{e}");

    let flat = LoadOptions {
        format: Some(ImageFormat::Flat),
        load_addr: Some(0xF_FF00),
    };
    let e = loader::load(&mut m.mem, &[0x90; 16], &flat).unwrap_err();
    assert!(matches!(e, LoadError::FlatInRom { .. }), "{e:?}");
    // Without a ROM, both load.
    let mut m = machine(2, false);
    assert!(loader::load(&mut m.mem, &[0x90; 16], &flat).is_ok());
    let mut m = machine(2, false);
    assert_eq!(
        loader::load(&mut m.mem, &img, &LoadOptions::default())
            .unwrap()
            .segments,
        vec![(0x10_0000, 0x10), (0xF_0000, 0x10)]
    );
}
