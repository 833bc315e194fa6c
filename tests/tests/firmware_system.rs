//! ringlab's BIOS system services, seen from boot sectors
//! (tests/guests/bios-sys-*.S) booted on every engine (tests::firmware):
//! the memory sizes and the E820 map, the A20 gate, INT 15h's wait and
//! configuration table, INT 14h on COM1 (ringlab's stdout), the RTC
//! through INT 1Ah, and the MP tables as xv6 finds them.
//!
//! The screens in the snapshots are the BIOS's own until INT 10h exists;
//! everything checked is on COM1.

use tests::firmware::{boot_everywhere, boot_everywhere_with_ram};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// What bios-sys-mem prints for `ram` bytes of RAM: INT 15h AH=88h, E801h
/// and the E820 map, as the CMOS sizes (machine's rtc.rs) make them.
fn expected_memory_lines(ram: u64) -> Vec<String> {
    let ext_kb = (ram - MIB) / KIB;
    let below_16m = ext_kb.min(15 * KIB);
    let above_16m = (ext_kb - below_16m) / 64;
    let mut lines = vec![
        format!("88h {:04x} CF=0", ext_kb.min(0xFC00)),
        format!("E801h CF=0 ax {below_16m:04x} bx {above_16m:04x} cx {below_16m:04x} dx {above_16m:04x}"),
    ];
    let mut ranges = vec![
        (0, 639 * KIB, 1),       // conventional memory, below the EBDA
        (639 * KIB, KIB, 2),     // the EBDA
        (0xF_0000, 0x1_0000, 2), // the BIOS
    ];
    if ext_kb > 0 {
        ranges.push((MIB, ext_kb * KIB, 1));
    }
    ranges.extend([
        (0xFEC0_0000, 0x1000, 2),   // I/O APIC
        (0xFEE0_0000, 0x1000, 2),   // local APIC
        (0xFFFF_0000, 0x1_0000, 2), // the ROM below 4 GiB
    ]);
    for (base, len, kind) in ranges {
        lines.push(format!("e820 {base:016x} {len:016x} {kind:08x} size 14"));
    }
    lines
}

fn memory_lines(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter(|l| l.starts_with("88h") || l.starts_with("E801h") || l.starts_with("e820"))
        .map(str::to_string)
        .collect()
}

#[test]
fn memory_sizes_and_the_e820_map() {
    let t = boot_everywhere("bios-sys-mem", &|_| {});
    assert_eq!(memory_lines(&t), expected_memory_lines(32 * MIB));
    insta::assert_snapshot!(t);
}

#[test]
fn memory_sizes_follow_the_ram_size() {
    // No extended memory; below 16 MiB (E801h BX = 0); above 64 MiB (AH=88h
    // stops at 63 MiB).
    for ram in [MIB, 15 * MIB, 160 * MIB] {
        let t = boot_everywhere_with_ram("bios-sys-mem", ram as usize, &|_| {});
        assert!(t.contains("INT 12h 027f\n"), "{t}");
        assert_eq!(
            memory_lines(&t),
            expected_memory_lines(ram),
            "{ram} bytes of RAM"
        );
        assert!(
            t.contains("no SMAP CF=1 ah 86\n16 bytes CF=1\nebx 99 CF=1\n"),
            "{t}"
        );
    }
}

#[test]
fn a20_functions_switch_the_wraparound() {
    let t = boot_everywhere("bios-sys-a20", &|_| {});
    insta::assert_snapshot!(t);
}

#[test]
fn wait_86h_takes_the_time_asked_with_interrupts_on_and_off() {
    let t = boot_everywhere("bios-sys-wait", &|_| {});
    insta::assert_snapshot!(t);
}

#[test]
fn configuration_table_ebda_keyboard_intercept_and_unsupported_functions() {
    let t = boot_everywhere("bios-sys-misc", &|_| {});
    insta::assert_snapshot!(t);
}

#[test]
fn int14_sends_to_stdout_and_receives_with_timeouts() {
    let t = boot_everywhere("bios-sys-serial", &|m| m.serial_input(b"ok"));
    assert!(t.contains("\nhello, stdout, through INT 14h\n"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn rtc_time_and_date_through_int_1ah() {
    let t = boot_everywhere("bios-sys-rtc", &|_| {});
    insta::assert_snapshot!(t);
}

#[test]
fn mp_tables_are_found_and_walked_as_xv6_does() {
    let t = boot_everywhere("bios-sys-mp", &|_| {});
    insta::assert_snapshot!(t);
}

/// A multiboot kernel started by the BIOS after POST finds the IVT, the
/// BDA, the MP tables in the EBDA and the E820 map as its multiboot memory
/// map.
#[test]
fn a_multiboot_kernel_finds_what_the_bios_leaves() {
    let t = tests::firmware::boot_kernel_everywhere("mb-bios", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    INT 10h vector segment 0000f000
    EBDA segment, base KiB 00009fc0 639
    MP floating pointer at 0009fc10, checksum 0
    multiboot flags 00000241
    0000000000000000 0009fc00 1
    000000000009fc00 00000400 2
    00000000000f0000 00010000 2
    0000000000100000 01f00000 1
    00000000fec00000 00001000 2
    00000000fee00000 00001000 2
    00000000ffff0000 00010000 2
    --- screen ---
    ringlab BIOS
    Memory: 639 KiB base, 31 MiB extended; hard disks: 0
    ");
}
