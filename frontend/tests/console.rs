//! `ringlab run` with stdin piped into COM1: a guest that echoes what it
//! receives (tests/guests/serial-echo.S, interrupt-driven, FIFO on) gets
//! 100 KiB and gives back every byte, on every engine this host runs; the
//! interpreter gives the same run whether the pipe delivers at once or
//! trickles.

mod platform_guest;
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `len` bytes of printable ASCII and newlines from a fixed generator,
/// ending with a newline (the same as tests/tests/platform_io.rs).
fn printable_text(len: usize) -> Vec<u8> {
    let mut x = 1u32;
    let mut v: Vec<u8> = (0..len - 1)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match (x >> 16) % 96 {
                95 => b'\n',
                c => 32 + c as u8,
            }
        })
        .collect();
    v.push(b'\n');
    v
}

fn djb2(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(5381u32, |h, &b| h.wrapping_mul(33).wrapping_add(b as u32))
}

/// How the test's end of the pipe writes.
#[derive(Clone, Copy)]
enum Pace {
    /// Everything in one write.
    AtOnce,
    /// `n`-byte writes `gap` apart.
    Trickle(usize, Duration),
}

/// Runs `ringlab run IMAGE ARGS` with `input` written to its stdin (by a
/// thread, while stdout is read: the echo fills the stdout pipe long
/// before the input ends), then closes it.
fn run_with_stdin(image: &Path, args: &[&str], input: &[u8], pace: Pace) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .arg("run")
        .arg(image)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || match pace {
        Pace::AtOnce => stdin.write_all(&input),
        Pace::Trickle(n, gap) => input.chunks(n).try_for_each(|c| {
            std::thread::sleep(gap);
            stdin.write_all(c).and_then(|_| stdin.flush())
        }),
    });
    let out = child.wait_with_output().unwrap();
    writer
        .join()
        .unwrap()
        .expect("the guest read all its input");
    out
}

/// What the echo guest prints for `text` (then EOT) received in one
/// interrupt: the text, then its count line.
fn echoed(text: &[u8]) -> Vec<u8> {
    let mut want = text.to_vec();
    want.extend_from_slice(
        format!(
            "echo: {} bytes, checksum {:08x}, interrupts 1 (received data 1, timeouts 0), \
             line errors 0\n",
            text.len(),
            djb2(text)
        )
        .as_bytes(),
    );
    want
}

fn assert_echo(what: &str, out: &Output, want: &[u8]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: stderr: {err}");
    assert!(err.is_empty(), "{what}: nothing on stderr: {err}");
    if out.stdout != want {
        let at = out
            .stdout
            .iter()
            .zip(want)
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "{what}: stdout departs from the input at byte {at} ({} bytes, {} expected): \
             {:?} instead of {:?}",
            out.stdout.len(),
            want.len(),
            String::from_utf8_lossy(&out.stdout[at..(at + 40).min(out.stdout.len())]),
            String::from_utf8_lossy(&want[at..(at + 40).min(want.len())]),
        );
    }
}

fn json_instructions(path: &Path) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["instructions"].as_u64().expect("an instruction count")
}

#[test]
fn stdin_of_100_kib_is_echoed_without_loss_and_the_same_every_run() {
    let image = platform_guest::build("serial-echo");
    let dir = platform_guest::scratch("console");
    let text = printable_text(100 * 1024);
    let mut input = text.clone();
    input.push(0x04); // EOT ends the guest's input
    let want = echoed(&text);
    let json = |n: &str| dir.join(format!("{n}.json"));
    let j = |n: &str| json(n).to_str().unwrap().to_string();

    let (a, b) = (j("fast"), j("slow"));
    let fast = run_with_stdin(
        &image,
        &["--timeout", "60", "--json", &a],
        &input,
        Pace::AtOnce,
    );
    assert_echo("interp, one write", &fast, &want);
    // The same bytes trickling in: the guest waits for the pipe where it
    // looks at an empty line, so the run is the same instruction for
    // instruction.
    let slow = run_with_stdin(
        &image,
        &["--timeout", "60", "--json", &b],
        &input,
        Pace::Trickle(7001, Duration::from_millis(3)),
    );
    assert_echo("interp, trickled", &slow, &want);
    assert_eq!(fast.stdout, slow.stdout);
    assert_eq!(
        json_instructions(&json("fast")),
        json_instructions(&json("slow"))
    );

    let bt = run_with_stdin(
        &image,
        &["--engine", "bt", "--timeout", "60"],
        &input,
        Pace::AtOnce,
    );
    assert_echo("bt", &bt, &want);
}

#[test]
fn stdin_of_100_kib_is_echoed_on_kvm() {
    if let Err(e) = ringlab::engines::kvm_host() {
        support::skip(
            "console::stdin_of_100_kib_is_echoed_on_kvm",
            &format!("KVM is not usable on this host: {e}"),
        );
        return;
    }
    let image = platform_guest::build("serial-echo");
    let text = printable_text(100 * 1024);
    let mut input = text.clone();
    input.push(0x04);
    // About five port exits per byte: 5-7 s on this host's kvm-pvm.
    let start = Instant::now();
    let out = run_with_stdin(
        &image,
        &["--engine", "kvm", "--timeout", "60"],
        &input,
        Pace::AtOnce,
    );
    assert_echo("kvm", &out, &echoed(&text));
    eprintln!(
        "kvm: 100 KiB echoed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
