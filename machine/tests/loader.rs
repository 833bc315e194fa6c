//! The image loaders: flat binaries and boot sectors in real mode, multiboot
//! v1 kernels (ELF32 and the a.out kludge) in protected mode, and a precise
//! error for each kind of malformed image. The ELF images are built here byte
//! by byte, so each test shows exactly which field it breaks.

use machine::cpu::{cr0, Seg, Segment, EAX, EBX, EDX, ESP};
use machine::{loader::*, GuestMemory};

const RAM: usize = 4 << 20;

fn mem() -> GuestMemory {
    GuestMemory::new(RAM).unwrap()
}

fn put16(v: &mut [u8], off: usize, x: u16) {
    v[off..off + 2].copy_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut [u8], off: usize, x: u32) {
    v[off..off + 4].copy_from_slice(&x.to_le_bytes());
}

/// A multiboot header (spec 3.1.2) with a correct checksum; with `addr`, the
/// five address fields of flags bit 16 follow.
fn mb_header(flags: u32, addr: Option<[u32; 5]>) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0x1BAD_B002u32.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    let sum = 0u32.wrapping_sub(0x1BAD_B002u32.wrapping_add(flags));
    h.extend_from_slice(&sum.to_le_bytes());
    for f in addr.into_iter().flatten() {
        h.extend_from_slice(&f.to_le_bytes());
    }
    h
}

/// One program header and the bytes it loads.
struct Ph {
    ty: u32,
    vaddr: u32,
    paddr: u32,
    data: Vec<u8>,
    memsz: u32,
}

fn load_seg(paddr: u32, data: &[u8], memsz: u32) -> Ph {
    Ph {
        ty: 1,
        vaddr: paddr,
        paddr,
        data: data.to_vec(),
        memsz,
    }
}

/// Offsets of interesting fields in an image built by `elf32`.
const E_CLASS: usize = 4;
const E_MACHINE: usize = 18;
const E_PHOFF: usize = 28;
const E_PHNUM: usize = 44;
const PHDRS: usize = 52;
const P_OFFSET: usize = 4;
const P_FILESZ: usize = 16;

/// An ELF32 i386 executable: the 52-byte header, the program headers right
/// after it, a multiboot header (flags: page align + memory info), then each
/// segment's bytes, 16-byte aligned.
fn elf32(entry: u32, phs: &[Ph]) -> Vec<u8> {
    let mut v = vec![0u8; PHDRS + 32 * phs.len()];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 1; // ELFCLASS32
    v[5] = 1; // ELFDATA2LSB
    v[6] = 1; // EV_CURRENT
    put16(&mut v, 16, 2); // ET_EXEC
    put16(&mut v, E_MACHINE, 3); // EM_386
    put32(&mut v, 20, 1);
    put32(&mut v, 24, entry);
    put32(&mut v, E_PHOFF, PHDRS as u32);
    put16(&mut v, 40, 52);
    put16(&mut v, 42, 32);
    put16(&mut v, E_PHNUM, phs.len() as u16);
    v.extend(mb_header(0b11, None));
    for (i, ph) in phs.iter().enumerate() {
        v.resize(v.len().next_multiple_of(16), 0);
        let off = v.len() as u32;
        v.extend_from_slice(&ph.data);
        let p = PHDRS + 32 * i;
        put32(&mut v, p, ph.ty);
        put32(&mut v, p + P_OFFSET, off);
        put32(&mut v, p + 8, ph.vaddr);
        put32(&mut v, p + 12, ph.paddr);
        put32(&mut v, p + P_FILESZ, ph.data.len() as u32);
        put32(&mut v, p + 20, ph.memsz);
        put32(&mut v, p + 24, 5); // PF_R | PF_X
        put32(&mut v, p + 28, 0x1000);
    }
    v
}

fn code() -> Vec<u8> {
    // cli; hlt; then a recognisable pattern.
    let mut c = vec![0xFA, 0xF4];
    c.extend((0..62u8).map(|i| i.wrapping_mul(7).wrapping_add(1)));
    c
}

/// Text at 1 MiB, and a data segment at 1 MiB + 8 KiB with 16 bytes of data
/// and 4 KiB of BSS.
fn good_kernel() -> Vec<u8> {
    elf32(
        0x10_0000,
        &[
            load_seg(0x10_0000, &code(), 64),
            Ph {
                ty: 6, // PT_PHDR: not loaded
                vaddr: 0x50_0000,
                paddr: 0x50_0000,
                data: vec![],
                memsz: 0,
            },
            load_seg(0x10_2000, &[0xD0; 16], 0x1000),
        ],
    )
}

fn multiboot() -> LoadOptions {
    LoadOptions {
        format: Some(ImageFormat::Multiboot),
        load_addr: None,
    }
}

fn load_err(image: &[u8]) -> LoadError {
    load(&mut mem(), image, &LoadOptions::default()).unwrap_err()
}

fn read_cstr(m: &GuestMemory, mut addr: u64) -> String {
    let mut s = String::new();
    while let Some(b) = m.read_u8(addr).filter(|&b| b != 0) {
        s.push(b as char);
        addr += 1;
    }
    s
}

#[test]
fn elf_kernel_loads_segments_zeroes_bss_and_enters_protected_mode() {
    let mut m = mem();
    // Garbage where the BSS goes, to see it zeroed.
    m.fill(0x10_2000, 0x2000, 0xCC).unwrap();
    let image = good_kernel();
    assert_eq!(detect_format(&image), Some(ImageFormat::Multiboot));
    let l = load(&mut m, &image, &LoadOptions::default()).unwrap();

    assert_eq!(l.format, ImageFormat::Multiboot);
    assert_eq!(l.segments, vec![(0x10_0000, 64), (0x10_2000, 0x1000)]);
    assert_eq!(l.summary, "multiboot ELF32, 2 segments, entry 0x100000");
    assert_eq!(m.slice(0x10_0000, 64).unwrap(), &code()[..]);
    assert_eq!(m.slice(0x10_2000, 16).unwrap(), &[0xD0; 16]);
    assert!(m
        .slice(0x10_2010, 0x1000 - 16)
        .unwrap()
        .iter()
        .all(|&b| b == 0));
    // Nothing past memsz is touched.
    assert_eq!(m.read_u8(0x10_3000), Some(0xCC));

    // Machine state, spec 3.2.
    let s = &l.entry;
    assert_eq!(s.eip, 0x10_0000);
    assert_eq!(s.regs[EAX], MULTIBOOT_BOOTLOADER_MAGIC);
    assert_eq!(s.regs[EAX], 0x2BAD_B002);
    assert_ne!(s.cr0 & cr0::PE, 0);
    assert_eq!(s.cr0 & cr0::PG, 0);
    assert_eq!(s.seg(Seg::Cs).selector, 0x08);
    assert!(s.seg(Seg::Cs).is_flat() && s.seg(Seg::Ds).is_flat());
    assert_eq!(s.mode_name(), "prot32");

    // The boot GDT the caches came from.
    let gdt = s.gdtr.base as u64;
    assert_eq!(gdt, 0x500);
    assert_eq!(s.gdtr.limit, 23);
    assert_eq!(m.read_u64(gdt), Some(0));
    assert_eq!(m.read_u64(gdt + 8), Some(0x00CF_9A00_0000_FFFF));
    assert_eq!(m.read_u64(gdt + 16), Some(0x00CF_9200_0000_FFFF));
    let accessed = machine::cpu::access::ACCESSED;
    let mut cs = Segment::from_descriptor(0x08, m.read_u64(gdt + 8).unwrap());
    cs.access |= accessed;
    assert_eq!(&cs, s.seg(Seg::Cs));
    let mut ds = Segment::from_descriptor(0x10, m.read_u64(gdt + 16).unwrap());
    ds.access |= accessed;
    assert_eq!(&ds, s.seg(Seg::Ss));

    // multiboot_info, spec 3.3.
    let info = s.regs[EBX] as u64;
    assert!(info + 116 <= 0x7C00);
    let flags = m.read_u32(info).unwrap();
    assert_eq!(flags, 1 | 1 << 6 | 1 << 9);
    assert_eq!(m.read_u32(info + 4), Some(640));
    assert_eq!(
        m.read_u32(info + 8),
        Some(((RAM - (1 << 20)) / 1024) as u32)
    );
    assert_eq!(m.read_u32(info + 16), Some(0), "no cmdline");
    assert_eq!(m.read_u32(info + 20), Some(0), "no modules");
    let mmap_len = m.read_u32(info + 44).unwrap() as u64;
    let mmap = m.read_u32(info + 48).unwrap() as u64;
    let mut entries = Vec::new();
    let mut e = mmap;
    while e < mmap + mmap_len {
        let size = m.read_u32(e).unwrap() as u64;
        assert_eq!(size, 20);
        entries.push((
            m.read_u64(e + 4).unwrap(),
            m.read_u64(e + 12).unwrap(),
            m.read_u32(e + 20).unwrap(),
        ));
        e += size + 4;
    }
    assert_eq!(
        entries,
        vec![
            (0, 0x9_FC00, 1),
            (0x9_FC00, 0x400, 2),
            (0xF_0000, 0x1_0000, 2),
            (0x10_0000, RAM as u64 - 0x10_0000, 1),
            (0xFEC0_0000, 0x1000, 2),
            (0xFEE0_0000, 0x1000, 2),
            (0xFFFF_0000, 0x1_0000, 2),
        ]
    );
    let name = m.read_u32(info + 64).unwrap() as u64;
    assert_eq!(read_cstr(&m, name), "ringlab");
    // The block lies in memory the map calls available, outside the kernel.
    for a in [gdt, info, mmap, name] {
        assert!((0x500..0x7C00).contains(&a), "{a:#x}");
    }
}

#[test]
fn higher_half_entry_is_translated_to_the_physical_address() {
    // Linked at 0xC0100000, loaded at 1 MiB: the entry runs with paging off,
    // so it is entered at the physical address, as GRUB 2 does.
    let mut seg = load_seg(0x10_0000, &code(), 64);
    seg.vaddr = 0xC010_0000;
    let l = load(&mut mem(), &elf32(0xC010_0010, &[seg]), &multiboot()).unwrap();
    assert_eq!(l.entry.eip, 0x10_0010);
    assert_eq!(l.summary, "multiboot ELF32, 1 segment, entry 0x100010");
}

#[test]
fn boot_information_moves_out_of_a_kernel_loaded_low() {
    let mut m = mem();
    let image = elf32(0x600, &[load_seg(0x0, &[0x90; 0x1000], 0x1000)]);
    let l = load(&mut m, &image, &multiboot()).unwrap();
    assert_eq!(l.entry.gdtr.base, 0x1000);
    assert!(l.entry.regs[EBX] >= 0x1000);
    assert_eq!(m.read_u8(0x500), Some(0x90), "kernel bytes not overwritten");
    assert_eq!(
        read_cstr(
            &m,
            m.read_u32(l.entry.regs[EBX] as u64 + 64).unwrap() as u64
        ),
        "ringlab"
    );
}

#[test]
fn aout_kludge_kernel_uses_the_header_address_fields() {
    // File: 16 bytes of prologue, the header at offset 16, then code.
    // header_addr - load_addr = 8, so loading starts at file offset 8.
    let load_addr = 0x20_0000;
    let mut image = vec![0xEE; 16];
    let body_len = 16 + 32 + 64 - 8; // bytes from file offset 8 to the end
    let fields = [
        load_addr + 8,                       // header_addr
        load_addr,                           // load_addr
        load_addr + body_len as u32,         // load_end_addr
        load_addr + body_len as u32 + 0x100, // bss_end_addr
        load_addr + 40,                      // entry_addr: first code byte
    ];
    image.extend(mb_header(1 << 16 | 1 << 1, Some(fields)));
    image.extend(code());
    assert_eq!(image.len(), 8 + body_len);

    let mut m = mem();
    m.fill(load_addr as u64, 0x1000, 0xCC).unwrap();
    let l = load(&mut m, &image, &LoadOptions::default()).unwrap();
    assert_eq!(l.segments, vec![(load_addr, body_len as u32 + 0x100)]);
    assert_eq!(
        l.summary,
        format!(
            "multiboot a.out kludge, 1 segment, entry {:#x}",
            load_addr + 40
        )
    );
    assert_eq!(m.slice(load_addr as u64, body_len).unwrap(), &image[8..]);
    assert_eq!(m.read_u8(load_addr as u64 + 40), Some(0xFA));
    let bss = m.slice(load_addr as u64 + body_len as u64, 0x100).unwrap();
    assert!(bss.iter().all(|&b| b == 0));
    assert_eq!(
        m.read_u8(load_addr as u64 + body_len as u64 + 0x100),
        Some(0xCC)
    );
    assert_eq!(l.entry.eip, load_addr + 40);
    assert_eq!(l.entry.regs[EAX], MULTIBOOT_BOOTLOADER_MAGIC);
    assert_eq!(m.read_u32(l.entry.regs[EBX] as u64 + 4), Some(640));
}

#[test]
fn aout_kludge_with_zero_end_fields_loads_the_whole_file() {
    let mut image = mb_header(1 << 16, Some([0x10_0000, 0x10_0000, 0, 0, 0x10_0020]));
    image.extend(code());
    let mut m = mem();
    let l = load(&mut m, &image, &multiboot()).unwrap();
    assert_eq!(l.segments, vec![(0x10_0000, image.len() as u32)]);
    assert_eq!(m.slice(0x10_0000, image.len()).unwrap(), &image[..]);
}

#[test]
fn aout_kludge_errors() {
    let with = |fields: [u32; 5]| {
        let mut image = mb_header(1 << 16, Some(fields));
        image.extend(code());
        image
    };
    let base = 0x10_0000;
    assert_eq!(
        load_err(&with([base - 4, base, 0, 0, base])),
        LoadError::HeaderAddrBelowLoadAddr {
            header_addr: base - 4,
            load_addr: base
        }
    );
    assert_eq!(
        load_err(&with([base + 8, base, 0, 0, base + 8])),
        LoadError::LoadBeforeFileStart {
            before: 8,
            offset: 0
        }
    );
    assert_eq!(
        load_err(&with([base, base, base, 0, base])),
        LoadError::LoadEndNotAboveLoadAddr {
            load_addr: base,
            load_end_addr: base
        }
    );
    assert_eq!(
        load_err(&with([base, base, base + 0x1000, 0, base])),
        LoadError::AoutTruncated {
            start: 0,
            end: 0x1000,
            len: 96
        }
    );
    assert_eq!(
        load_err(&with([base, base, base + 64, base + 32, base])),
        LoadError::BssEndBelowLoadEnd {
            bss_end_addr: base + 32,
            load_end: base as u64 + 64
        }
    );
    assert_eq!(
        load_err(&with([base, base, 0, 0, base + 96])),
        LoadError::EntryOutsideSegments { entry: base + 96 }
    );
    assert_eq!(
        load_err(&with([0x3F_FF00, 0x3F_FF00, 0, 0x40_0100, 0x3F_FF00])),
        LoadError::SegmentOutsideRam {
            index: 0,
            start: 0x3F_FF00,
            end: 0x40_0100,
            ram: RAM
        }
    );
    // The address fields themselves cut off by the end of the image.
    let mut short = mb_header(1 << 16, None);
    short.extend([0; 8]);
    assert_eq!(
        load_err(&short),
        LoadError::HeaderTruncated {
            offset: 0,
            need: 32,
            end: 20
        }
    );
}

#[test]
fn empty_image() {
    assert_eq!(load_err(&[]), LoadError::Empty);
    assert_eq!(
        load(&mut mem(), &[], &multiboot()).unwrap_err(),
        LoadError::Empty
    );
    assert_eq!(detect_format(&[]), None);
}

#[test]
fn truncated_elf_header() {
    // The ELF ident, then a multiboot header, and nothing else: 28 bytes.
    let mut image = good_kernel();
    image.truncate(16);
    image.extend(mb_header(0, None));
    assert_eq!(load_err(&image), LoadError::ElfHeaderTruncated { len: 28 });
}

#[test]
fn truncated_program_header_table() {
    let mut image = good_kernel();
    put16(&mut image, E_PHNUM, 300);
    let err = load_err(&image);
    assert_eq!(
        err,
        LoadError::PhdrsTruncated {
            offset: 52,
            count: 300,
            entsize: 32,
            end: 52 + 300 * 32,
            len: image.len()
        }
    );
}

#[test]
fn truncated_segment() {
    let mut image = good_kernel();
    let len = image.len();
    // Segment 2's file bytes run 8 bytes past the end of the file.
    let p = PHDRS + 2 * 32;
    let off = u32::from_le_bytes(image[p + P_OFFSET..p + P_OFFSET + 4].try_into().unwrap());
    put32(&mut image, p + P_FILESZ, (len as u32 - off) + 8);
    let err = load_err(&image);
    assert_eq!(
        err,
        LoadError::SegmentTruncated {
            index: 2,
            start: off,
            end: len as u64 + 8,
            len
        }
    );
    assert!(err.to_string().contains("segment 2 truncated"), "{err}");
}

#[test]
fn filesz_larger_than_memsz() {
    let image = elf32(0x10_0000, &[load_seg(0x10_0000, &code(), 32)]);
    assert_eq!(
        load_err(&image),
        LoadError::FileszAboveMemsz {
            index: 0,
            filesz: 64,
            memsz: 32
        }
    );
}

#[test]
fn segment_outside_ram() {
    let image = elf32(
        0x10_0000,
        &[
            load_seg(0x10_0000, &code(), 64),
            load_seg(0x3F_F000, &[1; 16], 0x2000),
        ],
    );
    let err = load_err(&image);
    assert_eq!(
        err,
        LoadError::SegmentOutsideRam {
            index: 1,
            start: 0x3F_F000,
            end: 0x40_1000,
            ram: RAM
        }
    );
    assert_eq!(
        err.to_string(),
        "segment 1 at physical [0x3ff000, 0x401000) lies outside RAM (0x400000 bytes)"
    );
}

#[test]
fn segment_in_the_reserved_low_area() {
    let image = elf32(0xB_8000, &[load_seg(0xB_8000, &code(), 64)]);
    assert_eq!(
        load_err(&image),
        LoadError::SegmentInReservedArea {
            index: 0,
            start: 0xB_8000,
            end: 0xB_8040
        }
    );
}

#[test]
fn overlapping_segments_are_rejected_before_anything_is_written() {
    let image = elf32(
        0x10_0000,
        &[
            load_seg(0x10_1000, &[2; 16], 0x100),
            load_seg(0x10_0000, &code(), 0x1001),
        ],
    );
    let mut m = mem();
    let err = load(&mut m, &image, &LoadOptions::default()).unwrap_err();
    assert_eq!(
        err,
        LoadError::SegmentsOverlap {
            a: 0,
            a_start: 0x10_1000,
            a_end: 0x10_1100,
            b: 1,
            b_start: 0x10_0000,
            b_end: 0x10_1001
        }
    );
    assert!(m.slice(0, 0x20_0000).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn bad_checksum() {
    let mut image = good_kernel();
    // The multiboot header follows the three program headers.
    let h = PHDRS + 3 * 32;
    assert_eq!(&image[h..h + 4], &0x1BAD_B002u32.to_le_bytes());
    put32(&mut image, h + 8, 0);
    let sum = 0x1BAD_B002u32 + 0b11;
    assert_eq!(
        load(&mut mem(), &image, &multiboot()).unwrap_err(),
        LoadError::BadChecksum { offset: h, sum }
    );
    // Without a valid header, auto-detection sees a flat binary.
    assert_eq!(detect_format(&image), Some(ImageFormat::Flat));
}

#[test]
fn elf64_is_not_a_32_bit_elf() {
    let mut image = good_kernel();
    image[E_CLASS] = 2;
    let err = load_err(&image);
    assert_eq!(err, LoadError::NotElf32(2));
    assert!(err.to_string().starts_with("not a 32-bit ELF"), "{err}");
}

#[test]
fn wrong_machine() {
    let mut image = good_kernel();
    put16(&mut image, E_MACHINE, 62); // EM_X86_64
    assert_eq!(load_err(&image), LoadError::WrongMachine(62));
}

#[test]
fn not_an_executable() {
    let mut image = good_kernel();
    put16(&mut image, 16, 3); // ET_DYN
    assert_eq!(load_err(&image), LoadError::NotExecutable(3));
}

#[test]
fn multiboot_header_without_elf_or_address_fields() {
    let mut image = vec![0x90; 32];
    image.extend(mb_header(0, None));
    assert_eq!(load_err(&image), LoadError::NotElf);
}

#[test]
fn no_load_segments() {
    let image = elf32(0x10_0000, &[]);
    assert_eq!(load_err(&image), LoadError::NoLoadSegments);
}

#[test]
fn entry_outside_segments() {
    let image = elf32(0x20_0000, &[load_seg(0x10_0000, &code(), 64)]);
    let err = load_err(&image);
    assert_eq!(err, LoadError::EntryOutsideSegments { entry: 0x20_0000 });
    assert_eq!(
        err.to_string(),
        "entry point 0x200000 is not inside any loaded segment"
    );
}

#[test]
fn required_flags_ringlab_cannot_satisfy() {
    let mut image = good_kernel();
    let h = PHDRS + 3 * 32;
    let set_flags = |image: &mut Vec<u8>, flags: u32| {
        put32(image, h + 4, flags);
        put32(
            image,
            h + 8,
            0u32.wrapping_sub(0x1BAD_B002u32.wrapping_add(flags)),
        );
    };
    set_flags(&mut image, 0b111);
    assert_eq!(
        load_err(&image),
        LoadError::VideoModeRequired { flags: 0b111 }
    );
    set_flags(&mut image, 1 << 5 | 1 << 9 | 1);
    let err = load_err(&image);
    assert_eq!(
        err,
        LoadError::UnsupportedRequiredFlag {
            flags: 1 << 5 | 1 << 9 | 1,
            bit: 5
        }
    );
    assert!(err.to_string().contains("bit 5"), "{err}");
    // Optional bits 17-31 are ignored.
    set_flags(&mut image, 0b11 | 1 << 20);
    assert!(load(&mut mem(), &image, &LoadOptions::default()).is_ok());
}

#[test]
fn header_past_8_kib_is_not_found() {
    // A valid kernel whose multiboot header sits at offset 8192.
    let mut image = good_kernel();
    let h = PHDRS + 3 * 32;
    image[h..h + 12].fill(0);
    image.resize(8192, 0);
    image.extend(mb_header(0b11, None));
    assert_eq!(detect_format(&image), Some(ImageFormat::Flat));
    assert_eq!(
        load(&mut mem(), &image, &multiboot()).unwrap_err(),
        LoadError::NoMultibootHeader
    );
    assert_eq!(
        LoadError::NoMultibootHeader.to_string(),
        "no multiboot header in the first 8 KiB"
    );
    // Ending exactly at 8 KiB, it counts.
    image.truncate(8192 - 12);
    image.extend(mb_header(0b11, None));
    assert_eq!(detect_format(&image), Some(ImageFormat::Multiboot));
}

#[test]
fn unaligned_header_is_not_found() {
    let mut image = vec![0; 2];
    image.extend(mb_header(0, None));
    assert_eq!(detect_format(&image), Some(ImageFormat::Flat));
}

#[test]
fn load_address_with_multiboot_is_an_error() {
    let opts = LoadOptions {
        format: None,
        load_addr: Some(0x10_0000),
    };
    assert_eq!(
        load(&mut mem(), &good_kernel(), &opts).unwrap_err(),
        LoadError::LoadAddrWithMultiboot(0x10_0000)
    );
}

#[test]
fn multiboot_forced_on_a_flat_image() {
    assert_eq!(
        load(&mut mem(), &[0xF4; 512], &multiboot()).unwrap_err(),
        LoadError::NoMultibootHeader
    );
}

fn boot_sector() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0] = 0xF4;
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

#[test]
fn boot_sector_at_7c00_in_real_mode() {
    let mut m = mem();
    m.mark_code_page(7);
    let image = boot_sector();
    assert_eq!(detect_format(&image), Some(ImageFormat::Flat));
    let l = load(&mut m, &image, &LoadOptions::default()).unwrap();
    assert_eq!(l.format, ImageFormat::Flat);
    assert_eq!(l.segments, vec![(0x7C00, 512)]);
    assert_eq!(
        l.summary,
        "boot sector, 512 bytes at 0x7c00, entry 0000:7c00 (real mode)"
    );
    assert_eq!(m.slice(0x7C00, 512).unwrap(), &image[..]);
    let s = &l.entry;
    assert!(!s.protected());
    assert_eq!(s.seg(Seg::Cs).selector, 0);
    assert_eq!(s.eip, 0x7C00);
    assert_eq!(s.pc_linear(), 0x7C00);
    assert_eq!(s.regs[EDX], 0x80);
    assert_eq!(s.regs[ESP], 0x7C00);
    // The write reached engines that cached code from that page.
    assert_eq!(m.take_written_code_pages(), vec![7]);
}

#[test]
fn flat_binary_elsewhere_enters_at_segment_and_small_offset() {
    let mut m = mem();
    let image = vec![0x90; 3000];
    let opts = LoadOptions {
        format: Some(ImageFormat::Flat),
        load_addr: Some(0x1_2345),
    };
    let l = load(&mut m, &image, &opts).unwrap();
    assert_eq!(
        l.summary,
        "flat binary, 3000 bytes at 0x12345, entry 1234:0005 (real mode)"
    );
    assert_eq!(l.entry.seg(Seg::Cs).selector, 0x1234);
    assert_eq!(l.entry.seg(Seg::Cs).base, 0x1_2340);
    assert_eq!(l.entry.eip, 5);
    assert_eq!(l.entry.pc_linear(), 0x1_2345);
    assert_eq!(m.slice(0x1_2345, 3000).unwrap(), &image[..]);
    assert_eq!(m.read_u8(0x1_2344), Some(0));

    // A boot sector forced to load elsewhere is still called one.
    let opts = LoadOptions {
        format: None,
        load_addr: Some(0x600),
    };
    let l = load(&mut m, &boot_sector(), &opts).unwrap();
    assert_eq!(
        l.summary,
        "boot sector, 512 bytes at 0x600, entry 0060:0000 (real mode)"
    );
}

#[test]
fn flat_image_forced_on_a_multiboot_kernel_loads_the_raw_file() {
    let image = good_kernel();
    let opts = LoadOptions {
        format: Some(ImageFormat::Flat),
        load_addr: None,
    };
    let mut m = mem();
    let l = load(&mut m, &image, &opts).unwrap();
    assert_eq!(l.format, ImageFormat::Flat);
    assert_eq!(m.slice(0x7C00, image.len()).unwrap(), &image[..]);
}

#[test]
fn flat_load_address_errors() {
    let at = |addr| LoadOptions {
        format: None,
        load_addr: Some(addr),
    };
    let err = load(&mut mem(), &boot_sector(), &at(0x10_0000)).unwrap_err();
    assert_eq!(err, LoadError::FlatAboveRealMode(0x10_0000));
    assert!(err.to_string().contains("real mode"), "{err}");
    let mut m = GuestMemory::new(1 << 20).unwrap();
    assert_eq!(
        load(&mut m, &boot_sector(), &at(0xFFF00)).unwrap_err(),
        LoadError::FlatTooBig {
            addr: 0xFFF00,
            len: 512,
            ram: 1 << 20
        }
    );
}

#[test]
fn one_mib_of_ram_has_no_extended_memory_entry() {
    let mut m = GuestMemory::new(1 << 20).unwrap();
    let image = elf32(0x8000, &[load_seg(0x8000, &code(), 64)]);
    let l = load(&mut m, &image, &LoadOptions::default()).unwrap();
    let info = l.entry.regs[EBX] as u64;
    assert_eq!(m.read_u32(info + 8), Some(0));
    // The EBDA-low memory, EBDA, ROM, and the APIC and high ROM ranges.
    assert_eq!(m.read_u32(info + 44), Some(6 * 24));
}

#[test]
fn no_room_for_boot_information() {
    // A kernel covering all of 0-32 KiB leaves no spot below 0x7C00.
    let image = elf32(0x0, &[load_seg(0x0, &code(), 0x8000)]);
    let mut m = mem();
    assert_eq!(
        load(&mut m, &image, &LoadOptions::default()).unwrap_err(),
        LoadError::NoRoomForBootInfo
    );
    assert_eq!(m.read_u8(0), Some(0), "nothing written");
}
