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
