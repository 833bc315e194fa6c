//! The native oracle: runs 32-bit user-mode code on this host's real CPU,
//! so the differential test `tests/tests/native_oracle` can compare the
//! engines against the hardware itself (issue 20).
//!
//! How: [`Native::spawn`] forks a child that maps a fixed set of pages
//! below 4 GiB ([`Region`]s, chosen by the caller), asks to be traced
//! (`PTRACE_TRACEME`) and stops itself with SIGSTOP. Between fork and that
//! stop the child only makes raw system calls (`mmap`, `prctl`, `ptrace`,
//! `kill`, `_exit`): the test process has other threads, so nothing that
//! might take a lock (malloc, stdio) is safe there.
//!
//! One child then runs many sequences ([`Native::run`]): the parent writes
//! code and data into it through `/proc/PID/mem` (which writes read-only
//! pages too, as a debugger writes breakpoints), sets its registers with
//! `PTRACE_SETREGS` with CS = 0x23 (Linux's `__USER32_CS`, a 32-bit code
//! segment in the GDT of every x86-64 kernel) and DS = ES = SS = 0x2B
//! (`__USER_DS`), so the CPU runs the code in compatibility mode exactly as
//! a 32-bit process would run it, and continues it. The code ends with INT3
//! (a SIGTRAP) or faults; either way the kernel stops the child before any
//! signal is delivered, the parent reads the registers, the signal's
//! `siginfo` (`PTRACE_GETSIGINFO`) and memory, and the signal is never
//! delivered: the next run simply sets new registers.
//!
//! Linux turns exceptions into signals (arch/x86/kernel/traps.c): #DE ->
//! SIGFPE, #UD -> SIGILL, #GP, #BR and INTO's #OF -> SIGSEGV with `si_code`
//! SI_KERNEL, #PF -> SIGSEGV with SEGV_MAPERR or SEGV_ACCERR and `si_addr`
//! = CR2, #AC -> SIGBUS with BUS_ADRALN, INT3 -> SIGTRAP with SI_KERNEL and
//! EIP after the INT3. [`Outcome::signo`] and friends keep the raw values;
//! the test maps them to vectors.
//!
//! A run that does not stop within its deadline (a runaway loop) is killed
//! and the next run forks a fresh child.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Linux x86-64's 32-bit user code selector (`__USER32_CS`, GDT entry 4).
pub const USER32_CS: u64 = 0x23;
/// Linux x86-64's user data selector (`__USER_DS`, GDT entry 5), valid as
/// a 32-bit data segment.
pub const USER_DS: u64 = 0x2B;

/// A page-aligned range the child maps at a fixed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub addr: u32,
    pub len: u32,
    pub writable: bool,
    pub executable: bool,
}

/// The 32-bit registers a run starts from and ends with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    pub eip: u32,
    pub eflags: u32,
}

/// How a run ended: the registers at the stop and the signal the kernel
/// would have delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// EFLAGS as the run started: the kernel keeps some bits its own (IF,
    /// IOPL, and ID, which the test process may have set), so this can
    /// differ from what the caller asked for.
    pub start_eflags: u32,
    pub regs: Regs,
    /// The segment selectors at the stop: ES, CS, SS, DS, FS, GS.
    pub sregs: [u16; 6],
    pub signo: i32,
    pub si_code: i32,
    /// `si_addr` (the fault address of SIGSEGV/SIGBUS page faults).
    pub si_addr: u64,
}

/// Why a native run did not produce an [`Outcome`].
#[derive(Debug)]
pub enum NativeError {
    /// A system call failed (its name and errno).
    Sys(&'static str, io::Error),
    /// The child could not map the region at this address (a fixed
    /// mapping below `vm.mmap_min_addr` needs CAP_SYS_RAWIO, or something
    /// is already there).
    Map(u32),
    /// The child exited or was killed (wait status).
    Died(i32),
    /// The child did not stop before the deadline and was killed.
    Timeout,
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeError::Sys(what, e) => write!(f, "{what}: {e}"),
            NativeError::Map(addr) => write!(
                f,
                "the native child cannot map {addr:#x} (below vm.mmap_min_addr, or taken)"
            ),
            NativeError::Died(status) => {
                write!(f, "the native child died (wait status {status:#x})")
            }
            NativeError::Timeout => write!(f, "the native child did not stop in time (killed)"),
        }
    }
}

impl std::error::Error for NativeError {}

fn sys(what: &'static str) -> NativeError {
    NativeError::Sys(what, io::Error::last_os_error())
}

/// A traced child ready to run 32-bit code in its fixed regions.
pub struct Native {
    regions: Vec<Region>,
    child: Option<Child>,
    /// Children forked so far (a new one after each death or timeout).
    pub spawned: u64,
}

struct Child {
    pid: libc::pid_t,
    mem: File,
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: kill and waitpid on our own child's pid; reaping it
        // here keeps no zombie behind.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, libc::__WALL);
        }
    }
}

impl Native {
    /// A child with `regions` mapped (zero-filled), stopped and traced.
    /// Fails with the reason if the host refuses (no ptrace, no fixed
    /// mappings at those addresses, no 32-bit code segment).
    pub fn spawn(regions: &[Region]) -> Result<Native, NativeError> {
        let mut n = Native {
            regions: regions.to_vec(),
            child: None,
            spawned: 0,
        };
        n.child = Some(n.fork()?);
        Ok(n)
    }

    fn fork(&mut self) -> Result<Child, NativeError> {
        self.spawned += 1;
        let regions = self.regions.clone();
        // SAFETY: fork in a multithreaded process; the child below makes
        // only raw system calls (no allocation, no locks) and never
        // returns into Rust code that could.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(sys("fork"));
        }
        if pid == 0 {
            // SAFETY: the child side: async-signal-safe system calls on
            // memory it owns (fixed mappings at addresses the caller
            // chose below 4 GiB, nowhere near the test binary, which a
            // 64-bit PIE kernel places far above), then stop.
            unsafe { child_main(&regions) }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r != pid {
            return Err(sys("waitpid"));
        }
        if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP) {
            // The child exits with the number of the step that failed.
            if libc::WIFEXITED(status) {
                let k = libc::WEXITSTATUS(status) - 10;
                if let Some(r) = usize::try_from(k).ok().and_then(|k| regions.get(k)) {
                    return Err(NativeError::Map(r.addr));
                }
            }
            return Err(NativeError::Died(status));
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
        {
            Ok(mem) => Ok(Child { pid, mem }),
            Err(e) => {
                // SAFETY: kill and reap our own stopped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, libc::__WALL);
                }
                Err(NativeError::Sys("open /proc/PID/mem", e))
            }
        }
    }

    fn child(&mut self) -> Result<&mut Child, NativeError> {
        if self.child.is_none() {
            self.child = Some(self.fork()?);
        }
        Ok(self.child.as_mut().unwrap())
    }

    /// Writes `bytes` at `addr` in the child (any mapped page, read-only
    /// ones included).
    pub fn write(&mut self, addr: u32, bytes: &[u8]) -> Result<(), NativeError> {
        let c = self.child()?;
        c.mem
            .write_all_at(bytes, addr as u64)
            .map_err(|e| NativeError::Sys("write /proc/PID/mem", e))
    }

    /// Reads `len` bytes at `addr` from the child.
    pub fn read(&mut self, addr: u32, len: usize) -> Result<Vec<u8>, NativeError> {
        let c = self.child()?;
        let mut v = vec![0; len];
        c.mem
            .read_exact_at(&mut v, addr as u64)
            .map_err(|e| NativeError::Sys("read /proc/PID/mem", e))?;
        Ok(v)
    }

    /// Runs the child from `start` until it stops on a signal or
    /// `timeout` passes. Code and data must already be written.
    pub fn run(&mut self, start: &Regs, timeout: Duration) -> Result<Outcome, NativeError> {
        let r = self.run_inner(start, timeout);
        if matches!(r, Err(NativeError::Died(_) | NativeError::Timeout)) {
            self.child = None; // Drop kills and reaps; the next run forks.
        }
        r
    }

    fn run_inner(&mut self, start: &Regs, timeout: Duration) -> Result<Outcome, NativeError> {
        let pid = self.child()?.pid;
        // SAFETY: user_regs_struct is plain data; all zero is valid.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETREGS writes one user_regs_struct into `regs`;
        // the child is in a ptrace stop.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) } < 0 {
            return Err(sys("PTRACE_GETREGS"));
        }
        let g = &start.gpr;
        regs.rax = g[0] as u64;
        regs.rcx = g[1] as u64;
        regs.rdx = g[2] as u64;
        regs.rbx = g[3] as u64;
        regs.rsp = g[4] as u64;
        regs.rbp = g[5] as u64;
        regs.rsi = g[6] as u64;
        regs.rdi = g[7] as u64;
        regs.rip = start.eip as u64;
        // The kernel keeps IF and IOPL its own and lets a tracer set only
        // the arithmetic flags, DF, TF, NT, RF and AC.
        regs.eflags = start.eflags as u64;
        regs.cs = USER32_CS;
        regs.ss = USER_DS;
        regs.ds = USER_DS;
        regs.es = USER_DS;
        // FS and GS too: loaded with a flat data selector they have base
        // 0 (a 64-bit process's FS points at its thread's TLS, a base the
        // emulator could not know).
        regs.fs = USER_DS;
        regs.gs = USER_DS;
        regs.fs_base = 0;
        regs.gs_base = 0;
        // Not a system call: nothing for the kernel to restart.
        regs.orig_rax = u64::MAX;
        // SAFETY: PTRACE_SETREGS reads one user_regs_struct from `regs`.
        if unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &regs) } < 0 {
            return Err(sys("PTRACE_SETREGS"));
        }
        // SAFETY: as above, read back what the kernel accepted.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) } < 0 {
            return Err(sys("PTRACE_GETREGS"));
        }
        let start_eflags = regs.eflags as u32;
        // SAFETY: continue the stopped child without delivering a signal.
        if unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, 0) } < 0 {
            return Err(sys("PTRACE_CONT"));
        }
        let status = wait_stop(pid, timeout)?;
        if !libc::WIFSTOPPED(status) {
            return Err(NativeError::Died(status));
        }
        let signo = libc::WSTOPSIG(status);
        // SAFETY: as above, the child is stopped again.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) } < 0 {
            return Err(sys("PTRACE_GETREGS"));
        }
        // SAFETY: siginfo_t is plain data; all zero is valid.
        let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETSIGINFO writes one siginfo_t into `si`.
        if unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &mut si) } < 0 {
            return Err(sys("PTRACE_GETSIGINFO"));
        }
        // SAFETY: si_addr reads the union member every fault signal
        // (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) fills in.
        let si_addr = unsafe { si.si_addr() } as u64;
        Ok(Outcome {
            start_eflags,
            sregs: [
                regs.es as u16,
                regs.cs as u16,
                regs.ss as u16,
                regs.ds as u16,
                regs.fs as u16,
                regs.gs as u16,
            ],
            regs: Regs {
                gpr: [
                    regs.rax as u32,
                    regs.rcx as u32,
                    regs.rdx as u32,
                    regs.rbx as u32,
                    regs.rsp as u32,
                    regs.rbp as u32,
                    regs.rsi as u32,
                    regs.rdi as u32,
                ],
                eip: regs.rip as u32,
                eflags: regs.eflags as u32,
            },
            signo,
            si_code: si.si_code,
            si_addr,
        })
    }
}

/// Waits for `pid` to stop or die, for at most `timeout`; kills it after.
fn wait_stop(pid: libc::pid_t, timeout: Duration) -> Result<i32, NativeError> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let mut status = 0;
        // SAFETY: polling our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 {
            return Err(sys("waitpid"));
        }
        if start.elapsed() > timeout {
            return Err(NativeError::Timeout);
        }
        // Most sequences take microseconds: yield first, then sleep.
        spins += 1;
        if spins < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The child between fork and its first stop. Exits with 10 + the index
/// of a region it could not map, 2 if ptrace was refused, 3 if the stop
/// failed.
///
/// # Safety
/// Only in the child of a fork: it maps over fixed addresses.
unsafe fn child_main(regions: &[Region]) -> ! {
    // SAFETY: raw system calls with plain arguments; the mappings are
    // MAP_FIXED_NOREPLACE, so they never replace anything already mapped.
    unsafe {
        // Die with the test process rather than linger stopped.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        for (k, r) in regions.iter().enumerate() {
            let mut prot = libc::PROT_READ;
            if r.writable {
                prot |= libc::PROT_WRITE;
            }
            if r.executable {
                prot |= libc::PROT_EXEC;
            }
            let p = libc::mmap(
                r.addr as usize as *mut libc::c_void,
                r.len as usize,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            if p != r.addr as usize as *mut libc::c_void {
                libc::_exit(10 + k as i32);
            }
        }
        if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
            libc::_exit(2);
        }
        libc::kill(libc::getpid(), libc::SIGSTOP);
        // The parent never continues the child here (it sets EIP first).
        libc::_exit(3);
    }
}
