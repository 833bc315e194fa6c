//! `ringlab run --disk`: every malformed disk gets one clear error line
//! and the documented exit status (4, a bad image; 2, a bad command line)
//! with nothing written to any image; a locked image is refused while
//! another run holds it; a read-only file gives a warning and a disk whose
//! writes fail; --snapshot leaves the file as it was while the guest sees
//! its own writes; a plain run writes through to the file.
//!
//! The guests are tests/guests/disk-rw.S (reads sector 0, writes sector 1,
//! reads it back, polling) and serial-echo.S (waits on COM1, so a run
//! holds its disks for as long as the test keeps its stdin open).

mod platform_guest;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECTOR: usize = 512;

/// An image of `sectors` sectors, each starting with "image sector N".
fn image_bytes(sectors: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(sectors * SECTOR);
    for s in 0..sectors {
        v.extend_from_slice(format!("{:<16}", format!("image sector {s}")).as_bytes());
        v.extend((0..SECTOR - 16).map(|i| (i * 7 + s) as u8));
    }
    v
}

/// What disk-rw.S writes to sector 1.
fn guest_sector() -> Vec<u8> {
    b"guest wrote this".repeat(32)
}

fn ringlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The frontend's error contract (as in cli.rs): the status, nothing on
/// stdout, one line on stderr that starts "ringlab: error: " and says
/// `needle`, no panic.
fn assert_clean_error(out: &Output, status: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("ringlab: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// disk-rw.S's transcript for a disk whose sector 1 reads `sector1` after
/// a write that ended with `status`/`error`.
fn disk_rw_output(status: &str, sector1: &str) -> String {
    format!(
        "sector 0: \"image sector 0  \"\nwrite sector 1: status {status}\nsector 1: \"{sector1}\"\n"
    )
}

#[test]
fn malformed_disks_get_one_clear_line_and_the_documented_status() {
    let dir = platform_guest::scratch("disks-bad");
    let guest = platform_guest::build("disk-rw");
    let good = |n: &str| {
        let p = dir.join(n);
        std::fs::write(&p, image_bytes(4)).unwrap();
        p
    };
    let run = |disks: &[&Path]| {
        let mut args = vec!["run", s(&guest), "--timeout", "30"];
        for d in disks {
            args.extend(["--disk", s(d)]);
        }
        ringlab(&args)
    };

    let missing = dir.join("missing.img");
    let out = run(&[&missing]);
    assert_clean_error(
        &out,
        4,
        &format!("disk image {}: no such file", missing.display()),
    );
    assert!(!missing.exists(), "a missing image is not created");

    // A directory: opened, but not readable as an image.
    let out = run(&[&dir]);
    assert_clean_error(
        &out,
        4,
        &format!("disk image {}: cannot be read", dir.display()),
    );

    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&[&empty]);
    assert_clean_error(
        &out,
        4,
        &format!(
            "disk image {}: the file is empty (a disk needs at least one 512-byte sector)",
            empty.display()
        ),
    );
    assert_eq!(std::fs::read(&empty).unwrap(), b"");

    let odd = dir.join("odd.img");
    std::fs::write(&odd, vec![0x5A; 1000]).unwrap();
    let out = run(&[&odd]);
    assert_clean_error(
        &out,
        4,
        &format!(
            "disk image {}: 1000 bytes is not a whole number of 512-byte sectors",
            odd.display()
        ),
    );
    assert_eq!(std::fs::read(&odd).unwrap(), vec![0x5A; 1000]);

    // A bad disk after a good one: the good one is not written either
    // (the guest never starts).
    let first = good("first.img");
    let out = run(&[&first, &odd]);
    assert_clean_error(&out, 4, "1000 bytes");
    assert_eq!(std::fs::read(&first).unwrap(), image_bytes(4));

    let five: Vec<PathBuf> = (0..5).map(|i| good(&format!("d{i}.img"))).collect();
    let out = run(&five.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert_clean_error(
        &out,
        2,
        "--disk given 5 times: the PC has four ATA drives (two channels, master and slave)",
    );
    for p in &five {
        assert_eq!(std::fs::read(p).unwrap(), image_bytes(4), "{}", p.display());
    }

    // Permissions: root reads and writes any file whatever its mode.
    let unreadable = good("unreadable.img");
    let mut perm = std::fs::metadata(&unreadable).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o000);
    std::fs::set_permissions(&unreadable, perm).unwrap();
    if std::fs::File::open(&unreadable).is_ok() {
        support::skip(
            "disks::malformed_disks_get_one_clear_line_and_the_documented_status",
            "running as root: a file of mode 000 is still readable, so the unreadable-file \
             case is not checked",
        );
    } else {
        let out = run(&[&unreadable]);
        assert_clean_error(
            &out,
            4,
            &format!(
                "disk image {}: cannot be read: Permission denied",
                unreadable.display()
            ),
        );
    }
}

/// Makes `path` a file this process cannot open for writing: mode 0444,
/// or for root (whom modes do not stop) the immutable attribute. None if
/// neither works here (then the case is skipped).
struct ReadOnlyFile {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnlyFile {
    fn new(path: PathBuf) -> Option<ReadOnlyFile> {
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
        std::fs::set_permissions(&path, perm).unwrap();
        let writable = |p: &Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
        if !writable(&path) {
            return Some(ReadOnlyFile {
                path,
                immutable: false,
            });
        }
        let chattr = Command::new("chattr").arg("+i").arg(&path).output();
        let f = ReadOnlyFile {
            immutable: matches!(chattr, Ok(o) if o.status.success()),
            path,
        };
        (f.immutable && !writable(&f.path)).then_some(f)
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).output();
        }
    }
}

#[test]
fn a_read_only_file_is_a_read_only_disk_with_a_warning() {
    let dir = platform_guest::scratch("disks-ro");
    let guest = platform_guest::build("disk-rw");
    let path = dir.join("ro.img");
    std::fs::write(&path, image_bytes(4)).unwrap();
    let Some(ro) = ReadOnlyFile::new(path.clone()) else {
        support::skip(
            "disks::a_read_only_file_is_a_read_only_disk_with_a_warning",
            "neither mode 0444 nor chattr +i makes a file unwritable here",
        );
        return;
    };
    let out = ringlab(&["run", s(&guest), "--disk", s(&path), "--timeout", "30"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one warning line: {err}");
    assert!(
        err.starts_with(&format!(
            "ringlab: warning: disk image {} is not writable (",
            path.display()
        )) && err.ends_with("): the guest gets a read-only disk and its writes fail\n"),
        "{err}"
    );
    // The write ends with ERR and ABRT, and sector 1 is what it was.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        disk_rw_output("51 error 04", "image sector 1  ")
    );
    drop(ro);
    assert_eq!(std::fs::read(&path).unwrap(), image_bytes(4));
}

#[test]
fn snapshot_keeps_the_file_while_the_guest_sees_its_writes() {
    let dir = platform_guest::scratch("disks-snap");
    let guest = platform_guest::build("disk-rw");
    let path = dir.join("snap.img");
    std::fs::write(&path, image_bytes(4)).unwrap();
    for engine in ["interp", "bt"] {
        let out = ringlab(&[
            "run",
            s(&guest),
            "--disk",
            s(&path),
            "--snapshot",
            "--engine",
            engine,
            "--timeout",
            "30",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{engine}: {err}");
        assert!(err.is_empty(), "{engine}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            disk_rw_output("50 error 00", "guest wrote this"),
            "{engine}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), image_bytes(4), "{engine}");
    }
}

#[test]
fn run_writes_through_to_the_file() {
    let dir = platform_guest::scratch("disks-rw");
    let guest = platform_guest::build("disk-rw");
    let path = dir.join("rw.img");
    std::fs::write(&path, image_bytes(4)).unwrap();
    let out = ringlab(&["run", s(&guest), "--disk", s(&path), "--timeout", "30"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        disk_rw_output("50 error 00", "guest wrote this")
    );
    let mut want = image_bytes(4);
    want[SECTOR..2 * SECTOR].copy_from_slice(&guest_sector());
    assert_eq!(std::fs::read(&path).unwrap(), want);
    // A second run sees the first one's write from the file.
    let out = ringlab(&["run", s(&guest), "--disk", s(&path), "--snapshot"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        disk_rw_output("50 error 00", "guest wrote this")
    );
}

#[test]
fn a_locked_image_is_refused_while_another_run_holds_it() {
    let dir = platform_guest::scratch("disks-lock");
    let echo = platform_guest::build("serial-echo");
    let guest = platform_guest::build("disk-rw");
    let path = dir.join("locked.img");
    std::fs::write(&path, image_bytes(4)).unwrap();
    // The first run waits for COM1 input for as long as its stdin is open.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_ringlab"))
        .args(["run", s(&echo), "--disk", s(&path), "--timeout", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It holds the image once its lock is there (an exclusive flock: a
    // shared one is refused).
    let f = std::fs::File::open(&path).unwrap();
    let start = Instant::now();
    while f.try_lock_shared().is_ok() {
        f.unlock().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run never locked the image"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(f);
    let in_use = format!(
        "disk image {}: already in use (locked by another program, or by another drive of \
         this machine)",
        path.display()
    );
    for extra in [&[][..], &["--snapshot"][..]] {
        let mut args = vec!["run", s(&guest), "--disk", s(&path)];
        args.extend_from_slice(extra);
        assert_clean_error(&ringlab(&args), 4, &in_use);
    }
    // The same image twice in one machine.
    let other = dir.join("twice.img");
    std::fs::write(&other, image_bytes(4)).unwrap();
    let out = ringlab(&["run", s(&guest), "--disk", s(&other), "--disk", s(&other)]);
    assert_clean_error(
        &out,
        4,
        &format!("disk image {}: already in use", other.display()),
    );
    assert_eq!(std::fs::read(&other).unwrap(), image_bytes(4));

    // The holder ends (EOT on its line) and the image is free again.
    let mut stdin = holder.stdin.take().unwrap();
    stdin.write_all(b"bye\n\x04").unwrap();
    drop(stdin);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bye\necho: 4 bytes"));
    assert_eq!(std::fs::read(&path).unwrap(), image_bytes(4));
    let out = ringlab(&["run", s(&guest), "--disk", s(&path), "--snapshot"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn stats_and_json_count_the_platform_chips() {
    let dir = platform_guest::scratch("disks-stats");
    let guest = platform_guest::build("disk-rw");
    let path = dir.join("stats.img");
    std::fs::write(&path, image_bytes(4)).unwrap();
    let json = dir.join("report.json");
    let out = ringlab(&[
        "run",
        s(&guest),
        "--disk",
        s(&path),
        "--snapshot",
        "--stats",
        "--json",
        s(&json),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // disk-rw.S: IDENTIFY-free polling: READ SECTORS 0, WRITE SECTORS 1,
    // READ SECTORS 1, one sector each.
    let ata = err
        .lines()
        .find(|l| l.starts_with("ATA channel 0"))
        .unwrap_or_else(|| panic!("no ATA line in --stats:\n{err}"));
    assert!(ata.contains("2 sectors read, 1 written"), "{ata}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ata0 = &report["devices"]["ata"][0];
    assert_eq!(ata0["sectors_read"], 2, "{ata0}");
    assert_eq!(ata0["sectors_written"], 1, "{ata0}");
    assert_eq!(report["devices"]["ata"][1]["sectors_read"], 0);
    for chip in ["keyboard", "rtc", "local_apic", "io_apic", "uart"] {
        assert!(report["devices"][chip].is_object(), "{chip}: {report}");
    }
}

#[test]
fn malformed_platform_options_get_one_clear_line() {
    let guest = platform_guest::build("disk-rw");
    for (args, needle) in [
        (vec!["--rtc", "2026-13-01"], "month 13"),
        (vec!["--rtc", "yesterday"], "--rtc"),
        (vec!["--keys", "a\\q"], "bad escape"),
        (vec!["--keys", "caf\u{e9}"], "no key on a US keyboard"),
        (vec!["--keys-file", "/nonexistent/keys.txt"], "--keys-file"),
    ] {
        let mut all = vec!["run", s(&guest)];
        all.extend(args.iter().copied());
        let out = ringlab(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
        assert!(err.starts_with("ringlab: error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
