//! The harness of the firmware tests: boot sectors (and small kernels that
//! follow them on the disk) in `tests/guests/*.S`, assembled at 0x7C00,
//! written to a disk image that becomes the first hard disk, and booted
//! by ringlab's BIOS from the reset vector on every engine this host has
//! (`tests::platform`'s rules: the same transcript everywhere; KVM skipped
//! with kvm-pvm's own explanation where it cannot run a guest).
//!
//! The transcript is the stop, the COM1 output and the final VGA screen.

use crate::platform::{assemble_at, run_machine};
use machine::cpu::CpuState;
use machine::disk::DiskImage;
use machine::Machine;
use ringlab::engines::EngineKind;
use std::time::Duration;

/// The RAM of the machines the firmware tests boot, unless a test asks
/// for another size.
pub const RAM: usize = 32 << 20;

/// `tests/guests/NAME.S` linked at 0x7C00, padded to whole sectors.
pub fn disk_image(name: &str) -> Vec<u8> {
    let mut img = assemble_at(name, 0x7C00);
    img.resize(img.len().div_ceil(512).max(1) * 512, 0);
    img
}

/// A machine with ringlab's BIOS and no disk.
pub fn bios_machine() -> Machine {
    bios_machine_with_ram(RAM)
}

/// [`bios_machine`] with `ram_bytes` of RAM.
pub fn bios_machine_with_ram(ram_bytes: usize) -> Machine {
    let mut m = Machine::new(machine::MachineConfig::with_ram(ram_bytes)).expect("machine");
    m.load_rom(machine::firmware::BIOS).expect("the BIOS maps");
    m
}

/// A machine with ringlab's BIOS and `image` as its first hard disk,
/// prepared further by `setup`.
pub fn machine(image: &[u8], setup: &dyn Fn(&mut Machine)) -> Machine {
    machine_with_ram(image, RAM, setup)
}

/// [`machine`] with `ram_bytes` of RAM.
pub fn machine_with_ram(image: &[u8], ram_bytes: usize, setup: &dyn Fn(&mut Machine)) -> Machine {
    let mut m = bios_machine_with_ram(ram_bytes);
    m.attach_disk(0, DiskImage::from_bytes(image.to_vec()).expect("a disk"));
    setup(&mut m);
    m
}

/// Boots `tests/guests/NAME.S` on every engine; returns the interpreter's
/// transcript after checking the others match it.
pub fn boot_everywhere(name: &str, setup: &dyn Fn(&mut Machine)) -> String {
    boot_everywhere_inspecting(name, setup, &mut |_, _| {})
}

/// [`boot_everywhere`] on machines with `ram_bytes` of RAM.
pub fn boot_everywhere_with_ram(
    name: &str,
    ram_bytes: usize,
    setup: &dyn Fn(&mut Machine),
) -> String {
    let image = disk_image(name);
    boot_machines_everywhere(
        name,
        &|| machine_with_ram(&image, ram_bytes, setup),
        &mut |_, _| {},
    )
}

/// `boot_everywhere`, with `inspect` called on each engine's machine after
/// its run (its disks, POST codes, debug console).
pub fn boot_everywhere_inspecting(
    name: &str,
    setup: &dyn Fn(&mut Machine),
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> String {
    let image = disk_image(name);
    boot_machines_everywhere(name, &|| machine(&image, setup), inspect)
}

/// Powers on the machine `build` makes (a fresh one for each engine) at the
/// reset vector, on every engine; `inspect` sees each after its run.
/// Returns the interpreter's transcript after checking the others match it.
pub fn boot_machines_everywhere(
    label: &str,
    build: &dyn Fn() -> Machine,
    inspect: &mut dyn FnMut(EngineKind, &Machine),
) -> String {
    let mut transcripts = Vec::new();
    for kind in [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm] {
        let limit = Duration::from_secs(120);
        if let Some(o) = run_machine(kind, build(), &CpuState::reset(), None, limit, inspect) {
            transcripts.push((kind, o.transcript_with_screen()));
        }
    }
    let (_, first) = &transcripts[0];
    for (kind, t) in &transcripts[1..] {
        assert_eq!(
            t,
            first,
            "{label}: {} differs from the interpreter",
            kind.name()
        );
    }
    first.clone()
}

/// Loads `tests/guests/NAME.S` (a platform guest with `multiboot.inc`) as
/// ringlab's loader does for `ringlab run kernel`, powers the PC on at the
/// reset vector, and lets the BIOS run POST and start the kernel (boot.S,
/// "a kernel ringlab loaded"), on every engine.
pub fn boot_kernel_everywhere(name: &str, setup: &dyn Fn(&mut Machine)) -> String {
    let image = assemble_at(name, crate::platform::LOAD);
    boot_machines_everywhere(
        name,
        &|| {
            let mut m = bios_machine();
            machine::loader::load(&mut m.mem, &image, &machine::loader::LoadOptions::default())
                .expect("the kernel loads");
            setup(&mut m);
            m
        },
        &mut |_, _| {},
    )
}
