//! ringlab's coursework labs: each lesson is a guest program (GNU as, built
//! by build.rs), a lab sheet in markdown and the metadata the frontend uses.
//! One lesson's guest is not ringlab's: xv6, built from its own source
//! outside ringlab ([`Guest::Xv6`]).
//!
//! # Lab sheets
//!
//! `sheets/NAME.md` has the sections Goal, Run it, Observe, Questions and
//! Answers (for teachers). Three parts of it are read by programs, and
//! [`sheet`] parses them:
//!
//! - **Commands.** Every line of a fenced ```` ```sh ```` block that starts
//!   with `ringlab ` is a command the student types, exactly as written.
//!   The words are separated by spaces and are the arguments: no quotes,
//!   pipes, redirections, variables or globs. ` #` starts a comment. The
//!   other lines of a `sh` block are blank or `#` comments. Every sheet has
//!   at least one command. The sheet test (`frontend/tests/sheets.rs`) runs
//!   them all, each in a fresh temporary directory (they may write files:
//!   `--trace r.jsonl`).
//! - **Expectations.** A fenced ```` ```expect ```` block right after a
//!   `sh` block (only blank lines between) says what each command of that
//!   block does; the sheet test checks it. One statement a line:
//!   - `exit N`: the exit status. Without it the command must exit with 0
//!     and print no `ringlab: error:`.
//!   - `stdout: TEXT`, `stderr: TEXT`: TEXT appears in that stream. Runs of
//!     spaces count as one space (stats columns may widen).
//!   - `not stdout: TEXT`, `not stderr: TEXT`: it does not.
//!   - `stdout is: LINE`: these lines, in order, are the whole of stdout.
//!   - `file NAME: TEXT`, `not file NAME: TEXT`: the command wrote NAME
//!     (in its directory) with, or without, TEXT in it.
//!   - For `ringlab step` and `ringlab xv6 --step`, which need a terminal
//!     (the test runs them in tmux, 120x40): `keys: K...` types keys
//!     (tmux key names), `screen: TEXT` waits (10 s at most) until TEXT
//!     is on the screen; after the last statement the test types `q` and
//!     checks the exit status.
//!
//!   In blocks whose commands run KVM (`--engine kvm`, `--switch-at N:kvm`,
//!   and `ringlab lesson` and `ringlab compare`, which run every engine) a
//!   statement may start with a host condition: `[kvm-pvm]` applies only
//!   where KVM is kvm-pvm (a software hypervisor: no 32-bit paging, no IRET
//!   or ring change in 32-bit protected mode without paging, so such
//!   guests stop with exit status 6 and an explanation), `[hw-kvm]` only
//!   where it is hardware virtualization (kvm_intel, kvm_amd). A `[kvm-pvm]`
//!   block that expects a failure says `[kvm-pvm] exit 6` and quotes the
//!   explanation (`[kvm-pvm] stderr: kvm-pvm ...`). Commands on `--engine
//!   kvm` are skipped where there is no KVM at all.
//! - **Answers.** Everything from the heading `## Answers (for teachers)`
//!   to the end. `ringlab lesson NAME` prints the sheet without them (and
//!   without the expect blocks) unless given `--answers`:
//!   [`sheet::for_students`].

/// How a lesson's image is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A boot sector: 512 bytes ending in 55 AA, run at 0000:7C00 in real
    /// mode (loaded there by ringlab, or by the BIOS: [`Boot`]).
    BootSector,
    /// A multiboot v1 ELF32 kernel, entered in protected mode.
    Multiboot,
}

/// How a lesson's guest starts: the default of `ringlab run --boot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// ringlab loads the image and enters it itself, with no firmware
    /// (`--boot direct`): the run, its trace and the step UI start at the
    /// guest's first instruction, so they stay short.
    Direct,
    /// As a PC starts (`--boot firmware`): ringlab's BIOS runs from the
    /// reset vector, F000:FFF0, and boots the image (a boot sector, which
    /// becomes the first hard disk) at 0000:7C00 with DL=80h. The run
    /// holds the firmware's POST too, on every engine.
    Firmware,
}

#[derive(Debug)]
pub struct Lesson {
    pub name: &'static str,
    pub summary: &'static str,
    /// Where its guest comes from.
    pub guest: Guest,
    /// The lab sheet (markdown).
    pub sheet: &'static str,
}

/// Where a lesson's guest comes from.
#[derive(Debug)]
pub enum Guest {
    /// A program of ringlab's own, assembled by build.rs from
    /// `guests/NAME.S` and built into ringlab.
    Builtin(Builtin),
    /// xv6, MIT's x86 teaching Unix (github.com/mit-pdos/xv6-public).
    /// Nothing of it is in ringlab: `scripts/xv6-images.sh` builds its two
    /// disks (`xv6.img`: boot block and kernel; `fs.img`: the file
    /// system) from xv6's own source, and ringlab's BIOS boots them
    /// (`ringlab xv6`). Where the tools or the source are missing there is
    /// no guest, only the sheet.
    Xv6,
}

/// A guest program built into ringlab.
#[derive(Debug)]
pub struct Builtin {
    pub image: &'static [u8],
    /// The same program as the ELF file it was linked into, with its
    /// symbols: what gdb loads (`ringlab lesson NAME --elf FILE` writes
    /// it) to debug the guest by name under `--gdb`.
    pub elf: &'static [u8],
    pub format: Format,
    /// Whether the firmware runs first (a command's `--boot` overrides it).
    pub boot: Boot,
    /// The guest's commented source.
    pub source: &'static str,
}

impl Lesson {
    /// Its guest program, when ringlab carries it (None: xv6).
    pub fn builtin(&self) -> Option<&Builtin> {
        match &self.guest {
            Guest::Builtin(b) => Some(b),
            Guest::Xv6 => None,
        }
    }
}

static LESSONS: &[Lesson] = &[
    Lesson {
        name: "reset",
        summary: "from reset to the boot sector: the BIOS's POST, the IVT and BDA, INT 19h",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/reset.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/reset.elf")),
            format: Format::BootSector,
            boot: Boot::Firmware,
            source: include_str!("../guests/reset.S"),
        }),
        sheet: include_str!("../sheets/reset.md"),
    },
    Lesson {
        name: "hello",
        summary: "a boot sector in real mode writing to COM1 and to the VGA screen",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/hello.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/hello.elf")),
            format: Format::BootSector,
            boot: Boot::Direct,
            source: include_str!("../guests/hello.S"),
        }),
        sheet: include_str!("../sheets/hello.md"),
    },
    Lesson {
        name: "protected",
        summary: "a GDT, CR0.PE and the far jump into 32-bit protected mode",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/protected.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/protected.elf")),
            format: Format::BootSector,
            boot: Boot::Direct,
            source: include_str!("../guests/protected.S"),
        }),
        sheet: include_str!("../sheets/protected.md"),
    },
    Lesson {
        name: "interrupts",
        summary: "an IDT, the PIC at 0x20, the PIT at 100 Hz and a HLT loop counting five ticks",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/interrupts.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/interrupts.elf")),
            format: Format::BootSector,
            boot: Boot::Direct,
            source: include_str!("../guests/interrupts.S"),
        }),
        sheet: include_str!("../sheets/interrupts.md"),
    },
    Lesson {
        name: "rings",
        summary:
            "a TSS, IRET into ring 3, INT 0x80 system calls, CLI caught as #GP, the I/O bitmap",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/rings.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/rings.elf")),
            format: Format::Multiboot,
            boot: Boot::Direct,
            source: include_str!("../guests/rings.S"),
        }),
        sheet: include_str!("../sheets/rings.md"),
    },
    Lesson {
        name: "paging",
        summary:
            "page tables, user and supervisor pages, #PF with CR2 and the error code, demand paging",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/paging.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/paging.elf")),
            format: Format::Multiboot,
            boot: Boot::Direct,
            source: include_str!("../guests/paging.S"),
        }),
        sheet: include_str!("../sheets/paging.md"),
    },
    Lesson {
        name: "popek-goldberg",
        summary: "the sensitive but unprivileged instructions, in ring 0, ring 3 and under trap-and-emulate",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/popek-goldberg.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/popek-goldberg.elf")),
            format: Format::Multiboot,
            boot: Boot::Direct,
            source: include_str!("../guests/popek-goldberg.S"),
        }),
        sheet: include_str!("../sheets/popek-goldberg.md"),
    },
    Lesson {
        name: "nanobench",
        summary: "Adams & Agesen's nanobenchmarks in cycles per operation, by RDTSC",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/nanobench.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/nanobench.elf")),
            format: Format::Multiboot,
            boot: Boot::Direct,
            source: include_str!("../guests/nanobench.S"),
        }),
        sheet: include_str!("../sheets/nanobench.md"),
    },
    Lesson {
        name: "determinism",
        summary: "a timer-driven guest: instruction-counted time against real time",
        guest: Guest::Builtin(Builtin {
            image: include_bytes!(concat!(env!("OUT_DIR"), "/determinism.bin")),
            elf: include_bytes!(concat!(env!("OUT_DIR"), "/determinism.elf")),
            format: Format::Multiboot,
            boot: Boot::Direct,
            source: include_str!("../guests/determinism.S"),
        }),
        sheet: include_str!("../sheets/determinism.md"),
    },
    Lesson {
        name: "xv6",
        summary: "a real kernel on three engines: xv6's system calls, trap frame, TSS.esp0 and CR3",
        guest: Guest::Xv6,
        sheet: include_str!("../sheets/xv6.md"),
    },
];

/// The benchmark guest (not a lesson): a boot sector that runs a tight
/// integer and memory loop of 900 M instructions, prints its checksum on
/// COM1 and shuts down through port 0x8900. See BENCHMARKS.md.
pub static COMPUTE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/compute.bin"));

/// One guest of the benchmark suite (`guests/suite`, issue 21): a boot
/// sector without BIOS calls that runs one kind of workload, prints a
/// checksum in hex on COM1 and shuts down through port 0x8900 (QEMU's
/// isa-debug-exit at 0xF4 after that), so ringlab, QEMU and Bochs all run
/// the same bytes (`scripts/bench-suite.sh`, `ringlab bench --suite`).
pub struct SuiteGuest {
    pub name: &'static str,
    /// What it exercises, in a few words.
    pub what: &'static str,
    pub image: &'static [u8],
    /// The checksum it prints (without the newline).
    pub checksum: &'static str,
}

macro_rules! suite_guest {
    ($name:literal, $what:literal, $sum:literal) => {
        SuiteGuest {
            name: $name,
            what: $what,
            image: include_bytes!(concat!(env!("OUT_DIR"), "/suite-", $name, ".bin")),
            checksum: $sum,
        }
    };
}

/// The benchmark suite, `empty` (start-up only) first.
pub static SUITE: &[SuiteGuest] = &[
    suite_guest!("empty", "enter protected mode and stop", "00000000"),
    suite_guest!("lcg", "LCG-indexed SIB read-modify-writes", "302da929"),
    suite_guest!("strcopy", "REP MOVSD and a byte copy loop", "9f10a078"),
    suite_guest!("fib", "recursive calls and returns", "0035c7e2"),
    suite_guest!("sort", "insertion sort: branchy loads", "f7226b63"),
    suite_guest!("real16", "16-bit real-mode code", "e213d2d4"),
    suite_guest!(
        "prot16",
        "real16's loop in 16-bit protected mode",
        "e213d2d4"
    ),
    suite_guest!("paging", "a touch per 4 KiB page, TLB misses", "d3eb6000"),
];

/// A test guest (not a lesson): real mode, the PIC and the PIT at 100 Hz;
/// it spins until five timer ticks have arrived, prints "5 ticks" and exits
/// through port 0xF4. The KVM tests use it to check that timer interrupts
/// reach a guest that computes (it runs on kvm-pvm too).
pub static TICKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ticks.bin"));

/// Every lesson, in course order.
pub fn all() -> &'static [Lesson] {
    LESSONS
}

/// The lesson called `name`.
pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.name == name)
}

/// The lessons whose guest is built into ringlab, with it, in course
/// order: every lesson but xv6, whose guest is built outside.
pub fn builtin() -> impl Iterator<Item = (&'static Lesson, &'static Builtin)> {
    LESSONS.iter().filter_map(|l| Some((l, l.builtin()?)))
}

/// The parts of a lab sheet that programs read: the commands, what they
/// are expected to do, and the answers (see the crate's documentation for
/// the conventions).
pub mod sheet {
    /// The heading the teachers' answers start at; they run to the end.
    pub const ANSWERS: &str = "## Answers (for teachers)";

    /// The kind of KVM a statement of an expect block is limited to.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Host {
        /// `[kvm-pvm]`: the software hypervisor kvm-pvm.
        KvmPvm,
        /// `[hw-kvm]`: hardware virtualization (kvm_intel, kvm_amd).
        HwKvm,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Stream {
        Stdout,
        Stderr,
    }

    /// One statement of an expect block.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Check {
        /// `exit N`
        Exit(u8),
        /// `stdout: TEXT`, `not stderr: TEXT`, ...
        Contains {
            stream: Stream,
            text: String,
            present: bool,
        },
        /// `stdout is: LINE`: one line of the whole stdout.
        StdoutLine(String),
        /// `file NAME: TEXT`, `not file NAME: TEXT`
        File {
            name: String,
            text: String,
            present: bool,
        },
        /// `keys: K...` (ringlab step)
        Keys(Vec<String>),
        /// `screen: TEXT` (ringlab step)
        Screen(String),
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Expect {
        /// 1-based line in the sheet.
        pub line: usize,
        /// None: on every host.
        pub host: Option<Host>,
        pub check: Check,
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Command {
        /// 1-based line in the sheet.
        pub line: usize,
        /// As written, without its comment.
        pub text: String,
        /// The arguments after `ringlab`.
        pub args: Vec<String>,
    }

    impl Command {
        /// `ringlab step`, or `ringlab xv6 --step` (the step UI on xv6):
        /// needs a terminal.
        pub fn is_step(&self) -> bool {
            match self.args.first().map(String::as_str) {
                Some("step") => true,
                Some("xv6") => self.args.iter().any(|a| a == "--step"),
                _ => false,
            }
        }

        /// Runs (some of) the guest on KVM: `--engine kvm` or
        /// `--switch-at N:kvm`.
        pub fn uses_kvm(&self) -> bool {
            self.args.windows(2).any(|w| {
                (w[0] == "--engine" && w[1] == "kvm")
                    || (w[0] == "--switch-at" && w[1].ends_with(":kvm"))
            }) || self.args.iter().any(|a| {
                a == "--engine=kvm" || (a.starts_with("--switch-at=") && a.ends_with(":kvm"))
            })
        }

        /// Runs the guest on KVM where the host has it: on `--engine kvm`,
        /// and `ringlab lesson` and `ringlab compare`, which run every
        /// available engine (without KVM they leave it out).
        pub fn may_use_kvm(&self) -> bool {
            self.uses_kvm()
                || matches!(
                    self.args.first().map(String::as_str),
                    Some("lesson" | "compare")
                )
        }
    }

    /// A `sh` block's commands and the expect block after it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Block {
        /// 1-based line of the opening fence.
        pub line: usize,
        pub commands: Vec<Command>,
        pub expect: Vec<Expect>,
    }

    impl Block {
        /// The statements that apply on a host whose KVM is `host` (None:
        /// no KVM).
        pub fn checks_on(&self, host: Option<Host>) -> Vec<&Check> {
            self.expect
                .iter()
                .filter(|e| e.host.is_none() || e.host == host)
                .map(|e| &e.check)
                .collect()
        }

        /// The exit status expected on `host`: the last applicable `exit`,
        /// else 0.
        pub fn exit_on(&self, host: Option<Host>) -> u8 {
            self.checks_on(host)
                .into_iter()
                .filter_map(|c| match c {
                    Check::Exit(n) => Some(*n),
                    _ => None,
                })
                .next_back()
                .unwrap_or(0)
        }
    }

    /// Characters a command may contain: what a shell passes through as is.
    fn plain(c: char) -> bool {
        c.is_ascii_alphanumeric() || " -_.:/=,+@%".contains(c)
    }

    fn command(line: usize, text: &str) -> Result<Option<Command>, String> {
        let text = match text.find(" #") {
            Some(i) => &text[..i],
            None => text,
        }
        .trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(None);
        }
        let Some(rest) = text.strip_prefix("ringlab ") else {
            return Err(format!(
                "line {line}: a sh block holds `ringlab ...` commands and # comments only: {text:?}"
            ));
        };
        if let Some(c) = text.chars().find(|&c| !plain(c)) {
            return Err(format!(
                "line {line}: {c:?} in a command: sheet commands are plain words ({text:?})"
            ));
        }
        Ok(Some(Command {
            line,
            text: text.to_string(),
            args: rest.split_whitespace().map(str::to_string).collect(),
        }))
    }

    fn statement(line: usize, text: &str) -> Result<Option<Expect>, String> {
        let mut t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let mut host = None;
        for (prefix, h) in [("[kvm-pvm]", Host::KvmPvm), ("[hw-kvm]", Host::HwKvm)] {
            if let Some(r) = t.strip_prefix(prefix) {
                host = Some(h);
                t = r.trim_start();
            }
        }
        let bad = || format!("line {line}: not an expectation: {text:?}");
        let value = |r: &str| -> Result<String, String> {
            let v = r.strip_prefix(' ').unwrap_or(r);
            if v.trim().is_empty() {
                return Err(format!("line {line}: nothing to look for: {text:?}"));
            }
            Ok(v.to_string())
        };
        let (present, body) = match t.strip_prefix("not ") {
            Some(r) => (false, r),
            None => (true, t),
        };
        let check = if let Some(n) = t.strip_prefix("exit ") {
            Check::Exit(n.trim().parse().map_err(|_| bad())?)
        } else if let Some(k) = t.strip_prefix("keys:") {
            Check::Keys(k.split_whitespace().map(str::to_string).collect())
        } else if let Some(r) = t.strip_prefix("screen:") {
            Check::Screen(value(r)?)
        } else if let Some(r) = t.strip_prefix("stdout is:") {
            Check::StdoutLine(r.strip_prefix(' ').unwrap_or(r).to_string())
        } else if let Some(r) = body.strip_prefix("stdout:") {
            Check::Contains {
                stream: Stream::Stdout,
                text: value(r)?,
                present,
            }
        } else if let Some(r) = body.strip_prefix("stderr:") {
            Check::Contains {
                stream: Stream::Stderr,
                text: value(r)?,
                present,
            }
        } else if let Some(r) = body.strip_prefix("file ") {
            let (name, r) = r.split_once(':').ok_or_else(bad)?;
            if name.is_empty() || !name.chars().all(|c| plain(c) && c != ' ' && c != '/') {
                return Err(bad());
            }
            Check::File {
                name: name.to_string(),
                text: value(r)?,
                present,
            }
        } else {
            return Err(bad());
        };
        Ok(Some(Expect { line, host, check }))
    }

    /// Checks a block's statements against its commands.
    fn validate(b: &Block) -> Result<(), String> {
        let at = b.line;
        if b.commands.is_empty() {
            return Err(format!("line {at}: a sh block without a command"));
        }
        let step = b.commands[0].is_step();
        if b.commands.iter().any(|c| c.is_step() != step) {
            return Err(format!(
                "line {at}: `ringlab step` and other commands in one block: give step its own"
            ));
        }
        for e in &b.expect {
            let terminal = matches!(e.check, Check::Keys(_) | Check::Screen(_));
            let output = matches!(
                e.check,
                Check::Contains { .. } | Check::StdoutLine(_) | Check::File { .. }
            );
            if step && output {
                return Err(format!(
                    "line {}: `ringlab step` has a screen, not stdout or files: use screen:",
                    e.line
                ));
            }
            if !step && terminal {
                return Err(format!(
                    "line {}: keys: and screen: are for `ringlab step` only",
                    e.line
                ));
            }
            if e.host.is_some() && !b.commands.iter().all(Command::may_use_kvm) {
                return Err(format!(
                    "line {}: [kvm-pvm] and [hw-kvm] are for commands that run KVM \
                     (--engine kvm, lesson, compare)",
                    e.line
                ));
            }
            if e.host == Some(Host::KvmPvm) {
                if let Check::Exit(n) = e.check {
                    if n != 6 {
                        return Err(format!(
                            "line {}: on kvm-pvm a run fails with exit status 6, not {n}",
                            e.line
                        ));
                    }
                }
            }
        }
        if b.exit_on(Some(Host::KvmPvm)) == 6
            && !b.expect.iter().any(|e| {
                e.host == Some(Host::KvmPvm)
                    && matches!(&e.check, Check::Contains { stream: Stream::Stderr, text, present: true } if text.contains("kvm-pvm"))
            })
        {
            return Err(format!(
                "line {at}: `[kvm-pvm] exit 6` needs the explanation: `[kvm-pvm] stderr: kvm-pvm ...`"
            ));
        }
        Ok(())
    }

    /// The sheet's command blocks with their expectations. Err: the sheet
    /// breaks a convention (the message names the line).
    pub fn parse(sheet: &str) -> Result<Vec<Block>, String> {
        let mut blocks: Vec<Block> = Vec::new();
        // The fence open: its kind and line.
        let mut open: Option<(String, usize)> = None;
        // Whether an expect block may still follow the last sh block.
        let mut after_sh = false;
        let mut expect: Vec<Expect> = Vec::new();
        let mut commands: Vec<Command> = Vec::new();
        for (i, text) in sheet.lines().enumerate() {
            let line = i + 1;
            if let Some(info) = text.trim_start().strip_prefix("```") {
                match open.take() {
                    None => {
                        let kind = info.trim().to_string();
                        if kind == "expect" && !after_sh {
                            return Err(format!(
                                "line {line}: an expect block must follow a sh block"
                            ));
                        }
                        open = Some((kind, line));
                    }
                    Some((kind, start)) => {
                        after_sh = false;
                        if kind == "sh" {
                            blocks.push(Block {
                                line: start,
                                commands: std::mem::take(&mut commands),
                                expect: Vec::new(),
                            });
                            after_sh = true;
                        } else if kind == "expect" {
                            let b = blocks.last_mut().expect("after_sh");
                            b.expect = std::mem::take(&mut expect);
                            validate(b)?;
                        }
                    }
                }
                continue;
            }
            match open.as_ref().map(|(k, _)| k.as_str()) {
                Some("sh") => commands.extend(command(line, text)?),
                Some("expect") => expect.extend(statement(line, text)?),
                Some(_) => {}
                None => {
                    if !text.trim().is_empty() {
                        after_sh = false;
                    }
                }
            }
        }
        if let Some((kind, start)) = open {
            return Err(format!("line {start}: the {kind:?} block is not closed"));
        }
        for b in &blocks {
            validate(b)?;
        }
        if blocks.is_empty() {
            return Err("the sheet has no command (a ```sh block with `ringlab ...`)".into());
        }
        if !sheet.lines().any(|l| l.trim_end() == ANSWERS) {
            return Err(format!("the sheet has no {ANSWERS:?} section"));
        }
        Ok(blocks)
    }

    /// The sheet as `ringlab lesson NAME` prints it: the fences dropped
    /// (code indented instead), the expect blocks left out (they are for
    /// the sheet test; Observe says the same in words) and, unless
    /// `answers`, the teachers' answers replaced by how to see them.
    pub fn for_students(sheet: &str, lesson: &str, answers: bool) -> String {
        let mut out = String::new();
        let mut fence: Option<String> = None;
        for text in sheet.lines() {
            if let Some(info) = text.trim_start().strip_prefix("```") {
                fence = match fence {
                    None => Some(info.trim().to_string()),
                    Some(_) => None,
                };
                continue;
            }
            match fence.as_deref() {
                Some("expect") => continue,
                Some(_) if !text.is_empty() => {
                    out.push_str("    ");
                    out.push_str(text);
                    out.push('\n');
                    continue;
                }
                _ => {}
            }
            if !answers && text.trim_end() == ANSWERS {
                out.push_str(&format!(
                    "(The answers for teachers are not shown:\n \
                     `ringlab lesson {lesson} --answers` prints the sheet with them.)\n"
                ));
                break;
            }
            // Blank lines where an expect block was: one is enough.
            if text.is_empty() && (out.is_empty() || out.ends_with("\n\n")) {
                continue;
            }
            out.push_str(text);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_sector_lessons_are_boot_sectors() {
        for (l, b) in super::builtin() {
            if b.format == super::Format::BootSector {
                assert_eq!(b.image.len(), 512, "{}", l.name);
                assert_eq!(&b.image[510..], &[0x55, 0xAA], "{}", l.name);
            }
        }
        for l in super::all() {
            assert!(l.sheet.contains("## Answers (for teachers)"), "{}", l.name);
        }
    }

    #[test]
    fn lessons_booted_by_the_firmware_are_boot_sectors() {
        // The BIOS boots them from a disk: sector 0, with its signature.
        for (l, b) in super::builtin() {
            if b.boot == super::Boot::Firmware {
                assert_eq!(b.format, super::Format::BootSector, "{}", l.name);
            }
        }
    }

    #[test]
    fn only_xv6_comes_from_outside() {
        let outside: Vec<&str> = super::all()
            .iter()
            .filter(|l| l.builtin().is_none())
            .map(|l| l.name)
            .collect();
        assert_eq!(outside, ["xv6"]);
        assert_eq!(super::builtin().count(), super::all().len() - 1);
    }

    use super::sheet::{self, Check, Host, Stream};

    #[test]
    fn every_sheet_follows_the_conventions() {
        for l in super::all() {
            let blocks = sheet::parse(l.sheet).unwrap_or_else(|e| panic!("{}.md: {e}", l.name));
            assert!(!blocks.is_empty(), "{}", l.name);
            // Each sheet's first command shows the sheet itself.
            assert_eq!(
                blocks[0].commands[0].args,
                ["lesson", l.name],
                "{}.md starts with `ringlab lesson {}`",
                l.name,
                l.name
            );
        }
    }

    const SAMPLE: &str = "# Lab\n\n## Run it\n\n```sh\nringlab run --lesson x --engine kvm --stats   # the stats\n# a comment\n\nringlab run --lesson x --switch-at 5:kvm\n```\n\n```expect\nstdout: hello  world\nnot stderr: oops\n[kvm-pvm] exit 6\n[kvm-pvm] stderr: kvm-pvm cannot\nfile r.jsonl: \"kind\"\n```\n\nText.\n\n```sh\nringlab step --lesson x\n```\n\n```expect\nkeys: r r\nscreen: RING 3\n```\n\n## Questions\n\n1. Why?\n\n## Answers (for teachers)\n\n1. Because.\n";

    #[test]
    fn a_sheet_parses_into_commands_and_expectations() {
        let b = sheet::parse(SAMPLE).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].line, 5);
        assert_eq!(b[0].commands.len(), 2);
        assert_eq!(
            b[0].commands[0].text,
            "ringlab run --lesson x --engine kvm --stats"
        );
        assert_eq!(
            b[0].commands[0].args,
            ["run", "--lesson", "x", "--engine", "kvm", "--stats"]
        );
        assert!(b[0].commands[0].uses_kvm() && b[0].commands[1].uses_kvm());
        assert!(!b[1].commands[0].uses_kvm() && !b[1].commands[0].may_use_kvm());
        assert_eq!(b[0].commands[1].line, 9);
        assert_eq!(
            b[0].expect[0].check,
            Check::Contains {
                stream: Stream::Stdout,
                text: "hello  world".into(),
                present: true
            }
        );
        assert_eq!(
            b[0].expect[1].check,
            Check::Contains {
                stream: Stream::Stderr,
                text: "oops".into(),
                present: false
            }
        );
        assert_eq!(b[0].expect[2].host, Some(Host::KvmPvm));
        assert_eq!(b[0].exit_on(Some(Host::KvmPvm)), 6);
        assert_eq!(b[0].exit_on(Some(Host::HwKvm)), 0);
        assert_eq!(b[0].exit_on(None), 0);
        assert_eq!(b[0].checks_on(Some(Host::HwKvm)).len(), 3);
        assert_eq!(
            b[0].expect[4].check,
            Check::File {
                name: "r.jsonl".into(),
                text: "\"kind\"".into(),
                present: true
            }
        );
        assert!(b[1].commands[0].is_step());
        let xv6 = |line: &str| sheet::parse(&format!("```sh\n{line}\n```\n{}\n", sheet::ANSWERS));
        assert!(xv6("ringlab xv6 --step").unwrap()[0].commands[0].is_step());
        assert!(xv6("ringlab xv6 --engine bt --step").unwrap()[0].commands[0].is_step());
        assert!(!xv6("ringlab xv6 --stats").unwrap()[0].commands[0].is_step());
        assert!(!xv6("ringlab run x --step").unwrap()[0].commands[0].is_step());
        assert_eq!(
            b[1].expect[0].check,
            Check::Keys(vec!["r".into(), "r".into()])
        );
        assert_eq!(b[1].expect[1].check, Check::Screen("RING 3".into()));
    }

    #[test]
    fn sheets_that_break_the_conventions_are_refused() {
        let bad = |s: &str, why: &str| {
            let full = format!("{s}\n\n## Answers (for teachers)\n");
            let e = sheet::parse(&full).expect_err(s);
            assert!(e.contains(why), "{s:?}: {e}");
        };
        bad("no commands", "no command");
        bad("```sh\nringlab run <image>\n```", "plain words");
        bad("```sh\nringlab run x | head\n```", "plain words");
        bad("```sh\ncargo run\n```", "holds `ringlab ...` commands");
        bad("```sh\n# only a comment\n```", "without a command");
        bad("```expect\nexit 0\n```", "must follow a sh block");
        bad(
            "```sh\nringlab lessons\n```\ntext\n```expect\nexit 0\n```",
            "must follow",
        );
        bad(
            "```sh\nringlab lessons\n```\n```expect\nstdout is a\n```",
            "not an expectation",
        );
        bad(
            "```sh\nringlab lessons\n```\n```expect\nscreen: x\n```",
            "step` only",
        );
        bad(
            "```sh\nringlab step --lesson x\n```\n```expect\nstdout: x\n```",
            "screen:",
        );
        bad(
            "```sh\nringlab lessons\n```\n```expect\n[kvm-pvm] exit 6\n```",
            "--engine kvm",
        );
        bad(
            "```sh\nringlab run --engine kvm x\n```\n```expect\n[kvm-pvm] exit 4\n```",
            "exit status 6",
        );
        bad(
            "```sh\nringlab run --engine kvm x\n```\n```expect\n[kvm-pvm] exit 6\n```",
            "needs the explanation",
        );
        bad("```sh\nringlab lessons\n", "not closed");
        assert!(sheet::parse("```sh\nringlab lessons\n```\n")
            .unwrap_err()
            .contains("Answers"));
    }

    #[test]
    fn students_get_the_sheet_without_answers_and_expectations() {
        let s = sheet::for_students(SAMPLE, "x", false);
        assert!(!s.contains("Because"), "{s}");
        assert!(!s.contains("## Answers"), "{s}");
        assert!(s.contains("`ringlab lesson x --answers`"), "{s}");
        assert!(!s.contains("```"), "{s}");
        assert!(!s.contains("kvm-pvm cannot"), "{s}");
        assert!(
            s.contains("\n    ringlab run --lesson x --engine kvm --stats   # the stats\n"),
            "{s}"
        );
        assert!(s.contains("1. Why?"), "{s}");
        assert!(!s.contains("\n\n\n"), "{s}");
        let t = sheet::for_students(SAMPLE, "x", true);
        assert!(
            t.contains("## Answers (for teachers)\n\n1. Because.\n"),
            "{t}"
        );
        assert!(!t.contains("--answers"), "{t}");
    }
}
