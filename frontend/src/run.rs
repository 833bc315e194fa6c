//! `ringlab run`: one guest on one engine, the guest's COM1 on stdout.

use crate::engines::EngineKind;
use crate::session::{self, Session};
use crate::status::{self, Status};
use crate::vga::{VgaMode, VgaWindow};
use anyhow::Context;
use machine::loader::{self, ImageFormat, LoadOptions, LoadedImage};
use machine::{CpuState, EngineStats, EventKind, Limits, Machine, MachineConfig, Stop};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Which engine runs the CPU.
    #[arg(long, value_enum, default_value = "interp")]
    pub engine: EngineKind,
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
    /// Move the running machine to ENGINE once N instructions have
    /// retired (repeatable: --switch-at 5000:kvm --switch-at 9000:interp).
    /// The engine exports its CPU state and the new one imports it; RAM,
    /// devices, clock and trace stay. KVM cannot count instructions, so
    /// while a switch away from it is pending it single-steps the guest.
    #[arg(long, value_name = "N:ENGINE", value_parser = parse_switch)]
    pub switch_at: Vec<(u64, EngineKind)>,
    /// Show the VGA text screen: `window` opens a window (640x400 scaled
    /// twice, blinking cursor) updated as the guest runs, which stays open
    /// after the guest stops until closed (or Esc); `term` prints the final
    /// screen in colour on stderr.
    #[arg(long, value_enum, default_value = "none")]
    pub vga: crate::vga::VgaMode,
    /// Do not connect stdin to COM1. By default what comes on stdin reaches
    /// the guest's serial port: from a file or pipe at points fixed by the
    /// guest's own accesses (the same input, the same run); from a terminal
    /// as typed, in raw mode, with Ctrl-A x to quit and Ctrl-A h for help.
    #[arg(long)]
    pub no_input: bool,
    /// Type COM1's input as a person at a terminal does: hold it until the
    /// guest prints PROMPT (`'$ '` for xv6's shell), send one line, and
    /// wait for PROMPT again. When the input has ended and PROMPT comes
    /// once more, the run stops with status 0: a scripted session. The
    /// hold depends only on what the guest prints, so the same script
    /// gives the same run.
    #[arg(long, value_name = "PROMPT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub type_after: Option<String>,
    /// Let gdb debug the guest, as QEMU's `-s -S` does: listen for gdb's
    /// remote protocol on [HOST:]PORT (default 127.0.0.1:1234) and wait
    /// for it before the first instruction; in gdb, `target remote :1234`.
    /// Breakpoints, watchpoints, stepi and memory at the guest's virtual
    /// addresses work on every engine; `monitor help` lists ringlab's own
    /// commands (rings, GDT, IDT, TSS, page tables, events, switch).
    /// --timeout and --max-instructions still bound the run (gdb sees
    /// SIGALRM or SIGXCPU there).
    #[arg(long, value_name = "[HOST:]PORT", num_args = 0..=1,
          default_missing_value = crate::gdb::DEFAULT_ADDR,
          value_parser = crate::gdb::parse_addr)]
    pub gdb: Option<std::net::SocketAddr>,
    /// With --gdb: start the guest at once; it stops when gdb connects.
    #[arg(long, requires = "gdb")]
    pub gdb_no_wait: bool,
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

/// The guest RAM sizes `--mem` takes, in MiB (the machine's limits).
const MEM_MIB: std::ops::RangeInclusive<usize> =
    (machine::memory::MIN_RAM >> 20)..=(machine::memory::MAX_RAM >> 20);

/// Why `mib` is no guest RAM size, in the words --mem is given in.
fn mem_range_error(mib: usize) -> Option<String> {
    (!MEM_MIB.contains(&mib)).then(|| {
        format!(
            "guest RAM is {} to {} MiB; {mib} MiB is too {}",
            MEM_MIB.start(),
            MEM_MIB.end(),
            if mib < *MEM_MIB.start() {
                "little"
            } else {
                "much"
            }
        )
    })
}

/// Parses `--mem MIB`.
pub fn parse_mem(s: &str) -> Result<usize, String> {
    let mib: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of MiB"))?;
    match mem_range_error(mib) {
        Some(why) => Err(why),
        None => Ok(mib),
    }
}

pub fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("`{s}` is not a 32-bit number: {e}"))
}

/// How often a run reports back to stream serial output (the session
/// also reports every few million instructions).
const SLICE_TIME: Duration = Duration::from_millis(100);

/// Where the guest comes from: an image file or a lesson's built-in guest.
#[derive(clap::Args, Debug, Clone)]
pub struct GuestArgs {
    /// The guest image: a flat binary (a boot sector, loaded at 0x7C00 in
    /// real mode) or a multiboot v1 kernel (ELF32 or a.out kludge, entered in
    /// protected mode). The format is detected; --format overrides.
    #[arg(conflicts_with = "lesson")]
    pub image: Option<PathBuf>,
    /// Run a lab's guest instead of an image (see `ringlab lessons`).
    #[arg(long, value_name = "NAME")]
    pub lesson: Option<String>,
    /// Boot from a firmware ROM (64 to 256 KiB), as a PC does at power-on:
    /// mapped read-only at the top of the first megabyte and of the 4 GiB
    /// space, the CPU in its reset state (CS F000 with base FFFF0000, EIP
    /// FFF0). An image or lesson given too is loaded as usual, for the ROM
    /// to boot.
    #[arg(long, value_name = "ROM.bin")]
    pub bios: Option<PathBuf>,
    /// Guest RAM in MiB (1 to 3072).
    #[arg(long, default_value_t = 32, value_name = "MIB", value_parser = parse_mem)]
    pub mem: usize,
    /// Image format, instead of detecting it (a lesson's format is known:
    /// not with --lesson).
    #[arg(long, value_enum, conflicts_with = "lesson")]
    pub format: Option<FormatArg>,
    /// Load address of a flat image (default 0x7C00); decimal or 0x hex.
    #[arg(long, value_name = "ADDR", value_parser = parse_u32)]
    pub load_addr: Option<u32>,
    /// A raw disk image as an ATA hard disk (repeatable, up to four: primary
    /// master, primary slave, secondary master, secondary slave, as QEMU's
    /// -hda..-hdd). `run` writes what the guest writes to the file (the
    /// file is locked while in use; a read-only file becomes a read-only
    /// disk); `compare`, `step` and --snapshot never write it.
    #[arg(long, value_name = "FILE")]
    pub disk: Vec<PathBuf>,
    /// Keep the guest's disk writes in memory and drop them at exit.
    #[arg(long)]
    pub snapshot: bool,
    /// What the CMOS clock shows at power-on: `now` (the host's clock) or
    /// YYYY-MM-DD[THH:MM:SS] (UTC). Default 2026-01-01T00:00:00, so that
    /// runs repeat exactly.
    #[arg(long, value_name = "now|DATE", value_parser = parse_rtc)]
    pub rtc: Option<i64>,
    /// Type TEXT on the PS/2 keyboard (repeatable): C escapes \n \t \b \e
    /// \\ \xNN; a US layout, Shift held for capitals and symbols. Keys
    /// arrive one at a time as the guest reads them, starting when it is
    /// ready for them (polls the 8042 or unmasks IRQ 1), so a run repeats.
    #[arg(long, value_name = "TEXT")]
    pub keys: Vec<String>,
    /// Type the contents of FILE on the keyboard (as --keys, taken
    /// literally: no escapes).
    #[arg(long, value_name = "FILE")]
    pub keys_file: Vec<PathBuf>,
    /// How the guest starts. `firmware`: as a PC does, ringlab's BIOS from
    /// the reset vector; it boots the first hard disk (a flat IMAGE is that
    /// disk: what `qemu-system-i386 boot.bin` does) or, after POST, starts
    /// a multiboot kernel ringlab loaded (the default for images and for
    /// --disk alone). `direct`: no firmware; ringlab starts the image at
    /// its entry (a flat image at 0000:7C00 in real mode; the default for
    /// the lessons, whose traces stay short, all but `reset`, whose subject
    /// is the firmware).
    #[arg(long, value_enum, value_name = "HOW")]
    pub boot: Option<BootArg>,
}

/// `--boot`: how the guest starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BootArg {
    /// ringlab's BIOS from the reset vector boots the first hard disk.
    Firmware,
    /// The image loaded and entered directly, no firmware.
    Direct,
}

impl GuestArgs {
    /// Lesson `name`'s guest with every other option at its default, as
    /// `ringlab run --lesson NAME` takes it.
    pub fn lesson(name: &str) -> GuestArgs {
        GuestArgs {
            image: None,
            lesson: Some(name.to_string()),
            bios: None,
            mem: machine::machine::DEFAULT_RAM >> 20,
            format: None,
            load_addr: None,
            disk: vec![],
            snapshot: false,
            rtc: None,
            keys: vec![],
            keys_file: vec![],
            boot: None,
        }
    }

    /// The guest's name, for titles.
    pub fn name(&self) -> String {
        let guest = match (&self.lesson, &self.image) {
            (Some(l), _) => format!("lesson {l}"),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => String::new(),
        };
        match (&self.bios, guest.is_empty()) {
            (Some(b), true) => format!("ROM {}", b.display()),
            (Some(b), false) => format!("ROM {} + {guest}", b.display()),
            (None, _) => guest,
        }
    }
}

/// Parses `--rtc now|DATE` into the Unix time the CMOS clock starts at.
pub fn parse_rtc(s: &str) -> Result<i64, String> {
    if s == "now" {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .map_err(|e| format!("the host clock is before 1970: {e}"));
    }
    machine::devices::rtc::parse_rtc_start(s).map_err(|e| e.to_string())
}

/// Builds the machine and loads the guest (and the ROM); disks are opened
/// without writing to them (the comparison, the step UI). The error has
/// its exit status (`status::of_error`): a bad command line or a bad image.
pub fn prepare(g: &GuestArgs) -> anyhow::Result<(Machine, LoadedImage)> {
    prepare_with(g, false)
}

/// `prepare`, with the disk files written as the guest writes when
/// `write_disks` (and not --snapshot).
pub fn prepare_with(g: &GuestArgs, write_disks: bool) -> anyhow::Result<(Machine, LoadedImage)> {
    // How the guest starts: --boot, else the lesson's own way (an image
    // has none: it depends on its format, below).
    let mut boot = g.boot;
    let guest: Option<(Vec<u8>, String, Option<ImageFormat>)> = match (&g.lesson, &g.image) {
        (Some(name), _) => {
            let l = crate::compare::find_lesson(name)?;
            let Some(l) = l.builtin() else {
                return Err(status::error(
                    status::USAGE,
                    format!(
                        "lesson {name}'s guest is not built into ringlab: \
                         `ringlab xv6` builds and boots it"
                    ),
                ));
            };
            let f = match l.format {
                lessons::Format::BootSector => ImageFormat::Flat,
                lessons::Format::Multiboot => ImageFormat::Multiboot,
            };
            boot = boot.or(Some(match l.boot {
                lessons::Boot::Direct => BootArg::Direct,
                lessons::Boot::Firmware => BootArg::Firmware,
            }));
            Some((l.image.to_vec(), format!("lesson {name}"), Some(f)))
        }
        (None, Some(image)) => {
            let bytes = std::fs::read(image)
                .with_context(|| format!("cannot read {}", image.display()))
                .status(status::BAD_IMAGE)?;
            Some((
                bytes,
                image.display().to_string(),
                g.format.map(FormatArg::image_format),
            ))
        }
        (None, None) if g.bios.is_some() || !g.disk.is_empty() => None,
        (None, None) => {
            return Err(status::error(
                status::USAGE,
                "no guest given: name an IMAGE file, or --lesson NAME for a lab's guest \
                 (`ringlab lessons` lists them), or --disk FILE for the BIOS to boot, or --bios ROM",
            ))
        }
    };
    // Through the firmware: a flat image becomes the first hard disk.
    let firmware_disk = match (&guest, boot, &g.bios) {
        (_, _, Some(_)) => None,
        (Some((bytes, what, format)), boot, _) if boot != Some(BootArg::Direct) => {
            let flat = match format {
                Some(f) => *f == ImageFormat::Flat,
                None => loader::detect_format(bytes) == Some(ImageFormat::Flat),
            };
            if flat {
                Some(boot_disk(bytes, what)?)
            } else {
                None
            }
        }
        _ => None,
    };
    // A multiboot kernel is loaded by ringlab and started by the BIOS
    // after POST (boot.S, "a kernel ringlab loaded"), unless it boots
    // directly (--boot direct, as the multiboot lessons do).
    let kernel_via_firmware = g.bios.is_none()
        && firmware_disk.is_none()
        && guest.is_some()
        && boot != Some(BootArg::Direct);
    let boot_firmware = firmware_disk.is_some()
        || kernel_via_firmware
        || (guest.is_none() && g.bios.is_none() && !g.disk.is_empty())
        || (boot == Some(BootArg::Firmware) && g.bios.is_none() && guest.is_none());
    let guest = if firmware_disk.is_some() { None } else { guest };
    let mem_mib = g.mem;
    if let Some(why) = mem_range_error(mem_mib) {
        return Err(status::error(
            status::USAGE,
            format!("--mem {mem_mib}: {why}"),
        ));
    }
    let ram = mem_mib << 20;
    let mut cfg = MachineConfig::with_ram(ram);
    if let Some(t) = g.rtc {
        cfg.rtc_start = t;
    }
    let mut m = Machine::new(cfg)
        .with_context(|| format!("--mem {mem_mib}"))
        .status(status::USAGE)?;
    let first = match &firmware_disk {
        Some((disk, _)) => {
            m.attach_disk(0, disk.clone_in_memory());
            1
        }
        None => 0,
    };
    attach_disks(&mut m, g, write_disks, first)?;
    type_keys(&mut m, g)?;
    let mut loaded = match guest {
        Some((bytes, what, format)) => {
            let opts = LoadOptions {
                format,
                load_addr: g.load_addr,
            };
            loader::load(&mut m.mem, &bytes, &opts)
                .context(what)
                .status(status::BAD_IMAGE)?
        }
        None => LoadedImage {
            format: ImageFormat::Flat,
            entry: CpuState::reset(),
            segments: vec![],
            summary: String::new(),
        },
    };
    if boot_firmware {
        let map = m
            .load_rom(machine::firmware::BIOS)
            .context("ringlab's BIOS")
            .status(status::ENGINE_ERROR)?;
        loaded.entry = CpuState::reset();
        loaded.summary = match &firmware_disk {
            Some((_, line)) => format!("ringlab BIOS ({} KiB); {line}", map.size >> 10),
            None if kernel_via_firmware => format!(
                "ringlab BIOS ({} KiB), then {}",
                map.size >> 10,
                loaded.summary
            ),
            None => format!(
                "ringlab BIOS ({} KiB), booting the first --disk",
                map.size >> 10
            ),
        };
    }
    if let Some(path) = &g.bios {
        let rom = std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .status(status::BAD_IMAGE)?;
        let map = m
            .load_rom(&rom)
            .with_context(|| path.display().to_string())
            .status(status::BAD_IMAGE)?;
        // The CPU starts where a PC's does; the ROM boots the image, if any.
        loaded.entry = CpuState::reset();
        let rom_line = format!(
            "ROM {} KiB at {:#x} and {:#x}, reset vector F000:FFF0",
            map.size >> 10,
            map.low,
            map.high
        );
        loaded.summary = if loaded.summary.is_empty() {
            rom_line
        } else {
            format!("{rom_line}; {}", loaded.summary)
        };
    }
    Ok((m, loaded))
}

/// Opens --disk files and attaches them as ATA drives 0-3.
fn attach_disks(m: &mut Machine, g: &GuestArgs, write: bool, first: usize) -> anyhow::Result<()> {
    use machine::disk::{DiskImage, DiskOpenOptions};
    if first + g.disk.len() > 4 {
        return Err(status::error(
            status::USAGE,
            if first == 0 {
                format!(
                    "--disk given {} times: the PC has four ATA drives (two channels, \
                     master and slave)",
                    g.disk.len()
                )
            } else {
                format!(
                    "--disk given {} times, and the image is the first disk: the PC has \
                     four ATA drives (two channels, master and slave)",
                    g.disk.len()
                )
            },
        ));
    }
    let opts = DiskOpenOptions {
        snapshot: g.snapshot || !write,
    };
    for (i, path) in g.disk.iter().enumerate() {
        let disk = DiskImage::open(path, opts).status(status::BAD_IMAGE)?;
        if let Some(w) = disk.warning() {
            eprintln!("ringlab: warning: {w}");
        }
        m.attach_disk(first + i, disk);
    }
    Ok(())
}

/// The line `run` prints when a signal stopped it: the signal, where the
/// guest stopped (CS:EIP, when the engine could say) and what became of
/// the disk files.
fn signal_line(
    sig: i32,
    at: Option<String>,
    m: &Machine,
    flushed: &Result<(), machine::disk::DiskIoError>,
) -> String {
    let mut line = format!("ringlab: stopped by {}", crate::signals::name(sig));
    if let Some(at) = at {
        line += &format!(" at CS:EIP {at}");
    }
    let disks: Vec<&machine::disk::DiskImage> = (0..4)
        .filter_map(|i| m.disk(i))
        .filter(|d| !d.in_memory())
        .collect();
    let names = |ds: &[&&machine::disk::DiskImage]| {
        let s = if ds.len() == 1 { "" } else { "s" };
        let list: Vec<&str> = ds.iter().map(|d| d.name()).collect();
        format!("disk{s} {}", list.join(", "))
    };
    let written: Vec<_> = disks
        .iter()
        .filter(|d| !d.snapshot() && !d.read_only())
        .collect();
    let kept: Vec<_> = disks.iter().filter(|d| d.snapshot()).collect();
    match flushed {
        Err(e) => line += &format!("; disk image {}", machine::Chain(e)),
        Ok(()) if !written.is_empty() => line += &format!("; {} flushed", names(&written)),
        Ok(()) => {}
    }
    if !kept.is_empty() {
        line += &format!("; {} not written (--snapshot)", names(&kept));
    }
    line
}

/// When ringlab's own BIOS stopped because nothing could be booted: its
/// message (it also went to the screen and port 0xE9).
fn firmware_boot_failure(g: &GuestArgs, m: &Machine, stop: &Stop) -> Option<String> {
    let builtin = g.bios.is_none() && m.rom_map().is_some();
    if !builtin
        || *stop != Stop::Halted
        || m.post_codes().last() != Some(&machine::firmware::POST_NO_BOOT)
    {
        return None;
    }
    let text = String::from_utf8_lossy(m.debugcon_output());
    let why = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && *l != "System halted.")
        .unwrap_or("no bootable disk");
    Some(format!("the BIOS found nothing to boot: {why}"))
}

/// A flat image as the first hard disk for the BIOS to boot: whole
/// sectors (a short last one padded with zeros, in memory: the file is
/// never written), a boot signature in sector 0. Returns the disk and a
/// line for `--stats`.
fn boot_disk(bytes: &[u8], what: &str) -> anyhow::Result<(BootDisk, String)> {
    if bytes.len() < 512 {
        return Err(status::error(
            status::BAD_IMAGE,
            format!(
                "{what}: {} bytes is less than one 512-byte sector: the BIOS boots sector 0 \
                 of a disk (--boot direct runs a smaller image at 0000:7C00 without firmware)",
                bytes.len()
            ),
        ));
    }
    if bytes[510..512] != [0x55, 0xAA] {
        return Err(status::error(
            status::BAD_IMAGE,
            format!(
                "{what}: no boot signature (55 AA at bytes 510-511), so a BIOS would not boot \
                 it; --boot direct runs it at 0000:7C00 without firmware"
            ),
        ));
    }
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(512) * 512, 0);
    let sectors = padded.len() / 512;
    Ok((
        BootDisk(padded),
        format!(
            "{what} as the first hard disk ({sectors} sector{}, writes kept in memory)",
            if sectors == 1 { "" } else { "s" }
        ),
    ))
}

/// The bytes of a flat image booted as a disk.
struct BootDisk(Vec<u8>);

impl BootDisk {
    fn clone_in_memory(&self) -> machine::disk::DiskImage {
        machine::disk::DiskImage::from_bytes(self.0.clone())
            .expect("boot_disk made whole, non-empty sectors")
    }
}

/// Queues --keys and --keys-file on the keyboard.
fn type_keys(m: &mut Machine, g: &GuestArgs) -> anyhow::Result<()> {
    use machine::devices::ps2kbd::parse_key_text;
    for text in &g.keys {
        let keys = parse_key_text(text)
            .with_context(|| format!("--keys {text:?}"))
            .status(status::USAGE)?;
        m.key_events(keys);
    }
    for path in &g.keys_file {
        let what = || format!("--keys-file {}", path.display());
        let text = std::fs::read_to_string(path)
            .with_context(what)
            .status(status::USAGE)?;
        // Taken literally: a backslash is a backslash key.
        let keys = parse_key_text(&text.replace('\\', "\\\\"))
            .with_context(what)
            .status(status::USAGE)?;
        m.key_events(keys);
    }
    Ok(())
}

/// Outcome of a run, for the statistics.
pub struct RunOutcome {
    pub stop: Stop,
    pub wall: Duration,
    pub stats: EngineStats,
}

/// Parses `--switch-at N:ENGINE`.
pub fn parse_switch(s: &str) -> Result<(u64, EngineKind), String> {
    use clap::ValueEnum;
    let (n, e) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected N:ENGINE, e.g. 5000:kvm"))?;
    let n: u64 = n
        .replace('_', "")
        .parse()
        .map_err(|e| format!("`{n}` is not an instruction count: {e}"))?;
    let kind = EngineKind::from_str(e, true)
        .map_err(|_| format!("`{e}` is not an engine (interp, bt or kvm)"))?;
    Ok((n, kind))
}

pub fn run(args: &RunArgs) -> anyhow::Result<u8> {
    // SIGINT and SIGTERM stop the guest between two instructions; the
    // disks are flushed and closed, the terminal restored, and at the
    // binary's edge (`cli::main`) ringlab dies of the signal
    // (`crate::signals`).
    crate::signals::install();
    let mut json_created = false;
    let r = run_guest(args, &mut json_created);
    if r.is_err() && json_created {
        // No report for a run that failed: not an empty file either.
        if let Some(path) = &args.json {
            // Best effort: the run's own error is what the user must see;
            // a report file that cannot be removed was created empty by us.
            let _ = std::fs::remove_file(path);
        }
    }
    r
}

/// `run`; `json_created` is set once the --json file exists.
fn run_guest(args: &RunArgs, json_created: &mut bool) -> anyhow::Result<u8> {
    let (mut m, loaded) = prepare_with(&args.guest, true)?;
    // The report is written when the run ends; a path that cannot be
    // written fails now, as --trace does, not after the run.
    let mut json_file = match &args.json {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))
                .status(status::USAGE)?,
        ),
        None => None,
    };
    *json_created = json_file.is_some();
    if let Some(path) = &args.trace {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))
            .status(status::USAGE)?;
        m.trace.set_sink(Box::new(std::io::BufWriter::new(f)));
        let mut all = machine::EventMask::NONE;
        for k in EventKind::ALL {
            all = all.with(k);
        }
        m.trace.set_enabled(all);
    } else if args.gdb.is_none() {
        // Nothing reads the records a trace keeps in a run without --trace
        // or gdb (whose `monitor events` shows them): the report and
        // --json take the counters, which count every event whatever is
        // kept. Keeping them cost a tenth of a translated xv6's time (some
        // 20 million PUSHFs, CLIs and STIs a second, each a record).
        m.trace.set_enabled(machine::EventMask::NONE);
    }
    if args.deprivilege
        && args.engine != EngineKind::Interp
        && args.switch_at.iter().all(|&(_, k)| k != EngineKind::Interp)
    {
        return Err(status::error(
            status::USAGE,
            format!(
                "--deprivilege is a mode of the interpreter (--engine interp), not of --engine {}",
                args.engine.name()
            ),
        ));
    }
    let mut switches = args.switch_at.clone();
    switches.sort_by_key(|&(n, _)| n);
    if let Some(w) = switches.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(status::error(
            status::USAGE,
            format!("--switch-at: two switches at instruction {}", w[0].0),
        ));
    }
    if Session::single_steps_kvm(args.engine, &switches, args.max_instructions) {
        eprintln!(
            "ringlab: note: KVM does not count instructions; to stop at an exact count it \
             single-steps the guest (one VM exit per instruction, slow)"
        );
    }
    if args.type_after.is_some() && args.no_input {
        return Err(status::error(
            status::USAGE,
            "--type-after paces what comes on stdin, and --no-input disconnects it",
        ));
    }
    m.set_serial_prompt(args.type_after.as_deref().map(str::as_bytes));
    let console = crate::console::Console::attach(&mut m, !args.no_input);
    let mut session = Session::new(
        m,
        args.engine,
        session::Options::deprivileged(args.deprivilege),
        &loaded.entry,
    )
    .with_context(|| format!("--engine {}", args.engine.name()))
    .status(status::ENGINE_ERROR)?;
    for &(n, to) in &switches {
        session.plan_switch(n, to);
    }
    let mut window = match args.vga {
        VgaMode::Window => Some(
            VgaWindow::open(&format!("ringlab: {}", args.guest.name()))
                .status(status::ENGINE_ERROR)?,
        ),
        _ => None,
    };
    // With a window or a person typing the reports are more frequent, so
    // the screen moves and keys arrive soon.
    let slice_time = if window.is_some() || console.interactive() {
        Duration::from_millis(20)
    } else {
        SLICE_TIME
    };

    let timeout = match args.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            return Err(status::error(
                status::USAGE,
                format!("--timeout {t}: must be a positive number of seconds"),
            ))
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    // The gdb socket before the run starts: a port in use fails now.
    let gdb_server = match args.gdb {
        Some(addr) => Some(crate::gdb::Server::bind(addr).status(status::USAGE)?),
        None => None,
    };
    let start = Instant::now();
    let mut progress = Progress::new();
    // The terminal is the guest's console: no progress line between its
    // output (QEMU -nographic shows none either).
    progress.on &= !console.interactive();
    let mut stdout = std::io::stdout().lock();
    // The whole COM1 output, for the JSON report.
    let mut serial: Vec<u8> = Vec::new();
    let mut stream = |session: &mut Session| {
        let out = session.m.take_serial_output();
        if args.json.is_some() {
            serial.extend_from_slice(&out);
        }
        // A closed stdout (`| head`) must not stop the guest or panic.
        let _ = stdout.write_all(&out).and_then(|_| stdout.flush());
    };
    let limits = Limits {
        max_icount: args.max_instructions,
        deadline: timeout.map(|t| start + t),
        breakpoints: vec![],
    };
    let mut report = |session: &mut Session| {
        stream(session);
        progress.update(session, start);
        if let Some(w) = &mut window {
            // Keys typed in the window go to the guest's PS/2 keyboard.
            let keys = w.take_keys();
            if !keys.is_empty() {
                session.m.key_events(keys);
            }
            // Closing the window does not stop the guest.
            if !w.show(&session.m.screen()) {
                window = None;
            }
        }
        session.m.poll_serial_input();
        let failures = session.m.take_disk_failures();
        if !failures.is_empty() {
            progress.clear();
            for f in failures {
                eprintln!("ringlab: warning: {f}");
            }
        }
        if console.quit_requested() || crate::signals::pending().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let mut gdb_killed = false;
    let r = if let Some(server) = &gdb_server {
        match server.serve(&mut session, &limits, !args.gdb_no_wait, &mut report) {
            Ok(crate::gdb::Served::Stop(s)) => Ok(s),
            Ok(crate::gdb::Served::Killed) => {
                gdb_killed = true;
                Ok(Stop::Quit)
            }
            Err(e) => {
                stream(&mut session);
                return Err(e).status(status::ENGINE_ERROR);
            }
        }
    } else {
        loop {
            let r = session.run_reporting(&limits, slice_time, &mut report);
            // A guest idle at a terminal waits for the next key, not the end.
            if matches!(r, Ok(Stop::Idle)) && console.interactive() && !limits.expired() {
                if console.quit_requested() {
                    break Ok(Stop::Quit);
                }
                console.wait_for_key(slice_time);
                if report(&mut session).is_break() {
                    break Ok(Stop::Quit);
                }
                continue;
            }
            break r;
        }
    };
    // What the guest wrote before an engine failed is shown too.
    stream(&mut session);
    // Said as the user asked for that engine (the option), then the
    // engine's error with its causes.
    let stop = r
        .map_err(|e| {
            let what = match e.switch_at {
                Some(n) => format!("--switch-at {n}:{}", e.engine.name()),
                None => format!("--engine {}", e.engine.name()),
            };
            anyhow::Error::new(e.error).context(what)
        })
        .status(status::ENGINE_ERROR)?;
    progress.clear();
    // What the guest wrote is in the files already (write-through); this
    // makes it durable, as a machine's power-off would.
    let flushed = session.m.flush_disks();
    for f in session.m.take_disk_failures() {
        eprintln!("ringlab: warning: {f}");
    }
    if let Some(sig) = crate::signals::pending() {
        if let Err(e) = session.m.trace.finish() {
            eprintln!(
                "ringlab: warning: writing the trace failed: {}",
                machine::Chain(&e)
            );
        }
        let at = session.cpu_state().ok().map(|s| {
            format!(
                "{:04x}:{:08x}",
                s.segs[machine::cpu::Seg::Cs as usize].selector,
                s.eip
            )
        });
        eprintln!("{}", signal_line(sig, at, &session.m, &flushed));
        let code = 128 + sig as u8;
        if let (Some(path), Some(f)) = (&args.json, &mut json_file) {
            let mut report = json_report(&mut session, &stop, code, start.elapsed(), &serial);
            report["stop"] = format!("stopped by {}", crate::signals::name(sig)).into();
            f.write_all(format!("{report:#}\n").as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))
                .status(status::USAGE)?;
        }
        // `cli::main` dies of the signal once all of this is dropped.
        return Ok(code);
    }
    if let Err(e) = &flushed {
        eprintln!("ringlab: warning: disk image {}", machine::Chain(e));
    }
    if let Some(why) = firmware_boot_failure(&args.guest, &session.m, &stop) {
        return Err(status::error(status::BAD_IMAGE, why));
    }
    let wall = start.elapsed();
    if let Err(e) = session.m.trace.finish() {
        eprintln!(
            "ringlab: warning: writing the trace failed: {}",
            machine::Chain(&e)
        );
    }
    if let Some((n, to)) = session.planned_switches().next() {
        eprintln!(
            "ringlab: note: the guest stopped at instruction {} before the switch to {} at {n}",
            session.m.icount(),
            to.name()
        );
    }
    let code = status::for_stop(&stop);
    if let (Some(path), Some(f)) = (&args.json, &mut json_file) {
        let report = json_report(&mut session, &stop, code, wall, &serial);
        f.write_all(format!("{report:#}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
            .status(status::USAGE)?;
    }
    if args.stats {
        let outcome = RunOutcome {
            stop: stop.clone(),
            wall,
            stats: session.stats(),
        };
        let w = &mut std::io::stderr();
        let written = (|| -> std::io::Result<()> {
            for (s, before) in session.switches.iter().zip(&session.earlier) {
                writeln!(
                    w,
                    "switched {} -> {} at instruction {} ({} counters: {})",
                    s.from.name(),
                    s.to.name(),
                    s.icount,
                    s.from.name(),
                    before
                        .counters
                        .iter()
                        .filter(|(_, v)| *v != 0)
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            crate::report::print_stats(w, &session.m, &loaded, &outcome, code)
        })();
        // --stats go to stderr, where errors go too: if it cannot be
        // written there is nowhere left to say so, and the exit status
        // still tells the run's outcome.
        let _ = written;
    } else if !gdb_killed && !matches!(stop, Stop::GuestExit { .. } | Stop::Shutdown | Stop::Halted)
    {
        eprintln!("ringlab: {stop} (exit status {code})");
    }
    if args.vga == VgaMode::Term {
        eprint!("{}", crate::vga::ansi(&session.m.screen()));
    }
    if let Some(w) = &mut window {
        w.wait_closed(&session.m.screen());
    }
    Ok(code)
}

/// Instructions per second on stderr while a long run goes on, when stderr
/// is a terminal (never in pipes or logs).
struct Progress {
    on: bool,
    shown: bool,
    last: Instant,
    last_icount: u64,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: std::io::stderr().is_terminal(),
            shown: false,
            last: Instant::now(),
            last_icount: 0,
        }
    }

    fn update(&mut self, session: &mut Session, start: Instant) {
        if !self.on || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        let icount = session.m.icount();
        let dt = self.last.elapsed().as_secs_f64();
        let counted = session.stats().instructions.is_some();
        let line = progress_line(
            start.elapsed(),
            session.kind(),
            counted.then(|| (icount, (icount - self.last_icount) as f64 / dt)),
            session.m.clock.now(),
        );
        eprint!("\r\x1b[2K{line}");
        self.shown = true;
        self.last = Instant::now();
        self.last_icount = icount;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The progress line: host time, engine, instructions (None on KVM, which
/// does not count them) with their rate per second, and virtual time,
/// each with its unit.
fn progress_line(
    elapsed: Duration,
    kind: EngineKind,
    insns: Option<(u64, f64)>,
    virtual_ns: u64,
) -> String {
    let count = match insns {
        Some((n, rate)) => format!("{n} instructions ({:.1} M/s)", rate / 1e6),
        None => "instructions not counted on KVM".to_string(),
    };
    format!(
        "[ringlab] {:.0} s on {}: {count}, virtual time {} ms",
        elapsed.as_secs_f64(),
        kind.name(),
        virtual_ns / 1_000_000
    )
}

/// The `--json` report of a finished run.
fn json_report(
    session: &mut Session,
    stop: &Stop,
    code: u8,
    wall: Duration,
    serial: &[u8],
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let stats = session.stats();
    let m = &session.m;
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
        .map(|(r, n)| (r.to_string(), json!(n)))
        .collect();
    let counters: Map<String, Value> = stats
        .counters
        .iter()
        .map(|(k, v)| (k.trim().to_string(), json!(v)))
        .collect();
    let activity = {
        let a = m.trace.activity();
        let by_vector = |counts: &[u64; 256]| -> Map<String, Value> {
            counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(v, n)| (format!("{v:#04x}"), json!(n)))
                .collect()
        };
        let sources: Map<String, Value> = m
            .vector_sources()
            .into_iter()
            .map(|(v, s)| (format!("{v:#04x}"), json!(s)))
            .collect();
        json!({
            "system_calls": a.system_calls,
            "interrupts_by_vector": by_vector(&a.interrupts),
            "exceptions_by_vector": by_vector(&a.exceptions),
            "vector_sources": sources,
        })
    };
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
        "activity": activity,
        "counters": counters,
        "devices": m.device_stats_json(),
        "post_codes": m.post_codes(),
        "rom_writes_ignored": m.rom_writes(),
        "switches": session.switches.iter().map(|s| json!({
            "at_instruction": s.icount, "from": s.from.name(), "to": s.to.name(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_names_every_unit() {
        assert_eq!(
            progress_line(
                Duration::from_millis(3200),
                EngineKind::Interp,
                Some((812_345_678, 270_120_000.0)),
                812_345_678
            ),
            "[ringlab] 3 s on interp: 812345678 instructions (270.1 M/s), virtual time 812 ms"
        );
        assert_eq!(
            progress_line(Duration::from_secs(2), EngineKind::Kvm, None, 2_025_000_000),
            "[ringlab] 2 s on kvm: instructions not counted on KVM, virtual time 2025 ms"
        );
    }

    #[test]
    fn a_lesson_boots_as_it_says_unless_boot_is_given() {
        // The reset vector (CS F000 with base FFFF0000, IP FFF0) or the
        // boot sector's 0000:7C00, as a linear address.
        const RESET_VECTOR: u32 = 0xFFFF_FFF0;
        for (l, b) in lessons::builtin() {
            let firmware = b.boot == lessons::Boot::Firmware;
            let (m, loaded) = prepare(&GuestArgs::lesson(l.name)).unwrap();
            assert_eq!(m.rom_map().is_some(), firmware, "{}", l.name);
            assert_eq!(
                loaded.entry.pc_linear() == RESET_VECTOR,
                firmware,
                "{}",
                l.name
            );
            if firmware {
                // Its boot sector is the first hard disk, for INT 19h.
                assert!(
                    loaded.summary.contains("as the first hard disk"),
                    "{}",
                    l.name
                );
                // --boot direct: loaded at 0000:7C00, no firmware.
                let direct = GuestArgs {
                    boot: Some(BootArg::Direct),
                    ..GuestArgs::lesson(l.name)
                };
                let (m, loaded) = prepare(&direct).unwrap();
                assert!(m.rom_map().is_none(), "{}", l.name);
                assert_eq!(loaded.entry.pc_linear(), 0x7C00, "{}", l.name);
            }
        }
        // And a lesson that starts directly goes through the firmware when
        // asked to.
        let hello = GuestArgs {
            boot: Some(BootArg::Firmware),
            ..GuestArgs::lesson("hello")
        };
        let (m, loaded) = prepare(&hello).unwrap();
        assert!(m.rom_map().is_some());
        assert_eq!(loaded.entry.pc_linear(), RESET_VECTOR);
    }

    #[test]
    fn the_signal_line_names_the_signal_the_place_and_the_disks() {
        use machine::disk::{DiskImage, DiskOpenOptions};
        let dir = std::env::temp_dir();
        let file = |n: &str| {
            let p = dir.join(format!(
                "ringlab-signal-line-{}-{n}.img",
                std::process::id()
            ));
            std::fs::write(&p, [0u8; 1024]).unwrap();
            p
        };
        let (a, b, c) = (file("a"), file("b"), file("c"));
        let mut m = Machine::new(MachineConfig::with_ram(2 << 20)).unwrap();
        let at = || Some("0008:00100a3c".to_string());
        assert_eq!(
            signal_line(libc::SIGINT, at(), &m, &Ok(())),
            "ringlab: stopped by SIGINT at CS:EIP 0008:00100a3c"
        );
        // An in-memory disk (a flat image booted by the BIOS) has no file.
        m.attach_disk(0, DiskImage::from_bytes(vec![0; 512]).unwrap());
        m.attach_disk(1, DiskImage::open(&a, DiskOpenOptions::default()).unwrap());
        assert_eq!(
            signal_line(libc::SIGTERM, None, &m, &Ok(())),
            format!("ringlab: stopped by SIGTERM; disk {} flushed", a.display())
        );
        m.attach_disk(2, DiskImage::open(&b, DiskOpenOptions::default()).unwrap());
        m.attach_disk(
            3,
            DiskImage::open(&c, DiskOpenOptions { snapshot: true }).unwrap(),
        );
        assert_eq!(
            signal_line(libc::SIGTERM, at(), &m, &Ok(())),
            format!(
                "ringlab: stopped by SIGTERM at CS:EIP 0008:00100a3c; disks {}, {} flushed; \
                 disk {} not written (--snapshot)",
                a.display(),
                b.display(),
                c.display()
            )
        );
        let failed = Err(machine::disk::DiskIoError::Flush {
            name: b.display().to_string(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        });
        let line = signal_line(libc::SIGINT, at(), &m, &failed);
        assert!(
            line.starts_with(&format!(
                "ringlab: stopped by SIGINT at CS:EIP 0008:00100a3c; disk image {}: \
                 flushing to stable storage failed: ",
                b.display()
            )),
            "{line}"
        );
        drop(m);
        for p in [a, b, c] {
            // Best effort: a file left in the temp directory harms nothing.
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn mem_is_checked_in_mib_and_words() {
        assert_eq!(parse_mem("32"), Ok(32));
        assert_eq!(parse_mem("3072"), Ok(3072));
        assert_eq!(
            parse_mem("99999"),
            Err("guest RAM is 1 to 3072 MiB; 99999 MiB is too much".to_string())
        );
        assert_eq!(
            parse_mem("0"),
            Err("guest RAM is 1 to 3072 MiB; 0 MiB is too little".to_string())
        );
        assert_eq!(
            parse_mem("1G"),
            Err("`1G` is not a whole number of MiB".to_string())
        );
    }
}
