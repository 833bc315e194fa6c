//! The context translated code runs against (host r15 points at it): the
//! guest registers while they are not in host registers, the guest's
//! status flags, and how the block ended (always at the next guest EIP:
//! what the fast path cannot do, the interpreter does from the block,
//! `callout::exec`).

use engine_interp::fallback::{TlbEntry, TLB_LAYOUT};
use engine_interp::Interp;
use machine::Machine;
use std::mem::offset_of;

/// `host_ptr(ctx, linear address, size | write << 8)`: the host address of
/// a guest access, or null when the interpreter must perform it.
pub type HostPtrFn = unsafe extern "C" fn(*mut Ctx, u32, u32) -> *mut u8;

/// `sensitive(ctx, what, eip, at)`: a sensitive instruction translated as
/// a call (VMware's in-TC callout; `callout::sensitive`); `at` is
/// `block length << 16 | index in the block`. Bit 32 of the result set:
/// done (the low half is the instruction's result); clear: the
/// interpreter must run it.
pub type SensitiveFn = unsafe extern "C" fn(*mut Ctx, u32, u32, u32) -> u64;

/// `exec(ctx)`: the instruction of exec call site `Ctx::exec_site` run by the
/// interpreter from translated code (`callout::exec`), through the exec
/// stub (`translate::stubs`). Returns one of `exec::*`.
pub type ExecFn = unsafe extern "C" fn(*mut Ctx) -> u32;

/// What `callout::exec` needs of an exec call site (kept in
/// `links::Links::exec_sites`; translated code stores only the site's
/// number, `Ctx::exec_site`): the instruction's EIP, `block length << 16
/// | index in the block` (as for `SensitiveFn`), the next instruction's
/// EIP, a slot of `Ctx::exec_counts` (its mnemonic), with `EXEC_REP` set
/// for a REP-prefixed instruction, the physical page the block was
/// translated from, for IN and OUT their port access (`port`), which the
/// callout makes without the interpreter's decoder and run loop, and the
/// instruction decoded for the interpreter (`Interp::exec_decoded`;
/// None where it is not).
#[derive(Clone)]
pub struct ExecArgs {
    pub eip: u32,
    pub at: u32,
    pub next: u32,
    pub slot: u32,
    pub phys_page: u32,
    pub port: u32,
    /// The instruction changes nothing the mode key is made of when it
    /// completes (`translate::mode_neutral`).
    pub neutral: bool,
    pub decoded: Option<engine_interp::fallback::Decoded>,
}

/// `ExecArgs::port`: 0 for any other instruction; else `PORT_IO`, the
/// width in bytes << 17, `PORT_OUT` for OUT, `PORT_DX` for a port in DX,
/// else the immediate port in the low 16 bits.
pub const PORT_IO: u32 = 1 << 31;
pub const PORT_OUT: u32 = 1 << 16;
pub const PORT_DX: u32 = 1 << 20;

/// Results of `ExecFn`.
pub mod exec {
    /// Done, and nothing the block assumed changed: it goes on.
    pub const CONTINUE: u32 = 0;
    /// Done (or an interrupt or exception delivered instead): the block
    /// leaves for the dispatcher at `Ctx::eip`.
    pub const LEAVE: u32 = 1;
    /// Done, control went elsewhere (an INT, an IRET, an exception
    /// delivered...), and the translation there is known: the stub jumps
    /// to `Ctx::target` (under `Ctx::key`, which may be new).
    pub const GOTO: u32 = 2;
}

/// `what` of a sensitive callout.
pub mod sensitive {
    /// PUSHFD: returns the non-status bits of the image.
    pub const PUSHFD: u32 = 0;
    /// CLI.
    pub const CLI: u32 = 1;
    /// STI (the interrupt shadow it sets is the translated block's, which
    /// runs the next instruction and exits; see `translate::Plan::Sti`).
    pub const STI: u32 = 2;
}

#[repr(C)]
pub struct Ctx {
    /// Guest EAX..EDI (ESP is index 4).
    pub regs: [u32; 8],
    /// Guest EFLAGS as the host pushes them: only the status flags (CF, PF,
    /// AF, ZF, SF, OF) and bit 1 are ever loaded into the host's RFLAGS.
    pub flags: u64,
    /// The next guest EIP when the block left.
    pub eip: u32,
    /// Guest instructions of the block that completed.
    pub retired: u32,
    /// The interpreter (whose CPU translated code shares) and the machine,
    /// for callouts (valid only while a block runs).
    pub interp: *mut Interp,
    pub machine: *mut Machine,
    /// The translator's chains and indirect-branch bookkeeping, for an
    /// `exec` callout that changed the page tables (valid only while a
    /// block runs).
    pub(crate) links: *mut crate::links::Links,
    pub host_ptr: HostPtrFn,
    pub sensitive: SensitiveFn,
    /// Host address of the block to enter.
    pub target: u64,
    /// The interpreter's TLB for the current CPL (`Interp::tlb_for_cpl`),
    /// read inline by translated code.
    pub tlb: *const TlbEntry,
    /// Real mode's plain RAM for reads: guest physical address 0 on the
    /// host, and the end of the RAM below the VGA window (0xA0000) less 3,
    /// or 0 while a watchpoint is set. Real-mode code reads at a linear
    /// address below `real_end` straight from `real_base` (paging is off,
    /// and A20 changes nothing below 1 MiB), without the TLB; set by
    /// `Bt::run_block`.
    pub real_base: u64,
    pub real_end: u32,
    /// Instructions chained blocks may still run before returning to the
    /// dispatcher (the next device deadline, the budget): each block
    /// subtracts its length on entry and exits at once if that goes below
    /// zero (adding it back).
    pub budget: i64,
    /// Length of the block that exited (`retired` of them completed).
    pub block_n: u32,
    /// The chainable exit taken (an index into the translator's exit
    /// table), or `NO_EXIT`.
    pub exit: u32,
    /// A host pointer kept across a second memory lookup (MOVS).
    pub scratch: u64,
    /// The budget this entry into translated code started with: with
    /// `budget` and the block's length, where in the run a callout is.
    pub room: i64,
    /// A device register's value read by `host_ptr` for the instruction
    /// that reads it (see `callout::host_ptr`).
    pub mmio: u64,
    /// Device registers read that way (stats).
    pub mmio_reads: u64,
    /// The interpreter's copy of a stable device register
    /// (`Interp::stable_read`), for translated code to read without
    /// calling out: valid while `stable_size` is not 0, for a read of that
    /// many bytes at linear `stable_lin` at privilege `stable_user` (1:
    /// CPL 3), while the TLB's epoch (at `tlb_epoch_ptr`) and the bus's
    /// stable epoch (at `bus_epoch_ptr`) are still the ones recorded.
    /// Set at every entry and after every `host_ptr` callout; reads served
    /// from it are counted in `stable_hits`, handed to the interpreter when
    /// translated code returns.
    pub stable_lin: u32,
    pub stable_size: u32,
    pub stable_user: u32,
    pub stable_tlb_epoch: u64,
    pub stable_bus_epoch: u64,
    pub stable_value: u64,
    pub stable_hits: u64,
    pub tlb_epoch_ptr: *const u64,
    pub bus_epoch_ptr: *const u64,
    /// The bits of the guest's EFLAGS that translated code does not hold
    /// (IF, IOPL, NT, AC, ID, ... and bit 1; VM and RF clear): what PUSHFD
    /// pushes besides the status flags. Set at every entry, and by the
    /// CLI callout, the only translated instruction that changes them.
    pub sysflags: u32,
    /// Nonzero when no sensitive instruction needs recording one by one
    /// (`Trace::wants_each`): PUSHFD then runs inline, reading `sysflags`,
    /// and counts itself in `pushf_inline` instead of calling out.
    pub inline_sensitive: u32,
    /// PUSHFDs run inline since the dispatcher last handed the count to
    /// the trace.
    pub pushf_inline: u64,
    /// CLIs run inline (at CPL 0, where CLI cannot fault, when nothing
    /// records them one by one), counted as `pushf_inline` is: they clear
    /// IF in `sysflags` and in the interpreter's EFLAGS (`cpu_eflags`).
    pub cli_inline: u64,
    /// The interpreter's EFLAGS word (`Interp::eflags_word`), set at every
    /// entry: an inline CLI clears IF there.
    pub cpu_eflags: *mut u32,
    /// The indirect-branch cache: translated code looks a RET's or an
    /// indirect JMP's or CALL's target up here and jumps straight to its
    /// translation on a hit (`Ibtc`).
    pub ibtc: [Ibtc; IBTC_LEN],
    pub exec: ExecFn,
    /// Host address of the exec stub (`translate::stubs`), which
    /// translated code calls for an `exec` callout.
    pub exec_stub: u64,
    /// Host address of the host_ptr stub (`translate::stubs`), which
    /// translated code calls for the `host_ptr` callout of an access its
    /// inline TLB lookup missed.
    pub host_ptr_stub: u64,
    pub exec_site: u32,
    /// The run's wall-clock deadline: a REP string instruction the
    /// interpreter runs for translated code stops there (it is suspended
    /// and resumed in chunks, each looking at the clock), as it would on
    /// the interpreter's own run.
    pub deadline: Option<std::time::Instant>,
    /// The mode key of the blocks this entry runs (chains and the
    /// indirect-branch cache link blocks of one key only).
    pub key: u32,
    /// Instructions `exec` callouts retired (on the interpreter), and the
    /// translated ones they retired before them, since the dispatcher
    /// last looked (`Bt::run_block` counts them).
    pub exec_retired: u64,
    pub exec_before: u64,
    /// A stop an `exec` callout's instruction brought (a guest exit, a
    /// watchpoint, an event in the stop-on set...), or the interpreter's
    /// error: the dispatcher returns it once the block has left.
    pub stop: Option<Result<machine::Stop, machine::EngineError>>,
    /// The segment bases (ES, CS, SS, DS, FS, GS), set at every entry:
    /// real-mode translations add them to their offsets. Translated code
    /// loads no segment register, so they hold until it returns.
    pub seg_base: [u32; 6],
    /// The segment selectors (ES, CS, SS, DS, FS, GS), set with
    /// `seg_base`: PUSH Sreg stores them.
    pub seg_sel: [u32; 6],
    /// EFLAGS.RF was set when this stretch of translated code began (an
    /// entry, or an `exec` callout's IRET that went on) and no instruction
    /// has completed since: the first one to complete clears it, as on the
    /// interpreter (`callout::exec` and `Bt::run_block` do). Nothing else
    /// in translated code can see it: the interpreter arms no instruction
    /// breakpoints, PUSHFD's image leaves it out, and a fault's image has
    /// it set anyway; an instruction that pushes it (INT n) is a callout,
    /// which the interpreter runs with RF as it stands.
    pub rf: bool,
    /// An instruction has retired since this stretch of translated code
    /// began (the dispatcher's entry, or an `exec` callout's `GOTO`).
    pub moved: bool,
    /// Not 0: the page tables changed under an `exec` callout (MOV CR3)
    /// and the links were not checked against them
    /// (`links::Links::defer`): a chained exit to another linear page
    /// goes to the dispatcher instead (translated code reads this), which
    /// checks them and clears it.
    pub links_stale: u32,
    /// Not 0: the last STI (a `sensitive` callout) let an interrupt or an
    /// NMI through, or a stop is wanted: the block leaves for the
    /// dispatcher after STI's shadow instruction (translated code reads
    /// this). 0: nothing was due, the shadow ended at once, and the block
    /// goes on as after any instruction.
    pub sti_due: u32,
    /// The block left from an `exec` callout: the interpreter's state
    /// (an interrupt shadow it set, too) stands as it left it.
    pub left_by_exec: bool,
    /// `exec` callouts that went straight on to another translation
    /// (`exec::GOTO`).
    pub exec_gotos: u64,
    /// `exec` callouts made, by the mnemonic of their instruction
    /// (translated code counts them; `Bt::stats` shows them with what the
    /// dispatcher handed the interpreter).
    pub exec_counts: [u64; EXEC_SLOTS],
}

/// Slots of `Ctx::exec_counts`: more than iced-x86 has mnemonics.
pub const EXEC_SLOTS: usize = 4096;

/// In `ExecArgs::slot`: the instruction has a REP prefix (it may run long:
/// the callout hands the interpreter the run's deadline).
pub const EXEC_REP: u32 = 1 << 31;

/// One entry of the indirect-branch cache: the translation of guest `eip`
/// made under mode key `key`, at host address `host`. `key` `u32::MAX`
/// (no mode key has every bit) is empty. The dispatcher fills an entry
/// whenever it finds a translation, and empties them all whenever it
/// undoes the chains (a TLB invalidation, translations dropped, the cache
/// flushed): an entry is a chain whose source is any indirect branch.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ibtc {
    pub eip: u32,
    pub key: u32,
    pub host: u64,
}

/// A copy of eight registers made of eight 4-byte loads. Their writer (the
/// translated code's or the interpreter's) has just stored them one by one,
/// and a wider load spanning several such stores cannot take its data from
/// them: it waits until they have all left the store buffer (some twenty
/// cycles each time a callout hands the registers over).
#[inline(always)]
pub fn regs_of(r: &[u32; 8]) -> [u32; 8] {
    // SAFETY: each element is a valid, aligned u32 of the borrowed array.
    std::array::from_fn(|i| unsafe { std::ptr::read_volatile(&r[i]) })
}

impl Ctx {
    /// The guest state translated code starts from, or goes on from after
    /// a callout: the registers, the status flags (the other flags as
    /// PUSHFD's image has them) and the segment bases of `c`.
    pub fn load_cpu(&mut self, c: &engine_interp::Cpu) {
        self.regs = regs_of(c.regs_ref());
        self.flags = c.eflags() as u64 & STATUS;
        self.sysflags = c.pushf_image() & !engine_interp::fallback::STATUS_FLAGS;
        for (i, s) in c.segments().iter().enumerate().take(6) {
            self.seg_base[i] = s.base;
            self.seg_sel[i] = s.selector as u32;
        }
    }

    /// Takes the interpreter's copy of a stable device register
    /// (`stable_lin` and the rest), or none (`stable_size` 0) while a
    /// watchpoint is set: those accesses must reach the interpreter.
    pub fn load_stable(&mut self, interp: &Interp, m: &machine::Machine) {
        match interp.stable_read().filter(|_| m.watchpoints().is_empty()) {
            Some(s) => {
                self.stable_lin = s.lin;
                self.stable_size = s.size;
                self.stable_user = s.user as u32;
                self.stable_tlb_epoch = s.tlb_epoch;
                self.stable_bus_epoch = s.bus_epoch;
                self.stable_value = s.value;
            }
            None => self.stable_size = 0,
        }
    }
}

impl Ibtc {
    pub const EMPTY: Ibtc = Ibtc {
        eip: 0,
        key: u32::MAX,
        host: 0,
    };
}

/// Entries in the indirect-branch cache (a power of two).
pub const IBTC_LEN: usize = 1024;

/// The entry for guest `eip`: the hash translated code computes
/// (`translate::Emitter::indirect_exit`).
#[inline]
pub fn ibtc_slot(eip: u32) -> usize {
    ((eip ^ (eip >> 10)) as usize) & (IBTC_LEN - 1)
}

/// `exit` of an exit that cannot be chained.
pub const NO_EXIT: u32 = u32::MAX;

/// `exit` of an indirect branch (RET, JMP or CALL through a register or
/// memory) whose target the indirect-branch cache did not have: the
/// dispatcher puts the target's translation there.
pub const INDIRECT_EXIT: u32 = u32::MAX - 1;

pub const REGS: i32 = offset_of!(Ctx, regs) as i32;
pub const FLAGS: i32 = offset_of!(Ctx, flags) as i32;
pub const EIP: i32 = offset_of!(Ctx, eip) as i32;
pub const RETIRED: i32 = offset_of!(Ctx, retired) as i32;
pub const HOST_PTR: i32 = offset_of!(Ctx, host_ptr) as i32;
pub const SENSITIVE: i32 = offset_of!(Ctx, sensitive) as i32;
pub const EXEC: i32 = offset_of!(Ctx, exec) as i32;
pub const EXEC_STUB: i32 = offset_of!(Ctx, exec_stub) as i32;
pub const HOST_PTR_STUB: i32 = offset_of!(Ctx, host_ptr_stub) as i32;
pub const EXEC_SITE: i32 = offset_of!(Ctx, exec_site) as i32;
pub const LINKS_STALE: i32 = offset_of!(Ctx, links_stale) as i32;
pub const STI_DUE: i32 = offset_of!(Ctx, sti_due) as i32;
pub const EXEC_COUNTS: i32 = offset_of!(Ctx, exec_counts) as i32;
pub const IBTC: i32 = offset_of!(Ctx, ibtc) as i32;
pub const TARGET: i32 = offset_of!(Ctx, target) as i32;
pub const TLB_PTR: i32 = offset_of!(Ctx, tlb) as i32;
pub const REAL_BASE: i32 = offset_of!(Ctx, real_base) as i32;
pub const REAL_END: i32 = offset_of!(Ctx, real_end) as i32;
pub const BUDGET: i32 = offset_of!(Ctx, budget) as i32;
pub const BLOCK_N: i32 = offset_of!(Ctx, block_n) as i32;
pub const EXIT: i32 = offset_of!(Ctx, exit) as i32;
pub const SCRATCH: i32 = offset_of!(Ctx, scratch) as i32;
pub const SEG_BASE: i32 = offset_of!(Ctx, seg_base) as i32;
pub const SEG_SEL: i32 = offset_of!(Ctx, seg_sel) as i32;
pub const SYSFLAGS: i32 = offset_of!(Ctx, sysflags) as i32;
pub const INLINE_SENSITIVE: i32 = offset_of!(Ctx, inline_sensitive) as i32;
pub const PUSHF_INLINE: i32 = offset_of!(Ctx, pushf_inline) as i32;
pub const MMIO_READS: i32 = offset_of!(Ctx, mmio_reads) as i32;
pub const STABLE_LIN: i32 = offset_of!(Ctx, stable_lin) as i32;
pub const STABLE_SIZE: i32 = offset_of!(Ctx, stable_size) as i32;
pub const STABLE_USER: i32 = offset_of!(Ctx, stable_user) as i32;
pub const STABLE_TLB_EPOCH: i32 = offset_of!(Ctx, stable_tlb_epoch) as i32;
pub const STABLE_BUS_EPOCH: i32 = offset_of!(Ctx, stable_bus_epoch) as i32;
pub const STABLE_VALUE: i32 = offset_of!(Ctx, stable_value) as i32;
pub const STABLE_HITS: i32 = offset_of!(Ctx, stable_hits) as i32;
pub const TLB_EPOCH_PTR: i32 = offset_of!(Ctx, tlb_epoch_ptr) as i32;
pub const BUS_EPOCH_PTR: i32 = offset_of!(Ctx, bus_epoch_ptr) as i32;
pub const CLI_INLINE: i32 = offset_of!(Ctx, cli_inline) as i32;
pub const CPU_EFLAGS: i32 = offset_of!(Ctx, cpu_eflags) as i32;

/// The layout of a TLB entry and its hash, for the inline lookup: the
/// interpreter's own description of them.
pub const TLB: engine_interp::fallback::TlbLayout = TLB_LAYOUT;

/// The guest status flags (CF, PF, AF, ZF, SF, OF) and the always-one bit 1.
pub const STATUS: u64 = engine_interp::fallback::STATUS_FLAGS as u64 | 2;
