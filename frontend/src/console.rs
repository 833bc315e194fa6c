//! The console of `ringlab run`: stdin to COM1's receiver, as QEMU's
//! `-nographic` (`-serial mon:stdio`) does.
//!
//! Two kinds of stdin, two policies:
//!
//! - **A file or a pipe** is input prepared in advance (a script, an
//!   autograder's keystrokes). Its bytes reach the guest when the guest
//!   looks at the line (reads RBR, LSR or IIR, or enables the receive
//!   interrupt) and the receiver has room: the machine waits for the pipe
//!   there if it has nothing yet. So on interp and bt the same input gives
//!   the same transcript every run, however fast the pipe delivers; EOF is
//!   remembered (the line goes quiet). Nothing is dropped: the receiver
//!   takes a byte only when it has room. A pipe that stays open and silent
//!   makes a guest that looks at its line wait for it (`--no-input` runs
//!   without stdin).
//! - **A terminal** is a person typing: the terminal goes into raw mode
//!   (no line editing, no echo, no signals: Ctrl-C goes to the guest; output
//!   processing stays on, so a guest's "\n" still starts a new line), keys
//!   reach the guest as they are typed, and an escape character talks to
//!   ringlab: Ctrl-A x quits, Ctrl-A h lists the keys, Ctrl-A Ctrl-A sends a
//!   Ctrl-A. The terminal's modes are restored on every way out: the end of
//!   the run, an error, a panic, SIGHUP/SIGQUIT (here) and SIGINT/SIGTERM
//!   (which stop the run cleanly first: `crate::signals`).

use machine::devices::uart::SerialInput;
use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often a machine waiting for its pipe looks for a SIGINT or SIGTERM.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The escape character (Ctrl-A), as in QEMU and screen.
const ESCAPE: u8 = 0x01;

/// What Ctrl-A h prints.
const HELP: &str = "\r\nringlab console keys:\r\n  Ctrl-A x        quit (exit status 0)\r\n  Ctrl-A h        this list\r\n  Ctrl-A Ctrl-A   send Ctrl-A to the guest\r\n";

/// The host side of COM1 for one run.
pub struct Console {
    /// Set by Ctrl-A x.
    quit: Arc<AtomicBool>,
    /// Bytes typed so far (bumped by the reader), to wait on when the guest
    /// idles.
    typed: Arc<(Mutex<u64>, Condvar)>,
    interactive: bool,
    /// Restores the terminal when dropped.
    _raw: Option<RawMode>,
}

impl Console {
    /// Connects stdin to the machine's COM1 (`None`: the guest's line stays
    /// quiet, as with `--no-input`).
    pub fn attach(m: &mut machine::Machine, stdin: bool) -> Console {
        let quit = Arc::new(AtomicBool::new(false));
        let typed = Arc::new((Mutex::new(0u64), Condvar::new()));
        if !stdin {
            return Console {
                quit,
                typed,
                interactive: false,
                _raw: None,
            };
        }
        let terminal = std::io::stdin().is_terminal();
        let raw = if terminal { RawMode::enter() } else { None };
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let (q, t) = (quit.clone(), typed.clone());
        let escapes = raw.is_some();
        // A reader thread, so a terminal never blocks the machine; it
        // ends at EOF (its channel then tells the source so).
        std::thread::Builder::new()
            .name("ringlab stdin".into())
            .spawn(move || read_stdin(tx, escapes, q, t))
            .expect("a thread for stdin");
        m.attach_serial_input(Box::new(StdinSource {
            rx,
            buf: VecDeque::new(),
            ended: false,
            blocking: !terminal,
        }));
        Console {
            quit,
            typed,
            interactive: terminal,
            _raw: raw,
        }
    }

    /// The user pressed Ctrl-A x.
    pub fn quit_requested(&self) -> bool {
        self.quit.load(Ordering::Relaxed)
    }

    /// Keys can still come (a terminal): an idle guest waits for them
    /// instead of ending the run.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// Waits up to `limit` for a key or Ctrl-A x.
    pub fn wait_for_key(&self, limit: Duration) {
        let (lock, cv) = &*self.typed;
        let Ok(n) = lock.lock() else { return };
        let before = *n;
        // A poisoned lock or a timeout both just end the wait.
        let _ = cv.wait_timeout_while(n, limit, |n| {
            *n == before && !self.quit.load(Ordering::Relaxed)
        });
    }
}

/// stdin as COM1's far end (see the module comment).
struct StdinSource {
    rx: Receiver<Vec<u8>>,
    buf: VecDeque<u8>,
    ended: bool,
    /// A file or pipe: wait for the next byte (deterministic arrival).
    blocking: bool,
}

impl SerialInput for StdinSource {
    fn next(&mut self) -> Option<u8> {
        while self.buf.is_empty() && !self.ended {
            let got = if self.blocking {
                // Waits for the pipe, but not through a SIGINT or SIGTERM:
                // the run is stopping, the byte is not needed.
                match self.rx.recv_timeout(SIGNAL_POLL) {
                    Ok(chunk) => Ok(chunk),
                    Err(RecvTimeoutError::Timeout) if crate::signals::pending().is_some() => {
                        Err(TryRecvError::Empty)
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Err(TryRecvError::Disconnected),
                }
            } else {
                self.rx.try_recv()
            };
            match got {
                Ok(chunk) => self.buf.extend(chunk),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        self.buf.pop_front()
    }

    fn ended(&self) -> bool {
        self.ended && self.buf.is_empty()
    }
}

/// The reader thread: stdin in chunks to the channel; with `escapes`, the
/// Ctrl-A commands are taken out.
fn read_stdin(
    tx: mpsc::Sender<Vec<u8>>,
    escapes: bool,
    quit: Arc<AtomicBool>,
    typed: Arc<(Mutex<u64>, Condvar)>,
) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    let mut escaped = false;
    let bump = |n: usize| {
        let (lock, cv) = &*typed;
        if let Ok(mut c) = lock.lock() {
            *c += n as u64;
        }
        cv.notify_all();
    };
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // An unreadable stdin ends the input, as EOF would.
            Err(_) => return,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if !escapes {
                out.push(b);
            } else if escaped {
                escaped = false;
                match b {
                    b'x' | b'X' => {
                        quit.store(true, Ordering::Relaxed);
                        bump(0);
                        return;
                    }
                    b'h' | b'H' | b'?' => {
                        let mut e = std::io::stderr();
                        // The help is a courtesy; a closed stderr loses it.
                        let _ = e.write_all(HELP.as_bytes()).and_then(|_| e.flush());
                    }
                    ESCAPE => out.push(ESCAPE),
                    // Unknown commands are ignored, as QEMU does.
                    _ => {}
                }
            } else if b == ESCAPE {
                escaped = true;
            } else {
                out.push(b);
            }
        }
        if !out.is_empty() {
            let len = out.len();
            if tx.send(out).is_err() {
                return; // the run is over
            }
            bump(len);
        }
    }
}

/// The terminal's own modes, saved when raw mode was first entered, and
/// whether raw mode is on now: what the panic hook and the signal handler
/// restore (an atomic and a set-once cell: a signal handler may not lock).
static SAVED: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();
static RAW_ON: AtomicBool = AtomicBool::new(false);

/// The terminal in raw mode while this lives.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Raw input, output processing kept; None if stdin's modes cannot be
    /// read or set (then the terminal is left as it is).
    fn enter() -> Option<RawMode> {
        // SAFETY: tcgetattr writes a termios through a valid pointer to a
        // zero-initialised local (termios is plain data).
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above; fd 0 is stdin.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        t.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        // Set once per process: a later raw-mode entry keeps the first
        // saved modes, the terminal's own.
        let _ = SAVED.set(saved);
        RAW_ON.store(true, Ordering::SeqCst);
        install_restorers();
        // SAFETY: a valid termios for fd 0.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) } != 0 {
            return None;
        }
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        RAW_ON.store(false, Ordering::SeqCst);
        restore(&self.saved);
    }
}

/// From a signal handler about to end the process: the terminal's own
/// modes back if raw mode is on (only async-signal-safe operations: an
/// atomic load, a set-once cell's read, tcsetattr).
pub(crate) fn restore_terminal_in_handler() {
    if let (true, Some(t)) = (RAW_ON.load(Ordering::SeqCst), SAVED.get()) {
        restore(t);
    }
}

fn restore(t: &libc::termios) {
    // SAFETY: a valid termios for fd 0; failure leaves the terminal as it
    // is, which nothing here can improve on.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, t);
    }
}

/// On a panic or SIGHUP/SIGQUIT the terminal gets its modes back before
/// the process goes (SIGINT and SIGTERM stop the run: `crate::signals`).
fn install_restorers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if RAW_ON.load(Ordering::SeqCst) {
                if let Some(t) = SAVED.get() {
                    restore(t);
                }
            }
            previous(info);
        }));
        extern "C" fn on_signal(sig: libc::c_int) {
            // tcsetattr is async-signal-safe (POSIX 2.4.3); the termios
            // was set before the handler was installed.
            restore_terminal_in_handler();
            // SAFETY: signal and raise are async-signal-safe; the default
            // action then ends the process with the signal, as it would
            // have without us.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
        }
        for sig in [libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: installs a handler that only calls async-signal-safe
            // functions.
            unsafe {
                libc::signal(
                    sig,
                    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_source_waits_for_bytes_and_remembers_its_end() {
        let (tx, rx) = mpsc::channel();
        let mut s = StdinSource {
            rx,
            buf: VecDeque::new(),
            ended: false,
            blocking: true,
        };
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(b"hi".to_vec()).unwrap();
        });
        assert_eq!(s.next(), Some(b'h'), "waits for the late chunk");
        assert_eq!(s.next(), Some(b'i'));
        t.join().unwrap();
        assert_eq!(s.next(), None);
        assert!(s.ended());
        assert_eq!(s.next(), None);
    }

    #[test]
    fn a_terminal_source_never_waits() {
        let (tx, rx) = mpsc::channel();
        let mut s = StdinSource {
            rx,
            buf: VecDeque::new(),
            ended: false,
            blocking: false,
        };
        assert_eq!(s.next(), None);
        assert!(!s.ended());
        tx.send(vec![b'a']).unwrap();
        assert_eq!(s.next(), Some(b'a'));
    }
}
