//! Running one guest on every engine and comparing what each produced.

use crate::engines::EngineKind;
use crate::run::{prepare, GuestArgs};
use crate::session::{Options, Session};
use crate::status::{self, Status};
use crate::vga::VgaMode;
use anyhow::Context;
use machine::Counter;
use machine::{EventKind, Limits, Stop};
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

/// What one engine produced.
pub struct Outcome {
    pub engine: EngineKind,
    /// Err: why the engine did not run.
    pub result: Result<Ran, NotRun>,
}

/// Why an engine has no result, in the comparison and in `bench`.
#[derive(Debug)]
pub enum NotRun {
    /// Left out up front: this host cannot run it there (why).
    Skipped(String),
    /// It could not run: no usable engine, or it failed (the error, with
    /// its causes).
    Failed(anyhow::Error),
}

/// The comparison table's words: "skipped: why", "unavailable: error".
impl fmt::Display for NotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRun::Skipped(why) => write!(f, "skipped: {why}"),
            NotRun::Failed(e) => write!(f, "unavailable: {e:#}"),
        }
    }
}

pub struct Ran {
    pub stop: Stop,
    pub status: u8,
    pub serial: Vec<u8>,
    pub screen: String,
    /// The VGA screen with colours and cursor, for --vga.
    pub vga: machine::devices::vga::Screen,
    /// None where the engine cannot count (KVM).
    pub instructions: Option<u64>,
    pub wall: Duration,
    pub privilege_changes: u64,
    pub exceptions: u64,
    pub interrupts: u64,
    pub sensitive: u64,
    pub vm_exits: u64,
    pub counters: Vec<(String, u64)>,
    /// CR0.PG at the end: the guest used 32-bit paging.
    pub paged: bool,
}

pub struct Guest {
    pub name: String,
    /// What to load, as `ringlab run` takes it (image or lesson, ROM).
    pub args: GuestArgs,
    /// Stop at the first time the guest prints this on COM1 (a shell's
    /// prompt: `Stop::InputDone`, no input being attached); None: run to
    /// the guest's own end.
    pub prompt: Option<&'static [u8]>,
}

const DEFAULT_BUDGET: u64 = 2_000_000_000;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run_one(kind: EngineKind, guest: &Guest) -> anyhow::Result<Ran> {
    let (mut m, loaded) = prepare(&guest.args)?;
    m.set_serial_prompt(guest.prompt);
    let mut s = Session::new(m, kind, Options::default(), &loaded.entry)?;
    let start = Instant::now();
    let limits = Limits {
        // A bound on KVM would be single-stepped to: it has the deadline
        // only (the budget is a safety net, not a point to stop at).
        max_icount: kind.counts_instructions().then_some(DEFAULT_BUDGET),
        deadline: Some(start + DEFAULT_TIMEOUT),
        breakpoints: vec![],
    };
    // The row names the engine: its error is enough.
    let stop = s.run_until(&limits).map_err(|e| e.error)?;
    let wall = start.elapsed();
    let stats = s.stats();
    let paged = s
        .cpu_state()
        .is_ok_and(|s| s.cr0 & machine::cpu::cr0::PG != 0);
    Ok(Ran {
        paged,
        status: status::for_stop(&stop),
        stop,
        serial: s.m.serial_output().to_vec(),
        screen: s.m.screen().text(),
        vga: s.m.screen(),
        instructions: stats.instructions,
        wall,
        privilege_changes: s.m.trace.count(EventKind::PrivilegeChange),
        exceptions: s.m.trace.count(EventKind::Exception),
        interrupts: s.m.trace.count(EventKind::Interrupt),
        sensitive: s.m.trace.count(EventKind::Sensitive),
        vm_exits: s.m.trace.count(EventKind::VmExit),
        counters: stats.counters,
    })
}

pub fn run_all(guest: &Guest) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    for engine in [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm] {
        let reference = outcomes.first().and_then(|o| o.result.as_ref().ok());
        let skip = match engine {
            EngineKind::Kvm => kvm_skip(reference),
            _ => None,
        };
        let result = match skip {
            Some(why) => Err(why),
            None => run_one(engine, guest).map_err(NotRun::Failed),
        };
        outcomes.push(Outcome { engine, result });
    }
    outcomes
}

/// Why KVM is left out, decided before it runs: no usable /dev/kvm, or a
/// kvm-pvm host (a software hypervisor for nested clouds, not VT-x/AMD-V)
/// and a guest that the interpreter's run showed using what kvm-pvm
/// cannot run — 32-bit paging (it pages only in long mode) or ring
/// changes in protected mode without paging (it fails on IRET there).
/// None: run it (the KVM engine still explains any kvm-pvm stop).
fn kvm_skip(reference: Option<&Ran>) -> Option<NotRun> {
    let host = match crate::engines::kvm_host() {
        Err(e) => return Some(NotRun::Failed(e.into())),
        Ok(h) => h,
    };
    if host != engine_kvm::host::HostKind::Pvm {
        return None;
    }
    let r = reference?;
    let why = if r.paged {
        "the guest turns on 32-bit paging (CR0.PG is set at the end of the interpreter's run), \
         which this host's kvm-pvm supports only in long mode"
            .to_string()
    } else if r.privilege_changes > 0 {
        format!(
            "the guest changes rings in 32-bit protected mode without paging ({} ring changes \
             on the interpreter), which this host's kvm-pvm cannot run (it fails on IRET there)",
            r.privilege_changes
        )
    } else {
        return None;
    };
    Some(NotRun::Skipped(format!(
        "{why}; hardware virtualization (kvm_intel, kvm_amd) runs it"
    )))
}

/// The first difference between two runs, described for a human.
pub fn first_difference(a: &Ran, b: &Ran) -> Option<String> {
    if a.status != b.status {
        return Some(format!(
            "exit status {} vs {} ({} vs {})",
            a.status, b.status, a.stop, b.stop
        ));
    }
    if a.serial != b.serial {
        let i = a
            .serial
            .iter()
            .zip(&b.serial)
            .position(|(x, y)| x != y)
            .unwrap_or(a.serial.len().min(b.serial.len()));
        return Some(format!(
            "serial output differs at byte {i}: {:?} vs {:?}",
            String::from_utf8_lossy(&a.serial[i..(i + 20).min(a.serial.len())]),
            String::from_utf8_lossy(&b.serial[i..(i + 20).min(b.serial.len())])
        ));
    }
    if a.screen != b.screen {
        let line = a
            .screen
            .lines()
            .zip(b.screen.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Some(format!("VGA screen differs at row {line}"));
    }
    None
}

fn pvm_host() -> bool {
    engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm
}

/// When KVM ended differently from the interpreter on a guest whose run
/// does not hang on interrupt timing: where and why, by stepping both
/// (`departure`). Some(Err): the search found nothing or failed.
fn kvm_departure(
    guest: &Guest,
    reference: Option<(EngineKind, &Ran)>,
    outcomes: &[Outcome],
) -> Option<anyhow::Result<crate::departure::Departure>> {
    let (EngineKind::Interp, first) = reference? else {
        return None;
    };
    let kvm = outcomes
        .iter()
        .find(|o| o.engine == EngineKind::Kvm)?
        .result
        .as_ref()
        .ok()?;
    first_difference(first, kvm)?;
    if first.interrupts > 0 {
        return Some(Err(anyhow::anyhow!(
            "the guest took {} hardware interrupts, whose timing is host time on KVM, so the \
             engines cannot be stepped side by side",
            first.interrupts
        )));
    }
    let budget = crate::departure::BUDGET;
    eprintln!(
        "ringlab: kvm differs from interp: stepping both to find where (up to {} s)",
        budget.as_secs()
    );
    Some(crate::departure::find(guest, budget))
}

/// Prints the comparison table; returns true when every engine that ran
/// agreed with the first one.
pub fn print_table(
    w: &mut dyn Write,
    guest: &Guest,
    outcomes: &[Outcome],
) -> std::io::Result<bool> {
    writeln!(w, "guest: {}\n", guest.name)?;
    let reference = outcomes
        .iter()
        .find_map(|o| o.result.as_ref().ok().map(|r| (o.engine, r)));
    let mut agree = true;
    let departure = kvm_departure(guest, reference, outcomes);
    writeln!(
        w,
        "{:<7} {:<9} {:>12} {:>9} {:>10} {:>6} {:>6} {:>6} {:>9} {:>8}  stop",
        "engine",
        "output",
        "instructions",
        "wall ms",
        "M insn/s",
        "rings",
        "excs",
        "irqs",
        "sensitive",
        "VM exits"
    )?;
    for o in outcomes {
        match &o.result {
            Err(why) => {
                writeln!(w, "{:<7} {why}", o.engine.name())?;
            }
            Ok(r) => {
                let matches = match reference {
                    Some((e, first)) if e != o.engine => match first_difference(first, r) {
                        None => "same".to_string(),
                        Some(_) => {
                            agree = false;
                            "DIFFERS".to_string()
                        }
                    },
                    _ => "reference".to_string(),
                };
                let secs = r.wall.as_secs_f64();
                // KVM does not count instructions: "n/a", not a zero.
                let (count, mips) = match r.instructions {
                    Some(n) if secs > 0.0 => {
                        (n.to_string(), format!("{:.1}", n as f64 / secs / 1e6))
                    }
                    Some(n) => (n.to_string(), "-".to_string()),
                    None => ("n/a".to_string(), "n/a".to_string()),
                };
                writeln!(
                    w,
                    "{:<7} {:<9} {:>12} {:>9.2} {:>10} {:>6} {:>6} {:>6} {:>9} {:>8}  {}",
                    o.engine.name(),
                    matches,
                    count,
                    secs * 1e3,
                    mips,
                    r.privilege_changes,
                    r.exceptions,
                    r.interrupts,
                    r.sensitive,
                    r.vm_exits,
                    match (&departure, o.engine) {
                        (Some(Ok(_)), EngineKind::Kvm) if pvm_host() => {
                            format!("{} (kvm-pvm's emulation departs: see below)", r.stop)
                        }
                        _ => r.stop.to_string(),
                    }
                )?;
            }
        }
    }
    if let Some((e, first)) = reference {
        for o in outcomes {
            if let Ok(r) = &o.result {
                if let Some(d) = first_difference(first, r) {
                    writeln!(w, "\n{} differs from {}: {d}", o.engine.name(), e.name())?;
                    match (&departure, o.engine) {
                        (Some(Ok(d)), EngineKind::Kvm) => {
                            writeln!(w, "{}", d.text)?;
                        }
                        (Some(Err(why)), EngineKind::Kvm) => {
                            writeln!(w, "(where kvm departs was not found: {why:#})")?;
                        }
                        _ => {}
                    }
                }
            }
        }
        writeln!(
            w,
            "\nserial output ({}):\n{}",
            e.name(),
            String::from_utf8_lossy(&first.serial)
        )?;
        if !first.screen.is_empty() {
            writeln!(w, "VGA screen ({}):\n{}", e.name(), first.screen)?;
        }
    }
    for o in outcomes {
        if let Ok(r) = &o.result {
            // Indented names ("  to the interpreter: out") break down the
            // counter before them: shown in brackets after it.
            let mut groups: Vec<(String, Vec<String>)> = Vec::new();
            for (k, v) in r.counters.iter().filter(|(_, v)| *v > 0) {
                match groups.last_mut() {
                    Some((_, parts)) if k.starts_with(' ') => {
                        let name = k.trim();
                        let name = name.rsplit_once(": ").map_or(name, |(_, n)| n);
                        parts.push(format!("{name} {v}"));
                    }
                    _ => groups.push((format!("{} {v}", k.trim()), Vec::new())),
                }
            }
            let list: Vec<String> = groups
                .into_iter()
                .map(|(total, parts)| match parts.is_empty() {
                    true => total,
                    false => format!("{total} ({})", parts.join(", ")),
                })
                .collect();
            if !list.is_empty() {
                writeln!(w, "{} counters: {}", o.engine.name(), list.join(", "))?;
            }
        }
    }
    translator_time(w, outcomes)?;
    writeln!(
        w,
        "rings = privilege changes, excs = exceptions, irqs = hardware interrupts, \
         sensitive = sensitive instructions handled by the engine"
    )?;
    Ok(agree)
}

/// The translator's speed-up over the interpreter on the compute loop of
/// `ringlab bench`, as BENCHMARKS.md measured it (14.8x on 2026-12-07,
/// after the 16-byte TLB entries and the hot paths without taken jumps;
/// 7.5x to 8.6x on several hosts before); the README quotes the same
/// figure.
pub const BT_SPEEDUP: &str = "about 15x";

/// Where the translator's time went: translating blocks, or running the
/// guest (translated code and the instructions left to the
/// interpreter). On a short guest translation dominates and the
/// translator is slower than the interpreter; said so, with what it
/// gains on a long run.
fn translator_time(w: &mut dyn Write, outcomes: &[Outcome]) -> std::io::Result<()> {
    let ran = |k: EngineKind| {
        outcomes
            .iter()
            .find(|o| o.engine == k)
            .and_then(|o| o.result.as_ref().ok())
    };
    let Some(bt) = ran(EngineKind::Bt) else {
        return Ok(());
    };
    let counter = |key: Counter| {
        bt.counters
            .iter()
            .find(|(k, _)| k == key.label())
            .map_or(0, |(_, v)| *v)
    };
    let blocks = counter(Counter::BlocksTranslated);
    if blocks == 0 {
        return Ok(());
    }
    let wall_ms = bt.wall.as_secs_f64() * 1e3;
    // Translation is timed inside the run, so it is part of the wall time.
    let translating_ms = (counter(Counter::TranslationTimeUs) as f64 / 1e3).min(wall_ms);
    writeln!(
        w,
        "bt time: {wall_ms:.2} ms = {translating_ms:.2} ms translating {blocks} blocks \
         ({:.1} us each) + {:.2} ms running the guest ({} instructions in translated code, \
         {} on the interpreter)",
        translating_ms * 1e3 / blocks as f64,
        wall_ms - translating_ms,
        counter(Counter::TranslatedInstructions),
        counter(Counter::InterpreterInstructions),
    )?;
    let Some(interp) = ran(EngineKind::Interp) else {
        return Ok(());
    };
    if bt.wall <= interp.wall {
        return Ok(());
    }
    if wall_ms - translating_ms <= interp.wall.as_secs_f64() * 1e3 {
        writeln!(
            w,
            "The translator is slower than the interpreter here: {} instructions are too \
             few to pay back translating. On a long run it is {BT_SPEEDUP} as fast as the \
             interpreter (the 900 M-instruction loop of `ringlab bench`, BENCHMARKS.md).",
            bt.instructions.unwrap_or(0)
        )?;
    } else {
        writeln!(
            w,
            "The translator is slower than the interpreter here even without translating: \
             {} of its instructions ran on the interpreter, sensitive and privileged ones \
             among them, and calling out of translated code for them costs more than \
             interpreting them ({} callouts to the interpreter); `ringlab bench` times such \
             instructions one by one.",
            counter(Counter::InterpreterInstructions),
            counter(Counter::ExecCallouts),
        )?;
    }
    Ok(())
}

/// `ringlab` with no arguments.
pub fn demo() -> anyhow::Result<u8> {
    let lesson = lessons::find("rings")
        .or_else(|| lessons::find("interrupts"))
        .or_else(|| lessons::find("hello"))
        .expect("the lessons crate has hello");
    println!("ringlab runs one unmodified x86 guest on each engine and compares them.");
    println!("`ringlab --help` lists the commands, `ringlab lessons` the labs.\n");
    let status = compare_lesson(lesson, VgaMode::None)?;
    println!("\nNext, a real kernel: xv6 on the three engines, `ringlab lesson xv6`.");
    Ok(status)
}

/// The lesson's guest, as the comparison runs it. Err: it has none here
/// (xv6's images could not be built: why).
fn lesson_guest(lesson: &'static lessons::Lesson) -> anyhow::Result<Guest> {
    let name = format!("lesson {}: {}", lesson.name, lesson.summary);
    Ok(match lesson.guest {
        lessons::Guest::Builtin(_) => Guest {
            name,
            args: GuestArgs::lesson(lesson.name),
            prompt: None,
        },
        // Booted to the shell's first prompt, where the run stops: with
        // no input attached that is the end of what xv6 does by itself.
        lessons::Guest::Xv6 => Guest {
            name,
            args: crate::xv6::guest_args(
                &crate::xv6::images()
                    .context("no xv6 to run the lesson on (its sheet is above)")?,
            ),
            prompt: Some(crate::xv6::XV6_PROMPT.as_bytes()),
        },
    })
}

/// Runs a lesson on every engine and prints the table; the exit status
/// says whether the engines agreed.
fn compare_lesson(lesson: &'static lessons::Lesson, vga: VgaMode) -> anyhow::Result<u8> {
    let guest = lesson_guest(lesson)?;
    let outcomes = run_all(&guest);
    let mut table = Vec::new();
    let agree = print_table(&mut table, &guest, &outcomes).expect("writing to a Vec cannot fail");
    write_stdout(&table)?;
    show_screens(&outcomes, vga)?;
    Ok(if !agree {
        status::DISAGREE
    } else if outcomes.iter().all(|o| o.result.is_err()) {
        status::ENGINE_ERROR
    } else {
        0
    })
}

/// `--vga`: each engine's final screen, as coloured text on stderr or in
/// a window (one after the other: close it, or Esc, for the next).
fn show_screens(outcomes: &[Outcome], vga: VgaMode) -> anyhow::Result<()> {
    for o in outcomes {
        let Ok(r) = &o.result else { continue };
        match vga {
            VgaMode::None => {}
            VgaMode::Term => {
                eprintln!("--- VGA screen on {} ---", o.engine.name());
                eprint!("{}", crate::vga::ansi(&r.vga));
            }
            VgaMode::Window => {
                let title = format!("ringlab: VGA screen on {} (Esc: next)", o.engine.name());
                let mut w = crate::vga::VgaWindow::open(&title).status(status::ENGINE_ERROR)?;
                w.wait_closed(&r.vga);
            }
        }
    }
    Ok(())
}

/// `ringlab compare IMAGE | --lesson NAME [--bios ROM]`: any guest on
/// every engine, compared.
pub fn compare_guest(args: &GuestArgs, vga: VgaMode) -> anyhow::Result<u8> {
    // A malformed image or ROM is one error, not one per engine.
    prepare(args)?;
    let guest = Guest {
        name: args.name(),
        args: args.clone(),
        prompt: None,
    };
    let outcomes = run_all(&guest);
    let mut table = Vec::new();
    let agree = print_table(&mut table, &guest, &outcomes).expect("writing to a Vec cannot fail");
    write_stdout(&table)?;
    show_screens(&outcomes, vga)?;
    Ok(if !agree {
        status::DISAGREE
    } else if outcomes.iter().all(|o| o.result.is_err()) {
        status::ENGINE_ERROR
    } else {
        0
    })
}

pub fn find_lesson(name: &str) -> anyhow::Result<&'static lessons::Lesson> {
    lessons::find(name).ok_or_else(|| {
        let names: Vec<&str> = lessons::all().iter().map(|l| l.name).collect();
        status::error(
            status::USAGE,
            format!(
                "no lesson called {name:?}; the lessons are: {}",
                names.join(", ")
            ),
        )
    })
}

/// `ringlab lessons`: the labs, in course order.
pub fn list_lessons() -> u8 {
    println!("The labs (`ringlab lesson NAME` prints the sheet and runs the guest):\n");
    // The name column is as wide as the longest name (popek-goldberg).
    let width = lessons::all()
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    for l in lessons::all() {
        println!("  {:<width$}  {}", l.name, l.summary);
    }
    0
}

/// `ringlab lesson NAME`: the lab sheet (the teachers' answers only with
/// `answers`), then the guest on every engine (or its commented source
/// with `source`). xv6's guest is built first if need be; where it cannot
/// be, the sheet is shown all the same and the error says why, with the
/// status of `ringlab xv6`'s.
pub fn lesson(name: &str, source: bool, answers: bool) -> anyhow::Result<u8> {
    let l = find_lesson(name)?;
    if source {
        match &l.guest {
            lessons::Guest::Builtin(b) => print!("{}", b.source),
            lessons::Guest::Xv6 => println!("{XV6_SOURCE}"),
        }
        return Ok(0);
    }
    println!("{}", lessons::sheet::for_students(l.sheet, l.name, answers));
    println!("----------------------------------------------------------------------\n");
    // The sheet is out before anything that may fail.
    std::io::stdout()
        .flush()
        .context("cannot write to stdout")
        .status(status::ENGINE_ERROR)?;
    compare_lesson(l, VgaMode::None)
}

/// `ringlab lesson NAME --elf FILE`: the guest's ELF, with its symbols,
/// for gdb.
pub fn write_lesson_elf(name: &str, path: &std::path::Path) -> anyhow::Result<u8> {
    let l = find_lesson(name)?;
    let Some(b) = l.builtin() else {
        return Err(status::error(
            status::USAGE,
            "xv6's kernel ELF is built with its images: build/kernel beside the \
             xv6.img that scripts/xv6-images.sh prints (gdb loads it as with xv6's \
             `make qemu-gdb`)",
        ));
    };
    std::fs::write(path, b.elf)
        .with_context(|| format!("cannot write {}", path.display()))
        .status(status::USAGE)?;
    eprintln!(
        "ringlab: wrote {} ({} bytes): load it in gdb to debug `ringlab run --lesson {} --gdb` by name",
        path.display(),
        b.elf.len(),
        l.name
    );
    Ok(status::OK)
}

/// `ringlab lesson xv6 --source`: xv6's source is not ringlab's.
const XV6_SOURCE: &str = "\
xv6's source is not part of ringlab. scripts/xv6-images.sh builds xv6 from
../shared/guests/xv6-public beside ringlab's source tree, or from
$RINGLAB_XV6_SRC, or from a clone of github.com/mit-pdos/xv6-public
(commit eeb7b415). The sheet names the files to read: x86.h, trapasm.S,
vectors.pl, trap.c, syscall.c, vm.c, proc.c, spinlock.c, initcode.S.";

/// Writes the comparison to stdout. A reader that has gone (`| head`) saw
/// what it wanted: that is not an error; any other failure (a full disk)
/// would lose the result, and is.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e)
            .context("cannot write to stdout")
            .status(status::ENGINE_ERROR),
        _ => Ok(()),
    }
}
