//! `ringlab run`: one guest on one engine, the guest's COM1 on stdout.

use crate::engines::{self, EngineKind};
use crate::status;
use machine::loader::{self, ImageFormat, LoadOptions, LoadedImage};
use machine::{EngineStats, EventKind, Limits, Machine, MachineConfig, Stop};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The guest image: a flat binary (a boot sector, loaded at 0x7C00 in
    /// real mode) or a multiboot v1 kernel (ELF32 or a.out kludge, entered in
    /// protected mode). The format is detected; --format overrides.
    pub image: PathBuf,
    /// Which engine runs the CPU.
    #[arg(long, value_enum, default_value = "interp")]
    pub engine: EngineKind,
    /// Guest RAM in MiB (1 to 3072).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub mem: usize,
    /// Stop after this many guest instructions (exit status 10).
    #[arg(long, value_name = "N")]
    pub max_instructions: Option<u64>,
    /// Trap-and-emulate (interp only): run the guest's protected-mode ring 0
    /// as if deprivileged to ring 1 under a monitor, so privileged
    /// instructions trap and are emulated while the sensitive unprivileged
    /// ones (POPF, PUSHF, SGDT, SIDT, SMSW, STR, MOV from CS, LAR...) run
    /// and silently give the wrong answer — the Popek-Goldberg lesson.
    #[arg(long)]
    pub deprivilege: bool,
    /// Stop after this many seconds of host time (exit status 10).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Print statistics to stderr when the run ends.
    #[arg(long)]
    pub stats: bool,
    /// Write every event (privilege changes, exceptions, interrupts, port
    /// I/O, sensitive instructions, ...) to FILE as JSON lines.
    #[arg(long, value_name = "FILE.jsonl")]
    pub trace: Option<PathBuf>,
    /// Write a report of the run to FILE as one JSON object, for
    /// autograders: engine, stop, exit status, instructions, wall time, the
    /// COM1 output, the final screen, event counts, sensitive instructions
    /// by how they were handled, VM exits by reason and the engine's
    /// counters.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    /// Image format, instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Load address of a flat image (default 0x7C00); decimal or 0x hex.
    #[arg(long, value_name = "ADDR", value_parser = parse_u32)]
    pub load_addr: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Raw bytes at --load-addr, entered in real mode.
    Flat,
    /// A multiboot v1 kernel.
    Multiboot,
}

impl FormatArg {
    pub fn image_format(self) -> ImageFormat {
        match self {
            FormatArg::Flat => ImageFormat::Flat,
            FormatArg::Multiboot => ImageFormat::Multiboot,
        }
    }
}

pub fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("`{s}` is not a 32-bit number: {e}"))
}

/// A failure before or outside the guest, with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn new(status: u8, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// How often a run returns to the frontend to stream serial output.
const SLICE_INSNS: u64 = 20_000_000;
const SLICE_TIME: Duration = Duration::from_millis(100);

/// Builds the machine and loads the image.
pub fn prepare(
    image: &std::path::Path,
    mem_mib: usize,
    format: Option<FormatArg>,
    load_addr: Option<u32>,
) -> Result<(Machine, LoadedImage), Failure> {
    let bytes = std::fs::read(image).map_err(|e| {
        Failure::new(
            status::BAD_IMAGE,
            format!("cannot read {}: {e}", image.display()),
        )
    })?;
    let ram = mem_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| Failure::new(status::USAGE, format!("--mem {mem_mib}: too large")))?;
    let mut m = Machine::new(MachineConfig::with_ram(ram))
        .map_err(|e| Failure::new(status::USAGE, format!("--mem {mem_mib}: {e}")))?;
    let opts = LoadOptions {
        format: format.map(FormatArg::image_format),
        load_addr,
    };
    let loaded = loader::load(&mut m.mem, &bytes, &opts)
        .map_err(|e| Failure::new(status::BAD_IMAGE, format!("{}: {e}", image.display())))?;
    Ok((m, loaded))
}

/// Outcome of a run, for the statistics.
pub struct RunOutcome {
    pub stop: Stop,
    pub wall: Duration,
    pub stats: EngineStats,
}

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let (mut m, loaded) = prepare(&args.image, args.mem, args.format, args.load_addr)?;
    if let Some(path) = &args.trace {
        let f = std::fs::File::create(path).map_err(|e| {
            Failure::new(
                status::USAGE,
                format!("cannot create {}: {e}", path.display()),
            )
        })?;
        m.trace.set_sink(Box::new(std::io::BufWriter::new(f)));
        let mut all = machine::EventMask::NONE;
        for k in EventKind::ALL {
            all = all.with(k);
        }
        m.trace.set_enabled(all);
    }
    if args.deprivilege && args.engine != EngineKind::Interp {
        return Err(Failure::new(
            status::USAGE,
            format!(
                "--deprivilege is a mode of the interpreter (--engine interp), not of --engine {}",
                args.engine.name()
            ),
        ));
    }
    let mut engine = engines::create_with(args.engine, &mut m, args.deprivilege).map_err(|e| {
        Failure::new(
            status::ENGINE_ERROR,
            format!("--engine {}: {e}", args.engine.name()),
        )
    })?;
    engine.set_cpu_state(&mut m, &loaded.entry).map_err(|e| {
        Failure::new(
            status::ENGINE_ERROR,
            format!("--engine {}: {e}", args.engine.name()),
        )
    })?;

    let timeout = match args.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            return Err(Failure::new(
                status::USAGE,
                format!("--timeout {t}: must be a positive number of seconds"),
            ))
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let start = Instant::now();
    let mut stdout = std::io::stdout().lock();
    // The whole COM1 output, for the JSON report.
    let mut serial: Vec<u8> = Vec::new();
    let stop = loop {
        let icount = m.icount();
        let slice_end = icount.saturating_add(SLICE_INSNS);
        let max_icount = Some(
            args.max_instructions
                .map_or(slice_end, |b| b.min(slice_end)),
        );
        let slice_time = match timeout {
            Some(t) => t.saturating_sub(start.elapsed()).min(SLICE_TIME),
            None => SLICE_TIME,
        };
        let limits = Limits {
            max_icount,
            timeout: Some(slice_time),
            breakpoints: vec![],
        };
        let r = engine.run(&mut m, &limits);
        let out = m.take_serial_output();
        if args.json.is_some() {
            serial.extend_from_slice(&out);
        }
        // A closed stdout (`| head`) must not stop the guest or panic.
        let _ = stdout.write_all(&out).and_then(|_| stdout.flush());
        let stop = r.map_err(|e| {
            Failure::new(
                status::ENGINE_ERROR,
                format!("--engine {}: {e}", engine.name()),
            )
        })?;
        match stop {
            Stop::Budget if args.max_instructions.is_some_and(|b| m.icount() >= b) => {
                break Stop::Budget
            }
            Stop::Budget if timeout.is_some_and(|t| start.elapsed() >= t) => break Stop::Timeout,
            Stop::Budget => continue,
            Stop::Timeout if timeout.is_some_and(|t| start.elapsed() >= t) => break Stop::Timeout,
            Stop::Timeout => continue,
            s => break s,
        }
    };
    let wall = start.elapsed();
    if let Err(e) = m.trace.finish() {
        eprintln!("ringlab: warning: writing the trace failed: {e}");
    }
    let code = status::for_stop(&stop);
    if let Some(path) = &args.json {
        let report = json_report(&m, &*engine, &stop, code, wall, &serial);
        std::fs::write(path, format!("{report:#}\n")).map_err(|e| {
            Failure::new(
                status::USAGE,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    }
    if args.stats {
        let outcome = RunOutcome {
            stop: stop.clone(),
            wall,
            stats: engine.stats(),
        };
        crate::report::print_stats(&mut std::io::stderr(), &m, &loaded, &outcome, code);
    } else if !matches!(stop, Stop::GuestExit { .. } | Stop::Shutdown | Stop::Halted) {
        eprintln!("ringlab: {stop} (exit status {code})");
    }
    Ok(code)
}

/// The `--json` report of a finished run.
fn json_report(
    m: &Machine,
    engine: &dyn machine::Engine,
    stop: &Stop,
    code: u8,
    wall: Duration,
    serial: &[u8],
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let stats = engine.stats();
    let events: Map<String, Value> = EventKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), json!(m.trace.count(*k))))
        .collect();
    let sensitive: Vec<Value> = m
        .trace
        .sensitive_counts()
        .iter()
        .map(|((insn, how), n)| json!({"insn": insn, "how": how, "count": n}))
        .collect();
    let exits: Map<String, Value> = m
        .trace
        .exit_counts()
        .iter()
        .map(|(r, n)| (r.clone(), json!(n)))
        .collect();
    let counters: Map<String, Value> = stats
        .counters
        .iter()
        .map(|(k, v)| (k.trim().to_string(), json!(v)))
        .collect();
    json!({
        "engine": stats.engine,
        "stop": stop.to_string(),
        "exit_status": code,
        "instructions": stats.instructions,
        "wall_seconds": wall.as_secs_f64(),
        "virtual_ns": m.clock.now(),
        "serial": String::from_utf8_lossy(serial),
        "screen": m.screen().text(),
        "events": events,
        "sensitive": sensitive,
        "vm_exits": exits,
        "counters": counters,
    })
}
