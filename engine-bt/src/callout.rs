//! Functions translated code calls (through pointers in `Ctx`). They share
//! the interpreter's MMU and TLB, so a translated access sees exactly the
//! page tables, accessed/dirty bits and permissions an interpreted one
//! does; anything they cannot serve goes back to the interpreter, which
//! then performs the access (and raises its fault) itself.

use crate::ctx::Ctx;

/// The host address of a `size`-byte guest access at linear `lin` (a write
/// when bit 8 of `how` is set), or null when the interpreter must do it: a
/// page fault or protection fault, MMIO or an address with no RAM, an
/// access crossing a page, a write to a page holding translated code
/// (`Interp::host_ptr`, which shares the interpreter's TLB and page walk).
///
/// Never panics (it is called from generated code, where unwinding would
/// abort the process).
///
/// # Safety
/// `ctx` must be the context of a running block: valid, with `interp` and
/// `machine` pointing at the live interpreter and machine.
pub unsafe extern "C" fn host_ptr(ctx: *mut Ctx, lin: u32, how: u32) -> *mut u8 {
    // SAFETY: translated code passes the context the dispatcher handed it;
    // its `interp` and `machine` pointers are set from live `&mut` borrows
    // for the duration of the block, and no other reference to them is
    // used while the block runs.
    let (interp, m) = unsafe {
        let c = &mut *ctx;
        (&mut *c.interp, &mut *c.machine)
    };
    let (size, write) = (how & 0xFF, how & 0x100 != 0);
    if write || !interp.on_pure_mmio_page(lin) {
        let p = interp.host_ptr(m, lin, size, write);
        if !p.is_null() || write {
            return p;
        }
    }
    // A device register whose reading is pure (xv6 reads the local APIC's
    // ID on every spinlock): read here into the context, and the
    // instruction reads it from there, without leaving translated code.
    match interp.pure_mmio_read(m, lin, size) {
        // SAFETY: `ctx` is valid (above); `mmio` is a plain field that no
        // other reference covers, and it outlives the instruction that
        // reads it.
        Some(v) => unsafe {
            (*ctx).mmio = v;
            (*ctx).mmio_reads += 1;
            std::ptr::addr_of_mut!((*ctx).mmio) as *mut u8
        },
        None => std::ptr::null_mut(),
    }
}

/// A sensitive instruction translated as a call (`ctx::sensitive`): it
/// runs against the interpreter's CPU, which holds the system flags, and is
/// recorded in the trace as the interpreter would, at its exact instruction
/// count (the instructions the chain ran before this block, then its index
/// in the block).
///
/// Never panics (it is called from generated code).
///
/// # Safety
/// As for [`host_ptr`].
pub unsafe extern "C" fn sensitive(ctx: *mut Ctx, what: u32, eip: u32, at: u32) -> u64 {
    // SAFETY: as in `host_ptr`.
    let (interp, m, done) = unsafe {
        let c = &mut *ctx;
        let n = (at >> 16) as i64;
        let done = (c.room - c.budget - n) as u64 + (at & 0xFFFF) as u64;
        (&mut *c.interp, &mut *c.machine, done)
    };
    let icount = m.icount() + done;
    const DONE: u64 = 1 << 32;
    match what {
        crate::ctx::sensitive::PUSHFD => DONE | interp.callout_pushfd(m, eip, icount) as u64,
        crate::ctx::sensitive::STI if interp.callout_sti(m, eip, icount) => {
            // SAFETY: as above; a plain field of the live context.
            unsafe { (*ctx).sysflags |= machine::cpu::flags::IF };
            DONE
        }
        crate::ctx::sensitive::CLI if interp.callout_cli(m, eip, icount) => {
            // SAFETY: as above; a plain field of the live context.
            unsafe { (*ctx).sysflags &= !machine::cpu::flags::IF };
            DONE
        }
        _ => 0,
    }
}

/// An instruction the translator does not translate natively, run by the
/// interpreter from translated code (VMware's in-TC callout, generalised):
/// the sensitive and privileged ones (IN, OUT, MOV to and from control
/// registers, LGDT, INT, IRET, POPF...), segment loads, and whatever else
/// the translator leaves alone. The block's guest registers and flags are
/// in the context (translated code stored them); the instructions the
/// chain ran before this one are retired first, so the interpreter runs
/// this one at its exact instruction count and time, as its own run loop
/// would (an interrupt that came due is delivered instead, as there).
/// Then the registers go back to the context, and the block goes on only
/// where nothing it assumed changed: the next EIP is `next`, the mode key
/// is still `key` (no mode change, no interrupt to take, no interrupt
/// shadow, not halted), no mapping (page tables, A20, a ROM) or code page
/// changed, no stop is
/// wanted; else it leaves for the dispatcher at the EIP the interpreter
/// left. The budget shrinks if the instruction brought a device deadline
/// nearer (an OUT to the PIT).
///
/// Never panics (it is called from generated code): the interpreter's
/// stop or error is kept in `Ctx::stop` for the dispatcher.
///
/// # Safety
/// As for [`host_ptr`].
pub unsafe extern "C" fn exec(ctx: *mut Ctx) -> u32 {
    use crate::ctx::exec::{CONTINUE, LEAVE};
    // SAFETY: as in `host_ptr`.
    let c = unsafe { &mut *ctx };
    let crate::ctx::ExecArgs {
        eip,
        at,
        next,
        slot,
    } = c.exec_args;
    let key = c.key;
    let rep = slot & crate::ctx::EXEC_REP != 0;
    c.exec_counts[(slot & !crate::ctx::EXEC_REP) as usize] += 1;
    // SAFETY: as in `host_ptr`.
    let (interp, m) = unsafe { (&mut *c.interp, &mut *c.machine) };
    let n = (at >> 16) as i64;
    let k = (at & 0xFFFF) as i64;
    // The instructions before this one in this entry: retired now, and
    // taken out of the entry's accounting (`Bt::run_block`), as is this
    // one's slot (the interpreter retires it itself, or delivers instead).
    let before = (c.room - c.budget - n) + k;
    m.retire(before as u64);
    c.room -= before + 1;
    c.exec_before += before as u64;
    interp.set_translated_state(c.regs, c.flags as u32, eip);
    let epochs = (
        interp.tlb_epoch(),
        interp.tlb_map_epoch(),
        m.mapping_generation(),
    );
    let i0 = m.icount();
    // A REP string instruction runs in chunks, each looking at the clock
    // when there is a deadline: only those get it (a clock read per
    // callout would cost more than many an instruction).
    let deadline = c.deadline.filter(|_| rep);
    let r = interp.exec_one(m, engine_interp::fallback::Recorded::Callout, deadline);
    c.exec_retired += m.icount() - i0;
    let cpu = interp.cpu();
    // (The segment bases too: real mode's MOV DS, AX keeps the mode key
    // but moves the base translated code adds.)
    c.load_cpu(cpu);
    c.eip = cpu.eip();
    // Leaving: the block's exit, as translated code would write it (the
    // instruction counted: it has run, or been replaced by a delivery).
    let leave = |c: &mut Ctx| {
        c.retired = (at & 0xFFFF) + 1;
        c.block_n = at >> 16;
        c.exit = crate::ctx::NO_EXIT;
        c.left_by_exec = true;
        LEAVE
    };
    match r {
        Ok(machine::Stop::Stepped) => {}
        other => {
            c.stop = Some(other);
            return leave(c);
        }
    }
    if cpu.eip() != next
        || crate::Bt::mode_key(cpu, m) != Some(key)
        || (
            interp.tlb_epoch(),
            interp.tlb_map_epoch(),
            m.mapping_generation(),
        ) != epochs
        || interp.code_pages_stale(m)
        || m.stop_requested().is_some()
        || m.trace.stop_pending()
    {
        return leave(c);
    }
    // The rest of this block is already taken from the budget; what
    // follows it may run up to the (perhaps nearer) deadline.
    let allowed = m.insns_until_deadline().min(i64::MAX as u64) as i64 - (n - k - 1);
    if allowed < 0 {
        return leave(c);
    }
    // (`room` shrinks with it: `room - budget` is what this entry has
    // run or taken for the block running, which the accounting reads.)
    let cut = c.budget - allowed;
    if cut > 0 {
        c.budget -= cut;
        c.room -= cut;
    }
    CONTINUE
}
