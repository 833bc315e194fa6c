//! Trap-and-emulate mode (`Interp::set_deprivilege`): the same ring-0 guest
//! run normally and deprivileged. Privileged instructions still give the
//! right answers (trapped and emulated); the sensitive unprivileged ones
//! give the wrong ones, silently — the Popek-Goldberg lesson.

use machine::cpu::CpuState;
use machine::{Event, Handling};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use tests::guest::*;

const GUEST: &str = r#"
    .intel_syntax noprefix
    .code32
    .global start
start:
    cli                         # privileged
    pushfd                      # sensitive, unprivileged: IF as seen
    pop eax
    mov [0x5000], eax
    sgdt [0x5004]               # the GDT as seen
    mov ax, cs                  # CS as seen: RPL
    mov [0x500c], ax
    smsw eax                    # CR0 as seen
    mov [0x5010], eax
    mov eax, 0x3202             # IF and IOPL 3 ...
    push eax
    popfd                       # ... which POPF applies only at CPL 0
    pushfd
    pop eax
    mov [0x5014], eax
    mov eax, 0x3202 ^ 0x3200    # IF clear again (for the HLT below)
    push eax
    popfd
    lgdt [0x5004]               # privileged: reload what SGDT stored
    mov al, 0
    out 0xf4, al                # privileged at IOPL 0: exit
"#;

struct Seen {
    pushf: u32,
    gdt_limit: u16,
    gdt_base: u32,
    cs: u16,
    cr0: u32,
    popf: u32,
    handlings: Vec<(String, Handling)>,
}

fn run(deprivilege: bool) -> Seen {
    let image = assemble(if deprivilege { "depriv" } else { "native" }, GUEST, LOAD);
    let mut m = machine_with(&image, LOAD);
    // A GDT that matches the multiboot state's caches.
    m.mem.write_u64(0x500, 0).unwrap();
    m.mem.write_u64(0x508, 0x00CF_9A00_0000_FFFF).unwrap();
    m.mem.write_u64(0x510, 0x00CF_9200_0000_FFFF).unwrap();
    let mut st = CpuState::multiboot(LOAD, 0, 0x500);
    st.regs[machine::cpu::ESP] = KSTACK;
    let mut s = Session::new(
        m,
        EngineKind::Interp,
        Options::deprivileged(deprivilege),
        &st,
    )
    .expect("interp");
    let stop = s.run_until(&limits()).unwrap();
    let m = &s.m;
    assert_eq!(stop, machine::Stop::GuestExit { value: 0 });
    let handlings = m
        .trace
        .records()
        .filter_map(|r| match &r.event {
            Event::Sensitive { insn, how, .. } => Some((insn.to_string(), *how)),
            _ => None,
        })
        .collect();
    Seen {
        pushf: m.mem.read_u32(0x5000).unwrap(),
        gdt_limit: m.mem.read_u16(0x5004).unwrap(),
        gdt_base: m.mem.read_u32(0x5006).unwrap(),
        cs: m.mem.read_u16(0x500c).unwrap(),
        cr0: m.mem.read_u32(0x5010).unwrap(),
        popf: m.mem.read_u32(0x5014).unwrap(),
        handlings,
    }
}

#[test]
fn native_ring_0_sees_the_truth() {
    let s = run(false);
    assert_eq!(s.pushf & 0x3200, 0, "IF clear after CLI, IOPL 0");
    assert_eq!((s.gdt_limit, s.gdt_base), (23, 0x500));
    assert_eq!(s.cs, 0x08);
    assert_eq!(s.cr0, 0x11, "PE and ET");
    assert_eq!(s.popf & 0x3200, 0x3200, "POPF at CPL 0 sets IF and IOPL");
    assert!(s.handlings.iter().all(|(_, h)| *h == Handling::Interpreted));
}

#[test]
fn deprivileged_ring_0_is_silently_wrong() {
    let s = run(true);
    // PUSHF shows the monitor's IF (on), not the guest's (off after CLI).
    assert_eq!(s.pushf & 0x3200, 0x0200);
    // SGDT shows the monitor's table.
    assert_eq!(
        (s.gdt_limit, s.gdt_base),
        (
            engine_interp::deprivilege::MONITOR_GDT_LIMIT,
            engine_interp::deprivilege::MONITOR_GDT_BASE
        )
    );
    // MOV from CS shows ring 1.
    assert_eq!(s.cs, 0x09);
    // SMSW shows the monitor's CR0 (paging and WP on).
    assert_eq!(s.cr0, 0x8001_0011);
    // POPF at ring 1 with IOPL 0 keeps IF and IOPL without a fault; PUSHF
    // then shows IF set only because the monitor's IF is.
    assert_eq!(s.popf & 0x3000, 0);
    let how = |name: &str| {
        s.handlings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("no event for {name}"))
    };
    for name in ["cli", "lgdt", "out"] {
        assert_eq!(how(name), Handling::TrapAndEmulate, "{name}");
    }
    for name in ["pushf", "popf", "sgdt", "mov from cs", "smsw"] {
        assert_eq!(how(name), Handling::SilentlyWrong, "{name}");
    }
}
