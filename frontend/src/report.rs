//! Human-readable statistics (`--stats`, on stderr).

use crate::run::RunOutcome;
use machine::loader::LoadedImage;
use machine::{EventKind, Machine};
use std::io::Write;

pub fn print_stats(
    w: &mut dyn Write,
    m: &Machine,
    image: &LoadedImage,
    o: &RunOutcome,
    code: u8,
) -> std::io::Result<()> {
    let secs = o.wall.as_secs_f64();
    let count = o.stats.instructions;
    let mut lines: Vec<(String, String)> = vec![
        ("engine".into(), o.stats.engine.clone()),
        ("image".into(), image.summary.clone()),
        ("stop".into(), format!("{} (exit status {code})", o.stop)),
        (
            "instructions".into(),
            count.map_or("not counted (the CPU runs the guest)".into(), |n| {
                n.to_string()
            }),
        ),
        ("wall time".into(), format!("{secs:.3} s")),
        (
            "speed".into(),
            match count {
                Some(n) if secs > 0.0 => format!("{:.1} M instructions/s", n as f64 / secs / 1e6),
                Some(_) => "-".into(),
                None => "not measured (instructions are not counted)".into(),
            },
        ),
        (
            "virtual time".into(),
            format!("{:.3} ms", m.clock.now() as f64 / 1e6),
        ),
    ];
    let (warps, warped) = m.clock.warp_stats();
    if warps > 0 {
        lines.push((
            "halt warps".into(),
            format!("{warps} ({:.3} ms skipped)", warped as f64 / 1e6),
        ));
    }
    for k in EventKind::ALL {
        let n = m.trace.count(k);
        if n > 0 {
            lines.push((k.plural().to_string(), n.to_string()));
        }
    }
    lines.extend(activity_lines(m));
    for ((insn, how), n) in m.trace.sensitive_counts() {
        lines.push((format!("  {insn}"), format!("{n} ({how})")));
    }
    for (reason, n) in m.trace.exit_counts() {
        lines.push((format!("  exit {reason}"), n.to_string()));
    }
    let b = &m.bus.stats;
    lines.push((
        "port I/O".into(),
        format!(
            "{} reads, {} writes ({} reads and {} writes unclaimed)",
            b.pio_reads, b.pio_writes, b.unclaimed_pio_reads, b.unclaimed_pio_writes
        ),
    ));
    if b.mmio_reads + b.mmio_writes > 0 {
        lines.push((
            "MMIO".into(),
            format!("{} reads, {} writes", b.mmio_reads, b.mmio_writes),
        ));
    }
    lines.extend(m.device_summary());
    let post = m.bus.get(m.chipset.post);
    if let Some(last) = post.codes().last() {
        let seq: Vec<String> = post.distinct().iter().map(|c| format!("{c:02x}")).collect();
        lines.push((
            "POST codes".into(),
            format!("last {last:02x}; in order {}", seq.join(" ")),
        ));
    }
    if let Some(rom) = m.rom_map() {
        lines.push((
            "ROM".into(),
            format!(
                "{} KiB at {:#x} and {:#x}; {} writes ignored",
                rom.size >> 10,
                rom.low,
                rom.high,
                m.rom_writes()
            ),
        ));
    }
    if !m.debugcon_output().is_empty() {
        lines.push((
            "port 0xE9".into(),
            format!("{} bytes", m.debugcon_output().len()),
        ));
    }
    for (name, v) in &o.stats.counters {
        lines.push((name.clone(), v.to_string()));
    }
    if o.stats.instructions.is_none() {
        // KVM: what it did not see is part of what it shows.
        lines.push((
            "observed".into(),
            "VM exits only: the CPU changes rings and takes exceptions without exits".into(),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in lines {
        writeln!(w, "{k:<width$}  {v}")?;
    }
    Ok(())
}

/// Per second of virtual time, "12.3 k/s".
fn rate(n: u64, virtual_ns: u64) -> String {
    if virtual_ns == 0 {
        return "-".into();
    }
    let per_s = n as f64 * 1e9 / virtual_ns as f64;
    if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.1}/s")
    }
}

/// What the guest did (`Trace::activity`): system calls, page faults and
/// interrupts by source, each with its rate in virtual time; and what an
/// engine paid per system call (the translator's callouts, KVM's exits).
pub fn activity_lines(m: &Machine) -> Vec<(String, String)> {
    let a = m.trace.activity();
    let now = m.clock.now();
    let mut lines = vec![];
    let sees_cpu = m.trace.exit_counts().is_empty();
    if a.system_calls > 0 || sees_cpu {
        lines.push((
            "system calls".into(),
            format!(
                "{} (INT n from ring 3), {}",
                a.system_calls,
                rate(a.system_calls, now)
            ),
        ));
    }
    let pf = a.exceptions[14];
    if pf > 0 {
        lines.push(("page faults".into(), format!("{pf}, {}", rate(pf, now))));
    }
    let rings = m.trace.count(EventKind::PrivilegeChange);
    if rings > 0 {
        lines.push((
            "ring changes".into(),
            format!("{rings}, {}", rate(rings, now)),
        ));
    }
    let sources = m.vector_sources();
    for (v, &n) in a.interrupts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let what = sources
            .iter()
            .find(|(vec, _)| *vec as usize == v)
            .map_or(String::new(), |(_, s)| format!(" ({s})"));
        lines.push((
            format!("  interrupt {v:#04x}"),
            format!("{n}, {}{what}", rate(n, now)),
        ));
    }
    if a.system_calls > 0 {
        let per_call = |n: u64| format!("{:.1}", n as f64 / a.system_calls as f64);
        let callouts: u64 = m
            .trace
            .sensitive_counts()
            .iter()
            .filter(|((_, how), _)| *how == machine::Handling::Callout)
            .map(|(_, n)| n)
            .sum();
        if callouts > 0 {
            lines.push(("callouts per system call".into(), per_call(callouts)));
        }
    }
    let exits = m.trace.count(EventKind::VmExit);
    if exits > 0 {
        // KVM does not see system calls (INT from ring 3 runs in the
        // guest): its exits per second of virtual time, by the chip they
        // were for (the board's port map; an MMIO exit names its device).
        use machine::event::VmExit;
        let board = machine::board::Board::pc();
        let mut by_chip: std::collections::BTreeMap<&str, u64> = Default::default();
        for (reason, n) in m.trace.exit_counts() {
            let k = match reason {
                VmExit::Mmio {
                    register: Some((dev, _)),
                    ..
                } => dev,
                VmExit::Mmio { .. } => "other MMIO",
                VmExit::IoIn { port } | VmExit::IoOut { port } => {
                    board.chip_at_port(port).map_or("other ports", |c| c.name)
                }
                VmExit::Hlt => "HLT",
                VmExit::IrqWindow => "interrupt window",
                _ => "other",
            };
            *by_chip.entry(k).or_default() += n;
        }
        for (k, n) in by_chip {
            lines.push((format!("  exits for {k}"), format!("{n}, {}", rate(n, now))));
        }
    }
    lines
}
