//! `--gdb`: the machine as a gdb remote target, on every engine.
//!
//! gdb speaks its remote serial protocol over TCP to ringlab as it does to
//! QEMU's `-s -S`: `target remote :1234`. The protocol is the `gdbstub`
//! crate's; this module is the target behind it (`target.rs`: registers in
//! the i386 layout, memory at guest *linear* addresses through the guest's
//! page tables, breakpoints, watchpoints, single-step, Ctrl-C), ringlab's
//! own `monitor` commands (`monitor.rs`: rings, descriptor tables, the
//! TSS, page tables, events, the engine) and the server around them: one
//! listening socket for the whole run, one gdb at a time.
//!
//! How a run goes:
//! - `--gdb`: ringlab listens, says where, and waits for gdb before the
//!   first instruction (QEMU's `-S`). `--gdb-no-wait`: the guest starts at
//!   once, and stops when gdb connects.
//! - While gdb is attached, the guest runs only when gdb says `continue`
//!   or `stepi`; it runs in slices of at most [`SLICE`] of host time,
//!   between which ringlab streams the guest's serial output, looks for
//!   gdb's Ctrl-C (and any other packet) and refuses a second gdb.
//! - gdb detaching (`detach`, or the connection lost): the guest runs on
//!   without breakpoints, and a new gdb may connect (as QEMU does).
//!   `kill` ends the run (status 0). The guest ending (isa-debug-exit,
//!   shutdown) ends it too, reported to gdb as the process's exit with
//!   ringlab's exit status; a dead end a student wants to look at (a
//!   triple fault, HLT with interrupts off, a panic loop) is reported as
//!   a signal instead, so gdb can still read the state: see
//!   [`target::stop_reason`].

mod monitor;
mod target;

use crate::session::Session;
use anyhow::Context;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::{DisconnectReason, GdbStub};
use machine::{Limits, Stop};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::time::Duration;

pub use target::GdbTarget;

/// The longest the guest runs between two looks at the connection: how
/// soon a Ctrl-C from gdb takes effect.
pub const SLICE: Duration = Duration::from_millis(20);

/// How often the wait for gdb to connect looks for a SIGINT or SIGTERM.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Where `--gdb` listens: `PORT`, `:PORT` (both on 127.0.0.1, as QEMU's
/// `-s` is tcp::1234 but a student's machine should not be debuggable
/// from the network by default) or `HOST:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let with_host = if let Some(port) = s.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else if s.parse::<u16>().is_ok() {
        format!("127.0.0.1:{s}")
    } else {
        s.to_string()
    };
    let mut addrs = with_host
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not [HOST:]PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} names no address"))
}

/// The default of `--gdb` with no value: QEMU's `-s`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:1234";

/// The listening socket of a run.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

/// How the session with gdb ended.
pub enum Ended {
    /// The guest stopped for good (and gdb was told): the run's stop.
    Stop(Stop),
    /// gdb detached or went away: the guest runs on without it.
    Detached,
    /// gdb's `kill`.
    Killed,
}

/// How a run under `--gdb` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// The guest's own stop (gdb attached or not).
    Stop(Stop),
    /// gdb's `kill` ended the run (status 0, as QEMU exits on it).
    Killed,
}

impl Server {
    /// Listens on `addr`; an address in use or not ours is an error that
    /// says so (the caller gives it its exit status).
    pub fn bind(addr: SocketAddr) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(addr).with_context(|| {
            format!("--gdb {addr}: cannot listen there (another ringlab, QEMU or gdbserver on that port? choose another with --gdb PORT)")
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(Server { listener, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A gdb that is connecting now, if any (never blocks).
    pub fn poll_accept(&self) -> Option<(TcpStream, SocketAddr)> {
        self.listener.set_nonblocking(true).ok()?;
        let r = self.listener.accept().ok();
        let _ = self.listener.set_nonblocking(false);
        r
    }

    /// Waits for gdb, saying so first; None if a SIGINT or SIGTERM came
    /// first (`crate::signals`: the run is to stop).
    fn accept(&self) -> anyhow::Result<Option<(TcpStream, SocketAddr)>> {
        eprintln!(
            "ringlab: waiting for gdb on {} (in gdb: target remote {})",
            self.addr, self.addr
        );
        let what = || format!("--gdb {}: accepting a connection", self.addr);
        // Polled, not a blocking accept(2), which a signal with SA_RESTART
        // would not end.
        self.listener.set_nonblocking(true).with_context(what)?;
        let r = loop {
            if crate::signals::pending().is_some() {
                break Ok(None);
            }
            match self.listener.accept() {
                Ok(c) => break Ok(Some(c)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(ACCEPT_POLL)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e).with_context(what),
            }
        };
        self.listener.set_nonblocking(false).with_context(what)?;
        if let Ok(Some((stream, _))) = &r {
            // Linux's accept(2) does not pass O_NONBLOCK on; others might.
            stream.set_nonblocking(false).with_context(what)?;
        }
        r
    }

    /// Runs the session under gdb's control until the guest stops for
    /// good, gdb kills it, or `report` (the console's Ctrl-A x) ends the
    /// run. `wait`: gdb must connect before the first instruction.
    pub fn serve(
        &self,
        session: &mut Session,
        limits: &Limits,
        wait: bool,
        report: &mut dyn FnMut(&mut Session) -> ControlFlow<()>,
    ) -> anyhow::Result<Served> {
        let mut first = wait;
        if !wait {
            eprintln!(
                "ringlab: gdb may connect on {} (in gdb: target remote {}); the guest runs meanwhile",
                self.addr, self.addr
            );
        }
        loop {
            let (stream, peer) = if first {
                first = false;
                match self.accept()? {
                    Some(c) => c,
                    // A signal: the run stops before its first instruction.
                    None => return Ok(Served::Stop(Stop::Quit)),
                }
            } else {
                // Run free until gdb connects (or the guest ends).
                let mut conn = None;
                let r = session.run_reporting(limits, SLICE, &mut |s: &mut Session| {
                    if report(s).is_break() {
                        return ControlFlow::Break(());
                    }
                    if let Some(c) = self.poll_accept() {
                        conn = Some(c);
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                });
                let stop = r.map_err(|e| anyhow::Error::new(e.error))?;
                match conn {
                    Some(c) => c,
                    None if stop == Stop::Timeout && !limits.expired() => continue,
                    None => return Ok(Served::Stop(stop)),
                }
            };
            eprintln!("ringlab: gdb connected from {peer}");
            let _ = stream.set_nodelay(true);
            match self.attached(session, limits, stream, report)? {
                Ended::Stop(s) => return Ok(Served::Stop(s)),
                Ended::Killed => return Ok(Served::Killed),
                Ended::Detached => {
                    eprintln!(
                        "ringlab: gdb detached; the guest runs on (gdb may connect again on {})",
                        self.addr
                    );
                }
            }
        }
    }

    /// One gdb session, from its connection to its end (`serve`'s, and
    /// the step UI's when gdb connects to it).
    pub fn attached(
        &self,
        session: &mut Session,
        limits: &Limits,
        stream: TcpStream,
        report: &mut dyn FnMut(&mut Session) -> ControlFlow<()>,
    ) -> anyhow::Result<Ended> {
        let conn: Box<dyn ConnectionExt<Error = std::io::Error>> = Box::new(stream);
        let mut t = GdbTarget::new(session, limits, report, &self.listener);
        let r = GdbStub::new(conn).run_blocking::<target::EventLoop>(&mut t);
        // Breakpoints and watchpoints are gdb's: they go with it.
        let final_stop = t.final_stop.take();
        let quit = t.quit;
        t.forget_breakpoints();
        drop(t);
        // gdb went away (detach, or the connection): the run ends if the
        // guest had ended, else it runs on without gdb.
        let gone = |final_stop: Option<Stop>| match final_stop {
            Some(s) if s.is_final() => Ended::Stop(s),
            _ => Ended::Detached,
        };
        match r {
            Ok(DisconnectReason::Disconnect) => Ok(gone(final_stop)),
            Ok(DisconnectReason::TargetExited(_)) | Ok(DisconnectReason::TargetTerminated(_)) => {
                Ok(Ended::Stop(final_stop.unwrap_or(Stop::Quit)))
            }
            Ok(DisconnectReason::Kill) => {
                eprintln!("ringlab: gdb killed the guest");
                Ok(Ended::Killed)
            }
            Err(e) => {
                if quit {
                    return Ok(Ended::Stop(Stop::Quit));
                }
                if e.is_target_error() {
                    let why = e.into_target_error().expect("a target error");
                    return Err(why.context("under gdb"));
                }
                // A connection that broke or a packet gdbstub could not
                // take: the guest is unharmed, only this gdb is gone.
                eprintln!("ringlab: the gdb connection ended: {e}");
                Ok(gone(final_stop))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_qemu_takes_them_but_local_by_default() {
        assert_eq!(parse_addr("1234").unwrap().to_string(), "127.0.0.1:1234");
        assert_eq!(parse_addr(":4321").unwrap().to_string(), "127.0.0.1:4321");
        assert_eq!(
            parse_addr("0.0.0.0:1234").unwrap().to_string(),
            "0.0.0.0:1234"
        );
        assert_eq!(
            parse_addr(DEFAULT_ADDR).unwrap().to_string(),
            "127.0.0.1:1234"
        );
        assert!(parse_addr("nonsense").is_err());
        assert!(parse_addr("70000").is_err());
    }
}
