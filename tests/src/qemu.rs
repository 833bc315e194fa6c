//! QEMU with SeaBIOS as a reference PC for the firmware tests: a boot
//! sector (a disk image) booted by `qemu-system-i386` with its own BIOS,
//! and what it left behind — its exit code, its COM1 output and the VGA
//! text memory — read back to compare with ringlab's run of the same image
//! (tests/tests/firmware_qemu.rs).
//!
//! The guests end with `out 0xF4, al; cli; hlt` (bios-boot.inc's EXIT).
//! QEMU runs without `isa-debug-exit`, so the OUT goes to an unclaimed
//! port and the CPU stays halted with interrupts off, the machine still
//! there to be read: the harness polls the registers through QMP
//! (`info registers`) until the CPU is halted with IF clear inside the
//! guest's code (below the EBDA, at or above 0x7C00; SeaBIOS's own code
//! is in the F segment and at the top of RAM), takes the exit code from
//! AL, saves the 32 KiB text window at 0xB8000 (`pmemsave`, which reads
//! through the VGA's planes as the CPU would), reads COM1 from
//! `-serial file:` and quits. No change to the guests, no timing
//! assumption: a guest that is still printing is not halted with IF
//! clear.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary: the 32-bit PC, as the README's `qemu-system-i386
/// boot.bin` comparison uses.
pub const QEMU: &str = "qemu-system-i386";

/// The guest RAM, as `tests::firmware::RAM`.
const RAM_MIB: usize = crate::firmware::RAM >> 20;

/// How long a guest may take on QEMU (TCG) before the run is a failure:
/// the guests finish in well under a second.
const LIMIT: Duration = Duration::from_secs(30);

/// How often the registers are polled while the guest runs.
const POLL: Duration = Duration::from_millis(10);

/// The VGA text window: 0xB8000, 32 KiB (eight 80x25 pages of 4 KiB).
pub const TEXT_WINDOW: u64 = 0xB8000;
pub const TEXT_WINDOW_LEN: usize = 0x8000;

/// What the guest left on QEMU.
pub struct Reference {
    /// AL when the guest halted: the value its EXIT wrote to port 0xF4.
    pub exit: u8,
    /// Everything written to COM1.
    pub serial: Vec<u8>,
    /// The text window at [`TEXT_WINDOW`], [`TEXT_WINDOW_LEN`] bytes.
    pub text: Vec<u8>,
}

/// Why QEMU is not there to compare with (None: it is). `qemu-system-i386
/// --version` must run.
pub fn unavailable() -> Option<String> {
    match Command::new(QEMU)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("{QEMU} --version failed: {}", o.status)),
        Err(e) => Some(format!(
            "{QEMU} is not installed ({e}); scripts/test.sh installs qemu-system-x86"
        )),
    }
}

/// A directory of its own for each run (tests run in parallel threads),
/// removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Short: a unix socket's path has at most 107 bytes.
        let dir = std::env::temp_dir().join(format!("ringlab-qemu-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The QEMU process, killed if the run ends early (a failed assertion).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QMP connection (docs/interop/qmp-spec: one JSON object a line;
/// asynchronous events are interleaved with the replies and skipped).
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(socket: &Path, qemu: &mut Child, log: &Path) -> Qmp {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) => {
                    if let Ok(Some(status)) = qemu.try_wait() {
                        panic!(
                            "{QEMU} exited ({status}) before QMP was up: {}",
                            std::fs::read_to_string(log).unwrap_or_default()
                        );
                    }
                    assert!(
                        start.elapsed() < LIMIT,
                        "cannot connect to QEMU's QMP socket: {e}"
                    );
                    std::thread::sleep(POLL);
                }
            }
        };
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = q.read();
        assert!(greeting.get("QMP").is_some(), "no QMP greeting: {greeting}");
        q.execute("qmp_capabilities", json!({}));
        q
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading from QMP: {e}"));
        assert!(n > 0, "QEMU closed its QMP socket");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("QMP sent {line:?}: {e}"))
    }

    /// Sends `request` as one line, in one write: QEMU runs a command as
    /// soon as its JSON object is complete, so after "quit" a separate
    /// newline could find the socket closed.
    fn write(&mut self, request: &Value) -> std::io::Result<()> {
        self.writer.write_all(format!("{request}\n").as_bytes())
    }

    /// Sends `command` without arguments and does not wait for the reply.
    fn send(&mut self, command: &str) {
        let _ = self.write(&json!({ "execute": command }));
    }

    /// Runs `command`; its "return" value.
    fn execute(&mut self, command: &str, arguments: Value) -> Value {
        let request = json!({ "execute": command, "arguments": arguments });
        self.write(&request)
            .unwrap_or_else(|e| panic!("QMP {command}: {e}"));
        loop {
            let reply = self.read();
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(r) = reply.get("return") {
                return r.clone();
            }
            panic!("QMP {command}: {reply}");
        }
    }

    /// The text of a human monitor command.
    fn hmp(&mut self, command: &str) -> String {
        let r = self.execute("human-monitor-command", json!({ "command-line": command }));
        r.as_str().unwrap_or_default().to_string()
    }
}

/// The registers `info registers` shows that say whether the guest is done.
#[derive(Debug, PartialEq, Eq)]
struct Registers {
    eax: u32,
    eflags: u32,
    /// CS base + EIP.
    linear_ip: u32,
    halted: bool,
}

/// The hexadecimal number after `key` in `text`.
fn hex_after(text: &str, key: &str) -> Option<u32> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u32::from_str_radix(&digits, 16).ok()
}

/// Parses QEMU's `info registers` (target/i386/cpu-dump.c): "EAX=...",
/// "EIP=... EFL=... HLT=1", "CS =sel base limit flags".
fn parse_registers(text: &str) -> Option<Registers> {
    let cs_base = {
        let line = text.lines().find(|l| l.starts_with("CS "))?;
        let mut words = line.split('=').nth(1)?.split_whitespace();
        words.next()?; // the selector
        u32::from_str_radix(words.next()?, 16).ok()?
    };
    Some(Registers {
        eax: hex_after(text, "EAX=")?,
        eflags: hex_after(text, "EFL=")?,
        linear_ip: cs_base.wrapping_add(hex_after(text, "EIP=")?),
        halted: hex_after(text, "HLT=")? == 1,
    })
}

/// EFLAGS.IF (SDM Vol 1 3.4.3.3).
const IF: u32 = 1 << 9;

impl Registers {
    /// Halted with interrupts off in the guest's code: bios-boot.inc's
    /// EXIT (`out 0xF4, al; cli; hlt`) on a machine without isa-debug-exit.
    fn at_guest_exit(&self) -> bool {
        self.halted && self.eflags & IF == 0 && (0x7C00..0x9_F000).contains(&self.linear_ip)
    }
}

/// Boots `image` as the first hard disk of a QEMU PC with SeaBIOS
/// (`-M pc -nodefaults -vga std`: the i440FX board, its IDE, the standard
/// VGA and no network card, so no iPXE ROM runs; 32 MiB as ringlab's
/// firmware tests; TCG) and returns what the guest left once it halted
/// at its exit. Panics if QEMU fails or the guest does not get there in
/// time, with the registers and COM1 so far.
pub fn boot(image: &[u8]) -> Reference {
    let dir = TempDir::new();
    let p = |name: &str| dir.0.join(name);
    let (disk, com1, socket, screen, log) = (
        p("disk.img"),
        p("com1"),
        p("qmp"),
        p("screen"),
        p("qemu.log"),
    );
    std::fs::write(&disk, image).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let child = Command::new(QEMU)
        .args(["-M", "pc", "-nodefaults", "-vga", "std"])
        .args(["-m", &RAM_MIB.to_string()])
        .args(["-accel", "tcg", "-display", "none", "-S"])
        .arg("-drive")
        .arg(format!("file={},format=raw,index=0,media=disk", s(&disk)))
        .arg("-serial")
        .arg(format!("file:{}", s(&com1)))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", s(&socket)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {QEMU}: {e}"));
    let mut qemu = Process(child);
    let mut qmp = Qmp::connect(&socket, &mut qemu.0, &log);
    // Started stopped (-S) so that nothing runs before the harness
    // watches.
    qmp.execute("cont", json!({}));
    let start = Instant::now();
    let regs = loop {
        let text = qmp.hmp("info registers");
        let regs = parse_registers(&text)
            .unwrap_or_else(|| panic!("cannot parse QEMU's registers:\n{text}"));
        if regs.at_guest_exit() {
            break regs;
        }
        if start.elapsed() > LIMIT {
            panic!(
                "the guest did not reach its exit on QEMU in {LIMIT:?}:\n{text}\nCOM1 so far:\n{}",
                String::from_utf8_lossy(&std::fs::read(&com1).unwrap_or_default())
            );
        }
        std::thread::sleep(POLL);
    };
    qmp.execute(
        "pmemsave",
        json!({ "val": TEXT_WINDOW, "size": TEXT_WINDOW_LEN, "filename": s(&screen) }),
    );
    let text = std::fs::read(&screen).unwrap();
    assert_eq!(text.len(), TEXT_WINDOW_LEN, "pmemsave's file");
    // COM1's file is written as the guest writes (no buffering in the
    // chardev), so all of it is there once the guest has halted.
    let serial = std::fs::read(&com1).unwrap();
    // No reply awaited: QEMU may close the socket as it exits.
    qmp.send("quit");
    // Gone before the directory is: give it a moment to exit by itself
    // (Process's drop kills it if not).
    let deadline = Instant::now() + Duration::from_secs(5);
    while qemu.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    Reference {
        exit: regs.eax as u8,
        serial,
        text,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// `info registers` of QEMU 7.2 at a guest's exit (the first lines).
    const HALTED: &str = "\
EAX=00000e00 EBX=0000001e ECX=00000000 EDX=00000600
ESI=00007d9a EDI=00000000 EBP=00000000 ESP=00007c00
EIP=00007dbb EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1
ES =0000 00000000 0000ffff 00009300
CS =0000 00000000 0000ffff 00009b00
SS =0000 00000000 0000ffff 00009300
";

    #[test]
    fn registers_at_the_exit() {
        let r = parse_registers(HALTED).unwrap();
        assert_eq!(
            r,
            Registers {
                eax: 0xe00,
                eflags: 2,
                linear_ip: 0x7dbb,
                halted: true
            }
        );
        assert!(r.at_guest_exit());
    }

    #[test]
    fn running_or_waiting_or_in_the_bios_is_not_the_exit() {
        let running = HALTED.replace("HLT=1", "HLT=0");
        assert!(!parse_registers(&running).unwrap().at_guest_exit());
        // HLT with IF set: waiting for an interrupt (settle, INT 15h 86h).
        let waiting = HALTED.replace("EFL=00000002", "EFL=00000202");
        assert!(!parse_registers(&waiting).unwrap().at_guest_exit());
        let bios = HALTED.replace("CS =0000 00000000", "CS =f000 000f0000");
        assert!(!parse_registers(&bios).unwrap().at_guest_exit());
    }
}
