//! The command line: subcommands and their help (clap).

use crate::{compare, run, status};
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
ringlab runs the same unmodified x86 guest on an interpreter, a binary
translator and KVM, and shows how each one handles privilege rings:
ring 0 to ring 3 and back, interrupts, faults, and the sensitive
instructions (POPF, CLI, SGDT, ...) that made x86 hard to virtualize.

The guest's COM1 output goes to stdout and nothing else does;
diagnostics and statistics go to stderr.

Exit status of `ringlab run`:
  (v<<1)|1  the guest wrote v to port 0xF4 (QEMU's isa-debug-exit)
  0         Bochs shutdown (port 0x8900), HLT with interrupts disabled,
            Ctrl-A x at the console, or the end of a --type-after script
  2         bad command line
  4         the image cannot be read or is malformed
  6         the engine is unavailable or failed on the host side
  8         triple fault
  10        instruction budget or timeout reached
  12        HLT with interrupts enabled and nothing left to wake the CPU
  14        the guest asked for a reset (port 0x92)
  18        a jump to itself with interrupts disabled (`cli; jmp $`,
            a kernel's panic loop)
  killed by SIGINT or SIGTERM (a shell shows 130 or 143): the guest was
            stopped between two instructions, the disks flushed, and
            one line said so on stderr; a second signal kills at once";

#[derive(Parser)]
#[command(name = "ringlab", version, about = "Run one x86 guest on an interpreter, a binary translator and KVM", long_about = LONG_ABOUT)]
#[command(
    after_help = "With no command, ringlab runs its demo: a lesson guest on every available engine, compared.

Examples:
  ringlab                                   the demo: the rings lesson on every engine
  ringlab lesson rings                      a lab sheet, then its guest on every engine
  ringlab step --lesson rings               step through ring 0 -> 3 -> 0 in a terminal UI
  ringlab run kernel.elf --engine kvm --stats
  ringlab bench                             the nanobenchmark table, every engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a guest image on one engine; its COM1 output goes to stdout.
    #[command(after_help = "Examples:
  ringlab run kernel.elf --engine bt --stats
  ringlab run --lesson hello --engine kvm
  ringlab run boot.bin --trace events.jsonl --json report.json
  ringlab run --lesson rings --switch-at 3700:bt --switch-at 5200:interp
  ringlab run --lesson hello --switch-at 40:kvm   (to KVM mid-run, in real mode)
  ringlab run --bios rom.bin --stats              (boot from a firmware ROM)
  ringlab run boot.bin                            (ringlab's BIOS boots it, as QEMU does)
  ringlab run boot.bin --boot direct              (no firmware: start at 0000:7C00)
  ringlab run driver.elf --disk a.img --disk b.img --snapshot
  ringlab run echo.elf < input.txt                (stdin is COM1's input)
  ringlab run kbd.elf --keys 'ls -l\n' --rtc now
  ringlab run --lesson rings --gdb                (wait for gdb on 127.0.0.1:1234;
      ringlab lesson rings --elf rings.elf         then in another terminal:
      gdb rings.elf -ex 'target remote :1234'      break syscall, continue, ...)

At a terminal stdin is raw: Ctrl-A x quits, Ctrl-A h lists the console keys.

SIGINT (Ctrl-C, when stdin is not a raw terminal) or SIGTERM stops the
guest between two instructions, flushes the disks, prints one line on
stderr (`ringlab: stopped by SIGTERM at CS:EIP 0008:00101257; disk fs.img
flushed`) and ringlab dies of that signal (a shell shows 130 or 143); a
second signal kills at once. A disk write the host cannot make (its disk
full) ends the guest's command with an ATA error, one warning, every
sector whole; the run goes on. `ringlab --help` lists the exit statuses.

KVM with hardware virtualization (kvm_intel, kvm_amd) runs every lesson.
kvm-pvm, the software KVM of some cloud VMs, runs only real mode and
protected mode without paging, ring changes or IRET (the hello and
protected lessons): ringlab says so when a guest needs more.")]
    Run(run::RunArgs),
    /// Run a guest on every available engine and compare them: the table
    /// of the demo, for any guest. Exit status 16 when the engines
    /// disagree (the first difference is printed), 0 when they agree.
    #[command(
        after_help = "Examples:\n  ringlab compare kernel.elf\n  ringlab compare --lesson paging\n  ringlab compare --bios rom.bin"
    )]
    Compare {
        #[command(flatten)]
        guest: run::GuestArgs,
        /// Show each engine's final VGA screen: in a window, or as coloured
        /// text in the terminal.
        #[arg(long, value_enum, default_value = "none")]
        vga: crate::vga::VgaMode,
    },
    /// Step through a guest in a terminal UI: disassembly, registers, the
    /// ring the CPU is in, segment descriptor caches, the stack with the
    /// last interrupt frame labelled, a memory dump, events, serial and
    /// VGA; fits 80x24 and uses more room when there is. Keys: s step, n
    /// step over, r run to the next ring change, e to the next exception
    /// or interrupt, c continue, b breakpoint, m memory at an address, x
    /// restart, w switch engine, Tab next pane, ? all keys, q quit.
    #[command(after_help = "Examples:
  ringlab step --lesson rings                 (then r, r, s... to watch ring 0 -> 3 -> 0)
  ringlab step --lesson rings --engine kvm    (KVM single-steps: one VM exit per step)
  ringlab step --lesson rings --gdb           (gdb may drive it; the UI follows gdb)
  ringlab step kernel.elf --break 0x100020")]
    Step(crate::step::StepArgs),
    /// Time the nanobenchmark lesson (system call, IN, MOV CR3, page
    /// fault, ...) and a compute loop on every available engine: a table
    /// in the style of Adams & Agesen's nanobenchmarks, in host
    /// nanoseconds per operation, each engine relative to the fastest.
    #[command(after_help = "Examples:
  ringlab bench
  ringlab bench --engine interp --engine bt --json bench.json")]
    Bench(crate::bench::BenchArgs),
    /// List the coursework labs.
    #[command(after_help = "Example:\n  ringlab lessons")]
    Lessons,
    /// Print the PC ringlab emulates: every chip, its ports, MMIO
    /// addresses and interrupt lines (ISA IRQs go to the 8259A pair and to
    /// the I/O APIC pin shown).
    #[command(after_help = "Example:\n  ringlab board")]
    Board,
    /// Boot xv6, MIT's teaching Unix, with its shell on this terminal:
    /// builds xv6.img and fs.img if needed (scripts/xv6-images.sh), then
    /// `ringlab run --mem 512 --disk xv6.img --disk fs.img` with the
    /// options given. From a pipe each line is typed at the `$ ` prompt.
    #[command(after_help = "Examples:
  ringlab xv6                                 xv6's shell here (Ctrl-A x quits)
  ringlab xv6 --engine bt --stats             on the translator, with its counters at the end
  printf 'ls\\nusertests\\n' | ringlab xv6     a scripted session: ends at the last prompt
  ringlab xv6 --fs my-fs.img                  keep the file system between runs
  ringlab xv6 --step                          step through its system calls (r: next ring change)
  ringlab xv6 --gdb                           wait for gdb, as xv6's make qemu-gdb
  ringlab xv6 --vga window                    the CGA screen in a window too; type there or here
  ringlab lesson xv6                          the lab sheet")]
    Xv6(crate::xv6::Xv6Args),
    /// Print a lab sheet and run its guest on every available engine.
    #[command(
        after_help = "Examples:\n  ringlab lesson rings\n  ringlab lesson rings --answers\n  ringlab lesson paging --source\n  ringlab lesson rings --elf rings.elf    then: ringlab run --lesson rings --gdb\n                                        and:  gdb rings.elf -ex 'target remote :1234'"
    )]
    Lesson {
        /// The lesson's name (see `ringlab lessons`).
        name: String,
        /// Print the guest's commented assembly source instead.
        #[arg(long)]
        source: bool,
        /// Include the answers to the sheet's questions (for teachers).
        #[arg(long, conflicts_with = "source")]
        answers: bool,
        /// Write the guest as the ELF file it was linked into, with its
        /// symbols, to FILE (for gdb: `gdb FILE`, then `target remote
        /// :1234` to a `ringlab run --lesson NAME --gdb`), and nothing else.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["source", "answers"])]
        elf: Option<std::path::PathBuf>,
    },
}

/// A command-line error from clap, worded as ringlab's own errors are
/// ("ringlab: error: ..."), with clap's usage line and hint after it.
pub fn clap_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    match text.strip_prefix("error: ") {
        Some(rest) => format!("ringlab: error: {rest}"),
        None => format!("ringlab: error: {text}"),
    }
}

pub fn main() -> ExitCode {
    match parse(std::env::args_os()) {
        Ok(cli) => {
            let r = dispatch(cli);
            // A SIGINT or SIGTERM stopped a run (`run`, `xv6`): its disks
            // are flushed and closed, its terminal restored, its temporary
            // files removed by now; ringlab dies of the signal, as its
            // parent should see it (`crate::signals`).
            if let Some(sig) = crate::signals::pending() {
                if let Err(e) = &r {
                    eprintln!("ringlab: error: {e:#}");
                }
                crate::signals::die_of(sig);
            }
            exit(r)
        }
        Err(code) => ExitCode::from(code),
    }
}

/// Parses a command line; Err: the exit status after help, the version or
/// a usage error was printed.
fn parse<I, T>(args: I) -> Result<Cli, u8>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(c) => Ok(c),
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            // Help or version text to stdout: if stdout is closed there
            // is no one to show it to, and the exit status is 0 either way.
            let _ = e.print();
            Err(status::OK)
        }
        Err(e) => {
            eprint!("{}", clap_error(&e));
            Err(status::USAGE)
        }
    }
}

/// Parses a command line without running it or printing anything: clap's
/// error for a usage error, and for --help and --version (whose
/// `use_stderr()` is false). For the command-line fuzzer
/// (tests/tests/fuzz_cli.rs) and other tests.
pub fn try_parse<I, T>(args: I) -> Result<(), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(|_| ())
}

/// The whole command-line definition, for clap's own consistency check
/// (`Command::debug_assert`) in tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command `args` stands for (`ringlab xv6` stands for a `run`
/// or `step` command line), as `main` does.
pub fn main_with(args: Vec<std::ffi::OsString>) -> anyhow::Result<u8> {
    match parse(args) {
        Ok(cli) => dispatch(cli),
        Err(code) => Ok(code),
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Compare { guest, vga }) => compare::compare_guest(&guest, vga),
        Some(Command::Step(args)) => crate::step::step(&args),
        Some(Command::Bench(args)) => crate::bench::bench(&args),
        Some(Command::Lessons) => Ok(compare::list_lessons()),
        Some(Command::Board) => {
            print!("{}", machine::board::Board::pc());
            Ok(status::OK)
        }
        Some(Command::Lesson {
            name,
            source,
            answers,
            elf: Some(path),
        }) => {
            let _ = (source, answers);
            compare::write_lesson_elf(&name, &path)
        }
        Some(Command::Lesson {
            name,
            source,
            answers,
            elf: None,
        }) => compare::lesson(&name, source, answers),
        Some(Command::Xv6(args)) => crate::xv6::xv6(&args),
        None => compare::demo(),
    }
}

fn exit(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        // The edge: the error with every cause on one line ("--engine kvm:
        // host error: KVM_CREATE_VM: ...: the OS's reason"), and the exit
        // status it was given on the way up.
        Err(e) => {
            eprintln!("ringlab: error: {e:#}");
            ExitCode::from(status::of_error(&e))
        }
    }
}
