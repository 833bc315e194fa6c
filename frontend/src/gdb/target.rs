//! The gdb target: a `Session` seen through gdbstub's traits.

use super::SLICE;
use crate::engines::EngineKind;
use crate::session::Session;
use gdbstub::common::Signal;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::run_blocking::{self, BlockingEventLoop, WaitForStopReasonError};
use gdbstub::stub::SingleThreadStopReason;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind as GdbWatch,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::{X86CoreRegs, X86SegmentRegs};
use gdbstub_arch::x86::X86_SSE;
use machine::cpu::{flags, Seg};
use machine::x86::paging::{self, Regs};
use machine::{CpuState, Limits, Segment, Stop, WatchKind, Watchpoint};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::ops::ControlFlow;
use std::time::Instant;

/// EFAULT, what gdb is told for memory that is not there.
const EFAULT: u8 = 14;

/// The machine under gdb's control.
pub struct GdbTarget<'a> {
    pub(super) session: &'a mut Session,
    limits: &'a Limits,
    report: &'a mut dyn FnMut(&mut Session) -> ControlFlow<()>,
    listener: &'a TcpListener,
    /// gdb's `break` (Z0) and `hbreak` (Z1) addresses, linear. Both are
    /// the engines' breakpoints (`Limits::breakpoints`): nothing is
    /// written into guest memory.
    sw: BTreeSet<u32>,
    hw: BTreeSet<u32>,
    /// gdb's watchpoints, as the machine has them.
    watch: Vec<Watchpoint>,
    /// The next resume is one instruction.
    step: bool,
    /// The guest's last stop that ends or dead-ends the run.
    pub final_stop: Option<Stop>,
    /// The user quit from the console (Ctrl-A x) while gdb was attached.
    pub quit: bool,
    /// The note on stepping INT n on KVM was printed.
    said_int_step: bool,
}

impl<'a> GdbTarget<'a> {
    pub fn new(
        session: &'a mut Session,
        limits: &'a Limits,
        report: &'a mut dyn FnMut(&mut Session) -> ControlFlow<()>,
        listener: &'a TcpListener,
    ) -> GdbTarget<'a> {
        GdbTarget {
            session,
            limits,
            report,
            listener,
            sw: BTreeSet::new(),
            hw: BTreeSet::new(),
            watch: Vec::new(),
            step: false,
            final_stop: None,
            quit: false,
            said_int_step: false,
        }
    }

    /// Drops gdb's breakpoints and watchpoints (it detached).
    pub fn forget_breakpoints(&mut self) {
        self.sw.clear();
        self.hw.clear();
        self.watch.clear();
        self.session.m.set_watchpoints(Vec::new());
    }

    fn state(&mut self) -> Result<CpuState, TargetError<anyhow::Error>> {
        self.session
            .cpu_state()
            .map_err(|e| TargetError::Fatal(anyhow::Error::new(e).context("reading the CPU state")))
    }

    fn breakpoints(&self) -> Vec<u32> {
        self.sw.union(&self.hw).copied().collect()
    }

    /// A second gdb knocking: refused, with a line on ringlab's stderr
    /// (gdb sees the connection closed).
    fn refuse_others(&self) {
        if self.listener.set_nonblocking(true).is_ok() {
            if let Ok((s, peer)) = self.listener.accept() {
                eprintln!("ringlab: refused a second gdb from {peer}: one is attached already");
                drop(s);
            }
            let _ = self.listener.set_nonblocking(false);
        }
    }

    /// Streams the guest's output and takes the console's input; false
    /// when the user quit from the console.
    fn report(&mut self) -> bool {
        if (self.report)(self.session).is_break() {
            self.quit = true;
            return false;
        }
        true
    }

    /// Runs (or steps) until something gdb must hear of, or gdb sends a
    /// byte (Ctrl-C, or any packet).
    fn run<C: ConnectionExt>(
        &mut self,
        conn: &mut C,
    ) -> Result<run_blocking::Event<SingleThreadStopReason<u32>>, RunErr<C::Error>> {
        if std::mem::take(&mut self.step) {
            let s = self
                .step_one()
                .map_err(|e| RunErr::Target(e.context("stepping")))?;
            if !self.report() {
                return Ok(run_blocking::Event::TargetStopped(
                    SingleThreadStopReason::Exited(crate::status::OK),
                ));
            }
            return Ok(run_blocking::Event::TargetStopped(self.stop_reason(s)));
        }
        loop {
            let slice_end = Instant::now() + SLICE;
            let bounds = Limits {
                max_icount: self.limits.max_icount,
                deadline: Some(self.limits.deadline.map_or(slice_end, |d| d.min(slice_end))),
                breakpoints: self.breakpoints(),
            };
            let s = self
                .session
                .run_until(&bounds)
                .map_err(|e| RunErr::Target(anyhow::Error::new(e.error).context("running")))?;
            if !self.report() {
                return Ok(run_blocking::Event::TargetStopped(
                    SingleThreadStopReason::Exited(crate::status::OK),
                ));
            }
            let go_on = match s {
                Stop::Timeout => !self.limits.expired(),
                // Stop-on events and POST codes are not asked for here.
                Stop::Event | Stop::PostCode { .. } => true,
                // HLT with nothing to wake it: a machine waits for ever
                // (a key, gdb's Ctrl-C, the timeout).
                Stop::Idle => {
                    std::thread::sleep(SLICE);
                    true
                }
                _ => false,
            };
            if !go_on {
                return Ok(run_blocking::Event::TargetStopped(self.stop_reason(s)));
            }
            self.refuse_others();
            if conn.peek().map_err(RunErr::Connection)?.is_some() {
                let b = conn.read().map_err(RunErr::Connection)?;
                return Ok(run_blocking::Event::IncomingData(b));
            }
        }
    }

    /// One instruction (`stepi`). On KVM a step that delivers an interrupt
    /// or runs INT n, INT3 or INTO is made on the interpreter by
    /// `Session::step` (the delivery clears TF, so KVM's single-step
    /// cannot stop at the handler's first instruction, where gdb's `stepi`
    /// and the other engines land); the moves are events (`monitor
    /// events`). gdb's user is told once, for INT n.
    fn step_one(&mut self) -> anyhow::Result<Stop> {
        if self.session.kind() == EngineKind::Kvm && !self.said_int_step {
            let st = self.session.cpu_state()?;
            if crate::session::at_software_interrupt(&self.session.m, &st) {
                self.said_int_step = true;
                eprintln!(
                    "ringlab: stepi of INT n on kvm runs on the interpreter (INT n clears \
                     TF: KVM's single-step would run the whole handler)"
                );
            }
        }
        Ok(self.session.step()?)
    }

    /// What gdb is told of a stop.
    pub(super) fn stop_reason(&mut self, s: Stop) -> SingleThreadStopReason<u32> {
        use SingleThreadStopReason as R;
        let r = stop_reason(&s, &self.hw, &self.sw);
        if s.is_final() || matches!(s, Stop::Budget | Stop::Timeout) {
            eprintln!("ringlab: {s} (told to gdb as {})", reason_text(&r));
            self.final_stop = Some(s);
        }
        if let R::Exited(_) = r {
            self.final_stop.get_or_insert(Stop::Quit);
        }
        r
    }
}

/// The stop gdb hears of, for a stop of the engines:
/// - a breakpoint: SwBreak, or HwBreak when only `hbreak` set it;
/// - a watchpoint: Watch with the watchpoint's address;
/// - a step: DoneStep;
/// - the guest ending the run (isa-debug-exit, Bochs' shutdown port, a
///   reset, the end of a `--type-after` script, Ctrl-A x): Exited with
///   ringlab's exit status for it;
/// - dead ends kept for looking at: a triple fault is SIGSEGV, HLT with
///   interrupts off or a panic loop SIGSTOP, the instruction budget
///   SIGXCPU, the timeout SIGALRM (continuing stops there again).
pub fn stop_reason(
    s: &Stop,
    hw: &BTreeSet<u32>,
    sw: &BTreeSet<u32>,
) -> SingleThreadStopReason<u32> {
    use SingleThreadStopReason as R;
    match *s {
        Stop::Breakpoint { addr } if hw.contains(&addr) && !sw.contains(&addr) => R::HwBreak(()),
        Stop::Breakpoint { .. } => R::SwBreak(()),
        Stop::Watchpoint { addr, kind } => R::Watch {
            tid: (),
            kind: match kind {
                WatchKind::Write => GdbWatch::Write,
                WatchKind::Read => GdbWatch::Read,
                WatchKind::Access => GdbWatch::ReadWrite,
            },
            addr,
        },
        Stop::Stepped => R::DoneStep,
        Stop::GuestExit { .. } | Stop::Shutdown | Stop::Reset | Stop::InputDone | Stop::Quit => {
            R::Exited(crate::status::for_stop(s))
        }
        Stop::TripleFault => R::Signal(Signal::SIGSEGV),
        Stop::Halted | Stop::Spinning | Stop::Idle => R::Signal(Signal::SIGSTOP),
        Stop::Budget => R::Signal(Signal::SIGXCPU),
        Stop::Timeout => R::Signal(Signal::SIGALRM),
        Stop::Event | Stop::PostCode { .. } => R::Signal(Signal::SIGTRAP),
    }
}

fn reason_text(r: &SingleThreadStopReason<u32>) -> String {
    match r {
        SingleThreadStopReason::Exited(c) => format!("an exit with status {c}"),
        SingleThreadStopReason::Signal(s) => format!("signal {s}"),
        other => format!("{other:?}"),
    }
}

/// Why waiting for a stop failed.
pub enum RunErr<C> {
    Target(anyhow::Error),
    Connection(C),
}

/// gdbstub's blocking event loop over the target.
pub enum EventLoop<'a> {
    #[allow(dead_code)]
    Never(std::marker::PhantomData<&'a ()>),
}

impl<'a> BlockingEventLoop for EventLoop<'a> {
    type Target = GdbTarget<'a>;
    type Connection = Box<dyn ConnectionExt<Error = std::io::Error>>;
    type StopReason = SingleThreadStopReason<u32>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut GdbTarget<'a>,
        conn: &mut Self::Connection,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        WaitForStopReasonError<anyhow::Error, <Self::Connection as Connection>::Error>,
    > {
        target.run(conn).map_err(|e| match e {
            RunErr::Target(e) => WaitForStopReasonError::Target(e),
            RunErr::Connection(e) => WaitForStopReasonError::Connection(e),
        })
    }

    fn on_interrupt(
        _target: &mut GdbTarget<'a>,
    ) -> Result<Option<Self::StopReason>, anyhow::Error> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

impl Target for GdbTarget<'_> {
    type Arch = X86_SSE;
    type Error = anyhow::Error;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

/// The segment registers in gdb's order, as the CPU state indexes them.
const GDB_SEGS: [Seg; 6] = [Seg::Cs, Seg::Ss, Seg::Ds, Seg::Es, Seg::Fs, Seg::Gs];

fn seg_values(st: &CpuState) -> [u32; 6] {
    GDB_SEGS.map(|s| st.segs[s as usize].selector as u32)
}

impl SingleThreadBase for GdbTarget<'_> {
    fn read_registers(&mut self, regs: &mut X86CoreRegs) -> TargetResult<(), Self> {
        let st = self.state()?;
        let r = &st.regs;
        let [cs, ss, ds, es, fs, gs] = seg_values(&st);
        *regs = X86CoreRegs {
            eax: r[0],
            ecx: r[1],
            edx: r[2],
            ebx: r[3],
            esp: r[4],
            ebp: r[5],
            esi: r[6],
            edi: r[7],
            eip: st.eip,
            eflags: st.eflags,
            segments: X86SegmentRegs {
                cs,
                ss,
                ds,
                es,
                fs,
                gs,
            },
            // The machine's CPU has no x87 and no SSE (its CPUID says so):
            // gdb's i386 layout has them, as zeros.
            ..Default::default()
        };
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86CoreRegs) -> TargetResult<(), Self> {
        let mut st = self.state()?;
        st.regs = [
            regs.eax, regs.ecx, regs.edx, regs.ebx, regs.esp, regs.ebp, regs.esi, regs.edi,
        ];
        st.eip = regs.eip;
        // Bit 1 is always set; VM and RF are not gdb's to flip here.
        st.eflags = (regs.eflags | flags::FIXED) & !(flags::VM | flags::RF)
            | (st.eflags & (flags::VM | flags::RF));
        let s = &regs.segments;
        let wanted = [s.cs, s.ss, s.ds, s.es, s.fs, s.gs];
        for (seg, v) in GDB_SEGS.into_iter().zip(wanted) {
            let old = st.segs[seg as usize];
            if v as u16 as u32 != v {
                return Err(TargetError::NonFatal);
            }
            if v as u16 == old.selector {
                continue;
            }
            st.segs[seg as usize] =
                load_segment(&self.session.m, &st, old, v as u16).ok_or(TargetError::NonFatal)?;
        }
        self.session
            .set_cpu_state(&st)
            .map_err(|e| TargetError::Fatal(anyhow::Error::new(e).context("writing registers")))
    }

    fn read_addrs(&mut self, start: u32, data: &mut [u8]) -> TargetResult<usize, Self> {
        let st = self.state()?;
        let n = paging::peek_linear(&self.session.m, Regs::of(&st), start, data);
        if n == 0 && !data.is_empty() {
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u32, data: &[u8]) -> TargetResult<(), Self> {
        let st = self.state()?;
        // Every byte's page first: a write is all or nothing.
        let mut phys = Vec::with_capacity(data.len());
        for i in 0..data.len() as u32 {
            let lin = start.wrapping_add(i);
            let p = crate::inspect::linear_to_phys(&self.session.m, &st, lin)
                .ok_or(TargetError::Errno(EFAULT))?;
            phys.push(p);
        }
        for (&p, &b) in phys.iter().zip(data) {
            // RAM only (noted as written, so cached code there is dropped);
            // ROM and device registers are not gdb's to write.
            self.session
                .m
                .mem
                .write(p as u64, &[b])
                .map_err(|_| TargetError::Errno(EFAULT))?;
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

/// Loads segment register cache for `selector` as a MOV to it would,
/// without its checks: real mode and virtual-8086 mode take selector * 16;
/// protected mode the descriptor from the GDT or LDT. None when the
/// descriptor cannot be read.
fn load_segment(m: &machine::Machine, st: &CpuState, old: Segment, sel: u16) -> Option<Segment> {
    if !st.protected() || st.v86() {
        return Some(Segment::real_mode_load(old, sel));
    }
    if sel & !3 == 0 {
        return Some(Segment::from_descriptor(sel, 0));
    }
    let (base, limit) = if sel & 4 != 0 {
        (st.ldtr.base, st.ldtr.limit)
    } else {
        (st.gdtr.base, st.gdtr.limit as u32)
    };
    let off = (sel & !7) as u32;
    if off + 7 > limit {
        return None;
    }
    let lo = crate::inspect::read_value(m, st, base.wrapping_add(off), 4)?;
    let hi = crate::inspect::read_value(m, st, base.wrapping_add(off + 4), 4)?;
    Some(Segment::from_descriptor(sel, (hi as u64) << 32 | lo as u64))
}

impl SingleThreadResume for GdbTarget<'_> {
    // A signal gdb passes back (after a SIGSEGV stop, say) has nowhere to
    // go on a bare machine: ignored, as QEMU does.
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = false;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for GdbTarget<'_> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = true;
        Ok(())
    }
}

impl Breakpoints for GdbTarget<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for GdbTarget<'_> {
    fn add_sw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        self.sw.insert(addr);
        Ok(true)
    }
    fn remove_sw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.sw.remove(&addr))
    }
}

impl HwBreakpoint for GdbTarget<'_> {
    fn add_hw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        self.hw.insert(addr);
        Ok(true)
    }
    fn remove_hw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw.remove(&addr))
    }
}

fn watch_of(addr: u32, len: u32, kind: GdbWatch) -> Watchpoint {
    Watchpoint {
        addr,
        len: len.max(1),
        kind: match kind {
            GdbWatch::Write => WatchKind::Write,
            GdbWatch::Read => WatchKind::Read,
            GdbWatch::ReadWrite => WatchKind::Access,
        },
    }
}

impl HwWatchpoint for GdbTarget<'_> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u32,
        len: u32,
        kind: GdbWatch,
    ) -> TargetResult<bool, Self> {
        let w = watch_of(addr, len, kind);
        if !self.watch.contains(&w) {
            self.watch.push(w);
        }
        self.session.m.set_watchpoints(self.watch.clone());
        Ok(true)
    }
    fn remove_hw_watchpoint(
        &mut self,
        addr: u32,
        len: u32,
        kind: GdbWatch,
    ) -> TargetResult<bool, Self> {
        let w = watch_of(addr, len, kind);
        let Some(i) = self.watch.iter().position(|x| *x == w) else {
            return Ok(false);
        };
        self.watch.remove(i);
        self.session.m.set_watchpoints(self.watch.clone());
        Ok(true)
    }
}

impl MonitorCmd for GdbTarget<'_> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let text = match std::str::from_utf8(cmd) {
            Ok(c) => super::monitor::run(self.session, c.trim()),
            Err(_) => "ringlab: a monitor command is text (UTF-8)\n".to_string(),
        };
        for line in text.lines() {
            gdbstub::outputln!(out, "{}", line);
        }
        Ok(())
    }
}
