//! String instructions MOVS, CMPS, SCAS, LODS, STOS with REP, REPE and
//! REPNE (SDM Vol 2B "REP/REPE/REPZ/REPNE/REPNZ"). The address size picks
//! SI/DI/CX or ESI/EDI/ECX; the destination is always ES:(E)DI; a fault in
//! the middle leaves the registers at the faulting iteration, so the
//! instruction restarts where it stopped; so does a data watchpoint hit,
//! which stops it after the iteration that hit. `x` is 0 (no prefix), 1 (REP or
//! REPE) or 2 (REPNE).

use crate::alu::{alu_op, CMP};
use crate::cpu::{Cpu, ES};
use crate::fault::R;
use crate::ops::Op;
use machine::Machine;

/// String iterations one `exec` runs (in one REP instruction or across
/// several) before it lets the run loop look at interrupts, the budget and
/// the clock: a REP still going is suspended (the SDM allows a REP string
/// operation to be interrupted between iterations; EIP stays on it), one
/// that has just finished ends the block.
pub const REP_CHUNK: u32 = 1 << 16;

/// Suspends a REP instruction after a chunk: it runs again from the same
/// address with the registers as they are.
#[inline]
pub fn suspend(c: &mut Cpu, op: &Op) {
    c.eip = c.eip.wrapping_sub(op.len as u32) & c.ip_mask();
    c.restart = true;
    c.exit_block = true;
}

/// Runs a string instruction's iteration `body` once, or under a REP
/// prefix while the count lasts: `body` returns whether REPE/REPNE may go on
/// (the others return true). Once the `exec`'s REP_CHUNK iterations are
/// used up, the instruction is suspended to run again (or, just finished,
/// ends the block). A fault leaves the remaining iterations uncounted: it
/// ends the `exec` anyway.
#[inline(always)]
pub fn rep<F>(c: &mut Cpu, m: &mut Machine, op: &Op, mut body: F) -> R<()>
where
    F: FnMut(&mut Cpu, &mut Machine) -> R<bool>,
{
    let mut left = c.rep_left;
    loop {
        if op.x != 0 && count(c, op) == 0 {
            break;
        }
        let go_on = body(c, m)?;
        if op.x == 0 {
            break;
        }
        dec_count(c, op);
        if !go_on {
            break;
        }
        if c.watch_hit.is_some() {
            // A data watchpoint trap after this iteration (SDM Vol 3A
            // 17.3.1.2): the instruction goes on from here when run again.
            if count(c, op) != 0 {
                suspend(c, op);
            }
            break;
        }
        left = left.saturating_sub(1);
        if left == 0 {
            if count(c, op) != 0 {
                suspend(c, op);
            } else {
                c.exit_block = true;
            }
            break;
        }
    }
    c.rep_left = left;
    Ok(())
}

#[inline(always)]
pub fn step(c: &Cpu, w: u8) -> u32 {
    if c.fl.df() {
        (w as u32).wrapping_neg()
    } else {
        w as u32
    }
}

#[inline(always)]
pub fn count(c: &Cpu, op: &Op) -> u32 {
    if op.a32 {
        c.regs[1]
    } else {
        c.regs[1] & 0xFFFF
    }
}

#[inline(always)]
pub fn dec_count(c: &mut Cpu, op: &Op) {
    if op.a32 {
        c.regs[1] = c.regs[1].wrapping_sub(1);
    } else {
        let v = c.regs[1].wrapping_sub(1) & 0xFFFF;
        c.regs[1] = (c.regs[1] & 0xFFFF_0000) | v;
    }
}

/// (E)SI (r = 6) or (E)DI (r = 7) at the address size.
#[inline(always)]
pub fn index(c: &Cpu, op: &Op, r: usize) -> u32 {
    index_at(c, op.a32, r)
}

/// `index` at address size `a32` (32 bits when true).
#[inline(always)]
fn index_at(c: &Cpu, a32: bool, r: usize) -> u32 {
    if a32 {
        c.regs[r]
    } else {
        c.regs[r] & 0xFFFF
    }
}

#[inline(always)]
pub fn advance(c: &mut Cpu, op: &Op, r: usize, step: u32) {
    advance_at(c, op.a32, r, step)
}

/// `advance` at address size `a32`.
#[inline(always)]
fn advance_at(c: &mut Cpu, a32: bool, r: usize, step: u32) {
    if a32 {
        c.regs[r] = c.regs[r].wrapping_add(step);
    } else {
        let v = c.regs[r].wrapping_add(step) & 0xFFFF;
        c.regs[r] = (c.regs[r] & 0xFFFF_0000) | v;
    }
}

pub fn movs(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let st = step(c, op.w);
    rep(c, m, op, |c, m| {
        let si = index(c, op, 6);
        let di = index(c, op, 7);
        let v = c.rd(m, op.seg as usize, si, op.w)?;
        c.wr(m, ES, di, op.w, v)?;
        advance(c, op, 6, st);
        advance(c, op, 7, st);
        Ok(true)
    })
}

pub fn stos(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let st = step(c, op.w);
    let v = c.reg(0, op.w);
    if op.x != 0 && op.a32 && !c.fl.df() {
        stos_in_pages(c, m, op, v);
    }
    rep(c, m, op, |c, m| {
        let di = index(c, op, 7);
        c.wr(m, ES, di, op.w, v)?;
        advance(c, op, 7, st);
        Ok(true)
    })
}

/// REP STOS with 32-bit addresses and DF = 0, a page of guest RAM at a
/// time (a kernel's memset: xv6 clears every page it allocates with REP
/// STOSL): the iterations that fit in the page of [ES:EDI], within the
/// segment and the chunk, are stores through the TLB's host pointer with
/// ECX and EDI moved on as the iterations would. Whatever this cannot do
/// (a fault, MMIO, a page holding code, alignment checking, the last
/// iteration, which ends the instruction) is left to the iteration loop
/// (`rep`), exactly where it stands.
fn stos_in_pages(c: &mut Cpu, m: &mut Machine, op: &Op, v: u32) {
    // Watchpoints are checked per iteration, in `rep`.
    if !m.watchpoints().is_empty() {
        return;
    }
    let w = op.w as u32;
    loop {
        let n = c.regs[1];
        // Leave the last iteration, and the last of the chunk, to `rep`.
        let most = n.saturating_sub(1).min(c.rep_left.saturating_sub(1));
        if most == 0 {
            return;
        }
        let di = c.regs[7];
        let Ok(lin) = c.seg_lin(ES, di, w, true) else {
            return;
        };
        if c.align_check(lin, w as u8).is_err() {
            return;
        }
        let k = most.min((0x1000 - (lin & 0xFFF)) / w);
        if k == 0 || di.checked_add(k * w).is_none() || c.seg_lin(ES, di, k * w, true).is_err() {
            return;
        }
        let p = c.host_ptr(m, lin, w, true);
        if p.is_null() {
            return;
        }
        // SAFETY: `host_ptr` gave a writable host pointer for the page of
        // `lin` (a TLB entry maps the whole page into guest RAM), and the k
        // elements end within that page.
        unsafe {
            for i in 0..k as usize {
                match w {
                    1 => *p.add(i) = v as u8,
                    2 => (p.add(2 * i) as *mut u16).write_unaligned(v as u16),
                    _ => (p.add(4 * i) as *mut u32).write_unaligned(v),
                }
            }
        }
        c.regs[7] = di + k * w;
        c.regs[1] = n - k;
        c.rep_left -= k;
    }
}

pub fn lods(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let st = step(c, op.w);
    rep(c, m, op, |c, m| {
        let si = index(c, op, 6);
        let v = c.rd(m, op.seg as usize, si, op.w)?;
        c.set_reg(0, op.w, v);
        advance(c, op, 6, st);
        Ok(true)
    })
}

// ---- LODS, STOS, MOVS without a prefix ----------------------------------------
//
// One iteration, of one width and address size each: what `rep` and the
// generic handlers do for `x` = 0 (the body once; nothing of the REP
// bookkeeping), without looking at `op.w` and `op.a32` at run time. A
// boot sector's checksum loop (LODSW) and a byte copy (MOVSB) run them.

fn lods1<const W: u8, const A32: bool>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.rd(m, op.seg as usize, index_at(c, A32, 6), W)?;
    c.set_reg(0, W, v);
    advance_at(c, A32, 6, step(c, W));
    Ok(())
}

fn stos1<const W: u8, const A32: bool>(c: &mut Cpu, m: &mut Machine, _op: &Op) -> R<()> {
    let v = c.reg(0, W);
    c.wr(m, ES, index_at(c, A32, 7), W, v)?;
    advance_at(c, A32, 7, step(c, W));
    Ok(())
}

fn movs1<const W: u8, const A32: bool>(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let v = c.rd(m, op.seg as usize, index_at(c, A32, 6), W)?;
    c.wr(m, ES, index_at(c, A32, 7), W, v)?;
    let st = step(c, W);
    advance_at(c, A32, 6, st);
    advance_at(c, A32, 7, st);
    Ok(())
}

/// The one-iteration handler for a LODS, STOS or MOVS without a REP
/// prefix (`op` lowered by `decode::string_op`), if `mnemonic` is one.
pub fn single(mnemonic: iced_x86::Mnemonic, op: &Op) -> Option<crate::ops::Handler> {
    use iced_x86::Mnemonic::*;
    if op.x != 0 {
        return None;
    }
    macro_rules! pick {
        ($f:ident) => {
            match (op.w, op.a32) {
                (1, false) => $f::<1, false>,
                (1, true) => $f::<1, true>,
                (2, false) => $f::<2, false>,
                (2, true) => $f::<2, true>,
                (_, false) => $f::<4, false>,
                (_, true) => $f::<4, true>,
            }
        };
    }
    Some(match mnemonic {
        Lodsb | Lodsw | Lodsd => pick!(lods1),
        Stosb | Stosw | Stosd => pick!(stos1),
        Movsb | Movsw | Movsd => pick!(movs1),
        _ => return None,
    })
}

/// CMPS: compares [seg:SI] with [ES:DI]; REPE stops on ZF = 0, REPNE on 1.
pub fn cmps(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let st = step(c, op.w);
    rep(c, m, op, |c, m| {
        let si = index(c, op, 6);
        let di = index(c, op, 7);
        // The order of the two reads: [ES:EDI] first, so with both
        // unmapped CR2 is EDI's page (as on the AMD Zen 3 the native
        // oracle found it on, and QEMU; a Zen 5 reads [ESI] first; the
        // SDM does not order them).
        let b = c.rd(m, ES, di, op.w)?;
        let a = c.rd(m, op.seg as usize, si, op.w)?;
        alu_op::<CMP>(c, op.w, a, b);
        advance(c, op, 6, st);
        advance(c, op, 7, st);
        Ok((op.x == 1) == c.fl.zf())
    })
}

pub fn scas(c: &mut Cpu, m: &mut Machine, op: &Op) -> R<()> {
    let st = step(c, op.w);
    let a = c.reg(0, op.w);
    rep(c, m, op, |c, m| {
        let di = index(c, op, 7);
        let b = c.rd(m, ES, di, op.w)?;
        alu_op::<CMP>(c, op.w, a, b);
        advance(c, op, 7, st);
        Ok((op.x == 1) == c.fl.zf())
    })
}
