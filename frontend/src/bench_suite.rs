//! `ringlab bench --suite`: the benchmark suite's guests (`lessons::SUITE`,
//! lessons/guests/suite) on each engine: host seconds per guest, million
//! instructions per second, and each engine relative to the fastest. Every
//! run must print the guest's known checksum; one that does not is a
//! failure of that engine (exit status `DISAGREE`), never a figure.
//! `scripts/bench-suite.sh` runs the same guests beside QEMU and Bochs.

use crate::compare::NotRun;
use crate::engines::EngineKind;
use crate::session::{Options, Session};
use machine::loader::{self, ImageFormat, LoadOptions};
use machine::{Limits, Machine, MachineConfig, Stop};
use std::time::{Duration, Instant};

/// RAM for the suite's guests: `paging` touches 64 MiB.
const RAM: usize = 128 << 20;

/// One guest on one engine: seconds and instructions retired (None where
/// the engine does not count them: KVM).
pub struct Figure {
    pub secs: f64,
    pub insns: Option<u64>,
}

/// One guest's row.
pub struct Row {
    pub guest: &'static lessons::SuiteGuest,
    pub cells: Vec<Result<Figure, NotRun>>,
}

/// Runs `g` on `kind`, at most `limit`; its checksum checked.
pub fn run(g: &lessons::SuiteGuest, kind: EngineKind, limit: Duration) -> anyhow::Result<Figure> {
    let mut m = Machine::new(MachineConfig {
        ram_bytes: RAM,
        ..MachineConfig::default()
    })?;
    let loaded = loader::load(
        &mut m.mem,
        g.image,
        &LoadOptions {
            format: Some(ImageFormat::Flat),
            load_addr: None,
        },
    )?;
    // No event records kept, as in `ringlab bench`'s nanobenchmarks.
    m.trace.set_enabled(machine::EventMask::NONE);
    let mut s = Session::new(m, kind, Options::default(), &loaded.entry)?;
    let start = Instant::now();
    let limits = Limits {
        max_icount: None,
        deadline: Some(start + limit),
        breakpoints: vec![],
    };
    let stop = s.run_until(&limits).map_err(|e| e.error)?;
    let secs = start.elapsed().as_secs_f64();
    match stop {
        Stop::Shutdown => {}
        Stop::Timeout => anyhow::bail!("unfinished after {secs:.1} s (--compute-timeout)"),
        other => anyhow::bail!("stopped with: {other}"),
    }
    let out = String::from_utf8_lossy(s.m.serial_output()).into_owned();
    if out.trim_end() != g.checksum {
        anyhow::bail!(
            "printed {:?}, not its checksum {}: a wrong answer",
            out.trim_end(),
            g.checksum
        );
    }
    let insns = kind.counts_instructions().then(|| s.m.icount());
    Ok(Figure { secs, insns })
}

/// Why `kind` skips the suite on this host, if it does: kvm-pvm runs real
/// mode and unpaged protected mode, where every guest starts and most
/// stay, in its instruction emulator (about 2 M instructions/s).
pub fn skip(kind: EngineKind) -> Option<String> {
    if kind != EngineKind::Kvm {
        return None;
    }
    match crate::engines::kvm_host() {
        Err(e) => Some(machine::Chain(&e).to_string()),
        Ok(engine_kvm::host::HostKind::Pvm) => Some(
            "this host's KVM is kvm-pvm, which runs real mode and unpaged protected mode in \
             its instruction emulator (about 2 M instructions/s): minutes per guest"
                .into(),
        ),
        Ok(_) => None,
    }
}

/// The guests named in `only` (all of them when empty), in suite order; an
/// unknown name is an error listing the known ones.
pub fn select(only: &[String]) -> anyhow::Result<Vec<&'static lessons::SuiteGuest>> {
    for n in only {
        if !lessons::SUITE.iter().any(|g| g.name == n) {
            let known: Vec<&str> = lessons::SUITE.iter().map(|g| g.name).collect();
            anyhow::bail!(
                "--guest {n}: no such suite guest (known: {})",
                known.join(", ")
            );
        }
    }
    Ok(lessons::SUITE
        .iter()
        .filter(|g| only.is_empty() || only.iter().any(|n| n == g.name))
        .collect())
}

/// The instructions a guest retires: the count of any engine that counts
/// (the guests are deterministic: every engine runs as many).
fn insns(row: &Row) -> Option<u64> {
    row.cells
        .iter()
        .find_map(|c| c.as_ref().ok().and_then(|f| f.insns))
}

/// The table: one row per guest, one column per engine.
pub fn table(engines: &[EngineKind], rows: &[Row]) -> String {
    let mut s = String::from(
        "benchmark suite: host seconds per guest and million instructions per second \
         (checksums checked), each engine relative to the fastest\n\n",
    );
    s.push_str(&format!("{:<8} {:<38} {:>8}", "guest", "", "M insns"));
    for e in engines {
        s.push_str(&format!(" {:>26}", e.name()));
    }
    s.push('\n');
    let mut notes = Vec::new();
    for row in rows {
        let n = insns(row);
        let m = n.map_or("-".to_string(), |n| format!("{:.0}", n as f64 / 1e6));
        s.push_str(&format!(
            "{:<8} {:<38} {m:>8}",
            row.guest.name, row.guest.what
        ));
        let best = row
            .cells
            .iter()
            .flatten()
            .map(|f| f.secs)
            .fold(f64::INFINITY, f64::min);
        // One engine is the fastest (the first of equal times); a near tie
        // shows as x1.0.
        let first = row
            .cells
            .iter()
            .position(|c| c.as_ref().is_ok_and(|f| f.secs == best));
        for (j, (e, c)) in engines.iter().zip(&row.cells).enumerate() {
            let text = match c {
                Ok(f) => {
                    let rate = n
                        .filter(|&n| f.secs > 0.0 && n >= 1_000_000)
                        .map_or(String::new(), |n| {
                            format!(" {:>5.0} M/s", n as f64 / f.secs / 1e6)
                        });
                    let rel = if best < 0.01 {
                        // Start-up only: too short to rank.
                        String::new()
                    } else if first == Some(j) {
                        "(fastest)".to_string()
                    } else {
                        format!("(x{:.1})", f.secs / best)
                    };
                    format!("{:.2} s{rate} {rel}", f.secs)
                        .trim_end()
                        .to_string()
                }
                Err(NotRun::Skipped(_)) => "skipped".into(),
                Err(NotRun::Failed(err)) => {
                    notes.push(format!("  {} on {}: {err:#}", row.guest.name, e.name()));
                    "FAILED".into()
                }
            };
            s.push_str(&format!(" {text:>26}"));
        }
        s.push('\n');
    }
    for (e, c) in engines
        .iter()
        .zip(rows.first().map(|r| &r.cells[..]).unwrap_or(&[]))
    {
        if let Err(NotRun::Skipped(why)) = c {
            notes.push(format!("  {}: skipped: {why}", e.name()));
        }
    }
    if !notes.is_empty() {
        s.push('\n');
        s.push_str(&notes.join("\n"));
        s.push('\n');
    }
    s
}

/// The figures as JSON: per guest, per engine, seconds and M
/// instructions/s, or why not.
pub fn json(engines: &[EngineKind], rows: &[Row]) -> serde_json::Value {
    use serde_json::json;
    let guests: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let n = insns(row);
            let per: serde_json::Map<String, serde_json::Value> = engines
                .iter()
                .zip(&row.cells)
                .map(|(e, c)| {
                    let v = match c {
                        Ok(f) => json!({
                            "seconds": f.secs,
                            "mips": n.map(|n| n as f64 / f.secs / 1e6),
                        }),
                        Err(NotRun::Skipped(why)) => json!({ "skipped": why }),
                        Err(NotRun::Failed(e)) => json!({ "error": format!("{e:#}") }),
                    };
                    (e.name().to_string(), v)
                })
                .collect();
            json!({
                "guest": row.guest.name,
                "what": row.guest.what,
                "checksum": row.guest.checksum,
                "instructions": n,
                "engines": per,
            })
        })
        .collect();
    json!({ "suite": guests })
}
