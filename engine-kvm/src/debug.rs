//! A debugger's breakpoints and data watchpoints on KVM, at full speed
//! where the hardware allows it.
//!
//! - **Breakpoints** (`Limits::breakpoints`, linear addresses) go first
//!   into the debug registers (DR0-DR3 with R/W = 00, SDM Vol 3A 17.2.4)
//!   when this host's debug registers work (see below): they match the
//!   linear address whatever the page tables say and change no memory.
//!   The others become INT3 (0xCC; HLT where INT3 is not intercepted,
//!   below) written over the first byte of the
//!   instruction at the breakpoint's *physical* address, the linear
//!   address translated through the guest's page tables, for the length
//!   of one `run` call: KVM_GUESTDBG_USE_SW_BP makes every #BP a
//!   KVM_EXIT_DEBUG, the original bytes are back before `run` returns, so
//!   no reader (the interpreter after a switch, the step UI, gdb's memory
//!   reads) ever sees a 0xCC.
//! - **Watchpoints** (`Machine::watchpoints`, linear ranges) use the debug
//!   registers: R/W = 01 for writes, 11 for reads and writes, lengths 1, 2
//!   or 4, aligned, so a range is cut into aligned pieces, and all pieces
//!   and breakpoints in registers share the four (`Unsupported` beyond).
//!   The x86 has no read-only data breakpoint: a read watchpoint uses 11
//!   and a hit whose bytes changed is taken for a write and not reported,
//!   as gdb does (so an instruction that reads and changes the value, ADD
//!   [x], 1, is not a read hit, and a write of the value already there
//!   is).
//!
//! What cannot be done at full speed is done exactly by single-stepping
//! (`Plan::stepping`): a breakpoint neither in a register nor patchable (its
//! page not present, or outside RAM: the ROM at the top of 4 GiB; for a
//! HLT patch, not a supervisor page) is compared with the PC before
//! every instruction, and the patches are
//! re-evaluated after every step so the run goes back to full speed as
//! soon as the page is mapped; watchpoints without working debug
//! registers are checked by decoding each instruction's memory accesses
//! (iced-x86's instruction info) before it runs.
//!
//! INT3 patches follow the page tables: before every entry into the guest
//! (so at every VM exit) each breakpoint is translated again with the
//! current CR0/CR3/CR4, a patch whose translation moved is taken back and
//! made at the new place, and a patched byte the guest overwrote (code
//! loaded over a breakpoint) is taken as the new original and patched
//! again. What is left: a guest that changes the mapping (a MOV CR3, a
//! page-table write) or loads code over a breakpoint and reaches it before
//! the next VM exit runs the instruction unseen; with working debug
//! registers that concerns only breakpoints beyond the registers left
//! free. The common case of it: a breakpoint set on a kernel's virtual
//! address before the kernel turns paging on is patched at the equal
//! physical address while paging is off (harmless there, but not where
//! the kernel's code will be) when that address is in RAM; outside RAM
//! (xv6's 0x80100000 and up) it cannot be patched, so the run
//! single-steps until paging maps it. A #BP from a patch whose linear address is not a breakpoint
//! (another address space maps that physical page elsewhere) is stepped
//! over; a #BP from the guest's own INT3 is handed back to the guest
//! (`Vcpu::inject_exception`), with EIP after it as on hardware.
//!
//! **Debug registers under QEMU's emulated SVM do not fire.** KVM loads
//! DR0-DR3 into the (emulated) CPU before VMRUN and puts DR7 in the VMCB;
//! QEMU's VMRUN (target/i386/tcg/sysemu/svm_helper.c, helper_vmrun) copies
//! DR7 from the VMCB with a plain `env->dr[7] = ...` and never calls
//! `cpu_x86_update_dr7`, which is what inserts TCG's breakpoints and
//! watchpoints for the enabled registers (target/i386/tcg/bpt_helper.c);
//! KVM wrote DR0-DR3 while the host's DR7 was 0, so nothing is inserted
//! and nothing fires. So on a host whose CPU is QEMU's TCG (the test VM,
//! `host::hypervisor_signature`) the engine does not use them
//! (`Kvm::use_debug_registers` overrides that, for tests).
//!
//! **INT3 interception under QEMU's emulated SVM does not work either.**
//! KVM_GUESTDBG_USE_SW_BP sets the #BP exception intercept in the VMCB;
//! QEMU's TCG raises INT3 as a software interrupt (`is_int`), and its
//! `raise_interrupt2` checks only the INTn intercept (SVM_EXIT_SWINT) for
//! those, never SVM_EXIT_EXCP_BASE + 3, so the guest takes its own #BP
//! through its IDT (measured in the test VM: a triple fault without an
//! IDT, the handler run in real mode). Real AMD hardware raises the #BP
//! intercept for INT3 (AMD APM Vol 2, 15.12).
//!
//! **So there the patch is a HLT** (`Caps::hlt`): without an in-kernel
//! irqchip every KVM leaves HLT to user space (KVM_EXIT_HLT, RIP after
//! it), TCG's SVM included. HLT is privileged, so a HLT patch goes only
//! on a page the page tables make supervisor-only (`Patches::refresh`):
//! code there runs at CPL 0, and a fetch from CPL 3 faults before the
//! byte is decoded. A HLT exit whose byte is one of ours is the
//! breakpoint (RIP moved back onto it); any other is the guest's own HLT,
//! a halt as usual. Breakpoints on user pages, or with paging off, are
//! compared with the PC while single-stepping (a kernel's breakpoints are
//! patched as soon as its page tables map them).
//!
//! **Single steps that deliver** (an interrupt injected at the entry, an
//! INT n, INT3 or INTO stepped, an instruction that faults): the CPU
//! clears TF on the way into the handler, so a TF step would run the
//! whole handler unseen, with the breakpoints and watched writes in it.
//! Where `Caps::hlt`, the step writes a HLT over the handler's first
//! instruction (`handler_entry`: the IVT in real mode, the IDT gate and
//! the code segment it names in protected mode, only where the handler
//! runs at CPL 0) for the one entry, and the HLT exit ends the step on
//! the handler's first instruction, as on the interpreter: for an
//! injected interrupt or a software interrupt the entry is made without
//! TF (`run::arm_handler_stop`); for any other instruction every
//! exception handler is patched and the step keeps TF, so without a
//! fault it ends after the instruction (`run::arm_fault_stops`). No HLT
//! goes inside the interrupt table, nor on a byte the stepped
//! instruction accesses (decoded): the step must not read a patch as
//! data. What is left unseen: a delivery that itself faults, a handler
//! at CPL 3 or not in RAM.
//!
//! **kvm-pvm** (measured): instruction breakpoints in the debug registers
//! fire, data breakpoints do not (unpaged code runs in its instruction
//! emulator), and an INT3 with KVM_GUESTDBG_USE_SW_BP in unpaged protected
//! mode ends in a KVM internal error. There breakpoints use the registers,
//! those beyond four are compared with the PC while single-stepping, and
//! watchpoints are checked by single-stepping (`Caps`).

use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
    KVM_GUESTDBG_USE_SW_BP,
};
use machine::x86::paging::{self, Regs};
use machine::{Machine, WatchKind, Watchpoint};

/// The INT3 opcode.
pub(crate) const INT3: u8 = 0xCC;
/// The HLT opcode: the patch where INT3 cannot be intercepted.
pub(crate) const HLT: u8 = 0xF4;
/// `DebugExit::exception` for a HLT exit while HLT patches are armed (no
/// exception: KVM_EXIT_HLT; `pc` is after the HLT, KVM has skipped it).
pub(crate) const HLT_EXIT: u32 = 0x100;
/// Exception vectors in `kvm_debug_exit_arch.exception`.
pub(crate) const DB_VECTOR: u32 = 1;
pub(crate) const BP_VECTOR: u32 = 3;
/// Debug registers for addresses: DR0-DR3.
pub(crate) const SLOTS: usize = 4;

/// What KVM_SET_GUEST_DEBUG is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GuestDebug {
    pub single_step: bool,
    /// KVM_GUESTDBG_USE_SW_BP: every #BP exits to us.
    pub sw_bp: bool,
    /// KVM_GUESTDBG_USE_HW_BP with DR0-DR3 and DR7 (indices 0-3 and 7 of
    /// `kvm_guest_debug_arch.debugreg`, as KVM reads them).
    pub hw: Option<[u64; 8]>,
}

impl GuestDebug {
    pub fn to_kvm(self) -> kvm_guest_debug {
        let mut d = kvm_guest_debug::default();
        if self.single_step {
            d.control |= KVM_GUESTDBG_SINGLESTEP;
        }
        if self.sw_bp {
            d.control |= KVM_GUESTDBG_USE_SW_BP;
        }
        if let Some(regs) = self.hw {
            d.control |= KVM_GUESTDBG_USE_HW_BP;
            d.arch.debugreg = regs;
        }
        if d.control != 0 {
            d.control |= KVM_GUESTDBG_ENABLE;
        }
        d
    }
}

/// A debug exit (KVM_EXIT_DEBUG) as the run loop hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DebugExit {
    /// 1 (#DB: a step, a debug register) or 3 (#BP: an INT3).
    pub exception: u32,
    /// The linear PC: on the INT3 for #BP, on the instruction for an
    /// instruction breakpoint, after it for a step or a data breakpoint.
    pub pc: u64,
    pub dr6: u64,
}

/// What one debug register watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// An instruction breakpoint at this linear address.
    Exec(u32),
    /// An aligned piece (`addr`, `len` 1, 2 or 4) of watchpoint `w`.
    Data { addr: u32, len: u32, w: Watchpoint },
}

/// Cuts `w` into aligned pieces of 4, 2 and 1 bytes, as the debug
/// registers take them (SDM Vol 3A 17.2.5: a breakpoint's address must be
/// aligned to its length; 8 bytes only in long mode).
pub(crate) fn pieces(w: &Watchpoint) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut a = w.addr as u64;
    let end = a + w.len.max(1) as u64;
    while a < end {
        let len = [4u64, 2, 1]
            .into_iter()
            .find(|&l| a.is_multiple_of(l) && a + l <= end)
            .unwrap_or(1);
        out.push(((a & 0xFFFF_FFFF) as u32, len as u32));
        a += len;
    }
    out
}

/// DR7 for `slots` (SDM Vol 3A 17.2.4): the global enable Gn of each slot
/// in use, its R/W (00 execute, 01 write, 11 read or write) and LEN (00 one
/// byte, 01 two, 11 four); GE (bit 9) and the reserved bit 10 that reads
/// as 1, as QEMU's gdbstub sets them.
pub(crate) fn dr7(slots: &[Option<Slot>; SLOTS]) -> u64 {
    let mut d: u64 = 0x600;
    for (n, s) in slots.iter().enumerate() {
        let Some(s) = s else { continue };
        let (rw, len) = match s {
            Slot::Exec(_) => (0b00, 0b00),
            Slot::Data { len, w, .. } => {
                let rw = if w.kind == WatchKind::Write {
                    0b01
                } else {
                    0b11
                };
                let len = match len {
                    1 => 0b00,
                    2 => 0b01,
                    _ => 0b11,
                };
                (rw, len)
            }
        };
        d |= 2 << (n * 2);
        d |= rw << (16 + n * 4);
        d |= len << (18 + n * 4);
    }
    d
}

/// The debug registers for `slots`: DR0-DR3 and DR7.
pub(crate) fn debugregs(slots: &[Option<Slot>; SLOTS]) -> [u64; 8] {
    let mut r = [0u64; 8];
    for (n, s) in slots.iter().enumerate() {
        r[n] = match s {
            Some(Slot::Exec(a)) => *a as u64,
            Some(Slot::Data { addr, .. }) => *addr as u64,
            None => 0,
        };
    }
    r[7] = dr7(slots);
    r
}

/// What this host's KVM does well (measured, see the module
/// documentation and tests/tests/kvm_debug.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Instruction breakpoints in DR0-DR3 fire: on hardware and on
    /// kvm-pvm; not under QEMU's emulated SVM.
    pub dr_exec: bool,
    /// Data breakpoints in DR0-DR3 fire: on hardware; not on kvm-pvm
    /// (unpaged code runs in its instruction emulator, which ignores
    /// them) nor under QEMU's emulated SVM.
    pub dr_data: bool,
    /// INT3 interception works: not on kvm-pvm, which fails with an
    /// internal error on an INT3 in unpaged protected mode, nor under
    /// QEMU's emulated SVM, which never takes the #BP intercept.
    pub int3: bool,
    /// HLT patches on supervisor-only code, and handler stops while
    /// single-stepping (`handler_entry`): every KVM without an in-kernel
    /// irqchip exits to us on HLT. Used where `int3` is not (the test
    /// VM); not on kvm-pvm (no paging, and its exits are its own).
    pub hlt: bool,
}

/// Where everything goes for one run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// DR0-DR3.
    pub slots: [Option<Slot>; SLOTS],
    /// Breakpoints patched (the rest of `Limits::breakpoints`), with
    /// `patch_byte`.
    pub soft: Vec<u32>,
    /// INT3, or HLT where INT3 is not intercepted (`Caps::hlt`).
    pub patch_byte: u8,
    /// Breakpoints only compared with the PC while single-stepping (no
    /// register left, no INT3 on this host).
    pub stepped_bps: Vec<u32>,
    /// Watchpoints checked by decoding while single-stepping (no working
    /// debug registers).
    pub stepped_watch: Vec<Watchpoint>,
}

impl Plan {
    /// Puts watchpoints, then breakpoints, into the debug registers where
    /// `regs_work`; the breakpoints left over are patched. Watchpoints
    /// needing more than the four registers are refused: which limit, in
    /// the error.
    pub fn new(breakpoints: &[u32], watch: &[Watchpoint], caps: Caps) -> Result<Plan, String> {
        let mut p = Plan {
            patch_byte: if caps.int3 { INT3 } else { HLT },
            ..Plan::default()
        };
        let mut used = 0;
        if !caps.dr_data {
            p.stepped_watch = watch.to_vec();
        }
        for w in watch.iter().filter(|_| caps.dr_data) {
            for (addr, len) in pieces(w) {
                if used == SLOTS {
                    let total: usize = watch.iter().map(|w| pieces(w).len()).sum();
                    return Err(format!(
                        "the watchpoints need {total} debug registers (each range is cut into \
                         aligned pieces of 1, 2 or 4 bytes), and the x86 has {SLOTS} (DR0-DR3): \
                         watch fewer or shorter, aligned ranges"
                    ));
                }
                p.slots[used] = Some(Slot::Data { addr, len, w: *w });
                used += 1;
            }
        }
        for &b in breakpoints {
            if used < SLOTS && caps.dr_exec {
                p.slots[used] = Some(Slot::Exec(b));
                used += 1;
            } else if caps.int3 || caps.hlt {
                p.soft.push(b);
            } else {
                p.stepped_bps.push(b);
            }
        }
        Ok(p)
    }

    /// The debug registers, the instruction breakpoint at `except` left
    /// out (the one being stepped over); None when no slot is in use.
    pub fn debugregs(&self, except: Option<u32>) -> Option<[u64; 8]> {
        let mut slots = self.slots;
        for s in slots.iter_mut() {
            if matches!(s, Some(Slot::Exec(a)) if Some(*a) == except) {
                *s = None;
            }
        }
        slots.iter().any(Option::is_some).then(|| debugregs(&slots))
    }

    /// The slot DR6's B0-B3 bits name, the first of them.
    pub fn hit(&self, dr6: u64) -> Option<Slot> {
        (0..SLOTS)
            .filter(|n| dr6 & (1 << n) != 0)
            .find_map(|n| self.slots[n])
    }
}

/// One INT3 (or HLT) written into guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Patch {
    /// The breakpoint's linear address.
    pub lin: u32,
    /// Where it is patched (RAM).
    pub phys: u32,
    /// The byte the patch replaced.
    pub orig: u8,
    /// The byte written: INT3 or HLT.
    pub byte: u8,
}

/// The patches of a run, one per breakpoint at most (at its current
/// translation), and the breakpoints that could not be patched.
#[derive(Debug, Default)]
pub(crate) struct Patches {
    pub list: Vec<Patch>,
    /// Breakpoints whose page is not present or outside RAM.
    pub unpatched: Vec<u32>,
    /// Guest-written patches found (and patched again) at refresh.
    pub overwritten: u64,
}

/// The physical address of `lin` with paging registers `regs`, A20
/// applied, if it is in RAM.
fn phys_in_ram(m: &Machine, regs: Regs, lin: u32) -> Option<u32> {
    let p = paging::linear_to_phys(regs, lin, paging::ram_reader(m))? & m.a20_mask();
    ((p as usize) < m.mem.size()).then_some(p)
}

impl Patches {
    /// Makes the patches for `bps` (the one at `except` left out, being
    /// stepped over) match the current translation: see the module
    /// documentation.
    ///
    /// A HLT patch (`byte` HLT) goes only on a page that paging makes
    /// supervisor-only: code there runs at CPL 0 (a fetch at CPL 3 faults
    /// before the byte is decoded), where HLT exits to us; at CPL 3 it
    /// would be the guest's #GP. Elsewhere the breakpoint is unpatched
    /// (compared with the PC while single-stepping).
    pub fn refresh(
        &mut self,
        m: &mut Machine,
        regs: Regs,
        bps: &[u32],
        except: Option<u32>,
        byte: u8,
    ) {
        self.unpatched.clear();
        // The byte stepped over stays original, whichever breakpoint
        // (aliases included) would patch it.
        let skip = except.and_then(|e| phys_in_ram(m, regs, e));
        let mut keep: Vec<Patch> = Vec::with_capacity(bps.len());
        for &lin in bps {
            if Some(lin) == except {
                continue;
            }
            let at = if byte == HLT {
                supervisor_phys(m, regs, lin)
            } else {
                phys_in_ram(m, regs, lin)
            };
            let Some(phys) = at else {
                self.unpatched.push(lin);
                continue;
            };
            if Some(phys) == skip {
                continue;
            }
            if let Some(p) = keep.iter().find(|p| p.phys == phys).copied() {
                // Two breakpoints on one physical byte (aliases).
                keep.push(Patch { lin, ..p });
                continue;
            }
            let now = m.mem.read_u8(phys as u64).unwrap_or(byte);
            let old = self
                .list
                .iter()
                .find(|p| p.lin == lin && p.phys == phys && p.byte == byte);
            let orig = match old {
                Some(p) if now == byte => p.orig,
                Some(_) => {
                    // The guest wrote over the patch: its byte is the
                    // instruction now.
                    self.overwritten += 1;
                    now
                }
                None => now,
            };
            if now != byte {
                // Untracked: the byte is back before anyone else runs the
                // guest, so no engine's code cache must drop the page.
                let _ = m.mem.write_untracked(phys as u64, &[byte]);
            }
            keep.push(Patch {
                lin,
                phys,
                orig,
                byte,
            });
        }
        // Patches no longer wanted at their place: back to the original.
        for p in &self.list {
            if !keep.iter().any(|k| k.phys == p.phys) {
                restore(m, p);
            }
        }
        self.list = keep;
    }

    /// Takes every patch back.
    pub fn clear(&mut self, m: &mut Machine) {
        for p in std::mem::take(&mut self.list) {
            restore(m, &p);
        }
        self.unpatched.clear();
    }

    pub fn at_phys(&self, phys: u32) -> Option<&Patch> {
        self.list.iter().find(|p| p.phys == phys)
    }
}

/// Puts the original byte back, unless the guest wrote its own there.
pub(crate) fn restore(m: &mut Machine, p: &Patch) {
    if m.mem.read_u8(p.phys as u64) == Some(p.byte) {
        let _ = m.mem.write_untracked(p.phys as u64, &[p.orig]);
    }
}

/// The physical address of `lin` if paging is on and maps it, in RAM, on
/// a page only the supervisor may use (U/S clear at some level).
fn supervisor_phys(m: &Machine, regs: Regs, lin: u32) -> Option<u32> {
    if !regs.paging() {
        return None;
    }
    let w = paging::walk(regs.cr3, regs.cr4, lin, paging::ram_reader(m)).ok()?;
    let p = w.phys & m.a20_mask();
    (!w.user() && (p as usize) < m.mem.size()).then_some(p)
}

/// Where the CPU starts the handler of `vector` when it delivers it now
/// in state `s`, if that handler runs at CPL 0: the linear address of its
/// first instruction and the physical one (in RAM). In real mode the
/// interrupt vector table's entry (SDM Vol 3A 20.1.4); in protected mode
/// (and virtual-8086 mode) the IDT's interrupt or trap gate and the DPL of
/// the code segment it names, which becomes the CPL (6.12.1; a conforming
/// segment keeps the CPL: only from CPL 0). None for a task gate, a gate
/// or segment not present, a vector beyond the table's limit, or a
/// handler whose page is not present: the delivery would fault, or run
/// elsewhere, and a patch there would not be reached. `soft`: an INT n,
/// which a gate whose DPL is below the CPL refuses (#GP), as
/// virtual-8086 mode does below IOPL 3 (6.12.1.1, 20.2.7).
pub(crate) fn handler_entry(
    m: &Machine,
    s: &machine::cpu::CpuState,
    vector: u8,
    soft: bool,
) -> Option<(u32, u32)> {
    use machine::x86::descriptor::{Descriptor, Gate, GateKind, Kind};
    let regs = Regs::of(s);
    // Up to 8 bytes at `lin`, little-endian, as the CPU reads the tables.
    let read = |lin: u32, n: usize| -> Option<u64> {
        let mut b = [0u8; 8];
        (paging::peek_linear(m, regs, lin, &mut b[..n]) == n).then(|| u64::from_le_bytes(b))
    };
    let v = vector as u32;
    let lin = if !s.protected() {
        if v * 4 + 3 > s.idtr.limit as u32 {
            return None;
        }
        let e = read(s.idtr.base.wrapping_add(v * 4), 4)? as u32;
        ((e >> 16) << 4).wrapping_add(e & 0xFFFF)
    } else {
        if v * 8 + 7 > s.idtr.limit as u32 {
            return None;
        }
        let gate = Gate::decode(read(s.idtr.base.wrapping_add(v * 8), 8)?)?;
        if !gate.present || !matches!(gate.kind, GateKind::Interrupt | GateKind::Trap) {
            return None;
        }
        if soft && (gate.dpl < s.cpl() || s.v86()) {
            return None;
        }
        let sel = gate.selector as u32;
        let table = if sel & 4 != 0 {
            let ldt = &s.ldtr;
            (ldt.base, ldt.limit)
        } else {
            (s.gdtr.base, s.gdtr.limit as u32)
        };
        let index = sel & !7;
        if index == 0 && sel & 4 == 0 || index + 7 > table.1 {
            return None;
        }
        let d = Descriptor::decode(read(table.0.wrapping_add(index), 8)?);
        let Kind::Code { conforming, .. } = d.kind() else {
            return None;
        };
        let cpl = if conforming { s.cpl() } else { d.dpl };
        if !d.present || cpl != 0 {
            return None;
        }
        d.base.wrapping_add(gate.offset)
    };
    Some((lin, phys_in_ram(m, regs, lin)?))
}

/// The physical address of linear `lin` now, if in RAM (for telling our
/// INT3 from the guest's).
pub(crate) fn phys_of(m: &Machine, regs: Regs, lin: u32) -> Option<u32> {
    phys_in_ram(m, regs, lin)
}

/// The bytes of `w` now, read through the page tables (None where a page
/// is not present): what a read watchpoint's hit is compared with.
pub(crate) fn watched_bytes(m: &Machine, regs: Regs, w: &Watchpoint) -> Vec<Option<u8>> {
    (0..w.len.max(1))
        .map(|i| {
            let lin = w.addr.wrapping_add(i);
            paging::linear_to_phys(regs, lin, paging::ram_reader(m))
                .and_then(|p| m.peek_phys(p & m.a20_mask()))
        })
        .collect()
}

/// KVM single-steps by setting TF in the guest's EFLAGS (KVM_GUESTDBG_
/// SINGLESTEP; on SVM and under kvm-pvm without a monitor trap flag). When
/// the step delivers an interrupt or an exception — an interrupt KVM
/// injected at the entry, a fault of the stepped instruction, an INT — the
/// CPU pushes EFLAGS with that TF into the handler's frame, and the
/// handler's IRET would bring it back: one #DB later, in the middle of
/// the guest (xv6 kills the process: "trap 1"). Where the guest's own TF
/// was clear before the step (`before`), this clears TF in the frame just
/// pushed on the stack of `after`: the saved EIP, CS and EFLAGS at SS:ESP
/// (or after an error code), recognised by the CS being the interrupted
/// one and the EFLAGS being the interrupted ones plus TF (and RF). A
/// 32-bit gate's frame in protected mode, a real-mode frame of words in
/// real mode. Returns whether a frame was mended.
pub(crate) fn scrub_step_trap_flag(
    m: &mut Machine,
    before: &machine::cpu::CpuState,
    after: &machine::cpu::CpuState,
) -> bool {
    const TF: u32 = machine::cpu::flags::TF;
    const RF: u32 = machine::cpu::flags::RF;
    if before.eflags & TF != 0 {
        return false;
    }
    let regs = Regs::of(after);
    let ss = after.segs[machine::cpu::Seg::Ss as usize].base;
    let esp = after.regs[machine::cpu::ESP];
    let wide = after.protected() && !after.v86();
    let cs_before = before.segs[machine::cpu::Seg::Cs as usize].selector as u32;
    let same = |fl: u32| fl & TF != 0 && (fl & !(TF | RF)) == (before.eflags & !(TF | RF));
    let (size, offsets): (u32, &[u32]) = if wide { (4, &[0, 4]) } else { (2, &[0]) };
    for &off in offsets {
        let at = |k: u32| ss.wrapping_add(esp.wrapping_add(off + k * size));
        let read = |lin: u32| -> Option<u32> {
            let mut v = 0u32;
            for i in 0..size {
                let p = phys_in_ram(m, regs, lin.wrapping_add(i))?;
                v |= (m.mem.read_u8(p as u64)? as u32) << (8 * i);
            }
            Some(v)
        };
        let (Some(cs), Some(fl)) = (read(at(1)), read(at(2))) else {
            continue;
        };
        let fl = if wide {
            fl
        } else {
            fl | (before.eflags & 0xFFFF_0000)
        };
        if cs & 0xFFFF == cs_before && same(fl) {
            let lin = at(2).wrapping_add(1);
            if let Some(p) = phys_in_ram(m, regs, lin) {
                let byte = m.mem.read_u8(p as u64).unwrap_or(0);
                // TF is bit 8: bit 0 of the flags' second byte.
                if m.mem.write(p as u64, &[byte & !1]).is_ok() {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::MachineConfig;

    fn w(addr: u32, len: u32, kind: WatchKind) -> Watchpoint {
        Watchpoint { addr, len, kind }
    }

    #[test]
    fn ranges_are_cut_into_aligned_pieces() {
        assert_eq!(pieces(&w(0x1000, 4, WatchKind::Write)), vec![(0x1000, 4)]);
        assert_eq!(
            pieces(&w(0x1001, 6, WatchKind::Write)),
            vec![(0x1001, 1), (0x1002, 2), (0x1004, 2), (0x1006, 1)]
        );
        assert_eq!(pieces(&w(0x1003, 0, WatchKind::Read)), vec![(0x1003, 1)]);
        assert_eq!(
            pieces(&w(0x1000, 8, WatchKind::Access)),
            vec![(0x1000, 4), (0x1004, 4)]
        );
    }

    #[test]
    fn dr7_has_the_enables_types_and_lengths() {
        let mut slots = [None; SLOTS];
        slots[0] = Some(Slot::Exec(0x7C00));
        slots[2] = Some(Slot::Data {
            addr: 0x2000,
            len: 4,
            w: w(0x2000, 4, WatchKind::Write),
        });
        slots[3] = Some(Slot::Data {
            addr: 0x3002,
            len: 2,
            w: w(0x3002, 2, WatchKind::Read),
        });
        let d = dr7(&slots);
        assert_eq!(d & 0xFF, 0b1010_0010, "G0, G2, G3");
        assert_eq!(d & 0x600, 0x600);
        assert_eq!((d >> 16) & 0xF, 0, "DR0: execute, one byte");
        assert_eq!((d >> 24) & 0xF, 0b1101, "DR2: write, four bytes");
        assert_eq!((d >> 28) & 0xF, 0b0111, "DR3: read/write, two bytes");
        let r = debugregs(&slots);
        assert_eq!(r[..4], [0x7C00, 0, 0x2000, 0x3002]);
        assert_eq!(r[7], d);
    }

    #[test]
    fn plans_share_four_registers() {
        let four = [0x10, 0x20, 0x30, 0x40];
        let all = Caps {
            dr_exec: true,
            dr_data: true,
            int3: true,
            hlt: true,
        };
        let p = Plan::new(&four, &[w(0x1000, 4, WatchKind::Write)], all).unwrap();
        assert_eq!(p.soft, vec![0x40], "beyond the registers: patched");
        assert_eq!(p.slots[1], Some(Slot::Exec(0x10)));
        assert_eq!(p.hit(1 << 1), Some(Slot::Exec(0x10)));
        let regs = p.debugregs(Some(0x10)).unwrap();
        assert_eq!(regs[7] & 0b1100, 0, "the one stepped over is off");
        let e = Plan::new(&[], &[w(0x1001, 10, WatchKind::Access)], all).unwrap_err();
        assert!(e.contains("need 5 debug registers"), "{e}");
        assert_eq!(p.patch_byte, INT3);
        let tcg = Caps {
            dr_exec: false,
            dr_data: false,
            int3: false,
            hlt: true,
        };
        let p = Plan::new(&[0x10], &[w(0x1001, 9, WatchKind::Access)], tcg).unwrap();
        assert_eq!(p.soft, vec![0x10]);
        assert_eq!(p.patch_byte, HLT, "no INT3 interception: HLT patches");
        assert_eq!(p.stepped_watch.len(), 1);
        assert_eq!(p.debugregs(None), None);
        let pvm = Caps {
            dr_exec: true,
            dr_data: false,
            int3: false,
            hlt: false,
        };
        let p = Plan::new(&four, &[w(0x1001, 10, WatchKind::Access)], pvm).unwrap();
        assert_eq!(p.stepped_bps, Vec::<u32>::new());
        assert_eq!(p.slots[3], Some(Slot::Exec(0x40)));
        assert_eq!(p.stepped_watch.len(), 1);
    }

    #[test]
    fn patches_follow_the_memory_and_come_back_out() {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        m.mem.write(0x7C00, &[0x90, 0x41]).unwrap();
        let flat = Regs {
            cr0: 0,
            cr3: 0,
            cr4: 0,
        };
        let mut p = Patches::default();
        p.refresh(&mut m, flat, &[0x7C00, 0x7C01, 0x20_0000], None, INT3);
        assert_eq!(m.mem.read_u8(0x7C00), Some(INT3));
        assert_eq!(m.mem.read_u8(0x7C01), Some(INT3));
        assert_eq!(p.unpatched, vec![0x20_0000], "outside RAM");
        // The guest loads new code over the second one.
        m.mem.write_untracked(0x7C01, &[0x42]).unwrap();
        p.refresh(&mut m, flat, &[0x7C00, 0x7C01], Some(0x7C00), INT3);
        assert_eq!(m.mem.read_u8(0x7C00), Some(0x90), "stepped over: original");
        assert_eq!(m.mem.read_u8(0x7C01), Some(INT3));
        assert_eq!(p.overwritten, 1);
        p.clear(&mut m);
        assert_eq!(m.mem.slice(0x7C00, 2).unwrap(), &[0x90, 0x42]);
    }

    /// Paging on with the page directory at 0x1000 and one page table at
    /// 0x2000: 0x7000 a supervisor page, 0x8000 a user page.
    fn paged(m: &mut Machine) -> Regs {
        const P_RW: u32 = 0b011;
        const US: u32 = 0b100;
        m.mem
            .write(0x1000, &(0x2000 | P_RW | US).to_le_bytes())
            .unwrap();
        m.mem
            .write(0x2000 + 7 * 4, &(0x7000 | P_RW).to_le_bytes())
            .unwrap();
        m.mem
            .write(0x2000 + 8 * 4, &(0x8000 | P_RW | US).to_le_bytes())
            .unwrap();
        Regs {
            cr0: machine::cpu::cr0::PE | machine::cpu::cr0::PG,
            cr3: 0x1000,
            cr4: 0,
        }
    }

    #[test]
    fn hlt_patches_go_only_on_supervisor_pages_with_paging_on() {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        m.mem.write(0x7000, &[0x55]).unwrap();
        m.mem.write(0x8000, &[0x55]).unwrap();
        let regs = paged(&mut m);
        let mut p = Patches::default();
        p.refresh(&mut m, regs, &[0x7000, 0x8000, 0x9000], None, HLT);
        assert_eq!(m.mem.read_u8(0x7000), Some(HLT), "supervisor code: CPL 0");
        assert_eq!(
            m.mem.read_u8(0x8000),
            Some(0x55),
            "a user page: CPL 3 may run it"
        );
        assert_eq!(
            p.unpatched,
            vec![0x8000, 0x9000],
            "the user page, the unmapped one"
        );
        // Paging off: the CPL of the code there is unknown.
        let flat = Regs {
            cr0: 1,
            cr3: 0,
            cr4: 0,
        };
        p.refresh(&mut m, flat, &[0x7000], None, HLT);
        assert_eq!(m.mem.read_u8(0x7000), Some(0x55), "taken back");
        assert_eq!(p.unpatched, vec![0x7000]);
        p.clear(&mut m);
    }

    /// A protected-mode state with the IDT at 0x3000 and the GDT at 0x4000
    /// (null, a DPL 0 code segment based at 0x100, a DPL 3 conforming one).
    fn protected(m: &mut Machine) -> machine::cpu::CpuState {
        use machine::x86::descriptor::{Gate, GateKind};
        let gdt: [u64; 3] = [0, 0x00CF_9A00_0100_FFFF, 0x00CF_FE00_0000_FFFF];
        for (i, d) in gdt.iter().enumerate() {
            m.mem
                .write(0x4000 + i as u64 * 8, &d.to_le_bytes())
                .unwrap();
        }
        let gate = |kind, selector: u16, dpl| Gate {
            kind,
            bits32: true,
            selector,
            offset: 0x7000 - 0x100,
            params: 0,
            dpl,
            present: true,
        };
        let idt = [
            (0x20, gate(GateKind::Interrupt, 0x08, 0)),
            (0x40, gate(GateKind::Trap, 0x08, 3)),
            (0x41, gate(GateKind::Interrupt, 0x10, 3)),
            (0x42, gate(GateKind::Task, 0x08, 3)),
        ];
        for (v, g) in idt {
            m.mem
                .write(0x3000 + v * 8, &g.encode().to_le_bytes())
                .unwrap();
        }
        let mut s = machine::cpu::CpuState::reset();
        s.cr0 = machine::cpu::cr0::PE;
        s.idtr = machine::cpu::TableReg {
            base: 0x3000,
            limit: 0x42 * 8 + 7,
        };
        s.gdtr = machine::cpu::TableReg {
            base: 0x4000,
            limit: 23,
        };
        s
    }

    #[test]
    fn a_handler_entry_is_found_where_it_runs_at_cpl_0() {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        let mut s = protected(&mut m);
        // The code segment's base plus the gate's offset.
        assert_eq!(handler_entry(&m, &s, 0x20, false), Some((0x7000, 0x7000)));
        // INT 0x20 from CPL 3: the gate's DPL 0 refuses it (#GP).
        s.segs[machine::cpu::Seg::Cs as usize].selector = 0x1b;
        s.segs[machine::cpu::Seg::Cs as usize].access = 3 << machine::cpu::access::DPL_SHIFT;
        assert_eq!(s.cpl(), 3);
        assert_eq!(handler_entry(&m, &s, 0x20, true), None);
        assert_eq!(handler_entry(&m, &s, 0x20, false), Some((0x7000, 0x7000)));
        assert_eq!(handler_entry(&m, &s, 0x40, true), Some((0x7000, 0x7000)));
        // A conforming segment keeps CPL 3: no HLT there.
        assert_eq!(handler_entry(&m, &s, 0x41, false), None);
        assert_eq!(handler_entry(&m, &s, 0x42, false), None, "a task gate");
        assert_eq!(handler_entry(&m, &s, 0x43, false), None, "beyond the limit");
        // Paging on: the handler's page must be present.
        let regs = paged(&mut m);
        s.cr0 = regs.cr0;
        s.cr3 = regs.cr3;
        for p in [0x3000u32, 0x4000] {
            // The tables themselves, identity-mapped supervisor pages.
            m.mem
                .write(0x2000 + (p >> 12) as u64 * 4, &(p | 3).to_le_bytes())
                .unwrap();
        }
        assert_eq!(handler_entry(&m, &s, 0x20, false), Some((0x7000, 0x7000)));
        m.mem.write(0x2000 + 7 * 4, &0u32.to_le_bytes()).unwrap();
        assert_eq!(handler_entry(&m, &s, 0x20, false), None, "not present");
        // Real mode: the vector table's segment:offset.
        let mut r = machine::cpu::CpuState::reset();
        r.idtr = machine::cpu::TableReg {
            base: 0,
            limit: 0x3FF,
        };
        m.mem.write(0x10 * 4, &[0x34, 0x02, 0x00, 0x07]).unwrap();
        assert_eq!(handler_entry(&m, &r, 0x10, true), Some((0x7234, 0x7234)));
    }
}
