//! Functions translated code calls (through pointers in `Ctx`). They share
//! the interpreter's MMU and TLB, so a translated access sees exactly the
//! page tables, accessed/dirty bits and permissions an interpreted one
//! does; anything they cannot serve goes back to the interpreter, which
//! then performs the access (and raises its fault) itself.

use crate::ctx::Ctx;

/// The host address of a `size`-byte guest access at linear `lin` (a write
/// when bit 8 of `how` is set, the stack's when bit 9 is), or null when the
/// interpreter must do it: a
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
    // A stack access (bit 9): RAM only, and none while a watchpoint is
    // set, for a later access to the same page takes its address over
    // without a lookup (`translate::StackKnown`); the interpreter runs
    // what this refuses.
    let stack = how & 0x200 != 0;
    if stack && !m.watchpoints().is_empty() {
        return std::ptr::null_mut();
    }
    if write || stack || !interp.on_pure_mmio_page(lin) {
        let p = interp.host_ptr(m, lin, size, write);
        if !p.is_null() || write || stack {
            return p;
        }
    }
    // A device register whose reading is pure (xv6 reads the local APIC's
    // ID on every spinlock): read here into the context, and the
    // instruction reads it from there, without leaving translated code.
    // (What translated code served from the copy of a stable register
    // belongs to the copy it was: counted before this read may replace
    // it, and the copy taken again after.)
    // SAFETY: `ctx` is valid (above); plain fields no other reference
    // covers.
    let served = unsafe { std::mem::take(&mut (*ctx).stable_hits) };
    interp.add_stable_hits(served);
    let v = interp.pure_mmio_read(m, lin, size);
    // SAFETY: as above.
    unsafe { (*ctx).load_stable(interp, m) };
    match v {
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
        crate::ctx::sensitive::STI => {
            // SAFETY: as above; a plain field of the live context.
            unsafe { (*ctx).sti_due = 1 };
            if !interp.callout_sti(m, eip, icount) {
                return 0;
            }
            // SAFETY: as above.
            unsafe { (*ctx).sysflags |= machine::cpu::flags::IF };
            // Nothing to deliver now: nothing can come due before the
            // shadow's instruction completes (a device deadline ends the
            // budget at a block's entry, and a device an `exec` callout
            // touches in the shadow is looked at after it), so the shadow
            // holds nothing back and ends here, and the block goes on past
            // it without the dispatcher (xv6's popcli: 4.5 M STIs in
            // usertests, each a round trip through it).
            let due = crate::interrupt_due(interp.cpu(), m)
                || m.stop_requested().is_some()
                || m.trace.stop_pending();
            if !due {
                interp.end_shadow();
                // SAFETY: as above.
                unsafe { (*ctx).sti_due = 0 };
            }
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
/// changed, no stop is wanted. A control transfer (INT, IRET, a far jump,
/// an exception delivered) goes straight on to its target's translation
/// when the indirect-branch cache has it under the new mode key; anything
/// else leaves for the dispatcher at the EIP the interpreter left. The
/// budget shrinks if the instruction brought a device deadline nearer (an
/// OUT to the PIT).
///
/// Never panics (it is called from generated code): the interpreter's
/// stop or error is kept in `Ctx::stop` for the dispatcher.
///
/// # Safety
/// As for [`host_ptr`].
pub unsafe extern "C" fn exec(ctx: *mut Ctx) -> u32 {
    use crate::ctx::exec::{CONTINUE, GOTO, LEAVE};
    // SAFETY: as in `host_ptr`.
    let c = unsafe { &mut *ctx };
    // SAFETY: `links` is set by `Bt::run_block` from the translator's live
    // links for the duration of the block, like `interp`; nothing else
    // uses them while the block runs. The site is read, not kept.
    let Some(site) = (unsafe { &*c.links }).exec_sites.get(c.exec_site as usize) else {
        c.stop = Some(Err(machine::EngineError::Internal(format!(
            "translated code called exec call site {}, which does not exist",
            c.exec_site
        ))));
        c.exit = crate::ctx::NO_EXIT;
        c.left_by_exec = true;
        return LEAVE;
    };
    let crate::ctx::ExecArgs {
        eip,
        at,
        next,
        slot,
        phys_page,
        port,
        neutral,
        ref decoded,
    } = *site;
    let decoded = decoded.clone();
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
    let deadline0 = m.next_deadline();
    c.room -= before + 1;
    c.exec_before += before as u64;
    interp.set_translated_state(crate::ctx::regs_of(&c.regs), c.flags as u32, eip);
    // RF from the stretch's start: gone if an instruction completed before
    // this one; else this one is the first, and the interpreter runs it
    // with RF as it stands (and clears it).
    if std::mem::take(&mut c.rf) && before > 0 {
        interp.clear_rf();
    }
    // (Not the TLB's other epoch, which moves with every CS load: the
    // mode key covers what a translation assumes of the mode.)
    let epochs = (interp.tlb_map_epoch(), m.mapping_generation());
    let cr3_before = interp.cpu().paging_regs().cr3;
    let i0 = m.icount();
    // A REP string instruction runs in chunks, each looking at the clock
    // when there is a deadline: only those get it (a clock read per
    // callout would cost more than many an instruction).
    let deadline = c.deadline.filter(|_| rep);
    // IN and OUT: the port access made here (it changes the accumulator
    // at most, and no mode), unless it is not allowed (#GP), which the
    // interpreter then raises.
    let port_eax = if port & crate::ctx::PORT_IO != 0 {
        let imm = (port & crate::ctx::PORT_DX == 0).then_some(port as u16);
        let w = ((port >> 17) & 7) as u8;
        interp.callout_port(m, port & crate::ctx::PORT_OUT != 0, imm, w, eip, next)
    } else {
        None
    };
    let fast = port_eax.is_some();
    let r = if fast {
        Ok(machine::Stop::Stepped)
    } else {
        // The instruction as decoded when it was translated, run without
        // the interpreter's run loop and decoded-block lookup where
        // nothing they look for can come first.
        let callout = engine_interp::fallback::Recorded::Callout;
        match decoded.and_then(|d| interp.exec_decoded(m, &d, callout)) {
            Some(s) => Ok(s),
            None => interp.exec_one(m, callout, deadline),
        }
    };
    c.exec_retired += m.icount() - i0;
    if before > 0 || m.icount() > i0 {
        c.moved = true;
    }
    let cpu = interp.cpu();
    // (The segment bases too: real mode's MOV DS, AX keeps the mode key
    // but moves the base translated code adds.)
    if let Some(eax) = port_eax {
        c.regs[0] = eax;
    } else {
        c.load_cpu(cpu);
    }
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
    if m.mapping_generation() != epochs.1
        || interp.code_pages_stale(m)
        || m.stop_requested().is_some()
        || m.trace.stop_pending()
    {
        return leave(c);
    }
    // The page tables changed (MOV CR3, INVLPG, paging turned on or off):
    // the chains between pages and the indirect-branch cache are checked
    // against them here, as the dispatcher would before entering anything
    // (`Links::unchain_stale_across_pages`), and the rest of this block
    // runs only if its own page still maps to the physical page it was
    // translated from.
    // (An INVLPG moves one page's mapping only: `only`.)
    let remapped = interp.tlb_map_epoch() != epochs.0;
    let mut only = None;
    if remapped {
        // SAFETY: set by `Bt::run_block` from the translator's live links
        // for the duration of the block, like `interp`; nothing else uses
        // them while the block runs.
        let links = unsafe { &mut *c.links };
        // A whole flush that keeps the address space (MOV CR3 of the same
        // value, as a kernel flushes its TLB; CR0, CR4), or more flushes
        // since the links were checked: the check is left to the
        // dispatcher (`Links::defer`), which a loop of flushes need never
        // reach. A switch to another address space (a new CR3: a
        // context switch, after which the kernel soon follows its links
        // anyway) or a lone INVLPG: the links checked now, those into the
        // one page only for INVLPG (often none).
        let one_page = interp.tlb_only_page_flushed_since(links.chain_epoch);
        let switched = interp.cpu().paging_regs().cr3 != cr3_before;
        if one_page.is_none() && !switched {
            links.defer(&mut c.ibtc);
            c.links_stale = 1;
        } else {
            only = links.remapped(interp, m, &mut c.ibtc);
            c.links_stale = 0;
        }
    }
    // (An instruction that faulted retired nothing, even where its
    // handler happens to start at `next`.)
    let completed = cpu.eip() == next && m.icount() > i0;
    let key_now = if fast || (neutral && completed) {
        // (Port I/O and the mode-neutral instructions change no mode;
        // they may raise an interrupt.)
        (!crate::interrupt_due(cpu, m)).then_some(key)
    } else {
        // SAFETY: as for `links` above.
        crate::Bt::mode_key(cpu, m, unsafe { &mut (*c.links).code16 })
    };
    // (An IRET may have brought RF back.)
    c.rf = cpu.control_flags() & machine::cpu::flags::RF != 0;
    // What of this block is already taken from the budget and will still
    // run: the rest of it, or nothing when it goes elsewhere.
    let rest;
    let result = if cpu.eip() == next && key_now == Some(key) {
        // SAFETY: as for `links` above.
        let code16 = unsafe { &(*c.links).code16 };
        let page = crate::links::cs_base(code16, key).wrapping_add(eip) & !0xFFF;
        if remapped && only.is_none_or(|p| p == page) {
            let user = key & crate::translate::key::USER != 0;
            let regs = cpu.paging_regs();
            if crate::maps_for_fetch(m, regs, m.a20_mask(), page, user) != Some(phys_page) {
                return leave(c);
            }
        }
        rest = n - k - 1;
        CONTINUE
    } else {
        // A control transfer (an INT, an IRET, a far jump, an exception
        // delivered): straight into the target's translation when the
        // indirect-branch cache has it under the mode key the CPU is in
        // now, as an indirect branch goes (the cache holds only
        // translations the dispatcher would find there now, and never one
        // at a breakpoint); else the dispatcher finds it and puts it in
        // the cache.
        let Some(k2) = key_now else {
            return leave(c);
        };
        // Nothing retired since this stretch of translated code began
        // (the dispatcher's entry or the last transfer), this instruction
        // included (an exception delivered at the first instruction): the
        // dispatcher takes it from here. A guest whose handlers fault at
        // once would otherwise go round in translated code retiring
        // nothing, past the run's clock checks, where the interpreter
        // counts such deliveries against its budget.
        if !c.moved {
            return leave(c);
        }
        let eip2 = cpu.eip();
        let e = c.ibtc[crate::ctx::ibtc_slot(eip2)];
        if e.eip != eip2 || e.key != k2 {
            leave(c);
            c.exit = crate::ctx::INDIRECT_EXIT;
            return LEAVE;
        }
        // The rest of this block will not run: its instructions go back
        // to the budget, and the entry's account (`room - budget`) is
        // square again.
        c.budget += n - k - 1;
        c.target = e.host;
        if k2 != key {
            c.key = k2;
            c.tlb = interp.tlb_for_cpl();
        }
        c.exec_gotos += 1;
        c.moved = false;
        rest = 0;
        GOTO
    };
    // The budget already ends at the device deadline this instruction
    // began under (the entry's budget did, and every instruction since
    // took from both alike): only a new deadline (an OUT to the PIT) may
    // cut it.
    if m.next_deadline() == deadline0 {
        return result;
    }
    // What follows may run up to the (perhaps nearer) deadline.
    let allowed = m.insns_until_deadline().min(i64::MAX as u64) as i64 - rest;
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
    result
}
