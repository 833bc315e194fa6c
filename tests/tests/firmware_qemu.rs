//! The same boot sectors on QEMU with SeaBIOS (issue 17): the firmware
//! tests' boot sectors (tests/guests/bios-*.S), booted from the first hard
//! disk by ringlab's BIOS on the interpreter (the other engines are held
//! to the interpreter by firmware_console.rs and the others) and by
//! SeaBIOS on `qemu-system-i386` (tests::qemu), must leave the same
//! exit code, the same COM1 output and the same text on the screen.
//!
//! What is compared:
//!
//! - The exit code (AL written to port 0xF4).
//! - COM1, line by line, except the words a guest's [`Differs`] list
//!   names: where SeaBIOS legitimately answers otherwise (a different
//!   machine, or a detail BIOSes have always disagreed on), each with its
//!   reason. A listed difference that does not occur fails too, so the
//!   list stays true.
//! - The screen, for the guests that draw it: all eight text pages of
//!   the 32 KiB window at 0xB8000, characters and attributes. These guests
//!   start with INT 10h AH=00h (set mode 3), which clears every page, so
//!   the whole window is theirs and neither BIOS's banner is left. The
//!   other guests (disk, system services) write nothing on the screen: it
//!   shows only each firmware's banner ("ringlab BIOS", "SeaBIOS
//!   (version ...)"), which differs by design, so it is not compared.
//!
//! Not run here: the keyboard guests (keys are typed into ringlab's 8042
//! before the machine starts; QEMU has no such scripted input), the
//! guests that measure time (bios-sys-wait, bios-sys-rtc: virtual time on
//! ringlab, host time on QEMU), bios-sys-serial (INT 14h receive
//! timeouts are loop counts, and its input is queued by the test),
//! bios-sys-misc (it calls INT 15h AH=87h and 89h, which ringlab refuses
//! and SeaBIOS carries out: block move and switch to protected mode with
//! the guest's garbage descriptors), bios-sys-mp (the MP tables are
//! ringlab's own; SeaBIOS puts its floating pointer in the F segment),
//! and the disk guests that need disks the harness attaches in ringlab
//! only (bios-disk-ext, -ro, -geometry).
//!
//! Without `qemu-system-i386` every test skips (tests::skip) with the
//! reason; scripts/test.sh installs it before the host tests.

use machine::cpu::CpuState;
use machine::devices::vga::cp437;
use machine::Stop;
use ringlab::engines::EngineKind;
use std::time::Duration;
use tests::firmware::disk_image;
use tests::platform::run_machine;
use tests::qemu::{self, TEXT_WINDOW, TEXT_WINDOW_LEN};

/// COM1 lines starting with `line` that differ between ringlab and
/// SeaBIOS in `what`, and why. The rest must match.
struct Differs {
    line: &'static str,
    what: What,
    why: &'static str,
}

/// What differs in a [`Differs`] line.
enum What {
    /// The words (split at white space, counted from 0) at these indices.
    Words(&'static [usize]),
    /// Everything after the prefix.
    Rest,
    /// Every line starting with the prefix, however many each side has:
    /// they are left out on both.
    Lines,
}

/// Attributes that differ in a row of the screen (page, row), and why;
/// the characters must still match.
struct AttrsDiffer {
    page: usize,
    row: usize,
    why: &'static str,
}

/// One guest and what may differ.
struct Case {
    guest: &'static str,
    /// Compare the screen (the guest set the mode, so it is all its own).
    screen: bool,
    differs: &'static [Differs],
    attrs_differ: &'static [AttrsDiffer],
}

const PAGES: usize = 8;
const PAGE_BYTES: usize = 4096;
const ROWS: usize = 25;
const COLS: usize = 80;

/// Row `row` of text page `page` in the window: (characters, attributes).
fn row_of(window: &[u8], page: usize, row: usize) -> (String, Vec<u8>) {
    let at = page * PAGE_BYTES + row * COLS * 2;
    let cells = &window[at..at + COLS * 2];
    let text: String = cells.chunks(2).map(|c| cp437(c[0])).collect();
    (
        text.trim_end().to_string(),
        cells.chunks(2).map(|c| c[1]).collect(),
    )
}

/// `line` with the words at `words` replaced by "*".
fn masked(line: &str, words: &[usize]) -> String {
    line.split_whitespace()
        .enumerate()
        .map(|(i, w)| if words.contains(&i) { "*" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares COM1 line by line (see the module comment); the mismatches.
fn compare_serial(case: &Case, ours: &str, seabios: &str) -> Vec<String> {
    let listed = |l: &str| case.differs.iter().position(|d| l.starts_with(d.line));
    let mut used = vec![false; case.differs.len()];
    // Lines left out on both sides (What::Lines).
    let kept = |text: &str, used: &mut Vec<bool>| -> Vec<String> {
        let mut lines = Vec::new();
        for l in text.lines() {
            match listed(l).map(|k| (k, &case.differs[k].what)) {
                Some((k, What::Lines)) => used[k] = true,
                _ => lines.push(l.to_string()),
            }
        }
        lines
    };
    let a = kept(ours, &mut used);
    let b = kept(seabios, &mut used);
    let mut problems = Vec::new();
    if a.len() != b.len() {
        problems.push(format!(
            "COM1 has {} lines on ringlab, {} on SeaBIOS (lines left out not counted)",
            a.len(),
            b.len()
        ));
    }
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let (mx, my) = match listed(x) {
            Some(k) if y.starts_with(case.differs[k].line) => {
                if x != y {
                    used[k] = true;
                }
                match case.differs[k].what {
                    What::Words(words) => (masked(x, words), masked(y, words)),
                    What::Rest | What::Lines => (String::new(), String::new()),
                }
            }
            _ => (x.clone(), y.clone()),
        };
        if mx != my {
            problems.push(format!("COM1 line {}: ringlab {x:?}, SeaBIOS {y:?}", i + 1));
        }
    }
    for (d, used) in case.differs.iter().zip(used) {
        if !used {
            problems.push(format!(
                "the listed difference in {:?} did not occur: {}",
                d.line, d.why
            ));
        }
    }
    problems
}

/// Why the attributes of `page`'s `row` are listed as differing.
fn listed_why(case: &Case, page: usize, row: usize) -> &'static str {
    case.attrs_differ
        .iter()
        .find(|d| d.page == page && d.row == row)
        .map_or("", |d| d.why)
}

/// Compares the eight text pages (see the module comment); the
/// mismatches.
fn compare_screen(case: &Case, ours: &[u8], seabios: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    for page in 0..PAGES {
        for row in 0..ROWS {
            let (ta, aa) = row_of(ours, page, row);
            let (tb, ab) = row_of(seabios, page, row);
            if ta != tb {
                problems.push(format!(
                    "page {page} row {row}: ringlab {ta:?}, SeaBIOS {tb:?}"
                ));
            }
            let listed = case
                .attrs_differ
                .iter()
                .any(|d| d.page == page && d.row == row);
            if aa != ab && !listed {
                let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
                problems.push(format!(
                    "page {page} row {row} attributes: ringlab {}, SeaBIOS {}",
                    hex(&aa),
                    hex(&ab)
                ));
            }
            if aa == ab && listed {
                problems.push(format!(
                    "page {page} row {row}: the listed attribute difference did not occur: {}",
                    listed_why(case, page, row)
                ));
            }
        }
    }
    problems
}

/// Boots the case's guest on ringlab's interpreter and on QEMU with
/// SeaBIOS and compares (see the module comment).
fn same_on_seabios(case: &Case) {
    if let Some(why) = qemu::unavailable() {
        tests::skip(why);
        return;
    }
    let image = disk_image(case.guest);
    let mut window = vec![0u8; TEXT_WINDOW_LEN];
    let ours = run_machine(
        EngineKind::Interp,
        tests::firmware::machine(&image, &|_| {}),
        &CpuState::reset(),
        None,
        Duration::from_secs(120),
        &mut |_, m| m.mem.read(TEXT_WINDOW, &mut window).unwrap(),
    )
    .expect("the interpreter always runs");
    let seabios = qemu::boot(&image);

    let mut problems = Vec::new();
    let exit = Stop::GuestExit {
        value: seabios.exit.into(),
    };
    if ours.stop != exit {
        problems.push(format!(
            "ringlab stopped with {}, SeaBIOS's run exited with {:#x}",
            ours.stop, seabios.exit
        ));
    }
    let serial = String::from_utf8_lossy(&seabios.serial);
    problems.extend(compare_serial(case, &ours.serial, &serial));
    if case.screen {
        problems.extend(compare_screen(case, &window, &seabios.text));
    }
    assert!(
        problems.is_empty(),
        "{}: ringlab and QEMU/SeaBIOS differ:\n{}\n--- ringlab COM1 ---\n{}--- SeaBIOS COM1 ---\n{}",
        case.guest,
        problems.join("\n"),
        ours.serial,
        serial
    );
}

/// INT 10h 00h, 01h, 02h, 03h, 08h, 09h, 0Ah, 0Eh (bios-video.S).
#[test]
fn video_modes_cursor_cells_and_teletype() {
    same_on_seabios(&Case {
        guest: "bios-video",
        screen: true,
        differs: &[Differs {
            line: "shape ",
            // The CRTC's cursor scan lines after AH=01h with 0007h and
            // 0607h (twice); the 2000h (cursor off) and what AH=03h
            // returns agree.
            what: What::Words(&[1, 2, 4]),
            why: "cursor emulation: a CGA shape (lines 0-7) asked of a 16-line \
                  cell is scaled by different rules: SeaVGABIOS (vgabios.c, \
                  get_cursor_shape) 0007h -> 010Fh, 0607h -> 0E0Fh; ringlab \
                  0007h -> 000Fh, 0607h -> 0D0Eh",
        }],
        attrs_differ: &[],
    });
}

/// INT 10h 06h, 07h, 13h and teletype scrolling (bios-video-scroll.S).
#[test]
fn video_scrolling_and_strings() {
    same_on_seabios(&Case {
        guest: "bios-video-scroll",
        screen: true,
        differs: &[Differs {
            line: "bottom ",
            // The cell AH=08h reads at the start of the line that
            // teletype scrolling uncovered.
            what: What::Words(&[3]),
            why: "teletype output scrolling the page: SeaVGABIOS blanks the new \
                  bottom line with attribute 07h (vgabios.c write_teletype \
                  scrolls with no attribute, vgafb.c uses 07h); ringlab with \
                  the attribute under the cursor (5Eh here), as IBM's BIOS",
        }],
        attrs_differ: &[AttrsDiffer {
            page: 0,
            row: 24,
            why: "the same: the bottom line's attributes after teletype scrolled",
        }],
    });
}

/// INT 10h 05h and the pages, 0Fh, 12h, 1Ah, unsupported functions
/// (bios-video-pages.S).
#[test]
fn video_pages_and_information() {
    same_on_seabios(&Case {
        guest: "bios-video-pages",
        screen: true,
        differs: &[Differs {
            line: "none ",
            // AX, BX, CX, DX after AH=04h; SI, DI, BP and everything
            // after AH=40h agree.
            what: What::Words(&[1, 2, 3, 4]),
            why: "AH=04h (read light pen): SeaVGABIOS answers it (vgabios.c \
                  handle_1004: AX=BX=CX=DX=0, not triggered); ringlab, whose VGA has no light pen, \
                  leaves every register alone as for other unsupported functions",
        }],
        attrs_differ: &[],
    });
}

/// INT 13h's CHS functions on the boot disk (bios-disk-chs.S). The image
/// is 3024 sectors, which QEMU and ringlab both give the drive as 3
/// cylinders of 16 heads of 63 sectors.
#[test]
fn disk_chs_functions() {
    same_on_seabios(&Case {
        guest: "bios-disk-chs",
        screen: false,
        differs: &[
            Differs {
                line: "08h:",
                what: What::Words(&[3]),
                why: "SeaBIOS keeps the last cylinder back (the IBM AT's \
                      diagnostic cylinder; disk.c disk_1308 \"last sector reserved\"): \
                      AH=08h gives 2 cylinders (CX=013Fh); ringlab all 3 (CX=023Fh)",
            },
            Differs {
                line: "15h:",
                what: What::Words(&[4]),
                why: "the same (disk_1315): AH=15h counts 2016 sectors on SeaBIOS, \
                      3024 on ringlab",
            },
            Differs {
                line: "02h last + 1:",
                what: What::Words(&[5]),
                why: "a read running past the last sector: the last one is read \
                      (AL=1) on both; the status is 0Ch on SeaBIOS (hw/ata.c's \
                      code for any failed transfer), 04h (sector not found) on ringlab",
            },
            Differs {
                line: "01h:",
                what: What::Words(&[2]),
                why: "AH=01h returns that status (0Ch or 04h)",
            },
            Differs {
                line: "01h again:",
                what: What::Words(&[2, 3]),
                why: "SeaBIOS's AH=01h keeps the status (disk_1301); ringlab clears it once \
                      read, as the IBM AT BIOS does",
            },
            Differs {
                line: "02h c3:",
                what: What::Words(&[3]),
                why: "CHS outside the geometry: SeaBIOS refuses it with 01h \
                      (bad parameter) and leaves AL (disk.c basic_access); ringlab says 04h (sector \
                      not found), AL=0 sectors moved",
            },
            Differs {
                line: "02h h16:",
                what: What::Words(&[3]),
                why: "as for c3",
            },
            Differs {
                line: "02h s0:",
                what: What::Words(&[3]),
                why: "as for c3",
            },
            Differs {
                line: "02h s64:",
                what: What::Words(&[3]),
                why: "as for c3",
            },
            Differs {
                line: "02h x129:",
                what: What::Words(&[3]),
                why: "a count over 128: 01h on both; SeaBIOS leaves AL (81h), \
                      ringlab sets it to the 0 sectors moved",
            },
            Differs {
                line: "0Ch c3:",
                what: What::Words(&[2, 3]),
                why: "AH=0Ch (seek) to a cylinder past the end: SeaBIOS does not \
                      check (disk_130c is a stub that succeeds); ringlab says 04h",
            },
        ],
        attrs_differ: &[],
    });
}

/// The boot drive, INT 11h and INT 12h (bios-boot.S).
#[test]
fn boot_drive_equipment_and_base_memory() {
    same_on_seabios(&Case {
        guest: "bios-boot",
        screen: false,
        differs: &[Differs {
            line: "INT 11h ",
            what: What::Words(&[2]),
            why: "different machines: QEMU's PC has an x87 FPU (bit 1) and a \
                  PS/2 mouse port (bit 2), ringlab's neither (0220h: colour \
                  80x25, one serial port, on both)",
        }],
        attrs_differ: &[],
    });
}

/// INT 15h AX=2400h-2403h, the A20 gate (bios-sys-a20.S).
#[test]
fn a20_gate() {
    same_on_seabios(&Case {
        guest: "bios-sys-a20",
        screen: false,
        differs: &[Differs {
            line: "at boot:",
            what: What::Rest,
            why: "SeaBIOS leaves A20 on when it boots (it runs in 32-bit mode); \
                  ringlab leaves it off, as at power-on, for the boot sector",
        }],
        attrs_differ: &[],
    });
}

/// INT 12h, INT 15h AH=88h, E801h and E820h's refusals
/// (bios-sys-mem.S). The memory map itself is each firmware's own.
#[test]
fn memory_sizes() {
    same_on_seabios(&Case {
        guest: "bios-sys-mem",
        screen: false,
        differs: &[
            Differs {
                line: "e820 ",
                what: What::Lines,
                why: "the memory maps are each firmware's own: SeaBIOS keeps the \
                      top 128 KiB of RAM for its tables and maps its 256 KiB ROM \
                      below 4 GiB; ringlab lists the I/O APIC, the local APIC and \
                      its 64 KiB ROM",
            },
            Differs {
                line: "88h ",
                what: What::Words(&[1]),
                why: "extended memory without SeaBIOS's 128 KiB (7B80h KiB) and \
                      with it on ringlab (7C00h KiB)",
            },
            Differs {
                line: "E801h ",
                // BX and DX: 64 KiB blocks above 16 MiB.
                what: What::Words(&[5, 9]),
                why: "the same 128 KiB: 00FEh blocks on SeaBIOS, 0100h on ringlab",
            },
        ],
        attrs_differ: &[],
    });
}
