//! Functions translated code calls (through pointers in `Ctx`). They share
//! the interpreter's MMU and TLB, so a translated access sees exactly the
//! page tables, accessed/dirty bits and permissions an interpreted one
//! does; anything they cannot serve goes back to the interpreter, which
//! then performs the access (and raises its fault) itself.

use crate::ctx::Ctx;
use engine_interp::mmu::{tlb_slot, Acc};

/// The host address of a `size`-byte guest access at linear `lin` (a write
/// when bit 8 of `how` is set), or null when the interpreter must do it: a
/// page fault or protection fault, MMIO or an address with no RAM, an
/// access crossing a page, a write to a page holding translated code.
///
/// Never panics (it is called from generated code, where unwinding would
/// abort the process).
///
/// # Safety
/// `ctx` must be the context of a running block: valid, with `cpu` and
/// `machine` pointing at the live CPU and machine.
pub unsafe extern "C" fn host_ptr(ctx: *mut Ctx, lin: u32, how: u32) -> *mut u8 {
    // SAFETY: translated code passes the context the dispatcher handed it;
    // its `cpu` and `machine` pointers are set from live `&mut` borrows for
    // the duration of the block, and no other reference to them is used
    // while the block runs.
    let (cpu, m) = unsafe {
        let c = &mut *ctx;
        (&mut *c.cpu, &mut *c.machine)
    };
    let size = how & 0xFF;
    let write = how & 0x100 != 0;
    if (lin & 0xFFF) + size > 0x1000 {
        return std::ptr::null_mut();
    }
    let user = cpu.cpl == 3;
    let page = lin & !0xFFF;
    let slot = tlb_slot(lin);
    let hit = |cpu: &engine_interp::cpu::Cpu| {
        let e = &cpu.tlb.e[user as usize][slot];
        let tag = if write { e.wtag } else { e.rtag };
        (tag == page).then(|| (lin as usize).wrapping_add(e.addend) as *mut u8)
    };
    if let Some(p) = hit(cpu) {
        return p;
    }
    // A miss: walk the page tables as the interpreter does (accessed and
    // dirty bits, the TLB fill); a fault is left for the interpreter to
    // raise when it runs the instruction. Write entries exist only for
    // pages without translated or decoded code, so writes to code are the
    // interpreter's too and invalidate what they must.
    let acc = if write { Acc::Write } else { Acc::Read };
    if cpu.translate(m, lin, acc, user).is_err() {
        return std::ptr::null_mut();
    }
    hit(cpu).unwrap_or(std::ptr::null_mut())
}
