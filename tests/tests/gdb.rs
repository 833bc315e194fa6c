//! gdb on every engine: Debian's gdb, in batch mode, against ringlab's gdb
//! server (`ringlab run --gdb`), on the rings lesson's guest loaded with
//! its ELF symbols. The transcript of one gdb session is the same on the
//! interpreter, the translator and KVM (one insta snapshot); KVM runs it in
//! the QEMU/SVM test VM (kvm-pvm cannot IRET without paging: skipped there,
//! saying so). The robustness of the server (a malformed packet, gdb gone
//! mid-run, a second gdb, a port in use) is checked here too.
//!
//! What differs between engines by design is left out of the shared
//! transcript and checked per engine: `monitor info rings` (KVM does not
//! see ring changes: the CPU makes them) and `monitor engine`.

use machine::Stop;
use ringlab::engines::EngineKind;
use ringlab::gdb::Served;
use ringlab::run::{prepare, GuestArgs};
use std::io::{Read, Write};
use std::path::PathBuf;
use tests::gdb::{self, GdbRun};
use tests::skip;

const ENGINES: [EngineKind; 3] = [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm];

/// The rings lesson's ELF, written where gdb can load it.
fn rings_elf() -> PathBuf {
    let l = lessons::find("rings").unwrap().builtin().unwrap();
    let path = std::env::temp_dir().join(format!("ringlab-gdb-rings-{}.elf", std::process::id()));
    std::fs::write(&path, l.elf).unwrap();
    path
}

/// A symbol of the rings guest.
fn sym(name: &str) -> u32 {
    let l = lessons::find("rings").unwrap().builtin().unwrap();
    tests::elf::symbol(l.elf, name).unwrap_or_else(|| panic!("no {name} in rings.elf"))
}

/// The IRET that returns from the `write` system call (after `pop es;
/// pop ds`), found in the ELF the way a student finds it with `x/30i
/// syscall`. The code is linked at 1 MiB and ld puts that page at file
/// offset 0x1000.
fn write_iret() -> u32 {
    let l = lessons::find("rings").unwrap().builtin().unwrap();
    let from = (sym("syscall") - 0x10_0000 + 0x1000) as usize;
    assert_eq!(l.elf[from], 0x1E, "syscall starts with push ds");
    let at = l.elf[from..]
        .windows(3)
        .position(|w| w == [0x07, 0x1F, 0xCF])
        .expect("pop es; pop ds; iret in syscall");
    sym("syscall") + (at + 2) as u32
}

/// The first (or the last) instruction with these bytes in user_main (up
/// to its final `jmp .`).
fn user_insn(bytes: &[u8], last: bool) -> u32 {
    let l = lessons::find("rings").unwrap().builtin().unwrap();
    let from = (sym("user_main") - 0x10_0000 + 0x1000) as usize;
    let end = from
        + l.elf[from..]
            .windows(2)
            .position(|w| w == [0xEB, 0xFE])
            .expect("jmp . ends user_main");
    let hits: Vec<usize> = (from..end)
        .filter(|&i| l.elf[i..].starts_with(bytes))
        .collect();
    let i = if last { *hits.last().unwrap() } else { hits[0] };
    sym("user_main") + (i - from) as u32
}

fn rings_session(kind: EngineKind, commands: &[&str]) -> Option<GdbRun> {
    let (m, loaded) = prepare(&GuestArgs::lesson("rings")).unwrap();
    let elf = rings_elf();
    let r = gdb::session(kind, m, &loaded.entry, Some(&elf), commands);
    let _ = std::fs::remove_file(&elf);
    r
}

#[test]
fn a_gdb_session_on_the_rings_guest_is_the_same_on_every_engine() {
    let iret = format!("break *{:#x}", write_iret());
    let cli = format!("break *{:#x}", user_insn(&[0xFA], false));
    let int = format!("break *{:#x}", user_insn(&[0xCD, 0x80], true));
    let commands = [
        "break syscall",
        "continue",
        "bt",
        "info registers eflags",
        "p/x $cs",
        "p/x $eax",
        "x/4i $pc",
        // The interrupt frame the CPU pushed: EIP, CS, EFLAGS, ESP, SS.
        "x/5xw $esp",
        "monitor info gdt",
        "monitor info tss",
        "delete",
        &iret,
        "continue",
        "p/x $cs",
        // Across the IRET: ring 0 -> 3.
        "stepi",
        "p/x $cs",
        "info registers eip esp",
        "x/2i $pc",
        // Memory the guest does not map is an error, not zeros (no paging
        // here: past the end of RAM).
        "x/xw 0xf0000000",
        "set var *(int*)0x80000 = 0x12345678",
        "x/xw 0x80000",
        // stepi across a fault: ring 3's CLI raises #GP (IOPL 0).
        &cli,
        "continue",
        "x/i $pc",
        "stepi",
        "p/x $cs",
        "x/6xw $esp",
        "delete",
        // The EIP slot of the ring-0 stack's interrupt frame: the next
        // system call pushes another EIP there (a watchpoint hit by the
        // CPU's own pushes, reported at the handler).
        "watch *(int*)0x8ffec",
        "continue",
        "bt",
        "delete",
        // stepi across INT 0x80 (the exit call) into ring 0.
        &int,
        "continue",
        "x/i $pc",
        "p/x $eax",
        "stepi",
        "p/x $cs",
        "delete",
        "continue",
    ];
    let mut one = gdb::OneTranscript::default();
    for kind in ENGINES {
        let Some(r) = rings_session(kind, &commands) else {
            continue;
        };
        assert_eq!(
            gdb::ended(&r),
            Some(&Stop::Halted),
            "{}: the guest halts at its exit(0); gdb:\n{}",
            kind.name(),
            r.transcript
        );
        assert_eq!(
            r.serial,
            "kernel: ring 0, GDT, TSS and IDT ready; IRET to ring 3\n\
             kernel: int 0x80 from [ring 3] write: hello from ring 3\n\
             user: OUT to COM1 from ring 3, allowed by the I/O bitmap\n\
             kernel: #GP error 00000000 at 001000d2 in ring 3 (CLI with IOPL 0): skipped\n\
             kernel: int 0x80 from [ring 3] write: back in ring 3 after the #GP\n\
             kernel: exit(0) from ring 3, halting\n",
            "{}: gdb:\n{}",
            kind.name(),
            r.transcript
        );
        // Under QEMU's TCG (the test VM) the far JMP leaves a code
        // descriptor's accessed bit clear (`code_descriptors_accessed`),
        // and the #GP's frame has RF clear in its EFLAGS image, which the
        // SDM (Vol 3A 17.3.1.1) has the CPU set for every fault-class
        // exception but #DB, as the interpreter does: the frame's line
        // (`x/6xw $esp` at gp_fault: error code, EIP, CS, EFLAGS, ESP,
        // SS) gets it set.
        let t = if kind == EngineKind::Kvm && gdb::kvm_under_tcg() {
            gp_frame_rf(&gdb::code_descriptors_accessed(&r.transcript))
        } else {
            r.transcript.clone()
        };
        one.check(kind, &t, |t| {
            insta::assert_snapshot!("gdb_rings_session", t)
        });
    }
}

/// RF (EFLAGS bit 16) set in the EFLAGS word of the #GP frame's line of
/// the rings session (`0x8ffe8:` error code, EIP, CS, EFLAGS).
fn gp_frame_rf(t: &str) -> String {
    let mut out = String::new();
    for line in t.lines() {
        let words: Vec<&str> = line.split('\t').collect();
        if words.len() == 5 && words[0] == "0x8ffe8:" {
            let fl = u32::from_str_radix(words[4].trim_start_matches("0x"), 16).unwrap();
            let mut w = words.clone();
            let set = format!("{:#010x}", fl | 1 << 16);
            w[4] = &set;
            out.push_str(&w.join("\t"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `monitor info rings` names the ring change across the IRET on the
/// engines that see it (the interpreter and the translator; on KVM the
/// CPU makes it and no event exists), and `monitor engine`, `switch`.
#[test]
fn monitor_rings_engine_and_switch() {
    let iret = format!("break *{:#x}", write_iret());
    for kind in [EngineKind::Interp, EngineKind::Bt] {
        let Some(r) = rings_session(
            kind,
            &[
                &iret,
                "continue",
                "stepi",
                "monitor info rings",
                "monitor engine",
                "monitor switch interp",
                "monitor switch nonsense",
                "monitor info pagetable",
                "monitor info idt",
                "monitor frobnicate",
                "kill",
            ],
        ) else {
            continue;
        };
        let t = &r.transcript;
        assert!(
            t.contains("RING 3 (user) (CPL 3), protected mode, paging off; CS 001b"),
            "{t}"
        );
        assert!(t.contains("ring 0 -> 3 by IRET at 0x"), "{t}");
        assert!(
            t.contains(&format!("engine {}", kind.name())),
            "monitor engine names the engine: {t}"
        );
        if kind == EngineKind::Interp {
            assert!(t.contains("the machine runs on interp already"), "{t}");
        } else {
            assert!(t.contains("moved the machine from bt to interp"), "{t}");
            assert_eq!(r.session.kind(), EngineKind::Interp);
        }
        assert!(t.contains("\"nonsense\" is not an engine"), "{t}");
        assert!(t.contains("paging is off"), "{t}");
        assert!(
            t.contains("0x80 ") && t.contains("interrupt gate 32-bit -> 0008:"),
            "{t}"
        );
        assert!(t.contains("unknown monitor command \"frobnicate\""), "{t}");
        assert_eq!(r.served, Served::Killed);
    }
}

/// The interrupts lesson (PIT at 100 Hz, HLT until 5 ticks): `stepi` from
/// the HLT lands at the timer handler's first instruction (the interrupt
/// delivered, the frame's EIP after the HLT), and a watchpoint on the tick
/// count stops after the handler's INC. The same transcript on every
/// engine that runs the guest.
#[test]
fn stepi_across_an_interrupt_delivery_and_a_watch_on_the_ticks() {
    let l = lessons::find("interrupts").unwrap().builtin().unwrap();
    let elf = std::env::temp_dir().join(format!("ringlab-gdb-irq-{}.elf", std::process::id()));
    std::fs::write(&elf, l.elf).unwrap();
    let commands = [
        "break idle",
        "continue",
        "x/i $pc",
        "delete",
        // HLT, then the timer's interrupt delivered.
        "stepi",
        "stepi",
        "x/i $pc",
        "p/x $cs",
        "p *(void **)$esp",
        "info registers eflags",
        "watch *(int *)&ticks",
        "continue",
        "x/i $pc",
        "p *(int *)&ticks",
        "delete",
        // A read watchpoint: the handler's MOV EAX, [ticks] after the INC.
        "rwatch *(int *)&ticks",
        "continue",
        "x/i $pc",
        "delete",
        // An access watchpoint: the idle loop's CMP reads it next.
        "awatch *(int *)&ticks",
        "continue",
        "x/i $pc",
        "delete",
        // A hardware breakpoint: the next tick's handler.
        "hbreak timer",
        "continue",
        "p *(int *)&ticks",
        "delete",
        "continue",
    ];
    let mut one = gdb::OneTranscript::default();
    for kind in ENGINES {
        if kind == EngineKind::Kvm && engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm
        {
            skip(
                "gdb's interrupts session on kvm: kvm-pvm cannot IRET without paging \
                 (the QEMU/SVM test VM runs it)",
            );
            continue;
        }
        let (m, loaded) = prepare(&GuestArgs::lesson("interrupts")).unwrap();
        let Some(r) = gdb::session(kind, m, &loaded.entry, Some(&elf), &commands) else {
            continue;
        };
        assert_eq!(
            gdb::ended(&r),
            Some(&Stop::Halted),
            "{}: {}",
            kind.name(),
            r.transcript
        );
        one.check(kind, &r.transcript, |t| {
            insta::assert_snapshot!("gdb_interrupts_session", t)
        });
    }
    let _ = std::fs::remove_file(&elf);
}

// ---- the server's robustness -------------------------------------------------

use ringlab::gdb::Server;
use ringlab::session::{Options, Session};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A session of the rings guest on the interpreter, served on a free port
/// in another thread... no: the server runs here, the client in a thread.
fn serve_with_client(
    client: impl FnOnce(std::net::SocketAddr) + Send + 'static,
    wait: bool,
) -> (anyhow::Result<Served>, Session) {
    let (m, loaded) = prepare(&GuestArgs::lesson("rings")).unwrap();
    let s = Session::new(m, EngineKind::Interp, Options::default(), &loaded.entry).unwrap();
    serve_session_with_client(s, client, wait)
}

/// `serve_with_client` over the session `s`.
fn serve_session_with_client(
    mut s: Session,
    client: impl FnOnce(std::net::SocketAddr) + Send + 'static,
    wait: bool,
) -> (anyhow::Result<Served>, Session) {
    let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addr();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(addr)));
        // A client that failed before connecting leaves the server waiting
        // for one: a connection that closes at once ends that wait.
        let _ = TcpStream::connect(addr);
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    });
    let limits = machine::Limits {
        max_icount: None,
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        breakpoints: vec![],
    };
    let r = server.serve(&mut s, &limits, wait, &mut |_| {
        std::ops::ControlFlow::Continue(())
    });
    t.join().unwrap();
    (r, s)
}

/// A packet in gdb's framing, `$data#checksum`.
fn packet(data: &str) -> Vec<u8> {
    let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("${data}#{sum:02x}").into_bytes()
}

/// Reads what the server sent within `ms`.
fn read_some(c: &mut TcpStream, ms: u64) -> String {
    c.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
    let mut buf = vec![0; 4096];
    let mut out = Vec::new();
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // A whole packet: `#` and its two checksum digits.
        if out.len() >= 3 && out[out.len() - 3] == b'#' {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_packets_and_a_vanished_gdb_leave_the_guest_running_to_its_end() {
    // An unknown packet (the empty reply), a register read, `continue`,
    // and the connection dropped mid-run with half a packet sent: the
    // guest runs on to its own end.
    let (r, s) = serve_with_client(
        |addr| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&packet("qRinglabNonsense")).unwrap();
            let reply = read_some(&mut c, 3000);
            assert!(
                reply.contains("$#00"),
                "an unknown packet gets the empty reply: {reply:?}"
            );
            c.write_all(b"+").unwrap();
            c.write_all(&packet("g")).unwrap();
            let regs = read_some(&mut c, 3000);
            assert!(
                regs.contains("02b0ad2b"),
                "EAX = the multiboot magic: {regs:?}"
            );
            c.write_all(b"+").unwrap();
            c.write_all(&packet("c")).unwrap();
            c.write_all(b"$m10000").unwrap();
            drop(c);
        },
        true,
    );
    assert_eq!(
        r.unwrap(),
        Served::Stop(Stop::Halted),
        "the guest ran to its end"
    );
    assert!(String::from_utf8_lossy(s.m.serial_output())
        .ends_with("kernel: exit(0) from ring 3, halting\n"));
}

/// gdb's Ctrl-C (the interrupt byte 0x03, no packet framing) stops a
/// running guest: the stop reply is SIGINT, the registers can be read
/// there, and `k` ends the run. The guest is the 900 M-instruction
/// compute loop on the interpreter (seconds), stopped well before its
/// end.
#[test]
fn ctrl_c_stops_a_running_guest_with_sigint() {
    let mut m = machine::Machine::new(machine::MachineConfig::default()).unwrap();
    m.mem.write(0x7C00, lessons::COMPUTE).unwrap();
    let entry = machine::CpuState::boot_sector(0x7C00);
    let s = Session::new(m, EngineKind::Interp, Options::default(), &entry).unwrap();
    let (r, s) = serve_session_with_client(
        s,
        |addr| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&packet("c")).unwrap();
            // The "+" for the `c`, and nothing else: the guest runs.
            let ack = read_some(&mut c, 300);
            assert_eq!(ack, "+", "running, no stop reply yet");
            c.write_all(&[0x03]).unwrap();
            let stop = read_some(&mut c, 5000);
            assert!(
                stop.contains("$T02") || stop.contains("$S02"),
                "a SIGINT stop reply: {stop:?}"
            );
            c.write_all(b"+").unwrap();
            c.write_all(&packet("g")).unwrap();
            let regs = read_some(&mut c, 3000);
            assert!(regs.starts_with("+$"), "the registers: {regs:?}");
            c.write_all(b"+").unwrap();
            c.write_all(&packet("k")).unwrap();
            let _ = read_some(&mut c, 1000);
        },
        true,
    );
    assert_eq!(r.unwrap(), Served::Killed);
    let n = s.m.icount();
    assert!(
        n > 0 && n < 900_000_000,
        "stopped mid-run, not at the end: {n} instructions"
    );
    assert_eq!(
        s.m.serial_output(),
        b"",
        "the loop had not printed its checksum"
    );
}

/// A client that is not gdb, or a packet whose checksum is wrong (gdbstub
/// takes it as a broken connection): the server says so and closes the
/// connection, and the guest runs on to its end.
#[test]
fn a_client_that_is_not_gdb_is_dropped_and_the_guest_runs_on() {
    for junk in [&b"GET / HTTP/1.0\r\n\r\n"[..], &b"$g#00"[..]] {
        let (r, s) = serve_with_client(
            move |addr| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(junk).unwrap();
                // The server closes the connection.
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 64];
                let n = c.read(&mut buf).unwrap_or(0);
                assert!(
                    n == 0 || !buf[..n].contains(&b'$'),
                    "no reply: {:?}",
                    &buf[..n]
                );
            },
            true,
        );
        assert_eq!(r.unwrap(), Served::Stop(Stop::Halted));
        assert!(String::from_utf8_lossy(s.m.serial_output())
            .ends_with("kernel: exit(0) from ring 3, halting\n"));
    }
}

#[test]
fn a_second_gdb_is_refused_and_the_first_goes_on() {
    let (r, _) = serve_with_client(
        |addr| {
            let mut first = TcpStream::connect(addr).unwrap();
            first.write_all(&packet("?")).unwrap();
            let stop = read_some(&mut first, 2000);
            assert!(stop.contains("$T05"), "{stop:?}");
            // A second gdb while the guest runs: refused (closed at once).
            first.write_all(b"+").unwrap();
            first.write_all(&packet("vCont;c")).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let mut second = TcpStream::connect(addr).unwrap();
            second
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(second.read(&mut buf).unwrap_or(0), 0, "closed");
            // The first still has the guest: its stop comes to it.
            let end = read_some(&mut first, 5000);
            assert!(
                end.contains("$S11") || end.contains("$T11"),
                "SIGSTOP at the halt: {end:?}"
            );
            first.write_all(b"+").unwrap();
            first.write_all(&packet("k")).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        },
        true,
    );
    assert_eq!(r.unwrap(), Served::Killed);
}

#[test]
fn a_port_in_use_is_an_error_that_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = Server::bind(addr).err().expect("the port is taken");
    let text = format!("{e:#}");
    assert!(
        text.contains(&format!("--gdb {addr}: cannot listen there")) && text.contains("in use"),
        "{text}"
    );
}
