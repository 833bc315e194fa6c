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
