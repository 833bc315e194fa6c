//! A vCPU that makes no progress: what KVM does not tell user space.
//!
//! KVM hands user space the exits it cannot handle itself. Some it
//! handles by retrying, for ever: the run loop then sees nothing but its
//! own slice timer, RIP standing still, the process busy in the kernel. A
//! guest can also stand still legitimately — a boot sector's `jmp $` with
//! interrupts on must run until `--timeout` — so standing still alone
//! proves nothing. At every timer exit (`run`) this module compares the
//! vCPU's registers with the last sample:
//!
//! 1. **A write to the ROM the CPU makes itself** (`drop_rom_write`). A
//!    segment load whose descriptor lies in the firmware ROM with its
//!    accessed bit clear makes the CPU set the bit (SDM Vol 3A 3.4.5.1);
//!    LTR and a task switch set the busy bit of a TSS descriptor (Vol 3A
//!    7.2.2, 7.3). These are locked writes to a read-only slot, which KVM
//!    retries inside the kernel instead of handing them to user space (on
//!    kvm-pvm and on kvm_amd alike). A PC's ROM ignores the write and the
//!    CPU goes on. So: after one slice standing still with a GDT or LDT
//!    in the ROM holding such a descriptor, that one instruction runs
//!    single-stepped with the ROM's slots writable, and the tables' bytes
//!    are put back as they were: the write dropped, as on a PC.
//! 2. **Any other standstill** (`probe`, the watchdog). After
//!    `WEDGED_AFTER` with the registers unchanged and no exit to user
//!    space, unless the instruction there is a jump that may land on
//!    itself (a spin), the next entry single-steps, with a short slice: an
//!    instruction that retires changes the registers (a legitimate loop
//!    whose samples happened to fall on one instruction: the watch starts
//!    again); one that does not leaves the vCPU where it was — when the
//!    slice ends, or at a debug exit KVM reports without the step done
//!    (kvm-pvm does, for the write it retries) — and the run stops with
//!    `KvmError::NoProgress`, naming CS:EIP, the mode, the instruction,
//!    what KVM's statistics (`crate::stats`) counted meanwhile and the
//!    likely cause.
//!
//! The check is off while a debugger has breakpoints or watchpoints set
//! on the vCPU (the single step would take their debug exits) and while
//! stepping (every entry retires an instruction or reports why not).

use crate::debug::GuestDebug;
use crate::error::KvmError;
use crate::exits::{self, Action, Exit};
use crate::insn;
use crate::run::{enter, LoopState};
use crate::stats::Counters;
use crate::vcpu::{read_regs, read_state, Vcpu};
use machine::cpu::{cr0, CpuState};
use machine::x86::paging;
use machine::Machine;
use std::time::{Duration, Instant};

/// How long the registers must stand still before the probe.
pub(crate) const WEDGED_AFTER: Duration = Duration::from_secs(1);
/// The probe's slice: a single step that has not retired by then never
/// will (KVM retries in microseconds).
pub(crate) const PROBE_SLICE: Duration = Duration::from_millis(200);

/// The registers and counters when the vCPU last moved.
pub(crate) struct Window {
    regs: Regs,
    user_exits: u64,
    injected: u64,
    since: Instant,
    counters: Option<Counters>,
    /// `drop_rom_write` was tried in this window.
    rom_tried: bool,
}

/// The general registers, RIP, RFLAGS and the segment selectors: what
/// any instruction that retires changes (but a jump to itself).
type Regs = ([u64; 18], [u16; 6]);

fn regs_of(v: &impl Vcpu) -> Result<Regs, KvmError> {
    let r = v.regs()?;
    let s = v.sregs()?;
    Ok((
        [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags,
        ],
        [s.cs, s.ss, s.ds, s.es, s.fs, s.gs].map(|g| g.selector),
    ))
}

/// Exits other than the slice timer's, all kinds.
fn user_exits(st: &LoopState) -> u64 {
    st.exits
        .iter()
        .filter(|(k, _)| **k != "timer")
        .map(|(_, n)| n)
        .sum()
}

/// At a timer exit (not stepping): starts a new window when the vCPU
/// moved; else drops a pending ROM write once, and after `WEDGED_AFTER`
/// arms the probe (`st.probing`) for the next entry.
pub(crate) fn at_timer_exit<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &mut Machine,
    memory: &mut impl FnMut(&Machine, bool) -> Result<(), KvmError>,
) -> Result<(), KvmError> {
    let regs = regs_of(v)?;
    let (user, injected) = (user_exits(st), st.injected);
    let moved = match &st.stall {
        Some(w) => w.regs != regs || w.user_exits != user || w.injected != injected,
        None => true,
    };
    if moved {
        st.stall = Some(Window {
            regs,
            user_exits: user,
            injected,
            since: Instant::now(),
            counters: None,
            rom_tried: false,
        });
        return Ok(());
    }
    let w = st.stall.as_mut().expect("a window");
    // KVM's counters from the first slice standing still (one read per
    // standstill, not per timer exit), for the message.
    if w.counters.is_none() {
        w.counters = st.stats.as_ref().and_then(|s| s.read());
    }
    if !w.rom_tried {
        w.rom_tried = true;
        if st.drop_rom_writes && drop_rom_write(v, st, m, memory)? {
            return Ok(());
        }
    }
    let w = st.stall.as_ref().expect("a window");
    if w.since.elapsed() >= st.wedged_after && st.guest_debug == GuestDebug::default() {
        let s = read_regs(v, st.last.as_ref())?;
        if insn::may_retire_in_place(m, &s) {
            // It retires, landing where it was: a spin, legitimately.
            st.stall = None;
        } else {
            st.probing = true;
            st.probes += 1;
        }
    }
    Ok(())
}

/// After the probe's entry, with the exit it ended with: an error when the
/// vCPU is where it was; else the watch starts over, and `Ok(true)` says
/// the exit was the probe's own debug exit (consumed here), `Ok(false)`
/// another exit, which the loop handles as usual.
pub(crate) fn after_probe<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &Machine,
    exit: &Exit<'_>,
) -> Result<bool, KvmError> {
    st.probing = false;
    v.set_debug(&st.guest_debug)?;
    // The instruction there cannot retire in place (`at_timer_exit`), so
    // the registers as they were mean it did not retire, whether the slice
    // ended or KVM reported the step anyway (kvm-pvm does, for a write it
    // retries).
    let still = match (&st.stall, exit) {
        (Some(w), Exit::Intr | Exit::Debug { .. }) => w.regs == regs_of(v)?,
        _ => false,
    };
    if !still {
        st.stall = None;
        return Ok(matches!(exit, Exit::Debug { .. }));
    }
    let w = st.stall.take().expect("a window");
    let s = read_state(v, st.last.as_ref())?;
    let counted = match (w.counters, st.stats.as_ref().and_then(|s| s.read())) {
        (Some(a), Some(b)) => Some(b.since(&a)),
        _ => None,
    };
    Err(no_progress(
        m,
        &s,
        w.since.elapsed(),
        counted,
        st.drop_rom_writes,
    ))
}

/// The error for a vCPU that stood still for `stood` and did not retire a
/// single-stepped instruction.
fn no_progress(
    m: &Machine,
    s: &CpuState,
    stood: Duration,
    counted: Option<Counters>,
    rom_writes_dropped: bool,
) -> KvmError {
    let insn = insn::text_at(m, s).unwrap_or_else(|| "an instruction that does not decode".into());
    let kernel = match counted {
        Some(c) => format!(
            "; meanwhile KVM counted {} exits handled in the kernel, {} instructions emulated \
             ({} failed) and {} page faults taken",
            c.exits.saturating_sub(c.signal_exits),
            c.insn_emulation,
            c.insn_emulation_fail,
            c.pf_taken
        ),
        None => "; KVM's statistics are not available on this host".into(),
    };
    let cause = if !pending_rom_writes(m, s).is_empty() {
        let how = if rom_writes_dropped {
            "dropping it did not help"
        } else {
            "dropping such writes is off"
        };
        "the CPU's own write of a descriptor's accessed or busy bit into the firmware ROM \
         (a locked write to a read-only slot, which KVM retries for ever; "
            .to_string()
            + how
            + ")"
    } else if counted.is_some_and(|c| c.insn_emulation_fail > 0) {
        "KVM's instruction emulator fails on this instruction and retries it".into()
    } else if counted.is_some_and(|c| c.pf_taken > 1000) {
        "a page fault KVM resolves and meets again, for ever (a memory slot or MMU problem)".into()
    } else {
        "unknown: KVM keeps re-entering the guest without reporting why".into()
    };
    KvmError::NoProgress(Box::new(Standstill {
        at: format!("{:04x}:{:08x}", s.segs[1].selector, s.eip),
        mode: s.mode_name(),
        insn,
        stood_ms: stood.as_millis() as u64,
        kernel,
        cause,
        state: crate::state::dump(s),
    }))
}

/// What `KvmError::NoProgress` reports: where the vCPU stands (CS:EIP, the
/// mode, the instruction), for how long, what KVM counted meanwhile, the
/// likely cause and the register dump.
#[derive(Debug)]
pub struct Standstill {
    pub at: String,
    pub mode: String,
    pub insn: String,
    pub stood_ms: u64,
    /// What KVM's statistics counted meanwhile (a clause starting "; ").
    pub kernel: String,
    pub cause: String,
    pub state: String,
}

impl std::fmt::Display for Standstill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the vCPU makes no progress: KVM re-enters it at {} ({}) without `{}` retiring; \
             the registers stood still for {} ms and a single step did not complete{}. \
             Likely cause: {}; vCPU state:\n{}",
            self.at, self.mode, self.insn, self.stood_ms, self.kernel, self.cause, self.state
        )
    }
}

/// Where a descriptor table byte lies in the ROM: its physical address.
fn rom_phys(m: &Machine, s: &CpuState, lin: u32) -> Option<u32> {
    let rom = m.rom_map()?;
    let phys = if s.cr0 & cr0::PG != 0 {
        paging::linear_to_phys(paging::Regs::of(s), lin, paging::ram_reader(m))?
    } else {
        lin
    };
    let in_low = phys >= rom.low && phys < 0x10_0000;
    let in_high = phys as u64 >= rom.high;
    (in_low || in_high).then_some(phys)
}

/// The descriptors of the GDT and LDT in use that lie in the ROM, as
/// (physical address, bytes), when at least one of them waits for a write
/// the CPU makes itself: a present code or data descriptor with its
/// accessed bit clear, or an available TSS (LTR and task switches set its
/// busy bit). Empty otherwise.
fn pending_rom_writes(m: &Machine, s: &CpuState) -> Vec<(u32, [u8; 8])> {
    if m.rom_map().is_none() {
        return vec![];
    }
    let mut tables = vec![(s.gdtr.base, s.gdtr.limit as u32)];
    if s.ldtr.selector & !3 != 0 {
        tables.push((s.ldtr.base, s.ldtr.limit));
    }
    let mut found = vec![];
    let mut pending = false;
    for (base, limit) in tables {
        // At most 8192 descriptors; only whole ones.
        let count = ((limit as u64 + 1) / 8).min(8192) as u32;
        for i in 0..count {
            let lin = base.wrapping_add(i * 8);
            let Some(phys) = rom_phys(m, s, lin) else {
                continue;
            };
            let mut d = [0u8; 8];
            for (k, b) in d.iter_mut().enumerate() {
                *b = m.peek_phys(phys.wrapping_add(k as u32)).unwrap_or(0);
            }
            // Byte 5: P (bit 7), S (bit 4), type (bits 0-3).
            let access = d[5];
            let present = access & 0x80 != 0;
            let code_data = access & 0x10 != 0;
            let kind = access & 0x0F;
            if present && ((code_data && kind & 1 == 0) || (!code_data && matches!(kind, 1 | 9))) {
                pending = true;
            }
            found.push((phys, d));
        }
    }
    if pending {
        found
    } else {
        vec![]
    }
}

/// Host address of ROM byte `phys` (in either alias), where the vCPU's
/// write went.
fn rom_host(m: &Machine, phys: u32) -> Option<*mut u8> {
    let rom = m.rom_map()?;
    if phys >= rom.low && phys < 0x10_0000 {
        // The low alias is RAM the machine marks read-only for the guest.
        if (phys as usize) + 8 > m.mem.size() {
            return None;
        }
        // SAFETY: phys + 8 is within RAM (checked above), so the pointer
        // stays inside the machine's RAM mapping.
        Some(unsafe { m.mem.host_base().add(phys as usize) })
    } else if phys as u64 >= rom.high && phys as u64 + 8 <= 1 << 32 {
        // SAFETY: [phys, phys + 8) lies in the high alias, which maps the
        // ROM's host copy byte for byte from rom.high.
        Some(unsafe { rom.host.add((phys as u64 - rom.high) as usize) })
    } else {
        None
    }
}

/// Runs the instruction at CS:EIP single-stepped with the ROM writable and
/// puts the ROM's descriptor tables back as they were (see the module
/// doc). True when it was done (a pending write was there).
fn drop_rom_write<V: Vcpu>(
    v: &mut V,
    st: &mut LoopState,
    m: &mut Machine,
    memory: &mut impl FnMut(&Machine, bool) -> Result<(), KvmError>,
) -> Result<bool, KvmError> {
    // Without a ROM nothing is read.
    if m.rom_map().is_none() {
        return Ok(false);
    }
    let s = read_regs(v, st.last.as_ref())?;
    let saved = pending_rom_writes(m, &s);
    if saved.is_empty() {
        return Ok(false);
    }
    memory(m, true)?;
    v.set_debug(&GuestDebug {
        single_step: true,
        ..st.guest_debug
    })?;
    v.set_immediate_exit(false);
    let exit = enter(v);
    v.set_debug(&st.guest_debug)?;
    for (phys, bytes) in &saved {
        if let Some(dst) = rom_host(m, *phys) {
            // SAFETY: `dst` and the 8 bytes after it lie in the machine's
            // own memory (`rom_host` checked the range), which nothing
            // else writes while the vCPU is out of the guest.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, 8) };
        }
    }
    memory(m, false)?;
    st.rom_writes_dropped += 1;
    let exit = exit?;
    *st.exits.entry(exit.kind()).or_default() += 1;
    st.io_pending = matches!(exit.kind(), "io" | "mmio");
    match exit {
        Exit::Debug { .. } | Exit::Intr => Ok(true),
        other => match exits::handle(other, m) {
            Action::Fail(why) => Err(KvmError::VcpuFailed {
                why,
                state: String::new(),
            }),
            _ => Ok(true),
        },
    }
}
