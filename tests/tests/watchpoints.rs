//! Data watchpoints (`Machine::set_watchpoints`, issue 19) and breakpoints
//! inside translated code, on the interpreter and the binary translator.
//!
//! A watchpoint is an x86 data breakpoint (SDM Vol 3A 17.2.4, 17.3.1.2):
//! a trap after the access, so at the stop the accessing instruction has
//! completed (its write is in memory, EIP is at the next instruction), and
//! a REP string instruction stops after the iteration that hit, EIP still
//! on it. Every guest here runs on both engines, which must stop at the
//! same places with the same registers and the same instruction counts.
//!
//! The guests mark the places the tests expect a stop at with `mov ebp,
//! N` (bytes BD N 00 00 00): a stop "at marker N" has EIP on that
//! instruction.

use machine::cpu::CpuState;
use machine::loader::{self, ImageFormat, LoadOptions};
use machine::{Counter, Engine, Limits, Machine, MachineConfig, Stop, WatchKind, Watchpoint};
use std::time::{Duration, Instant};

/// Where the guests are linked and entered (flat 32-bit protected mode,
/// ring 0, as a multiboot loader leaves a kernel).
const LOAD: u32 = 0x0010_0000;
/// The page the guests' watched data lives on.
const DATA: u32 = 0x0030_0000;
const STACK: u32 = 0x0008_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Interp,
    Bt,
}

const KINDS: [Kind; 2] = [Kind::Interp, Kind::Bt];

fn engine(k: Kind) -> Box<dyn Engine> {
    match k {
        Kind::Interp => Box::new(engine_interp::Interp::new()),
        Kind::Bt => Box::new(engine_bt::Bt::new().expect("bt")),
    }
}

fn assemble(name: &str, body: &str) -> Vec<u8> {
    let src = format!(
        ".intel_syntax noprefix\n.code32\n.set DATA, {DATA:#x}\n.global start\nstart:\n{body}\n\
         done:\n    mov al, 0x4F\n    out 0xF4, al\n    hlt\n"
    );
    tests::guest::assemble(name, &src, LOAD)
}

/// A machine holding `image` at LOAD, on engine `k`, entered in flat 32-bit
/// protected mode with ESP = STACK (`state` may change the entry state).
fn boot(
    k: Kind,
    image: &[u8],
    state: &dyn Fn(&mut CpuState, &mut Machine),
) -> (Box<dyn Engine>, Machine) {
    let mut m = Machine::new(MachineConfig::with_ram(8 << 20)).expect("machine");
    m.mem.write(LOAD as u64, image).expect("image");
    let mut st = CpuState::multiboot(LOAD, 0, 0);
    st.regs[machine::cpu::ESP] = STACK;
    state(&mut st, &mut m);
    let mut e = engine(k);
    e.set_cpu_state(&mut m, &st).expect("state");
    (e, m)
}

fn limits() -> Limits {
    Limits {
        max_icount: Some(10_000_000),
        deadline: Some(Instant::now() + Duration::from_secs(20)),
        breakpoints: Vec::new(),
    }
}

fn w(addr: u32, len: u32, kind: WatchKind) -> Watchpoint {
    Watchpoint { addr, len, kind }
}

/// What a test compares at a stop: the stop, EIP, the general registers
/// and the instruction count.
#[derive(Clone, Debug, PartialEq, Eq)]
struct At {
    stop: Stop,
    eip: u32,
    regs: [u32; 8],
    icount: u64,
}

fn at(e: &mut dyn Engine, m: &Machine, stop: Stop) -> At {
    let st = e.cpu_state().expect("state");
    At {
        stop,
        eip: st.eip,
        regs: st.regs,
        icount: m.icount(),
    }
}

/// The N of the marker `mov ebp, N` at `eip`, if there is one.
fn marker(m: &Machine, eip: u32) -> Option<u32> {
    let b = m.mem.slice(eip as u64, 5).ok()?;
    (b[0] == 0xBD).then(|| u32::from_le_bytes([b[1], b[2], b[3], b[4]]))
}

/// The address of marker `n` in `image` (linked at LOAD).
fn marker_addr(image: &[u8], n: u32) -> u32 {
    let mut want = vec![0xBD];
    want.extend_from_slice(&n.to_le_bytes());
    let off = image
        .windows(5)
        .position(|x| x == want.as_slice())
        .unwrap_or_else(|| panic!("no marker {n}"));
    LOAD + off as u32
}

fn u32_at(m: &Machine, a: u32) -> u32 {
    m.mem.read_u32(a as u64).expect("RAM")
}

/// Runs the guest on both engines under `watches`, continuing after each
/// stop until it exits; returns each engine's stops (with the marker at
/// the stop and the value at `probe`), which must be identical.
fn run_all(
    name: &str,
    body: &str,
    watches: &[Watchpoint],
    probe: u32,
    state: &dyn Fn(&mut CpuState, &mut Machine),
) -> Vec<(At, Option<u32>, u32)> {
    let image = assemble(name, body);
    let mut first: Option<Vec<(At, Option<u32>, u32)>> = None;
    for k in KINDS {
        let (mut e, mut m) = boot(k, &image, state);
        m.set_watchpoints(watches.to_vec());
        let mut seen = Vec::new();
        loop {
            let s = e.run(&mut m, &limits()).expect("run");
            let a = at(e.as_mut(), &m, s.clone());
            let mk = marker(&m, a.eip);
            seen.push((a, mk, u32_at(&m, probe)));
            match s {
                Stop::Watchpoint { .. } => continue,
                Stop::GuestExit { value: 0x4F } => break,
                other => panic!("{k:?}: {name} stopped with {other:?} at {:#x?}", seen),
            }
        }
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(&seen, f, "{name}: {k:?} against the interpreter"),
        }
    }
    first.unwrap()
}

/// (stop, marker) of each stop, for the assertions.
fn stops(v: &[(At, Option<u32>, u32)]) -> Vec<(Stop, Option<u32>)> {
    v.iter().map(|(a, mk, _)| (a.stop.clone(), *mk)).collect()
}

fn hit(addr: u32, kind: WatchKind) -> Stop {
    Stop::Watchpoint { addr, kind }
}

const EXIT: Stop = Stop::GuestExit { value: 0x4F };

fn flat(_: &mut CpuState, _: &mut Machine) {}

#[test]
fn a_write_watch_stops_after_the_store_and_not_on_reads() {
    let body = r#"
    mov eax, 0x11223344
    mov ebx, [DATA]             # a read: no hit for a write watch
    mov [DATA + 4], eax         # just past the range: no hit
    mov [DATA], eax             # hit
    mov ebp, 1
    mov ecx, [DATA]
    mov word ptr [DATA - 1], 0x5566 # unaligned, overlapping the first byte
    mov ebp, 2
    mov dword ptr [DATA - 4], 7 # ends just before: no hit
    mov byte ptr [DATA + 3], 0x99 # the last byte
    mov ebp, 3
"#;
    let wp = w(DATA, 4, WatchKind::Write);
    let v = run_all("watch_write", body, &[wp], DATA, &flat);
    assert_eq!(
        stops(&v),
        [
            (hit(DATA, WatchKind::Write), Some(1)),
            (hit(DATA, WatchKind::Write), Some(2)),
            (hit(DATA, WatchKind::Write), Some(3)),
            (EXIT, None),
        ]
    );
    // The store is in memory at the stop, and ran exactly once.
    assert_eq!(v[0].2, 0x1122_3344);
    assert_eq!(v[1].2, 0x1122_3355, "0x66 went to DATA - 1");
    assert_eq!(v[2].2, 0x9922_3355);
    // The instruction counts: 4 instructions before the first stop.
    assert_eq!(v[0].0.icount, 4);
    assert_eq!(v[0].0.regs[3], 0, "EBX read the old value");
}

#[test]
fn read_and_access_watches() {
    let body = r#"
    mov dword ptr [DATA], 5     # a write: no hit for a read watch
    mov eax, [DATA]             # hit
    mov ebp, 1
    add [DATA], eax             # read-modify-write: hit
    mov ebp, 2
    cmp dword ptr [DATA + 8], 0 # outside: no hit
    mov ebx, [DATA + 2]         # overlaps the end
    mov ebp, 3
"#;
    let v = run_all(
        "watch_read",
        body,
        &[w(DATA, 4, WatchKind::Read)],
        DATA,
        &flat,
    );
    let r = hit(DATA, WatchKind::Read);
    assert_eq!(
        stops(&v),
        [
            (r.clone(), Some(1)),
            (r.clone(), Some(2)),
            (r, Some(3)),
            (EXIT, None)
        ]
    );
    assert_eq!(v[0].0.regs[0], 5);
    assert_eq!(v[1].2, 10, "the RMW completed");

    let v = run_all(
        "watch_access",
        body,
        &[w(DATA, 4, WatchKind::Access)],
        DATA,
        &flat,
    );
    let a = hit(DATA, WatchKind::Access);
    // The first store hits too: the stop is after it, at `mov eax`.
    assert_eq!(v[0].0.stop, a);
    assert_eq!(v[0].0.icount, 1);
    assert_eq!(v[0].2, 5);
    assert_eq!(
        stops(&v)[1..],
        [
            (a.clone(), Some(1)),
            (a.clone(), Some(2)),
            (a, Some(3)),
            (EXIT, None)
        ]
    );
}

#[test]
fn rep_string_instructions_stop_after_the_iteration_that_hit() {
    let body = r#"
    mov esi, DATA + 0x800       # source
    mov dword ptr [esi + 12], 0xABCD
    mov edi, DATA + 0x400 - 8   # the fourth dword lands on DATA + 0x404
    mov ecx, 6
    cld
    rep movsd
    mov ebp, 1
    mov edi, DATA - 50          # 50 bytes before the page, then into it
    mov ecx, 100
    mov al, 0x5A
    rep stosb
    mov ebp, 2
"#;
    let watches = [
        w(DATA + 0x404, 4, WatchKind::Write),
        w(DATA + 0x10, 1, WatchKind::Write),
    ];
    let v = run_all("watch_rep", body, &watches, DATA + 0x404, &flat);
    let movsd = hit(DATA + 0x404, WatchKind::Write);
    let stosb = hit(DATA + 0x10, WatchKind::Write);
    assert_eq!(stops(&v), [(movsd, None), (stosb, None), (EXIT, None)]);
    // MOVSD: the fourth iteration wrote DATA + 0x404; EIP is still on
    // REP MOVSD, the registers past the iteration.
    let (a, _, val) = &v[0];
    assert_eq!(val, &0xABCD);
    assert_eq!(a.regs[1], 2, "ECX");
    assert_eq!(a.regs[6], DATA + 0x800 + 16, "ESI");
    assert_eq!(a.regs[7], DATA + 0x408, "EDI");
    assert_eq!(a.icount, 5, "REP MOVSD not retired yet");
    // STOSB, from DATA - 50 up: DATA + 0x10 is its 67th iteration of 100.
    let (b, _, _) = &v[1];
    assert_eq!(b.regs[1], 33, "ECX");
    assert_eq!(b.regs[7], DATA + 0x11, "EDI");
    assert!(b.eip > a.eip);
    assert_eq!(b.icount, 10, "REP STOSB not retired yet");
    // Both ran to their ends after the stops.
    assert_eq!(v[2].0.regs[1], 0);
    assert_eq!(v[2].0.regs[7], DATA + 50);
    assert_eq!(v[2].0.icount, 14);
}

#[test]
fn rep_outs_stops_after_the_item_that_hit() {
    let body = r#"
    mov dword ptr [DATA], 0x64636261 # "abcd"
    mov esi, DATA - 2
    mov ecx, 6
    mov dx, 0xE9                # the debug console
    cld
    rep outsb                   # reads DATA + 1 in its fourth item
    mov ebp, 1
"#;
    let v = run_all(
        "watch_outs",
        body,
        &[w(DATA + 1, 1, WatchKind::Read)],
        DATA,
        &flat,
    );
    assert_eq!(
        stops(&v),
        [(hit(DATA + 1, WatchKind::Read), None), (EXIT, None)]
    );
    assert_eq!(v[0].0.regs[1], 2, "ECX");
    assert_eq!(v[0].0.regs[6], DATA + 2, "ESI");
    assert_eq!(v[1].0.regs[6], DATA + 4, "ESI at the end");
}

#[test]
fn pushes_calls_and_pops_hit_a_watched_stack_slot() {
    let body = r#"
    mov esp, DATA + 0x10
    mov eax, 0x77
    push eax                    # writes DATA + 0xC: hit
    mov ebp, 1
    call func                   # writes DATA + 8: hit, stop at func
    mov ebp, 3
    pop ebx                     # a read: no hit (write watch)
    mov esp, 0x80000
    enter 8, 0                  # pushes EBP below 0x80000: no hit
    leave
    jmp done
func:
    mov ebp, 2
    ret
"#;
    let v = run_all(
        "watch_stack",
        body,
        &[w(DATA + 8, 8, WatchKind::Write)],
        DATA + 0xC,
        &flat,
    );
    let h = hit(DATA + 8, WatchKind::Write);
    assert_eq!(
        stops(&v),
        [(h.clone(), Some(1)), (h, Some(2)), (EXIT, None)]
    );
    assert_eq!(v[0].2, 0x77);
    assert_eq!(v[0].0.regs[4], DATA + 0xC, "ESP after the push");
    assert_eq!(v[1].0.regs[4], DATA + 8, "ESP after the call");

    // An access watch: the RET's and the POP's reads hit too, and so do
    // ENTER's push and LEAVE's pop on a watched frame.
    let body = r#"
    mov esp, DATA + 0x10
    push 0x99                   # hit (write)
    mov ebp, 1
    pop eax                     # hit (read)
    mov ebp, 2
    mov esp, DATA + 0x10
    mov ebp, DATA + 0x40
    enter 8, 0                  # pushes EBP at DATA + 0xC: hit
    mov ecx, 3
    leave                       # pops it: hit
    mov ecx, 4
"#;
    let v = run_all(
        "watch_stack_access",
        body,
        &[w(DATA + 0xC, 4, WatchKind::Access)],
        DATA + 0xC,
        &flat,
    );
    let a = hit(DATA + 0xC, WatchKind::Access);
    assert_eq!(
        stops(&v),
        [
            (a.clone(), Some(1)),
            (a.clone(), Some(2)),
            (a.clone(), None),
            (a, None),
            (EXIT, None)
        ]
    );
    assert_eq!(v[1].0.regs[0], 0x99);
    assert_eq!(v[2].2, DATA + 0x40, "ENTER pushed EBP");
    assert_eq!(v[2].0.regs[5], DATA + 0xC, "EBP = the frame");
    assert_eq!(v[3].0.regs[5], DATA + 0x40, "LEAVE popped EBP");
    assert_eq!(v[3].0.regs[1], 3, "stopped before mov ecx, 4");
}

/// 32-bit paging: the first 4 MiB identity-mapped, linear 0x400000 on
/// physical DATA (the watched page's physical frame is another page's
/// linear address).
fn paged(st: &mut CpuState, m: &mut Machine) {
    const PD: u64 = 0x10000;
    const PT0: u64 = 0x11000;
    const PT1: u64 = 0x12000;
    m.mem.write_u32(PD, PT0 as u32 | 3).unwrap();
    m.mem.write_u32(PD + 4, PT1 as u32 | 3).unwrap();
    for i in 0..1024u64 {
        m.mem.write_u32(PT0 + 4 * i, (i << 12) as u32 | 3).unwrap();
    }
    m.mem.write_u32(PT1, DATA | 3).unwrap();
    st.cr3 = PD as u32;
    st.cr0 |= machine::cpu::cr0::PG;
}

#[test]
fn a_watch_is_on_linear_addresses_under_paging() {
    let body = r#"
    mov dword ptr [DATA + 0x10], 1      # physical DATA + 0x10, linear DATA: no hit
    mov dword ptr [0x400010], 2         # the same byte, through linear 0x400000: hit
    mov ebp, 1
    mov ebx, [DATA + 0x10]
"#;
    let v = run_all(
        "watch_paged",
        body,
        &[w(0x40_0010, 4, WatchKind::Write)],
        DATA + 0x10,
        &paged,
    );
    assert_eq!(
        stops(&v),
        [(hit(0x40_0010, WatchKind::Write), Some(1)), (EXIT, None)]
    );
    assert_eq!(v[0].2, 2, "the write went to physical DATA + 0x10");
    assert_eq!(v[1].0.regs[3], 2);
}

/// A GDT at 0x1000 with flat ring-0 code (0x08) and data (0x10), so that
/// interrupt gates can name a code segment (the IDT is at 0).
fn with_gdt(st: &mut CpuState, m: &mut Machine) {
    m.mem
        .write(0x1008, &0x00CF_9A00_0000_FFFFu64.to_le_bytes())
        .unwrap();
    m.mem
        .write(0x1010, &0x00CF_9200_0000_FFFFu64.to_le_bytes())
        .unwrap();
    st.gdtr = machine::cpu::TableReg {
        base: 0x1000,
        limit: 23,
    };
}

#[test]
fn an_interrupt_frame_pushed_onto_a_watched_slot_stops_at_the_handler() {
    let body = r#"
    mov eax, offset handler     # interrupt gate 0x30 -> 0x08:handler
    mov word ptr [0x30 * 8], ax
    mov word ptr [0x30 * 8 + 2], 0x08
    mov word ptr [0x30 * 8 + 4], 0x8E00
    shr eax, 16
    mov word ptr [0x30 * 8 + 6], ax
    mov esp, DATA + 0x10
    int 0x30                    # EFLAGS goes to DATA + 0xC: hit
    mov ebp, 2
    jmp done
handler:
    mov ebp, 1
    iret                        # reads the frame: no hit
"#;
    let v = run_all(
        "watch_int",
        body,
        &[w(DATA + 0xC, 4, WatchKind::Write)],
        DATA + 0xC,
        &with_gdt,
    );
    assert_eq!(
        stops(&v),
        [(hit(DATA + 0xC, WatchKind::Write), Some(1)), (EXIT, None)]
    );
    assert_eq!(v[0].0.regs[4], DATA + 4, "the whole frame was pushed");
    assert_eq!(v[0].2 & 0x2, 0x2, "EFLAGS' image in the slot");
}

#[test]
fn a_hot_loop_with_a_watch_off_its_page_runs_translated_and_stops_exactly() {
    // 1000 iterations store to DATA + 0x100 (its page is watched, the
    // range is not touched) until the last one stores to the watched
    // dword.
    let body = r#"
    mov ecx, 1000
    xor eax, eax
1:  add eax, ecx
    mov [DATA + 0x100], eax
    mov ebx, [0x200000]
    cmp ecx, 1
    jne 2f
    mov [DATA], eax
2:  dec ecx
    jnz 1b
    mov ebp, 1
"#;
    let image = assemble("watch_loop", body);
    let mut seen = Vec::new();
    for k in KINDS {
        let (mut e, mut m) = boot(k, &image, &flat);
        m.set_watchpoints(vec![w(DATA, 4, WatchKind::Write)]);
        let s = e.run(&mut m, &limits()).expect("run");
        let a = at(e.as_mut(), &m, s);
        assert_eq!(a.stop, hit(DATA, WatchKind::Write), "{k:?}");
        assert_eq!(a.regs[1], 1, "{k:?}: ECX in the last iteration");
        assert_eq!(u32_at(&m, DATA), 500_500);
        // The watch removed: the rest runs to the end.
        m.set_watchpoints(Vec::new());
        assert_eq!(e.run(&mut m, &limits()).expect("run"), EXIT);
        seen.push((a, m.icount()));
        if k == Kind::Bt {
            let st = e.stats();
            let translated = st.get(Counter::TranslatedInstructions).unwrap();
            assert!(
                translated > 5_000,
                "translated: {translated} of {}",
                m.icount()
            );
        }
    }
    assert_eq!(seen[0], seen[1], "bt against the interpreter");
}

#[test]
fn step_reports_a_watchpoint_hit() {
    let body = r#"
    mov eax, 1
    mov [DATA], eax
    mov ebp, 1
    mov [DATA + 8], eax
"#;
    let image = assemble("watch_step", body);
    for k in KINDS {
        let (mut e, mut m) = boot(k, &image, &flat);
        m.set_watchpoints(vec![w(DATA, 4, WatchKind::Write)]);
        assert_eq!(e.step(&mut m).unwrap(), Stop::Stepped, "{k:?}");
        let s = e.step(&mut m).unwrap();
        assert_eq!(s, hit(DATA, WatchKind::Write), "{k:?}");
        let eip = e.cpu_state().unwrap().eip;
        assert_eq!(marker(&m, eip), Some(1), "{k:?}");
        assert_eq!(m.icount(), 2, "{k:?}");
        assert_eq!(e.step(&mut m).unwrap(), Stop::Stepped, "{k:?}");
        assert_eq!(e.step(&mut m).unwrap(), Stop::Stepped, "{k:?}");
        assert_eq!(e.run(&mut m, &limits()).unwrap(), EXIT, "{k:?}");
    }
}

/// (icount, EAX, EBX) at each breakpoint stop, then at the end; and the
/// translator's count of translated instructions at the last stop.
fn breakpoint_hits(k: Kind, image: &[u8], bp: u32, hits: usize) -> (Vec<(u64, u32, u32)>, u64) {
    let (mut e, mut m) = boot(k, image, &flat);
    let mut l = limits();
    l.breakpoints = vec![bp];
    let mut v = Vec::new();
    for _ in 0..hits {
        let s = e.run(&mut m, &l).expect("run");
        assert_eq!(s, Stop::Breakpoint { addr: bp }, "{k:?}");
        let st = e.cpu_state().unwrap();
        assert_eq!(st.eip, bp);
        v.push((m.icount(), st.regs[0], st.regs[3]));
    }
    let translated = e.stats().get(Counter::TranslatedInstructions).unwrap_or(0);
    // On without the breakpoint.
    assert_eq!(e.run(&mut m, &limits()).expect("run"), EXIT, "{k:?}");
    let st = e.cpu_state().unwrap();
    v.push((m.icount(), st.regs[0], st.regs[3]));
    (v, translated)
}

const BP_LOOP: &str = r#"
    mov ecx, 20000
    xor eax, eax
    xor ebx, ebx
1:  add eax, ecx
    mov [0x200000], eax
    mov ebp, 1                  # the breakpoint
    add ebx, eax
    dec ecx
    jnz 1b
    jmp done
    mov ebp, 2                  # never reached
"#;

#[test]
fn breakpoints_in_a_hot_loop_hit_as_on_the_interpreter() {
    let image = assemble("bp_loop", BP_LOOP);
    let bp = marker_addr(&image, 1);
    let (want, _) = breakpoint_hits(Kind::Interp, &image, bp, 50);
    let (got, translated) = breakpoint_hits(Kind::Bt, &image, bp, 50);
    assert_eq!(got, want);
    assert_eq!(want[0].0, 5, "three setup instructions, then two");
    assert_eq!(want[1].0 - want[0].0, 6, "one iteration");
    // Between the stops the loop ran translated: the breakpoint's
    // instruction on the interpreter, the five others translated.
    assert!(translated >= 49 * 5, "translated {translated}");
}

#[test]
fn a_breakpoint_never_reached_leaves_the_loop_translated() {
    let image = assemble("bp_never", BP_LOOP);
    let bp = marker_addr(&image, 2);
    let mut ends = Vec::new();
    for k in KINDS {
        let (mut e, mut m) = boot(k, &image, &flat);
        let mut l = limits();
        l.breakpoints = vec![bp];
        assert_eq!(e.run(&mut m, &l).expect("run"), EXIT, "{k:?}");
        let st = e.cpu_state().unwrap();
        ends.push((m.icount(), st.regs));
        if k == Kind::Bt {
            let s = e.stats();
            let translated = s.get(Counter::TranslatedInstructions).unwrap();
            assert!(
                translated * 100 > m.icount() * 99,
                "translated {translated} of {}",
                m.icount()
            );
        }
    }
    assert_eq!(ends[0], ends[1]);
}

#[test]
fn a_breakpoint_set_after_translation_is_still_hit() {
    // The loop runs translated without breakpoints first; a breakpoint in
    // the middle of its (already translated and chained) block must stop
    // it exactly where the interpreter does.
    let image = assemble("bp_late", BP_LOOP);
    let bp = marker_addr(&image, 1);
    let mut seen = Vec::new();
    for k in KINDS {
        let (mut e, mut m) = boot(k, &image, &flat);
        let mut l = limits();
        l.max_icount = Some(30_003);
        assert_eq!(e.run(&mut m, &l).expect("run"), Stop::Budget);
        l.max_icount = limits().max_icount;
        l.breakpoints = vec![bp];
        assert_eq!(
            e.run(&mut m, &l).expect("run"),
            Stop::Breakpoint { addr: bp }
        );
        let st = e.cpu_state().unwrap();
        seen.push((m.icount(), st.regs));
        // Moved: the next stop is at the new one.
        let bp2 = bp + 5; // add ebx, eax
        l.breakpoints = vec![bp2];
        assert_eq!(
            e.run(&mut m, &l).expect("run"),
            Stop::Breakpoint { addr: bp2 }
        );
        seen.push((m.icount(), e.cpu_state().unwrap().regs));
    }
    assert_eq!(seen[0..2], seen[2..4]);
}

/// Host time for `n` instructions of the compute lesson on `k` with
/// `breakpoints` and `watches`.
fn compute_time(k: Kind, n: u64, breakpoints: Vec<u32>, watches: Vec<Watchpoint>) -> f64 {
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let loaded = loader::load(
        &mut m.mem,
        lessons::COMPUTE,
        &LoadOptions {
            format: Some(ImageFormat::Flat),
            load_addr: None,
        },
    )
    .expect("load");
    let mut e = engine(k);
    e.set_cpu_state(&mut m, &loaded.entry).unwrap();
    m.set_watchpoints(watches);
    let l = Limits {
        max_icount: Some(n),
        deadline: Some(Instant::now() + Duration::from_secs(600)),
        breakpoints,
    };
    let t = Instant::now();
    assert_eq!(e.run(&mut m, &l).unwrap(), Stop::Budget);
    t.elapsed().as_secs_f64()
}

/// The figures of the report: `cargo test --release -p tests --test
/// watchpoints -- --ignored --nocapture`. The compute lesson's loop
/// (one chained translated block), with a breakpoint that is never
/// reached and with a watchpoint on a page it never touches; the best of
/// three runs each.
#[test]
#[ignore]
fn measure_compute_with_breakpoints_and_watchpoints() {
    let bp = vec![0x0009_0000]; // never executed
    let far = vec![w(0x0030_0000, 4, WatchKind::Write)]; // a page never touched
    let long = 900_000_000;
    for (name, k, n, b, wp) in [
        ("interp", Kind::Interp, long, vec![], vec![]),
        (
            "interp + breakpoint",
            Kind::Interp,
            long / 9,
            bp.clone(),
            vec![],
        ),
        (
            "interp + watchpoint",
            Kind::Interp,
            long,
            vec![],
            far.clone(),
        ),
        ("bt", Kind::Bt, long, vec![], vec![]),
        ("bt + breakpoint", Kind::Bt, long, bp.clone(), vec![]),
        ("bt + watchpoint", Kind::Bt, long, vec![], far.clone()),
    ] {
        let t = (0..3)
            .map(|_| compute_time(k, n, b.clone(), wp.clone()))
            .fold(f64::MAX, f64::min);
        println!(
            "{name:24} {n:>11} insns {t:7.3} s  {:6.0} M insns/s",
            n as f64 / t / 1e6
        );
    }
}
