//! The interpreter's CPU: architectural state in the form the handlers want
//! (lazy flags, a cached CPL, segment check values), converted to and from
//! the machine's `CpuState` at the engine boundary.

use crate::flags::Flags;
use crate::mmu::Tlb;
use machine::cpu::{access, cr0, flags as f, CpuState, Seg, Segment, TableReg};
use machine::Handling;

pub const ES: usize = Seg::Es as usize;
pub const CS: usize = Seg::Cs as usize;
pub const SS: usize = Seg::Ss as usize;
pub const DS: usize = Seg::Ds as usize;
pub const FS: usize = Seg::Fs as usize;
pub const GS: usize = Seg::Gs as usize;

/// Offset range and rights of a segment, precomputed when it is loaded so
/// that the check on every access is two compares (SDM Vol 3A 5.3).
#[derive(Clone, Copy, Debug, Default)]
pub struct SegCheck {
    /// Lowest valid offset.
    pub(crate) lo: u32,
    /// Highest valid offset (of the last byte of an access).
    pub(crate) hi: u32,
    pub(crate) read: bool,
    pub(crate) write: bool,
}

impl SegCheck {
    pub fn of(s: &Segment, protected: bool) -> SegCheck {
        if protected && !s.usable() {
            return SegCheck {
                lo: 1,
                hi: 0,
                read: false,
                write: false,
            };
        }
        let code = s.access & access::CODE != 0;
        let expand_down = !code && s.access & access::DC != 0 && s.access & access::S != 0;
        let (lo, hi) = if expand_down {
            // Valid offsets are limit+1 ..= 0xFFFF or 0xFFFFFFFF (SDM Vol 3A 3.4.5.1).
            let top = if s.big() { u32::MAX } else { 0xFFFF };
            (s.limit.wrapping_add(1), top)
        } else {
            (0, s.limit)
        };
        let (read, write) = if !protected {
            (true, true)
        } else if code {
            (s.access & access::RW != 0, false)
        } else {
            (true, s.access & access::RW != 0)
        };
        SegCheck {
            lo,
            hi,
            read,
            write,
        }
    }
}

pub struct Cpu {
    pub(crate) regs: [u32; 8],
    pub(crate) eip: u32,
    pub(crate) fl: Flags,
    pub(crate) segs: [Segment; 6],
    pub(crate) segchk: [SegCheck; 6],
    /// The mode `segchk` was computed for (protected and not V86); None:
    /// to be recomputed.
    pub(crate) segchk_prot: Option<bool>,
    pub(crate) cr0: u32,
    pub(crate) cr2: u32,
    pub(crate) cr3: u32,
    pub(crate) cr4: u32,
    pub(crate) gdtr: TableReg,
    pub(crate) idtr: TableReg,
    pub(crate) ldtr: Segment,
    pub(crate) tr: Segment,
    pub(crate) dr: [u32; 4],
    pub(crate) dr6: u32,
    pub(crate) dr7: u32,
    /// TSC = virtual nanoseconds + this offset (the TSC ticks at 1 GHz of
    /// virtual time, so it is deterministic).
    pub(crate) tsc_offset: u64,
    pub(crate) sysenter_cs: u32,
    pub(crate) sysenter_esp: u32,
    pub(crate) sysenter_eip: u32,
    pub(crate) efer: u64,
    /// Interrupts inhibited until after the next instruction (STI, MOV SS).
    pub(crate) shadow: bool,
    /// The instruction that just ran loaded EFLAGS.RF = 1 (IRET, a task
    /// switch), so RF stays set for the next one; otherwise the run loop
    /// clears RF once an instruction completes (SDM Vol 3A 17.3.1.1).
    pub(crate) rf_loaded: bool,
    pub(crate) halted: bool,
    /// NMIs blocked until the next IRET (SDM Vol 3A 6.7.1).
    pub(crate) nmi_blocked: bool,
    /// CPL, cached (CS.RPL in protected mode, 3 in V86, 0 in real mode).
    pub(crate) cpl: u8,
    /// Set by a handler that changed something the block loop must look at
    /// before the next instruction (mode, IF, a write to code, port I/O).
    pub(crate) exit_block: bool,
    /// Set with `exit_block` by an instruction that stopped part way and
    /// will run again (a long REP string operation): it did not retire.
    pub(crate) restart: bool,
    /// Set with `exit_block` by a conditional branch taken in the middle
    /// of a block (`control::jcc_mid`): the block ends there and the run
    /// goes on with the block at the target, as after a block's last
    /// instruction.
    pub(crate) taken: bool,
    /// Set with `exit_block` by a JMP to itself with IF and TF clear
    /// (`control::jmp_rel`): the run loop ends the run with
    /// `Stop::Spinning` unless an NMI can still be taken.
    pub(crate) spinning: bool,
    /// String iterations REP instructions may still run in this `exec`
    /// before it returns to the run loop: a REP counts as one instruction
    /// however many iterations it runs, so without this a loop of REP
    /// instructions could keep the run loop from its limits for hours.
    pub(crate) rep_left: u32,
    /// Instructions executed in the current block and not yet retired.
    pub(crate) pending: u64,
    /// Instructions of the current `exec` retired early (before a port
    /// access or a TSC read brought the clock up to date).
    pub(crate) synced: u64,
    pub(crate) tlb: Tlb,
    /// Trap-and-emulate mode: guest ring 0 runs in ring 1 (issue 3).
    pub(crate) deprivilege: bool,
    /// How a sensitive instruction run outside trap-and-emulate mode is
    /// recorded: `Interpreted`, or `Callout` when the binary translator
    /// handed the instruction over from a mode it translates (see
    /// `Interp::exec_one`).
    pub(crate) handling: Handling,
    /// Which 64-byte chunks of each code page hold decoded instructions
    /// (bit n = bytes 64n..64n+63): a write to a code page that misses them
    /// (a stack sharing the page with code) leaves the cached blocks alone.
    pub(crate) code_chunks: std::collections::HashMap<u32, u64>,
    /// The data watchpoint the current instruction hit (`mmu.rs`): the
    /// run loop stops once it completes (`Stop::Watchpoint`); a fault
    /// drops it (the instruction did not complete).
    pub(crate) watch_hit: Option<machine::Watchpoint>,
    /// An implicit access is under way (`sys_rd`, `sys_wr`): watchpoints
    /// do not see it.
    pub(crate) implicit: bool,
    pub(crate) counters: Counters,
    /// The delivery memo, when it is used (`memo.rs`).
    pub(crate) memo: Option<Box<crate::memo::Memos>>,
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub(crate) blocks_built: u64,
    pub(crate) blocks_run: u64,
    pub(crate) block_invalidations: u64,
    pub(crate) tlb_misses: u64,
    pub(crate) tlb_flushes: u64,
    pub(crate) exceptions: u64,
    pub(crate) interrupts: u64,
}

impl Cpu {
    /// A CPU in its reset state. Not public, and neither is `from_state`:
    /// outside this crate a `Cpu` is only seen through `&` (`Interp::cpu`),
    /// so its TLB, whose host pointers point into one machine's RAM, is
    /// never filled under one machine and read under another.
    pub(crate) fn reset() -> Cpu {
        Cpu::from_state(&CpuState::reset(), 0)
    }

    pub(crate) fn from_state(s: &CpuState, now: u64) -> Cpu {
        let mut c = Cpu {
            regs: s.regs,
            eip: s.eip,
            fl: Flags::new(s.eflags),
            segs: s.segs,
            segchk: [SegCheck::default(); 6],
            segchk_prot: None,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            gdtr: s.gdtr,
            idtr: s.idtr,
            ldtr: s.ldtr,
            tr: s.tr,
            dr: s.dr,
            dr6: s.dr6,
            dr7: s.dr7,
            tsc_offset: s.tsc.wrapping_sub(now),
            sysenter_cs: s.sysenter_cs,
            sysenter_esp: s.sysenter_esp,
            sysenter_eip: s.sysenter_eip,
            efer: s.efer,
            shadow: s.interrupt_shadow,
            rf_loaded: false,
            handling: Handling::Interpreted,
            halted: s.halted,
            nmi_blocked: s.nmi_blocked,
            cpl: 0,
            exit_block: false,
            taken: false,
            restart: false,
            spinning: false,
            rep_left: crate::string::REP_CHUNK,
            pending: 0,
            synced: 0,
            tlb: Tlb::new(),
            deprivilege: false,
            code_chunks: std::collections::HashMap::new(),
            watch_hit: None,
            implicit: false,
            counters: Counters::default(),
            memo: None,
        };
        c.refresh_mode();
        c
    }

    pub fn to_state(&self, now: u64) -> CpuState {
        CpuState {
            regs: self.regs,
            eip: self.eip,
            eflags: self.fl.get(),
            segs: self.segs,
            cr0: self.cr0,
            cr2: self.cr2,
            cr3: self.cr3,
            cr4: self.cr4,
            gdtr: self.gdtr,
            idtr: self.idtr,
            ldtr: self.ldtr,
            tr: self.tr,
            dr: self.dr,
            dr6: self.dr6,
            dr7: self.dr7,
            tsc: now.wrapping_add(self.tsc_offset),
            sysenter_cs: self.sysenter_cs,
            sysenter_esp: self.sysenter_esp,
            sysenter_eip: self.sysenter_eip,
            efer: self.efer,
            interrupt_shadow: self.shadow,
            halted: self.halted,
            nmi_blocked: self.nmi_blocked,
        }
    }

    // ---- read-only view (the translator, tests) -------------------------

    #[inline(always)]
    pub fn eip(&self) -> u32 {
        self.eip
    }
    /// EAX..EDI in encoding order.
    #[inline(always)]
    pub fn regs(&self) -> [u32; 8] {
        self.regs
    }
    /// The general registers in place (`regs_of` copies them without a
    /// wide load).
    #[inline(always)]
    pub fn regs_ref(&self) -> &[u32; 8] {
        &self.regs
    }
    /// EFLAGS, the lazy status flags worked out.
    #[inline(always)]
    pub fn eflags(&self) -> u32 {
        self.fl.get()
    }
    /// EFLAGS' system and control bits (TF, IF, DF, IOPL, NT, RF, VM, AC)
    /// as stored, cheaply: the status flags in it may be stale (they are
    /// lazy, see `flags.rs`).
    #[inline(always)]
    pub fn control_flags(&self) -> u32 {
        self.fl.bits
    }
    #[inline(always)]
    pub fn cpl(&self) -> u8 {
        self.cpl
    }
    #[inline(always)]
    pub fn halted(&self) -> bool {
        self.halted
    }
    /// Interrupts are inhibited until after the next instruction (STI,
    /// MOV SS).
    #[inline(always)]
    pub fn interrupt_shadow(&self) -> bool {
        self.shadow
    }
    /// An NMI was delivered and no IRET has run since.
    #[inline(always)]
    pub fn nmi_blocked(&self) -> bool {
        self.nmi_blocked
    }
    #[inline(always)]
    pub fn cr0(&self) -> u32 {
        self.cr0
    }
    /// CR0, CR3 and CR4, for a page walk.
    #[inline]
    pub fn paging_regs(&self) -> machine::x86::paging::Regs {
        machine::x86::paging::Regs {
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
        }
    }
    #[inline(always)]
    pub fn segments(&self) -> &[Segment; 6] {
        &self.segs
    }
    /// The linear address of the next instruction (CS.base + EIP).
    #[inline(always)]
    pub fn pc(&self) -> u32 {
        self.segs[CS].base.wrapping_add(self.eip)
    }

    #[inline(always)]
    pub fn protected(&self) -> bool {
        self.cr0 & cr0::PE != 0
    }
    #[inline(always)]
    pub fn v86(&self) -> bool {
        self.protected() && self.fl.bits & f::VM != 0
    }
    #[inline(always)]
    pub fn paging(&self) -> bool {
        self.cr0 & cr0::PG != 0
    }
    #[inline(always)]
    pub fn iopl(&self) -> u8 {
        ((self.fl.bits >> f::IOPL_SHIFT) & 3) as u8
    }
    /// Default operand and address size of the code segment is 32 bits.
    #[inline(always)]
    pub fn code32(&self) -> bool {
        self.protected() && !self.v86() && self.segs[CS].big()
    }
    /// The stack pointer is ESP (SS.B set) rather than SP.
    #[inline(always)]
    pub fn stack32(&self) -> bool {
        self.protected() && !self.v86() && self.segs[SS].big()
    }

    /// Recomputes what derives from CR0, EFLAGS.VM and CS: the CPL, and
    /// the segments' checks when the mode they depend on (protected, not
    /// V86) changed. `set_seg` keeps each segment's check current, so a CS
    /// load or an INT/IRET that stays in its mode recomputes no check
    /// (six of them were an eighth of an exception's delivery); code that
    /// writes `segs` directly calls `refresh_all`.
    pub fn refresh_mode(&mut self) {
        self.tlb.epoch += 1;
        self.cpl = if !self.protected() {
            0
        } else if self.fl.bits & f::VM != 0 {
            3
        } else {
            (self.segs[CS].selector & 3) as u8
        };
        let prot = self.protected() && self.fl.bits & f::VM == 0;
        if self.segchk_prot != Some(prot) {
            for i in 0..6 {
                self.segchk[i] = SegCheck::of(&self.segs[i], prot);
            }
            self.segchk_prot = Some(prot);
        }
    }

    /// `refresh_mode` after `segs` was written other than by `set_seg` (a
    /// state restored, a task switch): every check recomputed.
    pub fn refresh_all(&mut self) {
        self.segchk_prot = None;
        self.refresh_mode();
    }

    /// Loads a segment cache and refreshes what depends on it.
    #[inline]
    pub fn set_seg(&mut self, i: usize, s: Segment) {
        self.segs[i] = s;
        let prot = self.protected() && self.fl.bits & f::VM == 0;
        if self.segchk_prot != Some(prot) {
            // The others were made for another mode: all of them, now.
            self.segchk_prot = None;
        }
        self.segchk[i] = SegCheck::of(&s, prot);
        if i == CS {
            self.refresh_mode();
        }
    }

    // ---- registers ------------------------------------------------------

    /// Register `i` (x86 encoding) of width `w` bytes; for w = 1, 4-7 are
    /// AH, CH, DH, BH.
    #[inline(always)]
    pub fn reg(&self, i: u8, w: u8) -> u32 {
        match w {
            4 => self.regs[i as usize & 7],
            2 => self.regs[i as usize & 7] & 0xFFFF,
            _ => {
                if i < 4 {
                    self.regs[i as usize] & 0xFF
                } else {
                    (self.regs[(i - 4) as usize & 3] >> 8) & 0xFF
                }
            }
        }
    }

    #[inline(always)]
    pub fn set_reg(&mut self, i: u8, w: u8, v: u32) {
        match w {
            4 => self.regs[i as usize & 7] = v,
            2 => {
                let r = &mut self.regs[i as usize & 7];
                *r = (*r & 0xFFFF_0000) | (v & 0xFFFF);
            }
            _ => {
                if i < 4 {
                    let r = &mut self.regs[i as usize];
                    *r = (*r & !0xFF) | (v & 0xFF);
                } else {
                    let r = &mut self.regs[(i - 4) as usize & 3];
                    *r = (*r & !0xFF00) | ((v & 0xFF) << 8);
                }
            }
        }
    }

    /// The mask of the instruction pointer: IP wraps at 64 KiB in 16-bit code.
    #[inline(always)]
    pub fn ip_mask(&self) -> u32 {
        if self.code32() {
            u32::MAX
        } else {
            0xFFFF
        }
    }
}
