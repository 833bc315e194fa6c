//! Booting from a firmware ROM, as a PC does at power-on (Machine::load_rom,
//! `ringlab run --bios`): a 64 KiB ROM, built here with GNU as, starts at
//! the reset vector (FFFFFFF0: the high alias, in real mode with CS base
//! FFFF0000), far-jumps into the low alias at F000:0000, enters protected
//! mode, writes POST codes, tries to write both ROM aliases (ignored), prints
//! on COM1 and halts with interrupts disabled. The transcript, the POST
//! sequence, the final registers and the count of ignored ROM writes must be
//! the same on every engine: the interpreter, the translator and KVM (on
//! kvm-pvm too: real mode and unpaged ring 0; in the QEMU/SVM VM with
//! RINGLAB_REQUIRE_KVM nothing may skip).

use machine::{Chain, CpuState, EngineError, Limits, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use std::time::{Duration, Instant};

/// The ROM (tests/guests/reset-rom.S, which says how it works).
const ROM: &str = include_str!("../guests/reset-rom.S");

/// Assembled once (the tests run in parallel and share the file names).
fn rom() -> Vec<u8> {
    static ROM_IMAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ROM_IMAGE
        .get_or_init(|| {
            let r = tests::guest::assemble("rom64", ROM, 0);
            assert_eq!(r.len(), 64 << 10, "the ROM is 64 KiB");
            r
        })
        .clone()
}

struct End {
    stop: Stop,
    serial: String,
    post: Vec<u8>,
    rom_writes: u64,
    eax: u32,
}

/// `m` on engine `kind`, at the CPU's reset state.
fn power_on(kind: EngineKind, m: Machine) -> Result<Session, EngineError> {
    Session::new(m, kind, Options::default(), &CpuState::reset())
}

fn boot(mut s: Session) -> Result<End, EngineError> {
    let limits = Limits {
        // KVM does not count: it has the deadline only.
        max_icount: s.kind().counts_instructions().then_some(10_000_000),
        deadline: Some(Instant::now() + Duration::from_secs(30)),
        breakpoints: vec![],
    };
    let stop = s.run_until(&limits).map_err(|e| e.error)?;
    let st = s.cpu_state()?;
    let m = &s.m;
    Ok(End {
        stop,
        serial: String::from_utf8_lossy(m.serial_output()).into_owned(),
        post: m.post_codes().to_vec(),
        rom_writes: m.rom_writes(),
        eax: st.regs[0],
    })
}

fn machine(rom: &[u8]) -> Machine {
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let map = m.load_rom(rom).expect("load_rom");
    assert_eq!((map.low, map.high), (0xF0000, 0xFFFF_0000));
    m
}

fn check(e: &End, engine: &str) {
    assert_eq!(e.stop, Stop::Halted, "{engine}");
    assert_eq!(
        e.serial, "rom: hello from protected mode\nrom: writes to ROM ignored\n",
        "{engine}"
    );
    assert_eq!(e.post, [1, 2, 3], "{engine}");
    assert_eq!(e.rom_writes, 2, "{engine}: one write to each alias");
    assert_eq!(e.eax, 0x1234_5678, "{engine}");
}

#[test]
fn the_rom_boots_on_the_interpreter() {
    let r = rom();
    let mut m = machine(&r);
    // The first instruction comes from the high alias (MMIO).
    assert_eq!(m.read_phys(0xFFFF_FFF0, 1), 0xEA);
    assert_eq!(m.read_phys(0xFFFF0, 1), 0xEA);
    let e = boot(power_on(EngineKind::Interp, m).expect("interp")).expect("interp");
    check(&e, "interp");
}

#[test]
fn the_rom_boots_on_the_translator() {
    let r = rom();
    let m = machine(&r);
    let e = boot(power_on(EngineKind::Bt, m).expect("bt")).expect("bt");
    check(&e, "bt");
}

#[test]
fn the_rom_boots_on_kvm() {
    let r = rom();
    let m = machine(&r);
    let require = std::env::var_os("RINGLAB_REQUIRE_KVM").is_some();
    let kvm = match power_on(EngineKind::Kvm, m) {
        Ok(k) => k,
        Err(e) if !require => {
            tests::skip(format!(
                "ROM on kvm: KVM is not usable on this host: {}",
                Chain(&e)
            ));
            return;
        }
        Err(e) => panic!(
            "RINGLAB_REQUIRE_KVM is set but KVM is not usable: {}",
            Chain(&e)
        ),
    };
    let e = boot(kvm).expect("kvm");
    check(&e, "kvm");
}

#[test]
fn bad_roms_are_refused_with_the_reason() {
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let e = m.load_rom(&[0xEA; 1000]).unwrap_err().to_string();
    assert!(
        e.contains("64, 128, 192 or 256 KiB") && e.contains("1000 bytes"),
        "{e}"
    );
    let e = m.load_rom(&vec![0xFF; 128 << 10]).unwrap_err().to_string();
    assert!(e.contains("reset vector holds no code"), "{e}");
    // Nothing was mapped by the failures: a good ROM still loads.
    m.load_rom(&rom()).expect("a good ROM");
}

/// The same ROM with its GDT's accessed bits clear (what a BIOS that does
/// not preset them has): every segment load makes the CPU write the bit
/// into the ROM, which a PC drops. On KVM that write to a read-only slot
/// never reaches user space and the vCPU used to sit on the far JMP until
/// the timeout (issue 20); now every engine boots it, the descriptors read
/// back unchanged (the writes dropped), and KVM counts what it dropped.
#[test]
fn a_rom_gdt_with_accessed_bits_clear_boots_on_every_engine() {
    static IMAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let r = IMAGE
        .get_or_init(|| {
            let src = ROM
                .replace("0x00CF9B000000FFFF", "0x00CF9A000000FFFF")
                .replace("0x00CF93000000FFFF", "0x00CF92000000FFFF");
            assert_ne!(src, ROM);
            tests::guest::assemble("rom64-a0", &src, 0)
        })
        .clone();
    let gdt = r
        .windows(8)
        .position(|w| w == 0x00CF_9A00_0000_FFFFu64.to_le_bytes())
        .expect("the code descriptor") as u32;
    for kind in [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm] {
        let s = match power_on(kind, machine(&r)) {
            Ok(s) => s,
            Err(e)
                if kind == EngineKind::Kvm && std::env::var_os("RINGLAB_REQUIRE_KVM").is_none() =>
            {
                tests::skip(format!(
                    "ROM on kvm: KVM is not usable on this host: {}",
                    Chain(&e)
                ));
                continue;
            }
            Err(e) => panic!("{}: {}", kind.name(), Chain(&e)),
        };
        let mut s = s;
        let limits = Limits {
            max_icount: kind.counts_instructions().then_some(10_000_000),
            deadline: Some(Instant::now() + Duration::from_secs(30)),
            breakpoints: vec![],
        };
        let stop = s.run_until(&limits).map_err(|e| e.error).expect("runs");
        assert_eq!(stop, Stop::Halted, "{}", kind.name());
        assert_eq!(
            String::from_utf8_lossy(s.m.serial_output()),
            "rom: hello from protected mode\nrom: writes to ROM ignored\n",
            "{}",
            kind.name()
        );
        // The descriptors as the ROM has them: the accessed bits still clear.
        for (i, want) in [(8u32, 0x9Au64), (16, 0x92)] {
            assert_eq!(
                s.m.read_phys(0xF0000 + gdt - 8 + i + 5, 1),
                want,
                "{}: descriptor {i:#x}'s access byte",
                kind.name()
            );
        }
        if kind == EngineKind::Kvm {
            let dropped = s
                .stats()
                .counter("ROM descriptor writes dropped")
                .expect("KVM counts them");
            assert!(dropped >= 1, "{dropped}");
        }
    }
}
