//! ringlab's BIOS and its disks: POST finds the ATA disks, INT 13h serves
//! them (machine/firmware/disk.S and ata.S), INT 19h boots the first
//! (boot.S). Boot sectors in `tests/guests/bios-disk*.S` load the rest of
//! themselves with INT 13h, call it and print what it answered on COM1; the
//! transcripts must be the same on every engine and are kept as insta
//! snapshots, and the tests read the disks afterwards.
//!
//! - CHS (AH=02h-04h, 08h, 15h and the no-ops) on the boot disk: reads
//!   across heads and cylinders, buffers across 64 KiB and segment ends,
//!   past the end of the disk, outside the geometry, a write read back.
//! - The extensions (AH=41h-48h) on a second disk, and drives that do not
//!   exist (82h, a floppy 00h).
//! - The translated geometries of 1, 6 and 20 GiB disks (sparse files).
//! - Writes to a read-only disk.
//! - No disk at all, a disk without 55 AA: the message, POST code EBh.
//!
//! Until the video BIOS lands INT 10h does nothing, so the screen part of
//! the snapshots is blank; it will fill in (the firmware's banner and
//! messages) when video.S does.

use machine::disk::{DiskImage, SECTOR_SIZE};
use machine::Machine;
use ringlab::engines::EngineKind;
use std::path::PathBuf;
use std::process::Command;
use tests::firmware::{
    bios_machine, boot_everywhere_inspecting, boot_machines_everywhere, machine,
};

/// A data sector of the test disks: its LBA in the first word, then a
/// pattern, and the LBA's low byte last (what the guests' `check_sectors`
/// looks at).
fn data_sector(lba: u64) -> Vec<u8> {
    let mut s: Vec<u8> = (0..SECTOR_SIZE)
        .map(|i| (lba as usize * 7 + i) as u8)
        .collect();
    s[0..2].copy_from_slice(&(lba as u16).to_le_bytes());
    s[SECTOR_SIZE - 1] = lba as u8;
    s
}

fn data_disk(sectors: u64) -> Vec<u8> {
    (0..sectors).flat_map(data_sector).collect()
}

fn sectors_of(m: &Machine, drive: usize, lba: u64, count: usize) -> Vec<u8> {
    let mut buf = vec![0; count * SECTOR_SIZE];
    m.disk(drive)
        .expect("the disk is attached")
        .read_sectors(lba, &mut buf)
        .expect("the sectors exist");
    buf
}

/// The bytes the guests write: 0, 3, 6, ... (wrapping), `len` of them.
fn written_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 3) as u8).collect()
}

/// The lines of the COM1 part of a transcript.
fn com1(t: &str) -> Vec<&str> {
    let start = t.find("--- COM1 ---\n").expect("a transcript") + 13;
    let end = t.find("--- screen ---").unwrap_or(t.len());
    t[start..end].lines().collect()
}

fn line<'a>(t: &'a str, prefix: &str) -> &'a str {
    com1(t)
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{t}"))
}

#[test]
fn chs_reads_writes_and_geometry_on_the_boot_disk() {
    let mut disks = Vec::new();
    let t = boot_everywhere_inspecting("bios-disk-chs", &|_| {}, &mut |kind, m| {
        disks.push((kind, sectors_of(m, 0, 1999, 4)));
    });
    println!("{t}");
    // AH=03h wrote LBAs 2000-2001 (C1 H15 S48-49), nothing else.
    for (kind, d) in disks {
        let (before, written, after) = (&d[..512], &d[512..1536], &d[1536..]);
        assert_eq!(written, written_pattern(1024), "{}", kind.name());
        assert_eq!(before[..2], 1999u16.to_le_bytes(), "{}", kind.name());
        assert_eq!(after[..2], 2002u16.to_le_bytes(), "{}", kind.name());
    }
    // 3024 sectors: IDENTIFY's 3 x 16 x 63, shown untranslated: the last
    // cylinder 2, 63 sectors, the last head 15, one disk; AH=15h counts
    // them all.
    let (c, h, s) = machine::devices::ata::AtaChannel::default_geometry(3024);
    assert_eq!((c, h, s), (3, 16, 63));
    let cx = ((c - 1) & 0xFF) << 8 | ((c - 1) >> 8) << 6 | s as u16;
    let dx = (h as u16 - 1) << 8 | 1;
    assert_eq!(
        line(&t, "08h"),
        format!("08h: cf=0 ax=0000 cx={cx:04x} dx={dx:04x}")
    );
    let n = c as u32 * h as u32 * s as u32;
    assert_eq!(
        line(&t, "15h"),
        format!("15h: cf=0 ax=0300 cx={:04x} dx={:04x}", n >> 16, n & 0xFFFF)
    );
    assert_eq!(
        line(&t, "02h last + 1"),
        "02h last + 1: cf=1 ax=0401 data ok"
    );
    assert!(!t.contains("BAD") && !t.contains("differs"), "{t}");
    insta::assert_snapshot!("firmware_disk_chs", t);
}

#[test]
fn extensions_on_a_second_disk_and_absent_drives() {
    const SECTORS: u64 = 64;
    let mut disks = Vec::new();
    let t = boot_everywhere_inspecting(
        "bios-disk-ext",
        // The secondary master: with no primary slave, drive 81h.
        &|m| {
            m.attach_disk(2, DiskImage::from_bytes(data_disk(SECTORS)).unwrap());
        },
        &mut |kind, m| disks.push((kind, sectors_of(m, 2, 0, SECTORS as usize))),
    );
    println!("{t}");
    let (c, h, s) = machine::devices::ata::AtaChannel::default_geometry(SECTORS);
    assert_eq!((c, h, s), (1, 1, 63));
    assert_eq!(line(&t, "stage 2"), "stage 2 loaded disks=0002");
    assert_eq!(line(&t, "41h:"), "41h: cf=0 ax=3000 bx=aa55 cx=0001");
    assert_eq!(
        line(&t, "48h:"),
        "48h: cf=0 ax=0000 size=001e flags=0003 cyl=0001 heads=0001 spt=003f \
         sectors=0040 hi=0000 bps=0200 dpte=ffff seg=ffff"
    );
    assert_eq!(line(&t, "08h"), "08h: cf=0 ax=0000 cx=003f dx=0002");
    assert_eq!(line(&t, "15h"), "15h: cf=0 ax=0300 cx=0000 dx=003f");
    // The checksum of LBAs 5-20 as the guest read them.
    let data = data_disk(SECTORS);
    let sum = data[5 * SECTOR_SIZE..21 * SECTOR_SIZE]
        .chunks(2)
        .fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
    assert_eq!(
        line(&t, "42h lba 5 x16"),
        format!("42h lba 5 x16: cf=0 ax=0000 count=0010 sum={sum:04x} data ok")
    );
    assert_eq!(
        line(&t, "42h lba 62 x4"),
        "42h lba 62 x4: cf=1 ax=0400 count=0002 data ok"
    );
    assert!(!t.contains("BAD") && !t.contains("differs"), "{t}");
    // On the disk: LBAs 10-12 and 20 written, the rest as it was.
    let pattern = written_pattern(3 * SECTOR_SIZE);
    for (kind, d) in &disks {
        for lba in 0..SECTORS as usize {
            let got = &d[lba * SECTOR_SIZE..(lba + 1) * SECTOR_SIZE];
            let want = match lba {
                10..=12 => pattern[(lba - 10) * SECTOR_SIZE..(lba - 9) * SECTOR_SIZE].to_vec(),
                20 => pattern[SECTOR_SIZE..2 * SECTOR_SIZE].to_vec(),
                _ => data_sector(lba as u64),
            };
            assert!(got == want, "{}: sector {lba}", kind.name());
        }
    }
    insta::assert_snapshot!("firmware_disk_ext", t);
}

/// A disk whose image file cannot be opened for writing, holding `bytes`;
/// None where this host cannot make one. The tests run as root, whom file
/// permissions do not stop, and `DiskImage` has no read-only disk in
/// memory: the file is made immutable (`chattr +i`, which stops root too)
/// while it is opened, then made mutable again and removed; the disk keeps
/// its read-only descriptor.
fn read_only_disk(bytes: &[u8]) -> Option<DiskImage> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "ringlab-bios-ro-{}-{}.img",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).unwrap();
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let disk = if chattr("+i") {
        let d = DiskImage::open(&path, Default::default());
        chattr("-i");
        d.ok().filter(DiskImage::read_only)
    } else {
        None
    };
    let _ = std::fs::remove_file(&path);
    disk
}

#[test]
fn writes_to_a_read_only_disk_are_write_protected() {
    const SECTORS: u64 = 16;
    if read_only_disk(&data_disk(SECTORS)).is_none() {
        tests::skip("chattr +i cannot make a read-only image file on this host's temp directory");
        return;
    }
    let mut disks = Vec::new();
    let t = boot_everywhere_inspecting(
        "bios-disk-ro",
        // The secondary slave, with no secondary master: drive 81h.
        &|m| {
            let d = read_only_disk(&data_disk(SECTORS)).expect("made before");
            m.attach_disk(3, d);
        },
        &mut |kind, m| disks.push((kind, sectors_of(m, 3, 0, SECTORS as usize))),
    );
    println!("{t}");
    assert_eq!(line(&t, "stage 2"), "stage 2 loaded disks=0002");
    assert_eq!(
        line(&t, "42h"),
        "42h lba 1 x2: cf=0 ax=0000 count=0002 data ok"
    );
    assert_eq!(line(&t, "43h"), "43h lba 1 x2: cf=1 ax=0300 count=0000");
    assert_eq!(line(&t, "03h"), "03h c0 h0 s2 x2: cf=1 ax=0300");
    for (kind, d) in disks {
        assert!(d == data_disk(SECTORS), "{}: the disk changed", kind.name());
    }
    insta::assert_snapshot!("firmware_disk_read_only", t);
}

/// The end of a boot that found nothing to boot: the message on port 0xE9
/// (and the screen), POST code EBh last, halted.
fn assert_boot_failed(label: &str, t: &str, ends: &[(EngineKind, String, Vec<u8>)], msg: &str) {
    assert!(t.starts_with("stop: halted"), "{label}: {t}");
    for (kind, e9, post) in ends {
        assert!(
            e9.ends_with(&format!("{msg}\r\nSystem halted.\r\n")),
            "{label} on {}: {e9:?}",
            kind.name()
        );
        assert_eq!(post.last(), Some(&0xEB), "{label} on {}", kind.name());
    }
}

#[test]
fn no_disk_at_all_halts_with_a_message() {
    let mut ends = Vec::new();
    let t = boot_machines_everywhere("no disk", &bios_machine, &mut |kind, m| {
        let e9 = String::from_utf8_lossy(m.debugcon_output()).into_owned();
        ends.push((kind, e9, m.post_codes().to_vec()));
    });
    assert_boot_failed("no disk", &t, &ends, "No bootable device: no hard disk.");
    assert!(ends[0].1.contains("hard disks: 0"), "{:?}", ends[0].1);
    insta::assert_snapshot!("firmware_disk_no_disk", t);
}

#[test]
fn a_disk_without_a_boot_signature_halts_with_a_message() {
    // Four sectors of code-like bytes, no 55 AA at 510.
    let image: Vec<u8> = (0..4 * SECTOR_SIZE).map(|i| (i % 251) as u8).collect();
    let mut ends = Vec::new();
    let t = boot_machines_everywhere(
        "no signature",
        &|| machine(&image, &|_| {}),
        &mut |kind, m| {
            let e9 = String::from_utf8_lossy(m.debugcon_output()).into_owned();
            ends.push((kind, e9, m.post_codes().to_vec()));
        },
    );
    assert_boot_failed(
        "no signature",
        &t,
        &ends,
        "Boot failed: disk 80h has no boot signature (55 AA at byte 510).",
    );
    insta::assert_snapshot!("firmware_disk_no_signature", t);
}

/// Sparse image files in the temp directory, removed on drop.
struct SparseImages(Vec<PathBuf>);

impl Drop for SparseImages {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A sparse image of `sectors` with `data_sector(n)` at each n of `marked`.
fn sparse_image(tag: &str, sectors: u64, marked: &[u64]) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let path = std::env::temp_dir().join(format!("ringlab-bios-{tag}-{}.img", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(sectors * SECTOR_SIZE as u64).unwrap();
    for &n in marked {
        f.write_all_at(&data_sector(n), n * SECTOR_SIZE as u64)
            .unwrap();
    }
    path
}

#[test]
fn large_disks_get_translated_geometries() {
    const GIB: u64 = 1 << 21; // sectors
                              // (size, INT 13h's geometry) by the rule in disk.S's header:
                              // 1 GiB: IDENTIFY 2080 x 16 x 63, "large": 520 x 64 x 63;
                              // 6 GiB: IDENTIFY 12483 x 16 x 63, LBA-assisted: 783 x 255 x 63;
                              // 20 GiB: IDENTIFY 16383 x 16 x 63, LBA-assisted: 1024 x 255 x 63.
    let disks = [
        ("1g", GIB, (520u64, 64u64, 63u64)),
        ("6g", 6 * GIB, (783, 255, 63)),
        ("20g", 20 * GIB, (1024, 255, 63)),
    ];
    let images = SparseImages(
        disks
            .iter()
            .map(|&(tag, n, (c, h, s))| sparse_image(tag, n, &[c * h * s - 1, n - 1]))
            .collect(),
    );
    let t = boot_everywhere_inspecting(
        "bios-disk-geometry",
        &|m| {
            for (i, p) in images.0.iter().enumerate() {
                m.attach_disk(i + 1, DiskImage::open(p, Default::default()).unwrap());
            }
        },
        &mut |_, _| {},
    );
    println!("{t}");
    let lines = com1(&t);
    assert_eq!(lines[0], "stage 2 loaded disks=0004");
    let expected = [
        [
            "08h: cf=0 ax=0000 cx=07bf dx=3f04",
            "15h: cf=0 ax=0300 cx=001f dx=fe00",
            "48h: cf=0 ax=0000 flags=0003 cyl=0820 heads=0010 spt=003f sectors=0000 hi=0020",
        ],
        [
            "08h: cf=0 ax=0000 cx=0eff dx=fe04",
            "15h: cf=0 ax=0300 cx=00bf dx=f04f",
            "48h: cf=0 ax=0000 flags=0003 cyl=30c3 heads=0010 spt=003f sectors=0000 hi=00c0",
        ],
        [
            "08h: cf=0 ax=0000 cx=ffff dx=fe04",
            "15h: cf=0 ax=0300 cx=00fb dx=0400",
            "48h: cf=0 ax=0000 flags=0001 cyl=3fff heads=0010 spt=003f sectors=0000 hi=0280",
        ],
    ];
    for (i, want) in expected.iter().enumerate() {
        let block = &lines[1 + i * 6..1 + (i + 1) * 6];
        assert_eq!(block[0], format!(" drive={:04x}", 0x81 + i));
        assert_eq!(&block[1..4], want, "drive {:x}h", 0x81 + i);
        assert_eq!(block[4], "02h last chs: cf=0 ax=0001 data ok");
        assert_eq!(block[5], "42h last lba: cf=0 ax=0000 data ok");
    }
    insta::assert_snapshot!("firmware_disk_geometry", t);
}
