//! Fuzzing every device's register interface through the machine's bus
//! (issue 20, item 3).
//!
//! A case is a random sequence of what a CPU does to the platform, issued
//! through `Machine` exactly as the engines issue it: port reads and
//! writes of 1, 2 and 4 bytes (single and REP INS/OUTS bulk), physical
//! memory reads and writes of 1, 2, 4 and 8 bytes (the LAPIC and I/O APIC
//! MMIO pages, the ROM's high alias, the VGA window, the end of RAM; at
//! each range's first and last bytes and straddling its edges), the
//! translator's pure MMIO reads, instruction retirement (time passes,
//! device deadlines fire), HLT's warp to the next deadline, the
//! interrupt-acknowledge cycle and NMI, WRMSR to IA32_APIC_BASE, and host
//! input (COM1 bytes, PS/2 keys). Ports come from the board's own
//! description (`Board::pc`), so a new chip is fuzzed without touching
//! this file; half the cases keep their port accesses on one chip, to go
//! deeper into its states. The ATA channels have disks attached: small
//! in-memory images and file-backed temporary ones, some as --snapshot.
//!
//! Properties, after every case:
//!
//! - nothing panicked;
//! - guest RAM changed only where the CPU wrote it (ringlab's devices do
//!   no DMA, so no device may change a byte of RAM) and host memory right
//!   around the RAM mapping is untouched (guard mappings,
//!   `tests::guards`);
//! - every disk image kept its size;
//! - a pure MMIO read (`read_pure_mmio`) agrees with a real one;
//! - a reset recovers every device: the initialisation a driver or a BIOS
//!   does (`reinit`: the 8259A's ICW1-4, the 8254's control words, the
//!   16550's registers with its FIFOs cleared, CMOS registers A-D and the
//!   time set, the VGA's registers, the 8042's self-test and command byte
//!   and a keyboard reset, port 0x92, the APICs' registers with pending
//!   interrupts taken and EOIed, the ATA channels' software reset) leaves
//!   every register it defines reading back (`readback`) as in a freshly
//!   built machine put through the same initialisation at the same
//!   virtual time (not for cases with host input, which keeps arriving).
//!
//! `fuzz_ata_writes` drives the disks with well-formed WRITE SECTORS and
//! WRITE MULTIPLE commands (28-bit LBA, in range or not, data phases
//! complete or cut short, other accesses interleaved) and checks that only
//! the sectors those commands named changed, and that a completed write
//! put exactly the data sent, on in-memory and file-backed images, and
//! that a --snapshot image's file never changes.
//!
//! `PROPTEST_CASES=N` runs N cases per target (a soak),
//! `PROPTEST_RNG_SEED=S` other cases than CI's (`tests::fuzz`).

use machine::board::{mmio, ports, Board};
use machine::disk::{DiskImage, DiskOpenOptions};
use machine::{Machine, MachineConfig};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tests::fuzz::{config, full_run};
use tests::guards::Guards;

const RAM: usize = 2 << 20;
const SECTOR: usize = 512;

/// One thing the CPU does to the platform.
#[derive(Clone, Debug)]
enum Op {
    In(u16, u8),
    Out(u16, u8, u32),
    /// REP INS of `n` items.
    InsBulk(u16, u8, u16),
    /// REP OUTS of `n` items of a byte pattern.
    OutsBulk(u16, u8, u16, u8),
    Read(u32, u8),
    Write(u32, u8, u64),
    /// Instructions retired (virtual time passes).
    Retire(u32),
    /// HLT: the clock warps to the next deadline.
    Warp,
    /// The CPU takes an interrupt if one is pending (as engines do with IF
    /// set), or an NMI.
    Ack,
    /// WRMSR IA32_APIC_BASE.
    ApicBase(u64),
    /// The translator's read of a register it may cache
    /// (`read_pure_mmio`): when it answers, a real read must agree.
    PureRead(u32, u8),
    /// Host input: bytes to COM1's receiver, keys to the PS/2 keyboard.
    SerialIn(Vec<u8>),
    Keys(String),
}

/// Ports worth hitting: each chip's range from one before to one after.
fn chip_ports() -> Vec<u16> {
    let mut v: Vec<u16> = Board::pc().chips.iter().flat_map(ports_of).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One chip's ports, from one before each range to one after it.
fn ports_of(c: &machine::board::Chip) -> Vec<u16> {
    c.ports
        .iter()
        .flat_map(|&(start, len)| start.saturating_sub(1)..=start.saturating_add(len))
        .collect()
}

/// A case's operations: spread over every chip, or (half the cases) with
/// the port accesses on one chip, so that sequences reach the deeper
/// states of one (an 8259A's ICW1-ICW4, an ATA command and its data, an
/// 8042 command and its parameter).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let chips: Vec<Vec<u16>> = Board::pc()
        .chips
        .iter()
        .map(ports_of)
        .filter(|p| !p.is_empty())
        .collect();
    prop_oneof![
        prop::collection::vec(op_on(chip_ports()), 0..120),
        prop::sample::select(chips).prop_flat_map(|p| prop::collection::vec(op_on(p), 0..120)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    op_on(chip_ports())
}

/// Physical addresses worth hitting: the APIC pages' registers and edges,
/// the ROM's high alias and the 4 GiB edge, the VGA window, the end of
/// RAM.
fn mmio_addr() -> impl Strategy<Value = u32> {
    let page = |base: u64| {
        let base = base as u32;
        prop_oneof![
            4 => (0u32..0x40).prop_map(move |r| base + r * 16),
            1 => (0u32..0x1000).prop_map(move |o| base + o),
            1 => (0u32..8).prop_map(move |o| base - 4 + o),
            1 => (0u32..8).prop_map(move |o| base + 0xFFC + o),
        ]
    };
    prop_oneof![
        6 => page(mmio::LAPIC),
        4 => page(mmio::IOAPIC),
        1 => (0u32..0x20).prop_map(|o| 0xFFFF_FFF0 + (o & 0xF)),
        1 => (0u32..0x40).prop_map(|o| 0xFFFE_FFE0 + o),
        1 => 0xA_0000u32..0xC_0000,
        1 => (0u32..8).prop_map(|o| RAM as u32 - 4 + o),
        1 => any::<u32>(),
    ]
}

fn value() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => any::<u8>().prop_map(u32::from),
        2 => any::<u32>(),
        1 => Just(0u32),
        1 => Just(u32::MAX),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(1u8), 2 => Just(2), 2 => Just(4)]
}

/// Physical accesses may also be 8 bytes wide: KVM's MMIO exits carry up
/// to 8 (a MOVQ to an APIC page), and so may the engines' accesses.
fn mem_size() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(1u8), 2 => Just(2), 3 => Just(4), 1 => Just(8)]
}

/// One operation, its port accesses mostly at `ports`.
fn op_on(ports: Vec<u16>) -> impl Strategy<Value = Op> {
    let port = prop_oneof![
        8 => prop::sample::select(ports),
        1 => any::<u16>(),
    ];
    let data_port = prop::sample::select(vec![ports::ATA_PRIMARY, ports::ATA_SECONDARY]);
    prop_oneof![
        10 => (port.clone(), size()).prop_map(|(p, s)| Op::In(p, s)),
        14 => (port, size(), value()).prop_map(|(p, s, v)| Op::Out(p, s, v)),
        1 => (data_port.clone(), size(), 0u16..600).prop_map(|(p, s, n)| Op::InsBulk(p, s, n)),
        1 => (data_port, size(), 0u16..600, any::<u8>())
            .prop_map(|(p, s, n, b)| Op::OutsBulk(p, s, n, b)),
        5 => (mmio_addr(), mem_size()).prop_map(|(a, s)| Op::Read(a, s)),
        6 => (mmio_addr(), mem_size(), value(), value())
            .prop_map(|(a, s, lo, hi)| Op::Write(a, s, (hi as u64) << 32 | lo as u64)),
        2 => prop_oneof![0u32..100, 0u32..2_000_000].prop_map(Op::Retire),
        1 => Just(Op::Warp),
        2 => Just(Op::Ack),
        2 => (mmio_addr(), mem_size()).prop_map(|(a, s)| Op::PureRead(a, s)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::SerialIn),
        1 => "([a-z $]|\\\\n|\\\\e|\\\\x[0-9a-f]{2}){0,8}".prop_map(Op::Keys),
        1 => prop_oneof![
            3 => Just(0xFEE0_0900u64),
            1 => Just(0xFEE0_0100u64),
            1 => any::<u64>(),
        ]
        .prop_map(Op::ApicBase),
    ]
}

/// The disks of a case: sectors per drive (0: none), file-backed or not,
/// and for a file, opened as --snapshot (writes kept in memory) or not.
#[derive(Clone, Debug)]
struct Disks {
    sectors: [u16; 4],
    file: [bool; 4],
    snapshot: [bool; 4],
}

fn disks() -> impl Strategy<Value = Disks> {
    (
        prop::array::uniform4(prop_oneof![
            2 => Just(0u16),
            2 => Just(1u16),
            2 => 2u16..40,
            1 => Just(1000u16),
        ]),
        prop::array::uniform4(prop::bool::weighted(0.3)),
        prop::array::uniform4(prop::bool::weighted(0.3)),
    )
        .prop_map(|(mut sectors, file, snapshot)| {
            // The primary master is always there, so the ATA paths run.
            sectors[0] = sectors[0].max(1);
            Disks {
                sectors,
                file,
                snapshot,
            }
        })
}

/// A temporary disk image file, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // A file left in the target directory is harmless.
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-devices");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!(
        "{tag}-{}-{}.img",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The bytes drive `i` starts with.
fn disk_bytes(i: usize, sectors: u16) -> Vec<u8> {
    (0..sectors as usize * SECTOR)
        .map(|b| (b / SECTOR * 7 + b * 3 + i * 101) as u8)
        .collect()
}

/// A machine with the case's disks (and the firmware ROM when `rom`),
/// RAM filled with a pattern.
fn build(d: &Disks, rom: bool, files: &mut Vec<TempFile>) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(RAM)).unwrap();
    if rom {
        m.load_rom(machine::firmware::BIOS).unwrap();
    }
    for i in 0..4 {
        if d.sectors[i] == 0 {
            continue;
        }
        let bytes = disk_bytes(i, d.sectors[i]);
        let disk = if d.file[i] {
            let p = temp_path("disk");
            std::fs::write(&p, &bytes).unwrap();
            let opts = DiskOpenOptions {
                snapshot: d.snapshot[i],
            };
            let disk = DiskImage::open(&p, opts).unwrap();
            files.push(TempFile(p));
            disk
        } else {
            DiskImage::from_bytes(bytes).unwrap()
        };
        m.attach_disk(i, disk);
    }
    let (lo, _) = m.mem.read_only_range();
    let end = if rom { lo as usize } else { RAM };
    let pattern: Vec<u8> = (0..end).map(|i| (i * 31 + 7) as u8).collect();
    m.mem.write(0, &pattern).unwrap();
    m
}

/// A twin machine with the same disks (in memory, same sizes: the reset
/// comparison reads registers, not sectors) and ROM.
fn twin(d: &Disks, rom: bool) -> Machine {
    let mut m = Machine::new(MachineConfig::with_ram(RAM)).unwrap();
    if rom {
        m.load_rom(machine::firmware::BIOS).unwrap();
    }
    for i in 0..4 {
        if d.sectors[i] != 0 {
            m.attach_disk(
                i,
                DiskImage::from_bytes(disk_bytes(i, d.sectors[i])).unwrap(),
            );
        }
    }
    m
}

/// `read_pure_mmio` calls that answered (so the comparison ran).
static PURE_ANSWERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Carries out `op` on `m`, adding to `writes` the physical addresses a
/// CPU write may have changed in RAM.
fn apply(m: &mut Machine, op: &Op, writes: &mut Vec<u64>) {
    match *op {
        Op::In(p, s) => {
            m.io_read(p, s);
        }
        Op::Out(p, s, v) => m.io_write(p, s, v),
        Op::InsBulk(p, s, n) => {
            let mut buf = vec![0u8; n as usize * s as usize];
            let got = m.io_read_bulk(p, s, &mut buf);
            assert!(
                got <= buf.len() && got.is_multiple_of(s as usize),
                "bulk read {got}"
            );
        }
        Op::OutsBulk(p, s, n, b) => {
            let buf = vec![b; n as usize * s as usize];
            let put = m.io_write_bulk(p, s, &buf);
            assert!(
                put <= buf.len() && put.is_multiple_of(s as usize),
                "bulk write {put}"
            );
        }
        Op::Read(a, s) => {
            m.read_phys(a, s);
        }
        Op::Write(a, s, v) => {
            // Where the bytes may land: the A20-masked address and each
            // byte's own masked address (machine.rs, write_phys).
            let mask = m.a20_mask();
            for i in 0..s as u64 {
                writes.push(((a & mask) as u64) + i);
                writes.push((a as u64 + i) & (mask as u64 | !0xFFFF_FFFFu64));
            }
            m.write_phys(a, s, v);
        }
        Op::Retire(n) => m.retire(n as u64),
        Op::Warp => {
            m.warp_to_deadline();
        }
        Op::Ack => {
            if m.nmi_pending() {
                m.take_nmi();
            } else if m.interrupt_pending() {
                m.acknowledge_interrupt();
            }
        }
        Op::ApicBase(v) => {
            // An error is #GP for the guest; the state must stay sound.
            let _ = m.set_apic_base(v);
        }
        Op::PureRead(a, s) => {
            if let Some(v) = m.read_pure_mmio(a, s) {
                PURE_ANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let real = m.read_phys(a, s);
                assert_eq!(
                    v, real,
                    "read_pure_mmio({a:#x}, {s}) disagrees with read_phys"
                );
            }
        }
        Op::SerialIn(ref b) => m.serial_input(b),
        Op::Keys(ref t) => {
            if let Ok(keys) = machine::devices::ps2kbd::parse_key_text(t) {
                m.key_events(keys);
            }
        }
    }
    // A stop the guest asked for (exit port, reset) ends a run; the
    // machine itself carries on.
    m.clear_stop();
}

// ---------------------------------------------------------------------------
// Reset: the initialisation of every device, and the read-back of every
// register it defines.

/// What a driver or a BIOS does to bring each device to a known state.
fn reinit(m: &mut Machine) {
    let out = |m: &mut Machine, p: u16, v: u8| m.io_write(p, 1, v as u32);
    // Port 0x92: A20 on, no reset.
    out(m, ports::FAST_A20, 0x02);
    // APIC base: enabled at its default address, BSP.
    let _ = m.set_apic_base(0xFEE0_0900);

    // 8042: drain its output, self-test, command byte, keyboard reset.
    let drain = |m: &mut Machine| {
        for _ in 0..64 {
            if m.io_read(ports::KBC_STATUS, 1) & 1 == 0 {
                break;
            }
            m.io_read(ports::KBC_DATA, 1);
        }
    };
    drain(m);
    out(m, ports::KBC_STATUS, 0xAA); // controller self-test
    drain(m);
    out(m, ports::KBC_STATUS, 0xAE); // enable the keyboard interface
    out(m, ports::KBC_STATUS, 0xA7); // disable the mouse interface
    out(m, ports::KBC_STATUS, 0x60); // write command byte
    out(m, ports::KBC_DATA, 0x45); // IRQ 1 on, translation, system flag
    out(m, ports::KBC_DATA, 0xFF); // keyboard: reset
    drain(m);
    out(m, ports::KBC_DATA, 0xF4); // keyboard: enable scanning
    drain(m);

    // 8254: every channel mode 2 (rate generator), then a count; speaker
    // gate off.
    for ch in 0..3u8 {
        out(m, ports::PIT + 3, (ch << 6) | 0x34);
        out(m, ports::PIT + ch as u16, 0x00);
        out(m, ports::PIT + ch as u16, 0x10);
    }
    out(m, ports::SYSTEM_CONTROL_B, 0x00);
    // A new count reaches the counter at the next input clock (838 ns);
    // until then the counter, and a read of it, hold the old one ("null
    // count" in the status). Let the counts load.
    m.retire(20_000);

    // MC146818A: SET, the time, registers A and B, C read (clears flags).
    let cmos = |m: &mut Machine, i: u8, v: u8| {
        m.io_write(ports::RTC, 1, i as u32);
        m.io_write(ports::RTC + 1, 1, v as u32);
    };
    cmos(m, 0x0B, 0x82);
    for (i, v) in [
        (0, 0x30),
        (2, 0x15),
        (4, 0x10),
        (6, 0x02),
        (7, 0x14),
        (8, 0x07),
        (9, 0x26),
        (0x32, 0x20),
    ] {
        cmos(m, i, v);
    }
    cmos(m, 0x0A, 0x26);
    cmos(m, 0x0B, 0x02);
    m.io_write(ports::RTC, 1, 0x0C);
    m.io_read(ports::RTC + 1, 1);

    // 16550A: 8N1 at 115200, FIFOs on and cleared, interrupts off,
    // DTR/RTS/OUT2; the receiver drained.
    let com = ports::COM1;
    for (off, v) in [
        (3, 0x80),
        (0, 0x01),
        (1, 0x00),
        (3, 0x03),
        (1, 0x00),
        (2, 0x07),
        (4, 0x0B),
        (7, 0x00),
    ] {
        out(m, com + off, v);
    }
    for _ in 0..32 {
        if m.io_read(com + 5, 1) & 1 == 0 {
            break;
        }
        m.io_read(com, 1);
    }
    // As Linux's serial probe does: LSR, MSR (leaving loopback sets the
    // delta bits, as on the chip), IIR (acknowledges a THRE interrupt).
    m.io_read(com + 5, 1);
    m.io_read(com + 6, 1);
    m.io_read(com + 2, 1);

    // VGA: colour mode, every CRTC, sequencer, graphics and attribute
    // register, the DAC mask.
    out(m, 0x3C2, 0x67);
    out(m, 0x3D4, 0x11);
    out(m, 0x3D5, 0x00); // unprotect CRTC 0-7
    for i in 0..0x19u8 {
        out(m, 0x3D4, i);
        out(m, 0x3D5, i.wrapping_mul(5) & 0x7F);
    }
    for i in 0..5u8 {
        out(m, 0x3C4, i);
        out(m, 0x3C5, i + 1);
    }
    for i in 0..9u8 {
        out(m, 0x3CE, i);
        out(m, 0x3CF, i * 2);
    }
    for i in 0..0x15u8 {
        m.io_read(0x3DA, 1); // attribute flip-flop to "index"
        out(m, 0x3C0, i);
        out(m, 0x3C0, i ^ 0x0F);
    }
    m.io_read(0x3DA, 1);
    out(m, 0x3C0, 0x20); // video enabled
    out(m, 0x3C6, 0xFF);
    out(m, 0x3C8, 0x00);

    // ATA: software reset on both channels, device 0 selected, nIEN 0.
    for (cmd, ctl) in [
        (ports::ATA_PRIMARY, ports::ATA_PRIMARY_CTRL),
        (ports::ATA_SECONDARY, ports::ATA_SECONDARY_CTRL),
    ] {
        out(m, ctl, 0x04);
        m.retire(10);
        out(m, ctl, 0x00);
        m.retire(10);
        out(m, cmd + 6, 0xA0);
        m.io_read(cmd + 7, 1);
    }

    // I/O APIC: its ID, every pin masked, edge-triggered (which also
    // drops a level entry's Remote IRR), fixed, to vector 0x30 + pin.
    let ioapic = |m: &mut Machine, reg: u32, v: u32| {
        m.write_phys(mmio::IOAPIC as u32, 4, reg as u64);
        m.write_phys(mmio::IOAPIC as u32 + 0x10, 4, v as u64);
    };
    ioapic(m, 0, 1 << 24);
    for pin in 0..24u32 {
        ioapic(m, 0x10 + 2 * pin, 0x1_0000 | (0x30 + pin));
        ioapic(m, 0x11 + 2 * pin, 0);
    }

    // 8259A pair: ICW1-4 (vectors 0x20 and 0x28, cascade on IR2), every
    // line masked, then EOIs for whatever is in service.
    for (base, icw2, icw3) in [
        (ports::PIC_MASTER, 0x20, 0x04),
        (ports::PIC_SLAVE, 0x28, 0x02),
    ] {
        out(m, base, 0x11);
        out(m, base + 1, icw2);
        out(m, base + 1, icw3);
        out(m, base + 1, 0x01);
        out(m, base + 1, 0xFF);
    }

    // Local APIC: software enabled (vector 0xFF), TPR 0, every LVT masked
    // but LINT0 (ExtINT) and LINT1 (NMI) as at reset, the timer stopped,
    // then every pending interrupt taken and EOIed, the error status
    // cleared.
    let lapic = |m: &mut Machine, reg: u32, v: u32| {
        m.write_phys(mmio::LAPIC as u32 + reg, 4, v as u64);
    };
    for (reg, v) in [
        // The ID is writable (SDM Vol 3A 10.4.6): BIOS-assigned 0.
        (0x20, 0),
        (0xF0, 0x1FF),
        (0x80, 0),
        (0xD0, 0),
        (0xE0, 0xFFFF_FFFF),
        (0x320, 0x1_0000),
        (0x330, 0x1_0000),
        (0x340, 0x1_0000),
        (0x350, 0x700),
        (0x360, 0x400),
        (0x370, 0x1_0000),
        (0x380, 0),
        (0x3E0, 0),
        (0x310, 0),
    ] {
        lapic(m, reg, v);
    }
    for _ in 0..300 {
        if m.nmi_pending() {
            m.take_nmi();
        } else if m.interrupt_pending() {
            m.acknowledge_interrupt();
        }
        // EOI to both: the APIC's, then the 8259As' (non-specific).
        lapic(m, 0xB0, 0);
        out(m, ports::PIC_SLAVE, 0x20);
        out(m, ports::PIC_MASTER, 0x20);
    }
    lapic(m, 0x280, 0);
    lapic(m, 0x280, 0);
    m.clear_stop();
}

/// Every register `reinit` defines, read as a guest reads it: (name,
/// value).
fn readback(m: &mut Machine) -> Vec<(String, u64)> {
    let mut r: Vec<(String, u64)> = vec![];
    let mut inb = |m: &mut Machine, name: String, p: u16| {
        let v = m.io_read(p, 1) as u64;
        r.push((name, v));
    };
    inb(m, "port 0x92".into(), ports::FAST_A20);
    for (n, base) in [("master", ports::PIC_MASTER), ("slave", ports::PIC_SLAVE)] {
        m.io_write(base, 1, 0x0A);
        inb(m, format!("PIC {n} IRR"), base);
        m.io_write(base, 1, 0x0B);
        inb(m, format!("PIC {n} ISR"), base);
        inb(m, format!("PIC {n} IMR"), base + 1);
    }
    // 8254: read-back command, status and count of each channel.
    for ch in 0..3u16 {
        m.io_write(ports::PIT + 3, 1, 0xC0 | (2 << ch));
        inb(m, format!("PIT {ch} status"), ports::PIT + ch);
        inb(m, format!("PIT {ch} count lo"), ports::PIT + ch);
        inb(m, format!("PIT {ch} count hi"), ports::PIT + ch);
    }
    inb(m, "port 0x61".into(), ports::SYSTEM_CONTROL_B);
    for i in [0u8, 2, 4, 6, 7, 8, 9, 0x0A, 0x0B, 0x0C, 0x0D, 0x32] {
        m.io_write(ports::RTC, 1, i as u32);
        inb(m, format!("CMOS {i:#04x}"), ports::RTC + 1);
    }
    for off in [1u16, 2, 3, 4, 5, 6, 7] {
        inb(m, format!("COM1 +{off}"), ports::COM1 + off);
    }
    inb(m, "VGA misc".into(), 0x3CC);
    for i in 0..0x19u8 {
        m.io_write(0x3D4, 1, i as u32);
        inb(m, format!("CRTC {i:#x}"), 0x3D5);
    }
    for i in 0..5u8 {
        m.io_write(0x3C4, 1, i as u32);
        inb(m, format!("sequencer {i}"), 0x3C5);
    }
    for i in 0..9u8 {
        m.io_write(0x3CE, 1, i as u32);
        inb(m, format!("graphics {i}"), 0x3CF);
    }
    for i in 0..0x15u8 {
        m.io_read(0x3DA, 1);
        m.io_write(0x3C0, 1, i as u32);
        inb(m, format!("attribute {i:#x}"), 0x3C1);
    }
    inb(m, "DAC mask".into(), 0x3C6);
    inb(m, "DAC write index".into(), 0x3C8);
    inb(m, "8042 status".into(), ports::KBC_STATUS);
    m.io_write(ports::KBC_STATUS, 1, 0x20);
    inb(m, "8042 command byte".into(), ports::KBC_DATA);
    for (n, cmd, ctl) in [
        ("ATA0", ports::ATA_PRIMARY, ports::ATA_PRIMARY_CTRL),
        ("ATA1", ports::ATA_SECONDARY, ports::ATA_SECONDARY_CTRL),
    ] {
        inb(m, format!("{n} alt status"), ctl);
        for off in 1..8u16 {
            inb(m, format!("{n} +{off}"), cmd + off);
        }
    }
    let lapic = mmio::LAPIC as u32;
    for reg in [
        0x20u32, 0x30, 0x80, 0xA0, 0xD0, 0xE0, 0xF0, 0x280, 0x310, 0x320, 0x330, 0x340, 0x350,
        0x360, 0x370, 0x380, 0x390, 0x3E0,
    ]
    .into_iter()
    .chain((0..24).map(|i| 0x100 + i * 16))
    {
        r.push((format!("LAPIC {reg:#x}"), m.read_phys(lapic + reg, 4)));
    }
    // ICR low holds the last IPI sent, which no guest can clear without
    // sending another: only its delivery status counts.
    let icr = m.read_phys(lapic + 0x300, 4);
    r.push(("LAPIC ICR delivery status".into(), icr & 0x1000));
    for reg in (0..3).chain(0x10..0x40) {
        m.write_phys(mmio::IOAPIC as u32, 4, reg);
        let v = m.read_phys(mmio::IOAPIC as u32 + 0x10, 4);
        r.push((format!("IOAPIC {reg:#x}"), v));
    }
    r.push(("INTR".into(), m.interrupt_pending() as u64));
    r.push(("NMI".into(), m.nmi_pending() as u64));
    r.push(("A20 mask".into(), m.a20_mask() as u64));
    r
}

/// Compares the read-backs: the names of the registers that differ.
fn differences(a: &[(String, u64)], b: &[(String, u64)]) -> Vec<String> {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, y)| format!("{}: {:#x} after fuzzing, {:#x} fresh", x.0, x.1, y.1))
        .collect()
}

/// Cases whose read-backs after `reinit` were compared.
static RESETS_COMPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `ops` on a machine with `disks` and checks every property.
fn check_sequence(disks: &Disks, rom: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut files = vec![];
    let mut m = build(disks, rom, &mut files);
    let guards = Guards::around(&m);
    let before = m.mem.as_slice().to_vec();
    let mut writes = vec![];
    for op in ops {
        apply(&mut m, op, &mut writes);
    }
    // RAM: changed only where the CPU wrote.
    let after = m.mem.as_slice();
    writes.sort_unstable();
    for i in 0..RAM {
        if before[i] != after[i] && writes.binary_search(&(i as u64)).is_err() {
            return Err(TestCaseError::fail(format!(
                "RAM at {i:#x} changed ({:#04x} -> {:#04x}) with no CPU write there",
                before[i], after[i]
            )));
        }
    }
    prop_assert!(guards.intact(), "host memory next to guest RAM changed");
    for i in 0..4 {
        if disks.sectors[i] != 0 {
            prop_assert_eq!(
                m.disk(i).map(|d| d.sectors()),
                Some(disks.sectors[i] as u64),
                "drive {}",
                i
            );
        }
    }
    prop_assert!(m.flush_disks().is_ok());
    for (f, i) in files
        .iter()
        .zip((0..4).filter(|&i| disks.sectors[i] != 0 && disks.file[i]))
    {
        let len = std::fs::metadata(&f.0).map(|x| x.len()).unwrap_or(0);
        prop_assert_eq!(
            len,
            disks.sectors[i] as u64 * SECTOR as u64,
            "file of drive {}",
            i
        );
    }

    // Reset recovers: the same initialisation on a fresh twin at the same
    // virtual time reads back the same. Not with host input: what the
    // host sent keeps arriving after the initialisation, as it would on a
    // PC.
    if ops
        .iter()
        .any(|o| matches!(o, Op::SerialIn(_) | Op::Keys(_)))
    {
        return Ok(());
    }
    RESETS_COMPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut fresh = twin(disks, rom);
    fresh.set_time(m.clock.now());
    reinit(&mut m);
    reinit(&mut fresh);
    let (a, b) = (readback(&mut m), readback(&mut fresh));
    let d = differences(&a, &b);
    prop_assert!(d.is_empty(), "after reinit: {:#?}", d);
    Ok(())
}

#[test]
fn reinit_reads_back_the_same_on_fresh_machines() {
    // The comparison itself: two fresh machines agree, and the read-back
    // sees what reinit wrote (so it is not comparing constants).
    let d = Disks {
        sectors: [4, 0, 2, 0],
        file: [false; 4],
        snapshot: [false; 4],
    };
    let (mut a, mut b) = (twin(&d, false), twin(&d, false));
    b.set_time(5_000_000);
    a.set_time(5_000_000);
    reinit(&mut a);
    reinit(&mut b);
    let ra = readback(&mut a);
    assert!(differences(&ra, &readback(&mut b)).is_empty());
    let get = |k: &str| ra.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(get("PIC master IMR"), 0xFF);
    assert_eq!(get("CRTC 0x3"), 15);
    assert_eq!(get("8042 command byte"), 0x45);
    assert_eq!(get("LAPIC 0xf0"), 0x1FF);
    assert_eq!(get("IOAPIC 0x10") & 0x1_00FF, 0x1_0030);
}

/// Found by `fuzz_register_sequences` (a soak): a self-IPI with the
/// ICR's trigger-mode bit set (ICR low 0x73788810: fixed, vector 0x10, to
/// all including self) left TMR bit 0x10 set for good, so the local APIC
/// read back differently from a fresh one after any initialisation. Fixed
/// in lapic.rs: IPIs are edge-triggered (SDM Vol 3A 10.6.1); also
/// machine/tests/apic.rs, self_ipis_are_edge_triggered_whatever_the_trigger_bit.
#[test]
fn a_self_ipi_with_the_trigger_bit_leaves_no_tmr_bit() {
    let d = Disks {
        sectors: [1, 0, 0, 0],
        file: [false; 4],
        snapshot: [false; 4],
    };
    let ops = [Op::Write(0xFEE0_0300, 4, 0x7378_8810)];
    check_sequence(&d, false, &ops).unwrap();
}

#[test]
fn fuzz_register_sequences() {
    let tally = Mutex::new(BTreeMap::<&'static str, u64>::new());
    let mut runner = TestRunner::new(config(250));
    let r = runner.run(
        &(
            disks(),
            prop::bool::weighted(0.3),
            ops(),
            prop::bool::weighted(0.2),
        ),
        |(d, rom, mut ops, host_input)| {
            // Host input in a fifth of the cases: the others end with the
            // reset comparison (see check_sequence).
            if !host_input {
                ops.retain(|o| !matches!(o, Op::SerialIn(_) | Op::Keys(_)));
            }
            for o in &ops {
                let k = match o {
                    Op::In(..) | Op::InsBulk(..) => "port reads",
                    Op::Out(..) | Op::OutsBulk(..) => "port writes",
                    Op::Read(..) => "MMIO reads",
                    Op::Write(..) => "MMIO writes",
                    Op::PureRead(..) => "pure MMIO reads",
                    Op::SerialIn(..) | Op::Keys(..) => "host input",
                    _ => "other",
                };
                *tally.lock().unwrap().entry(k).or_default() += 1;
            }
            check_sequence(&d, rom, &ops)
        },
    );
    let pure = PURE_ANSWERED.load(std::sync::atomic::Ordering::Relaxed);
    let resets = RESETS_COMPARED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "devices: {:?}; {pure} pure reads answered; {resets} resets compared",
        tally.lock().unwrap()
    );
    r.unwrap_or_else(|e| panic!("{e}"));
    if full_run(250) {
        assert!(
            pure > 0 && resets > 0,
            "{pure} pure reads, {resets} resets compared"
        );
    }
}

// ---------------------------------------------------------------------------
// ATA writes

/// A WRITE SECTORS (or WRITE MULTIPLE after SET MULTIPLE) in 28-bit LBA
/// mode to drive `drive` (0-3), of `count` sectors (0 means 256) at
/// `lba`, its data a pattern from `seed`, moved with `size`-byte OUTs (or
/// REP OUTS when `bulk`); `cut` stops the data phase that many words
/// early.
#[derive(Clone, Debug)]
struct AtaWrite {
    drive: u8,
    lba: u32,
    count: u8,
    multiple: Option<u8>,
    nien: bool,
    seed: u8,
    size: u8,
    bulk: bool,
    cut: Option<u16>,
}

#[derive(Clone, Debug)]
enum AtaOp {
    Write(AtaWrite),
    Other(Op),
}

fn ata_write() -> impl Strategy<Value = AtaWrite> {
    (
        0u8..4,
        prop_oneof![
            4 => 0u32..48,
            1 => 990u32..1010,
            1 => Just(0x0FFF_FFFFu32),
            1 => any::<u32>(),
        ],
        // Mostly short transfers (each word is a port access); a few of
        // 256 sectors (count 0) and of any count.
        prop_oneof![48 => 1u8..4, 1 => Just(0u8), 1 => any::<u8>()],
        prop::option::weighted(
            0.3,
            prop_oneof![Just(1u8), Just(2), Just(4), Just(16), Just(3)],
        ),
        any::<bool>(),
        any::<u8>(),
        prop_oneof![Just(2u8), Just(4), Just(1)],
        any::<bool>(),
        prop::option::weighted(0.2, 0u16..600),
    )
        .prop_map(
            |(drive, lba, count, multiple, nien, seed, size, bulk, cut)| AtaWrite {
                drive,
                lba,
                count,
                multiple,
                nien,
                seed,
                size,
                bulk,
                cut,
            },
        )
}

/// The ATA command registers, where a WRITE command would be issued.
fn is_write_command(port: u16, size: u8, v: u32) -> bool {
    [ports::ATA_PRIMARY + 7, ports::ATA_SECONDARY + 7]
        .iter()
        .any(|&c| {
            (0..size as u16).any(|i| {
                port.wrapping_add(i) == c && matches!((v >> (8 * i)) as u8, 0x30 | 0x31 | 0xC5)
            })
        })
}

fn ata_op() -> impl Strategy<Value = AtaOp> {
    prop_oneof![
        2 => ata_write().prop_map(AtaOp::Write),
        3 => op()
            // Writes reach the disks only through `AtaWrite`, whose
            // sectors the model knows.
            .prop_filter("no unrecorded WRITE command", |o| match *o {
                Op::Out(p, s, v) => !is_write_command(p, s, v),
                Op::OutsBulk(p, ..) => p == ports::ATA_PRIMARY || p == ports::ATA_SECONDARY,
                _ => true,
            })
            .prop_map(AtaOp::Other),
    ]
}

/// What the disks must hold: per drive, per sector, the bytes, or None
/// where an unfinished or failed write may have left anything.
struct DiskModel {
    sectors: Vec<Vec<Option<Vec<u8>>>>,
}

impl DiskModel {
    fn new(d: &Disks) -> DiskModel {
        DiskModel {
            sectors: (0..4)
                .map(|i| {
                    disk_bytes(i, d.sectors[i])
                        .chunks(SECTOR)
                        .map(|c| Some(c.to_vec()))
                        .collect()
                })
                .collect(),
        }
    }
}

/// Issues `w` as a driver would and updates the model.
fn ata_write_cmd(m: &mut Machine, w: &AtaWrite, model: &mut DiskModel) {
    let (cmd, ctl) = if w.drive < 2 {
        (ports::ATA_PRIMARY, ports::ATA_PRIMARY_CTRL)
    } else {
        (ports::ATA_SECONDARY, ports::ATA_SECONDARY_CTRL)
    };
    let out = |m: &mut Machine, p: u16, v: u32| m.io_write(p, 1, v);
    let dev = (w.drive as u32 & 1) << 4;
    // Device Control first (this also ends a software reset the other
    // accesses may have started), then wait for BSY to clear: the
    // command block registers ignore writes while BSY is set.
    out(m, ctl, if w.nien { 0x02 } else { 0x00 });
    for _ in 0..16 {
        if m.io_read(ctl, 1) & 0x80 == 0 {
            break;
        }
        m.retire(1000);
    }
    out(m, cmd + 6, 0xE0 | dev | ((w.lba >> 24) & 0xF));
    if let Some(n) = w.multiple {
        out(m, cmd + 2, n as u32);
        out(m, cmd + 7, 0xC6);
        m.io_read(cmd + 7, 1);
    }
    out(m, cmd + 2, w.count as u32);
    out(m, cmd + 3, w.lba & 0xFF);
    out(m, cmd + 4, (w.lba >> 8) & 0xFF);
    out(m, cmd + 5, (w.lba >> 16) & 0xFF);
    out(m, cmd + 7, if w.multiple.is_some() { 0xC5 } else { 0x30 });
    let count = if w.count == 0 { 256 } else { w.count as usize };
    let total = count * SECTOR;
    let send = total.saturating_sub(w.cut.unwrap_or(0) as usize * 2);
    let send = send - send % w.size as usize;
    let data: Vec<u8> = (0..send)
        .map(|k| w.seed.wrapping_add((k / 5) as u8) ^ (k as u8))
        .collect();
    if w.bulk {
        let mut done = 0;
        // REP OUTS: the bulk path moves up to the end of a DRQ block; the
        // rest goes item by item, as the engines do.
        while done < send {
            let n = m.io_write_bulk(cmd, w.size, &data[done..]);
            if n == 0 {
                let mut v = [0u8; 4];
                v[..w.size as usize].copy_from_slice(&data[done..done + w.size as usize]);
                m.io_write(cmd, w.size, u32::from_le_bytes(v));
                done += w.size as usize;
            } else {
                done += n;
            }
        }
    } else {
        for c in data.chunks(w.size as usize) {
            let mut v = [0u8; 4];
            v[..c.len()].copy_from_slice(c);
            m.io_write(cmd, w.size, u32::from_le_bytes(v));
        }
    }
    let status = m.io_read(ctl, 1) as u8;
    let i = w.drive as usize;
    let n = model.sectors[i].len() as u64;
    if n == 0 {
        return;
    }
    let lba = (w.lba & 0x0FFF_FFFF) as u64;
    let done = send == total && status & 0x09 == 0 && lba + count as u64 <= n;
    for (k, s) in (lba..(lba + count as u64).min(n)).enumerate() {
        model.sectors[i][s as usize] = if done {
            Some(data[k * SECTOR..(k + 1) * SECTOR].to_vec())
        } else {
            None
        };
    }
}

#[test]
fn fuzz_ata_writes() {
    let tally = Mutex::new(BTreeMap::<&'static str, u64>::new());
    let mut runner = TestRunner::new(config(150));
    let r = runner.run(
        &(disks(), prop::collection::vec(ata_op(), 1..30)),
        |(d, ops)| {
            let mut files = vec![];
            let mut m = build(&d, false, &mut files);
            let mut model = DiskModel::new(&d);
            let mut writes = vec![];
            for o in &ops {
                match o {
                    AtaOp::Write(w) => ata_write_cmd(&mut m, w, &mut model),
                    AtaOp::Other(op) => apply(&mut m, op, &mut writes),
                }
            }
            prop_assert!(m.flush_disks().is_ok());
            let mut files = files.iter();
            for i in 0..4 {
                if d.sectors[i] == 0 {
                    continue;
                }
                let disk = m.disk(i).unwrap();
                prop_assert_eq!(disk.sectors(), d.sectors[i] as u64);
                let mut now = vec![0u8; d.sectors[i] as usize * SECTOR];
                prop_assert!(disk.read_sectors(0, &mut now).is_ok());
                if d.file[i] {
                    // What reached the file is what the disk holds, or
                    // with --snapshot nothing at all.
                    let f = files.next().unwrap();
                    let on_file = std::fs::read(&f.0).unwrap();
                    prop_assert_eq!(on_file.len(), now.len(), "file size of drive {}", i);
                    if d.snapshot[i] {
                        prop_assert!(
                            on_file == disk_bytes(i, d.sectors[i]),
                            "drive {} is a snapshot, yet its file changed",
                            i
                        );
                    } else {
                        prop_assert!(
                            on_file == now,
                            "the file of drive {} differs from the disk",
                            i
                        );
                    }
                }
                let mut t = tally.lock().unwrap();
                for (s, want) in model.sectors[i].iter().enumerate() {
                    let got = &now[s * SECTOR..(s + 1) * SECTOR];
                    match want {
                        Some(w) => {
                            prop_assert!(
                                got == &w[..],
                                "drive {} sector {}: not what the model holds",
                                i,
                                s
                            );
                            if w[..] != disk_bytes(i, d.sectors[i])[s * SECTOR..(s + 1) * SECTOR] {
                                *t.entry("sectors written and checked").or_default() += 1;
                            }
                        }
                        None => *t.entry("sectors of unfinished writes").or_default() += 1,
                    }
                }
            }
            Ok(())
        },
    );
    let t = tally.into_inner().unwrap();
    eprintln!("ATA: {t:?}");
    r.unwrap_or_else(|e| panic!("{e}"));
    if !full_run(150) {
        return;
    }
    assert!(
        t.get("sectors written and checked").copied().unwrap_or(0) > 100,
        "{t:?}"
    );
    assert!(
        t.get("sectors of unfinished writes").copied().unwrap_or(0) > 0,
        "{t:?}"
    );
}
