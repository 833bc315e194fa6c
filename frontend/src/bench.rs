//! `ringlab bench`: the nanobenchmark lesson and a compute loop on every
//! available engine, as a table laid out like Adams and Agesen's
//! nanobenchmark table (ASPLOS 2006, "A Comparison of Software and
//! Hardware Techniques for x86 Virtualization"): one row per operation,
//! one column per engine, host nanoseconds per operation and each engine
//! relative to the fastest.
//!
//! The nanobench guest writes POST code n when benchmark n starts and
//! 0x80 + n when it ends; with stops on POST codes on, every engine returns
//! at each, and the frontend reads the host clock there. So the figures
//! are host time on every engine (the guest's own RDTSC figures are
//! virtual time on the interpreter and the translator). Each includes the
//! benchmark loop's LOOP instruction, as the guest's own figures do.

use crate::compare::NotRun;
use crate::engines::EngineKind;
use crate::session::{Options, Session};
use crate::status::{self, Status};
use anyhow::Context;
use machine::loader::{self, ImageFormat, LoadOptions};
use machine::{Limits, Machine, MachineConfig, Stop};
use std::time::{Duration, Instant};

/// Operations per nanobenchmark (N in nanobench.S).
const N: u64 = 10_000;

/// The benchmarks in the guest's order (POST code n = index + 1).
pub const BENCHMARKS: [(&str, &str); 7] = [
    ("in", "IN from port 0x80"),
    ("cr3wr", "MOV to CR3"),
    ("pgfault", "#PF, handler maps the page"),
    ("divzero", "#DE, handler skips the DIV"),
    ("ptemod", "write a page-table entry"),
    ("call/ret", "near CALL and RET"),
    ("syscall", "INT 0x80 and IRET from ring 3"),
];

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Also write the figures to FILE as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<std::path::PathBuf>,
    /// Seconds the compute loop (900 M instructions) may take per engine
    /// before it is cut short and reported as a lower bound.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub compute_timeout: f64,
    /// Only these engines (repeatable); default: every available one.
    #[arg(long, value_enum)]
    pub engine: Vec<EngineKind>,
    /// Runs of the nanobench guest per engine, the engines taking turns
    /// (a round on each, then the next round); each row shows the median
    /// of its runs. A row lasts milliseconds, so one run shows the host's
    /// noise as much as the engine (two runs on this project's hosts
    /// differed by 2x on a row).
    /// (The suite runs each guest once: scripts/bench-suite.sh takes
    /// rounds.)
    #[arg(long, default_value_t = 5, value_name = "N", conflicts_with = "suite",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Run the benchmark suite instead (lessons/guests/suite: an LCG
    /// read-modify-write loop, block copies, recursion, a sort, 16-bit real
    /// mode, 16-bit protected mode, paging): seconds and M instructions/s per guest and engine,
    /// each guest's checksum checked. scripts/bench-suite.sh runs the same
    /// guests beside QEMU and Bochs. --compute-timeout bounds each run.
    #[arg(long)]
    pub suite: bool,
    /// With --suite: only this guest (repeatable): empty, lcg, strcopy,
    /// fib, sort, real16, prot16, paging.
    #[arg(long, value_name = "NAME", requires = "suite")]
    pub guest: Vec<String>,
}

/// One engine's figures.
pub struct EngineBench {
    pub engine: EngineKind,
    /// Host ns per operation, per benchmark; Err: skipped (this host
    /// cannot run it, known up front) or failed.
    pub nano: Result<Vec<f64>, NotRun>,
    /// Compute loop: Ok((seconds, finished)); Err as for `nano`.
    pub compute: Result<(f64, bool), NotRun>,
}

/// The table's words for a figure not measured: "skipped: why",
/// "cannot run: error".
fn not_measured(n: &NotRun) -> String {
    match n {
        NotRun::Skipped(why) => format!("skipped: {why}"),
        NotRun::Failed(e) => format!("cannot run: {e:#}"),
    }
}

fn session(image: &[u8], format: ImageFormat, kind: EngineKind) -> anyhow::Result<Session> {
    let mut m = Machine::new(MachineConfig::default())?;
    let loaded = loader::load(
        &mut m.mem,
        image,
        &LoadOptions {
            format: Some(format),
            load_addr: None,
        },
    )?;
    // Nothing reads the event records here (the figures are host time,
    // the counters count every event anyway): none are kept, as in a
    // `ringlab run` without --trace, so that the rows time the engines
    // and not the keeping of some four records per system call.
    m.trace.set_enabled(machine::EventMask::NONE);
    Ok(Session::new(m, kind, Options::default(), &loaded.entry)?)
}

/// Runs the nanobench lesson, timing each benchmark between its POST codes.
pub fn nanobench(kind: EngineKind) -> anyhow::Result<Vec<f64>> {
    let l = lessons::find("nanobench")
        .and_then(lessons::Lesson::builtin)
        .context("the nanobench lesson is missing")?;
    let mut s = session(l.image, ImageFormat::Multiboot, kind)?;
    s.m.set_stop_on_post(true);
    let mut marks: Vec<(u8, Instant)> = Vec::new();
    let limits = Limits {
        max_icount: None,
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        breakpoints: vec![],
    };
    loop {
        match s.run_until(&limits).map_err(|e| e.error)? {
            Stop::PostCode { code } => {
                marks.push((code, Instant::now()));
                s.m.clear_stop();
            }
            Stop::Halted => break,
            other => anyhow::bail!("the nanobench guest stopped with: {other}"),
        }
    }
    let at = |code: u8| marks.iter().find(|(c, _)| *c == code).map(|&(_, t)| t);
    (1..=BENCHMARKS.len() as u8)
        .map(|n| match (at(n), at(0x80 | n)) {
            (Some(a), Some(b)) => Ok(b.duration_since(a).as_nanos() as f64 / N as f64),
            _ => Err(anyhow::anyhow!("benchmark {n}: the guest did not mark it")),
        })
        .collect()
}

/// Runs the compute loop; (seconds, whether it finished in `limit`).
pub fn compute(kind: EngineKind, limit: Duration) -> anyhow::Result<(f64, bool)> {
    let mut s = session(lessons::COMPUTE, ImageFormat::Flat, kind)?;
    let start = Instant::now();
    let limits = Limits {
        max_icount: None,
        deadline: Some(start + limit),
        breakpoints: vec![],
    };
    match s.run_until(&limits).map_err(|e| e.error)? {
        Stop::Shutdown => Ok((start.elapsed().as_secs_f64(), true)),
        Stop::Timeout => Ok((start.elapsed().as_secs_f64(), false)),
        other => anyhow::bail!("the compute guest stopped with: {other}"),
    }
}

/// Instructions the compute guest retires (counted on the interpreter by
/// the tests; the guest is deterministic, so every engine runs as many).
pub const COMPUTE_INSNS: u64 = 900_000_203;

/// What this host cannot run, known before running anything: (nanobench,
/// compute loop), each Some(why it is skipped). Only KVM depends on the host:
/// without a usable /dev/kvm neither runs, and kvm-pvm (a software
/// hypervisor, not VT-x/AMD-V) has no 32-bit paging, which the nanobench
/// guest needs, and runs the compute loop's unpaged protected mode in its
/// instruction emulator at about 2 M instructions/s (measured, see
/// ARCHITECTURE.md, "KVM hosts"), minutes for 900 M instructions.
fn skips(kind: EngineKind) -> (Option<String>, Option<String>) {
    if kind != EngineKind::Kvm {
        return (None, None);
    }
    match crate::engines::kvm_host() {
        Err(e) => {
            let why = machine::Chain(&e).to_string();
            (Some(why.clone()), Some(why))
        }
        Ok(engine_kvm::host::HostKind::Pvm) => (
            Some(
                "this host's KVM is kvm-pvm, which supports paging only in long mode; \
                 the nanobench guest uses 32-bit paging and ring 3"
                    .into(),
            ),
            Some(format!(
                "this host's KVM is kvm-pvm, which runs unpaged protected mode in its \
                 instruction emulator (about 2 M instructions/s): the {} M-instruction loop would \
                 take minutes",
                COMPUTE_INSNS / 1_000_000
            )),
        ),
        Ok(_) => (None, None),
    }
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<u8> {
    if !(args.compute_timeout.is_finite() && args.compute_timeout > 0.0) {
        return Err(status::error(
            status::USAGE,
            "--compute-timeout: must be a positive number of seconds",
        ));
    }
    let engines: Vec<EngineKind> = if args.engine.is_empty() {
        vec![EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm]
    } else {
        args.engine.clone()
    };
    let limit = Duration::from_secs_f64(args.compute_timeout);
    // Where ringlab's own code runs from moves the interpreter's figures
    // (hugetext.rs): said with them.
    match crate::hugetext::status() {
        crate::hugetext::Text::Huge { bytes } => {
            eprintln!("bench: ringlab's code on 2 MiB pages ({} MiB)", bytes >> 20)
        }
        crate::hugetext::Text::Left(why) => {
            eprintln!("bench: ringlab's code on the file's 4 KiB pages: {why}")
        }
    }
    if args.suite {
        return suite(args, &engines, limit);
    }
    let skipped: Vec<_> = engines.iter().map(|&e| skips(e)).collect();
    for (e, (skip_nano, skip_compute)) in engines.iter().zip(&skipped) {
        match (skip_nano, skip_compute) {
            (Some(n), Some(c)) if n == c => eprintln!("bench: {} skipped: {n}", e.name()),
            (Some(n), Some(c)) => eprintln!(
                "bench: {} nanobench skipped: {n}; compute loop skipped: {c}",
                e.name()
            ),
            _ => {}
        }
    }
    // The nanobench rounds, the engines taking turns; an engine that
    // fails is not run again.
    let mut runs: Vec<Result<Vec<Vec<f64>>, NotRun>> = skipped
        .iter()
        .map(|(skip, _)| match skip {
            Some(why) => Err(NotRun::Skipped(why.clone())),
            None => Ok(Vec::new()),
        })
        .collect();
    for round in 1..=args.rounds {
        for (&e, r) in engines.iter().zip(&mut runs) {
            if let Ok(done) = r {
                eprintln!(
                    "bench: {} nanobench, run {round} of {} ...",
                    e.name(),
                    args.rounds
                );
                match nanobench(e) {
                    Ok(v) => done.push(v),
                    Err(err) => *r = Err(NotRun::Failed(err)),
                }
            }
        }
    }
    let mut results = Vec::new();
    for ((&e, (_, skip_compute)), nano) in engines.iter().zip(skipped).zip(runs) {
        let compute = match skip_compute {
            Some(why) => Err(NotRun::Skipped(why)),
            None => {
                eprintln!("bench: {} compute loop ...", e.name());
                compute(e, limit).map_err(NotRun::Failed)
            }
        };
        results.push(EngineBench {
            engine: e,
            nano: nano.map(|runs| medians(&runs)),
            compute,
        });
    }
    crate::compare::write_stdout(table(&results, limit, args.rounds).as_bytes())?;
    if let Some(path) = &args.json {
        let v = json(&results, args.rounds);
        std::fs::write(path, format!("{v:#}\n"))
            .with_context(|| format!("cannot write {}", path.display()))
            .status(status::USAGE)?;
    }
    Ok(0)
}

/// `bench --suite`: every selected guest on every engine, then the table
/// (and the JSON); a wrong checksum or a failed run makes the status
/// `DISAGREE` after the table.
fn suite(args: &BenchArgs, engines: &[EngineKind], limit: Duration) -> anyhow::Result<u8> {
    use crate::bench_suite as bs;
    let guests = bs::select(&args.guest).status(status::USAGE)?;
    let skips: Vec<Option<String>> = engines.iter().map(|&e| bs::skip(e)).collect();
    let mut rows = Vec::new();
    for g in guests {
        let mut cells = Vec::new();
        for (&e, why) in engines.iter().zip(&skips) {
            cells.push(match why {
                Some(why) => Err(NotRun::Skipped(why.clone())),
                None => {
                    eprintln!("bench: {} on {} ...", g.name, e.name());
                    bs::run(g, e, limit).map_err(NotRun::Failed)
                }
            });
        }
        rows.push(bs::Row { guest: g, cells });
    }
    crate::compare::write_stdout(bs::table(engines, &rows).as_bytes())?;
    if let Some(path) = &args.json {
        let v = bs::json(engines, &rows);
        std::fs::write(path, format!("{v:#}\n"))
            .with_context(|| format!("cannot write {}", path.display()))
            .status(status::USAGE)?;
    }
    let failed = rows
        .iter()
        .flat_map(|r| &r.cells)
        .any(|c| matches!(c, Err(NotRun::Failed(_))));
    Ok(if failed { status::DISAGREE } else { status::OK })
}

/// Each row's median over the runs (of an even number, the mean of the
/// middle two).
fn medians(runs: &[Vec<f64>]) -> Vec<f64> {
    (0..BENCHMARKS.len())
        .map(|i| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(i).copied()).collect();
            v.sort_by(f64::total_cmp);
            match v.len() {
                0 => f64::NAN,
                n if n % 2 == 1 => v[n / 2],
                n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
            }
        })
        .collect()
}

/// A figure and how it compares with the row's best: "(fastest)" for the
/// one engine that is (`fastest`; a near tie shows as x1.0), else how
/// many times slower.
fn cell(v: f64, best: f64, fastest: bool) -> String {
    let rel = if best > 0.0 { v / best } else { 1.0 };
    if fastest {
        format!("{v:.1} (fastest)")
    } else {
        format!("{v:.1} (x{rel:.1})")
    }
}

/// The table, Adams & Agesen style.
pub fn table(results: &[EngineBench], limit: Duration, rounds: u32) -> String {
    let mut s = String::new();
    let runs = match rounds {
        1 => "one run".to_string(),
        n => format!("the median of {n} runs"),
    };
    s.push_str(&format!(
        "nanobenchmarks: host nanoseconds per operation ({N} each, {runs}), and each engine \
         relative to the fastest\n\n"
    ));
    s.push_str(&format!("{:<10} {:<32}", "operation", ""));
    for r in results {
        s.push_str(&format!(" {:>22}", r.engine.name()));
    }
    s.push('\n');
    for (i, (name, what)) in BENCHMARKS.iter().enumerate() {
        s.push_str(&format!("{name:<10} {what:<32}"));
        let vals: Vec<Option<f64>> = results
            .iter()
            .map(|r| r.nano.as_ref().ok().and_then(|v| v.get(i).copied()))
            .collect();
        let best = vals.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        let first = vals.iter().position(|v| *v == Some(best));
        for (j, v) in vals.iter().enumerate() {
            match v {
                Some(v) => s.push_str(&format!(" {:>22}", cell(*v, best, first == Some(j)))),
                None => s.push_str(&format!(" {:>22}", "-")),
            }
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\ncompute loop: {} M instructions, million instructions per second\n",
        COMPUTE_INSNS / 1_000_000
    ));
    let rates: Vec<Option<f64>> = results
        .iter()
        .map(|r| match &r.compute {
            Ok((secs, true)) => Some(COMPUTE_INSNS as f64 / secs / 1e6),
            _ => None,
        })
        .collect();
    let best = rates.iter().flatten().copied().fold(0.0, f64::max);
    let first = rates.iter().position(|r| *r == Some(best));
    for (j, (r, rate)) in results.iter().zip(&rates).enumerate() {
        let text = match (&r.compute, rate) {
            (Ok((secs, true)), Some(rate)) => {
                let rel = if first == Some(j) {
                    "fastest".to_string()
                } else {
                    format!("x{:.1} slower", best / rate)
                };
                format!("{rate:>10.1} M/s  {secs:>8.2} s  ({rel})")
            }
            (Ok((secs, false)), _) => format!(
                "unfinished after {secs:.1} s (--compute-timeout {}): under {:.1} M/s",
                limit.as_secs_f64(),
                COMPUTE_INSNS as f64 / secs / 1e6
            ),
            (Err(e), _) => not_measured(e),
            _ => String::new(),
        };
        s.push_str(&format!("  {:<8} {text}\n", r.engine.name()));
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.nano
                .as_ref()
                .err()
                .map(|e| format!("  {}: nanobench {}", r.engine.name(), not_measured(e)))
        })
        .collect();
    if !failed.is_empty() {
        s.push('\n');
        s.push_str(&failed.join("\n"));
        s.push('\n');
    }
    s
}

/// A figure that was not measured, for the JSON: skipped up front or
/// failed, with the reason.
fn not_run(n: &NotRun) -> serde_json::Value {
    match n {
        NotRun::Skipped(why) => serde_json::json!({ "skipped": why }),
        NotRun::Failed(e) => serde_json::json!({ "error": format!("{e:#}") }),
    }
}

fn json(results: &[EngineBench], rounds: u32) -> serde_json::Value {
    use serde_json::json;
    let engines: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let nano = match &r.nano {
                Ok(v) => json!(BENCHMARKS
                    .iter()
                    .zip(v)
                    .map(|((n, _), ns)| (n.to_string(), json!(ns)))
                    .collect::<serde_json::Map<_, _>>()),
                Err(e) => not_run(e),
            };
            let compute = match &r.compute {
                Ok((secs, true)) => json!({
                    "seconds": secs,
                    "finished": true,
                    "mips": COMPUTE_INSNS as f64 / secs / 1e6,
                }),
                Ok((secs, false)) => json!({ "seconds": secs, "finished": false }),
                Err(e) => not_run(e),
            };
            json!({ "engine": r.engine.name(), "ns_per_op": nano, "compute": compute })
        })
        .collect();
    json!({
        "operations": BENCHMARKS.iter().map(|(n, w)| json!({"name": n, "what": w})).collect::<Vec<_>>(),
        "ops_per_benchmark": N,
        "runs_per_engine": rounds,
        "compute_instructions": COMPUTE_INSNS,
        "engines": engines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A near tie (887.8 against 891.7: under 0.5 %) has one fastest
    /// engine, the other x1.0; so has the compute loop.
    #[test]
    fn a_near_tie_has_one_fastest() {
        let row = |v: f64| vec![v; BENCHMARKS.len()];
        let results = [
            EngineBench {
                engine: EngineKind::Interp,
                nano: Ok(row(887.8)),
                compute: Ok((4.001, true)),
            },
            EngineBench {
                engine: EngineKind::Bt,
                nano: Ok(row(891.7)),
                compute: Ok((4.0, true)),
            },
        ];
        let t = table(&results, Duration::from_secs(30), 5);
        for (name, _) in BENCHMARKS {
            let line = t.lines().find(|l| l.starts_with(name)).unwrap();
            assert!(line.contains("887.8 (fastest)"), "{line}");
            assert!(line.contains("891.7 (x1.0)"), "{line}");
        }
        let interp = t
            .lines()
            .find(|l| l.trim_start().starts_with("interp"))
            .unwrap();
        let bt = t
            .lines()
            .find(|l| l.trim_start().starts_with("bt"))
            .unwrap();
        assert!(interp.contains("(x1.0 slower)"), "{t}");
        assert!(bt.contains("(fastest)"), "{t}");
        assert!(t.starts_with(
            "nanobenchmarks: host nanoseconds per operation (10000 each, the median of 5 runs)"
        ));
    }

    #[test]
    fn each_row_is_the_median_of_its_runs() {
        let run = |x: f64| vec![x, 10.0 * x, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(medians(&[run(3.0), run(1.0), run(2.0)])[..2], [2.0, 20.0]);
        assert_eq!(medians(&[run(3.0), run(1.0), run(2.0), run(9.0)])[0], 2.5);
        assert_eq!(medians(&[run(7.0)])[0], 7.0);
    }
}
