//! The instruction forms of the native oracle's generator, one function
//! per family, each item with the flags it reads, writes and leaves
//! undefined (SDM Vol 2, each instruction's "Flags Affected").

use crate::gen::{Item, Rng, AF, CF, EBP_OFF, OF, PF, SF, STATUS, ZF};
use crate::layout::{DATA, WIN16};
use crate::operands::{data_off, mem, rm, Rm, SAFE, W};

/// The flags condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc)
/// reads.
fn cc_reads(cc: u8) -> u32 {
    match cc >> 1 {
        0 => OF,
        1 => CF,
        2 => ZF,
        3 => CF | ZF,
        4 => SF,
        5 => PF,
        6 => SF | OF,
        _ => ZF | SF | OF,
    }
}

fn width(r: &mut Rng) -> W {
    r.pick(&[W::B, W::H, W::D, W::D])
}

fn wide(r: &mut Rng) -> W {
    r.pick(&[W::H, W::D, W::D])
}

/// A shift or rotate count: 0, 1, width-1, width, width+1, 31, 32, 33
/// and others.
fn count(r: &mut Rng, w: W) -> u8 {
    let b = w.bits() as u8;
    r.pick(&[0, 1, 1, b - 1, b, b + 1, 2 * b - 1, 31, 32, 33, 63])
        .max(if r.chance(20) { r.below(256) as u8 } else { 0 })
}

/// The flags of shift group 2's operation `op` (ROL ROR RCL RCR SHL SHR
/// SAL SAR) by `c` on `w` bits: (reads, writes, undefined). SDM Vol 2B
/// "RCL/RCR/ROL/ROR" and "SAL/SAR/SHL/SHR", Flags Affected: a masked count
/// of 0 affects no flags; OF is defined for 1-bit shifts and rotates only;
/// AF is undefined after a shift; CF is undefined after SHL/SHR by the
/// width or more.
fn shift_flags(op: u8, c: u8, w: W) -> (u32, u32, u32) {
    let c = c & 31;
    if c == 0 {
        return (0, 0, 0);
    }
    let of = if c != 1 { OF } else { 0 };
    match op {
        0 | 1 => (0, CF | OF, of),
        2 | 3 => (CF, CF | OF, of),
        4 | 5 => {
            let cf = if c as u32 >= w.bits() { CF } else { 0 };
            (0, STATUS, AF | of | cf)
        }
        _ => (0, STATUS, AF | of),
    }
}

/// One random item.
pub fn item(r: &mut Rng) -> Item {
    // Lock the memory operand made last (`Rng::lock` chose it aligned).
    let lock_mem = |r: &mut Rng, m: &Rm| std::mem::take(&mut r.locked) && m.mem;
    match r.below(106) {
        // ALU: ADD OR ADC SBB AND SUB XOR CMP, r/m,r and r,r/m.
        0..=11 => {
            let k = r.below(8) as u8;
            let w = width(r);
            let to_rm = r.chance(50);
            r.lock();
            let m = rm(r, w, to_rm, 40);
            let reg = if to_rm || w == W::B {
                r.below(8) as u8
            } else {
                r.pick(&SAFE)
            };
            let op = w.op(8 * k + if to_rm { 0 } else { 2 });
            // LOCK on a memory destination (CMP is not lockable: #UD),
            // rarely on a register (#UD).
            let lock = (lock_mem(r, &m) && to_rm) || r.chance(1);
            let reads = if k == 2 || k == 3 { CF } else { 0 };
            let undef = if matches!(k, 1 | 4 | 6) { AF } else { 0 };
            Item::new(m.insn(lock, &w.pfx(), &[op], reg, &[])).flags(reads, STATUS, undef)
        }
        // ALU with an immediate: 80/81/83 /k and the AL/eAX short forms.
        12..=19 => {
            let k = r.below(8) as u8;
            let w = width(r);
            let reads = if k == 2 || k == 3 { CF } else { 0 };
            let undef = if matches!(k, 1 | 4 | 6) { AF } else { 0 };
            let bytes = if r.chance(20) {
                let mut b = w.pfx();
                b.push(w.op(8 * k + 4));
                b.extend(w.imm(r.val(w.bits())));
                b
            } else {
                r.lock();
                let m = rm(r, w, true, 40);
                let lock = lock_mem(r, &m);
                if w != W::B && r.chance(40) {
                    let i = r.val(8) as u8;
                    m.insn(lock, &w.pfx(), &[0x83], k, &[i])
                } else {
                    let op = if w == W::B { 0x80 } else { 0x81 };
                    m.insn(lock, &w.pfx(), &[op], k, &w.imm(r.val(w.bits())))
                }
            };
            Item::new(bytes).flags(reads, STATUS, undef)
        }
        // TEST r/m,r; TEST r/m,imm; TEST AL/eAX,imm. AF undefined.
        20..=21 => {
            let w = width(r);
            let m = rm(r, w, false, 40);
            let bytes = match r.below(3) {
                0 => m.insn(false, &w.pfx(), &[w.op(0x84)], r.below(8) as u8, &[]),
                1 => m.insn(false, &w.pfx(), &[w.op(0xF6)], 0, &w.imm(r.val(w.bits()))),
                _ => {
                    let mut b = w.pfx();
                    b.push(w.op(0xA8));
                    b.extend(w.imm(r.val(w.bits())));
                    b
                }
            };
            Item::new(bytes).flags(0, STATUS, AF)
        }
        // INC/DEC (CF kept), NEG, NOT.
        22..=25 => {
            let w = width(r);
            r.lock();
            let m = rm(r, w, true, 30);
            let lock = lock_mem(r, &m);
            match r.below(5) {
                0 if w != W::B => {
                    let mut b = w.pfx();
                    b.push(r.pick(&[0x40u8, 0x48]) + r.pick(&SAFE));
                    Item::new(b).flags(0, STATUS & !CF, 0)
                }
                0 | 1 => {
                    let op = if w == W::B { 0xFE } else { 0xFF };
                    let k = r.below(2) as u8;
                    Item::new(m.insn(lock, &w.pfx(), &[op], k, &[])).flags(0, STATUS & !CF, 0)
                }
                2 | 3 => {
                    Item::new(m.insn(lock, &w.pfx(), &[w.op(0xF6)], 3, &[])).flags(0, STATUS, 0)
                }
                _ => Item::new(m.insn(lock, &w.pfx(), &[w.op(0xF6)], 2, &[])),
            }
        }
        // Shifts and rotates by 1, imm8 and CL.
        26..=33 => {
            let w = width(r);
            let op = r.pick(&[0u8, 1, 2, 3, 4, 5, 7]);
            let m = rm(r, w, true, 30);
            let (c, bytes) = match r.below(3) {
                0 => (1, m.insn(false, &w.pfx(), &[w.op(0xD0)], op, &[])),
                1 => {
                    let c = count(r, w);
                    (c, m.insn(false, &w.pfx(), &[w.op(0xC0)], op, &[c]))
                }
                _ => {
                    let c = count(r, w);
                    let mut b = vec![0xB1, c]; // mov cl, c
                    b.extend(m.insn(false, &w.pfx(), &[w.op(0xD2)], op, &[]));
                    (c, b)
                }
            };
            let (rd, wr, un) = shift_flags(op, c, w);
            Item::new(bytes).flags(rd, wr, un)
        }
        // SHLD/SHRD by imm8 and CL, 16 and 32 bits. SDM Vol 2B
        // "SHLD"/"SHRD": the result and flags are undefined for a count
        // above the operand size (16-bit forms by 17-31): not generated.
        34..=36 => {
            let w = wide(r);
            let mut c = count(r, w);
            if w == W::H && (c & 31) > 16 {
                c = 16;
            }
            let m = rm(r, w, true, 30);
            let reg = r.below(8) as u8;
            let base = r.pick(&[0xA4u8, 0xAC]);
            let bytes = if r.chance(50) {
                m.insn(false, &w.pfx(), &[0x0F, base], reg, &[c])
            } else {
                let mut b = vec![0xB1, c];
                b.extend(m.insn(false, &w.pfx(), &[0x0F, base + 1], reg, &[]));
                b
            };
            let c = c & 31;
            if c == 0 {
                Item::new(bytes)
            } else {
                let of = if c != 1 { OF } else { 0 };
                Item::new(bytes).flags(0, STATUS, AF | of)
            }
        }
        // MUL/IMUL (one operand): CF/OF defined, SF ZF AF PF undefined.
        // DIV/IDIV: every status flag undefined; #DE on a zero divisor or
        // a quotient too large. The dividend's high half is often set
        // first (MOV, which writes no flags) so that some divisions fit.
        37..=42 => {
            let w = width(r);
            let k = r.below(4) as u8 + 4;
            let m = rm(r, w, false, 30);
            let mut b = vec![];
            if k >= 6 && r.chance(80) {
                match w {
                    W::B => b.extend([0xB4, 0]),          // mov ah, 0
                    W::H => b.extend([0x66, 0xBA, 0, 0]), // mov dx, 0
                    W::D => b.extend([0xBA, 0, 0, 0, 0]), // mov edx, 0
                }
            }
            b.extend(m.insn(false, &w.pfx(), &[w.op(0xF6)], k, &[]));
            let undef = if k >= 6 { STATUS } else { SF | ZF | AF | PF };
            Item::new(b).flags(0, STATUS, undef)
        }
        // IMUL r, r/m and IMUL r, r/m, imm8/imm16/imm32.
        43..=45 => {
            let w = wide(r);
            let m = rm(r, w, false, 30);
            let reg = r.pick(&SAFE);
            let bytes = match r.below(3) {
                0 => m.insn(false, &w.pfx(), &[0x0F, 0xAF], reg, &[]),
                1 => m.insn(false, &w.pfx(), &[0x6B], reg, &[r.val(8) as u8]),
                _ => m.insn(false, &w.pfx(), &[0x69], reg, &w.imm(r.val(w.bits()))),
            };
            Item::new(bytes).flags(0, STATUS, SF | ZF | AF | PF)
        }
        // BCD adjusts, AL (and AH) often set first. SDM Vol 2A: AAA/AAS
        // read AF, leave OF SF ZF PF undefined; DAA/DAS read CF and AF,
        // leave OF undefined; AAM/AAD leave OF AF CF undefined, AAM 0 is
        // #DE.
        46..=49 => {
            let mut b = vec![];
            if r.chance(60) {
                b.extend([0x66, 0xB8]); // mov ax, imm16
                b.extend((r.next() as u16).to_le_bytes());
            }
            let (op, rd, un): (&[u8], u32, u32) = match r.below(6) {
                0 => (&[0x37], AF, OF | SF | ZF | PF),
                1 => (&[0x3F], AF, OF | SF | ZF | PF),
                2 => (&[0x27], CF | AF, OF),
                3 => (&[0x2F], CF | AF, OF),
                4 => (&[0xD4], 0, OF | AF | CF),
                _ => (&[0xD5], 0, OF | AF | CF),
            };
            b.extend_from_slice(op);
            if op[0] >= 0xD4 {
                b.push(
                    r.pick(&[10u8, 10, 0, 1, 16, 0xFF])
                        .max(r.below(3) as u8 * 7),
                );
            }
            Item::new(b).flags(rd, STATUS, un)
        }
        // BT/BTS/BTR/BTC by register and imm8; CF defined, ZF unaffected,
        // OF SF AF PF undefined (SDM Vol 2A "BT"). The bit-offset register
        // of the memory forms is set first (it addresses far outside the
        // operand otherwise).
        50..=53 => {
            let w = wide(r);
            let k = r.below(4) as u8;
            r.lock();
            let m = rm(r, w, k != 0, 50);
            let lock = lock_mem(r, &m) && k != 0;
            let b = if r.chance(50) {
                let reg = r.pick(&[0u8, 1, 2, 3]);
                let mut b = vec![];
                if m.mem {
                    b.extend(w.pfx());
                    b.push(0xB8 + reg);
                    let v = r.below(512) as i32 - 64;
                    b.extend(w.imm(v as u32));
                }
                b.extend(m.insn(lock, &w.pfx(), &[0x0F, 0xA3 + 8 * k], reg, &[]));
                b
            } else {
                m.insn(lock, &w.pfx(), &[0x0F, 0xBA], 4 + k, &[r.below(256) as u8])
            };
            Item::new(b).flags(0, CF | OF | SF | AF | PF, OF | SF | AF | PF)
        }
        // BSF/BSR: ZF defined, CF OF SF AF PF undefined.
        54..=55 => {
            let w = wide(r);
            let m = rm(r, w, false, 30);
            let op = r.pick(&[0xBCu8, 0xBD]);
            Item::new(m.insn(false, &w.pfx(), &[0x0F, op], r.pick(&SAFE), &[])).flags(
                0,
                STATUS,
                CF | OF | SF | AF | PF,
            )
        }
        // BSWAP r32.
        56 => Item::new(vec![0x0F, 0xC8 + r.pick(&SAFE)]),
        // XADD, CMPXCHG (all status flags, like ADD and CMP), CMPXCHG8B
        // (ZF only).
        57..=60 => {
            let w = width(r);
            match r.below(5) {
                0 => {
                    r.lock();
                    let m = if r.chance(97) {
                        mem(r, 8)
                    } else {
                        rm(r, W::D, true, 0)
                    };
                    let lock = lock_mem(r, &m);
                    Item::new(m.insn(lock, &[], &[0x0F, 0xC7], 1, &[])).flags(0, ZF, 0)
                }
                k => {
                    r.lock();
                    let m = rm(r, w, true, 50);
                    let lock = lock_mem(r, &m);
                    let op = if k <= 2 { 0xC0 } else { 0xB0 };
                    let reg = if w == W::B {
                        r.below(8) as u8
                    } else {
                        r.pick(&SAFE)
                    };
                    Item::new(m.insn(lock, &w.pfx(), &[0x0F, w.op(op)], reg, &[]))
                        .flags(0, STATUS, 0)
                }
            }
        }
        // SETcc r/m8, CMOVcc r, r/m (CMOVcc loads its source whether or
        // not the condition holds, so it can fault either way).
        61..=64 => {
            let cc = r.below(16) as u8;
            if r.chance(50) {
                let m = rm(r, W::B, true, 30);
                Item::new(m.insn(false, &[], &[0x0F, 0x90 + cc], 0, &[])).flags(cc_reads(cc), 0, 0)
            } else {
                let w = wide(r);
                let m = rm(r, w, false, 30);
                Item::new(m.insn(false, &w.pfx(), &[0x0F, 0x40 + cc], r.pick(&SAFE), &[])).flags(
                    cc_reads(cc),
                    0,
                    0,
                )
            }
        }
        // A forward Jcc over the next 1-3 items.
        65..=67 => {
            let cc = r.below(16) as u8;
            let mut it = Item::new(vec![0x0F, 0x80 + cc, 0, 0, 0, 0]).flags(cc_reads(cc), 0, 0);
            it.skip = 1 + r.below(3) as usize;
            it
        }
        // String instructions with and without REP/REPE/REPNE, ESI, EDI
        // and ECX set first; DF as CLD/STD left it.
        68..=73 => string(r),
        74 => Item::new(vec![r.pick(&[0xFCu8, 0xFD])]), // cld / std
        // LEA: any addressing form, 32- and 16-bit.
        75..=77 => {
            let mut b = vec![];
            if r.chance(20) {
                b.push(0x66);
            }
            let reg = r.pick(&SAFE);
            if r.chance(30) {
                b.push(0x67);
                let md = r.below(3) as u8;
                let rmf = r.below(8) as u8;
                b.extend([0x8D, md << 6 | reg << 3 | rmf]);
                let n = match (md, rmf) {
                    (0, 6) | (2, _) => 2,
                    (1, _) => 1,
                    _ => 0,
                };
                b.extend((0..n).map(|_| r.next() as u8));
            } else {
                let md = r.below(3) as u8;
                let rmf = r.below(8) as u8;
                b.extend([0x8D, md << 6 | reg << 3 | rmf]);
                let mut n = [0, 1, 4][md as usize];
                if rmf == 4 {
                    let sib = r.next() as u8;
                    b.push(sib);
                    if md == 0 && sib & 7 == 5 {
                        n = 4;
                    }
                } else if md == 0 && rmf == 5 {
                    n = 4;
                }
                let d = r.val(32).to_le_bytes();
                b.extend_from_slice(&d[..n]);
            }
            Item::new(b)
        }
        // The stack: PUSHAD/POPAD (and 16-bit), ENTER/LEAVE, PUSH/POP
        // register, immediate and memory.
        78..=83 => stack(r),
        // XLAT, with EBX set to the table first.
        84 => {
            let mut b = vec![0x8D, 0x9D]; // lea ebx, [ebp + disp32]
            b.extend((data_off(r, 256) - EBP_OFF).to_le_bytes());
            b.push(0xD7);
            Item::new(b)
        }
        // CBW/CWDE/CWD/CDQ; LAHF/SAHF; CLC/STC/CMC.
        85..=87 => match r.below(9) {
            0 => Item::new(vec![0x66, 0x98]),
            1 => Item::new(vec![0x98]),
            2 => Item::new(vec![0x66, 0x99]),
            3 => Item::new(vec![0x99]),
            4 => Item::new(vec![0x9F]).flags(SF | ZF | AF | PF | CF, 0, 0),
            5 => Item::new(vec![0x9E]).flags(0, SF | ZF | AF | PF | CF, 0),
            6 => Item::new(vec![0xF8]).flags(0, CF, 0),
            7 => Item::new(vec![0xF9]).flags(0, CF, 0),
            _ => Item::new(vec![0xF5]).flags(CF, CF, 0),
        },
        // MOV forms, MOVZX/MOVSX, XCHG.
        88..=93 => mov(r),
        // PUSHFD (reads every status flag: it stores them), and PUSH
        // imm32 + POPFD with TF clear: POPFD at CPL 3 with IOPL 0 keeps
        // IF, IOPL, VIP, VIF and VM (SDM Vol 2B "POPF").
        94 => {
            if r.chance(50) {
                Item::new(vec![0x9C]).flags(STATUS, 0, 0)
            } else {
                let v = (r.next() as u32 & 0x003F_7FD5 & !0x100) | 2;
                let mut b = vec![0x68];
                b.extend(v.to_le_bytes());
                if r.chance(15) {
                    b.extend([0x66, 0x9D]);
                } else {
                    b.push(0x9D);
                }
                Item::new(b).flags(0, STATUS, 0)
            }
        }
        // BOUND (#BR when out of range), the index register set first.
        95 => {
            let w = wide(r);
            let m = mem(r, 2 * w.bytes());
            let reg = r.pick(&SAFE);
            let mut b = vec![];
            if r.chance(60) {
                b.extend(w.pfx());
                b.push(0xB8 + reg);
                b.extend(w.imm(r.val(w.bits())));
            }
            b.extend(m.insn(false, &w.pfx(), &[0x62], reg, &[]));
            Item::new(b)
        }
        // NOP and the multi-byte NOP (whose memory operand is never
        // accessed, even when unmapped).
        96 => {
            if r.chance(50) {
                Item::new(vec![0x90])
            } else {
                let m = mem(r, 4);
                Item::new(m.insn(false, &[], &[0x0F, 0x1F], 0, &[]))
            }
        }
        // Rarely, a fault on purpose: UD2 (#UD); HLT, CLI, STI, IN, OUT,
        // MOV from CR0, INT 0x41 (#GP at CPL 3); INTO (#OF if OF set).
        97..=99 if r.chance(60) => Item::new(vec![0x90]),
        100..=102 => segment(r),
        103..=105 => flow(r),
        _ => match r.below(10) {
            0 => Item::new(vec![0x0F, 0x0B]),
            1 => Item::new(vec![0xF4]),
            2 => Item::new(vec![0xFA]),
            3 => Item::new(vec![0xFB]),
            4 => Item::new(vec![0xEC]),
            5 => Item::new(vec![0xEE]),
            6 => Item::new(vec![0x0F, 0x20, 0xC0]),
            7 => Item::new(vec![0xCD, 0x41]),
            // INTO; NOP: Linux reports #OF (a trap, EIP after the INTO)
            // and #GP with the same signal, so the NOP keeps any
            // instruction that could #GP (a branch target) away from the
            // address after an INTO.
            _ => Item::new(vec![0xCE, 0x90]).flags(OF, 0, 0),
        },
    }
}

/// Segment registers at CPL 3: MOV r/m, Sreg; PUSH Sreg; and loads
/// (MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS) of selectors whose outcome
/// is the same on a 32-bit CPU and in compatibility mode: the flat user
/// data segment with RPL 3 and RPL 0 (0x2B, 0x28), the user code segment
/// (0x23: readable, so DS may hold it, but writes through it and SS are
/// #GP), a ring-0 data segment (0x18: #GP) and one beyond the GDT (0x80:
/// #GP). The null selector is left out: in compatibility mode a null DS
/// does not fault on use as it does on a 32-bit CPU.
fn segment(r: &mut Rng) -> Item {
    let sel = r.pick(&[0x2Bu16, 0x2B, 0x2B, 0x28, 0x23, 0x18, 0x80]);
    // ES, SS, DS, FS, GS (CS cannot be loaded).
    let sreg = r.pick(&[0u8, 2, 3, 4, 5]);
    match r.below(5) {
        0 => {
            // MOV r32/r16/m16, Sreg (any of the six).
            let w = wide(r);
            let m = rm(r, w, true, 40);
            Item::new(m.insn(false, &w.pfx(), &[0x8C], r.below(6) as u8, &[]))
        }
        1 => {
            let op: &[u8] = r.pick(&[
                &[0x06u8][..],
                &[0x0E],
                &[0x16],
                &[0x1E],
                &[0x0F, 0xA0],
                &[0x0F, 0xA8],
            ]);
            let mut b = vec![];
            // (With a 32-bit operand an AMD CPU zero-extends the selector
            // where an Intel CPU, as the engines, writes its word alone:
            // on such a host, a 16-bit operand always.)
            if r.chance(20) || crate::host_vendor() != "GenuineIntel" {
                b.push(0x66);
            }
            b.extend_from_slice(op);
            Item::new(b)
        }
        2 => {
            // mov eax, sel; mov sreg, ax
            let mut b = vec![0xB8];
            b.extend((sel as u32 | (r.val(16) << 16)).to_le_bytes());
            b.extend([0x8E, 0xC0 | sreg << 3]);
            Item::new(b)
        }
        3 => {
            // push sel; pop sreg
            let pop: &[u8] = match sreg {
                0 => &[0x07],
                2 => &[0x17],
                3 => &[0x1F],
                4 => &[0x0F, 0xA1],
                _ => &[0x0F, 0xA9],
            };
            let mut b = vec![0x68];
            b.extend((sel as u32).to_le_bytes());
            b.extend_from_slice(pop);
            Item::new(b)
        }
        _ => {
            // mov word [ebp+d+4], sel; lXs reg, [ebp+d]
            let off = r.below(0x1FF8) as i32 & !3;
            let d = off - EBP_OFF;
            let mut b = vec![0x66, 0xC7, 0x85];
            b.extend((d + 4).to_le_bytes());
            b.extend(sel.to_le_bytes());
            let op: &[u8] = match sreg {
                0 => &[0xC4],
                2 => &[0x0F, 0xB2],
                3 => &[0xC5],
                4 => &[0x0F, 0xB4],
                _ => &[0x0F, 0xB5],
            };
            b.extend_from_slice(op);
            b.push(0x85 | r.pick(&SAFE) << 3);
            b.extend(d.to_le_bytes());
            Item::new(b)
        }
    }
}

/// Control transfers that stay inside the item and go forward: CALL to
/// the next instruction and POP (the return address), CALL with RET and
/// RET imm16 returning past themselves, JMP through a register, LOOP,
/// LOOPE, LOOPNE and JECXZ over a NOP.
fn flow(r: &mut Rng) -> Item {
    match r.below(5) {
        // call $+5; pop reg
        0 => Item::new(vec![0xE8, 0, 0, 0, 0, 0x58 + r.pick(&SAFE)]),
        // call $+5; add dword [esp], 5; ret  (returns past the RET)
        1 => Item::new(vec![0xE8, 0, 0, 0, 0, 0x83, 0x04, 0x24, 0x05, 0xC3]).flags(0, STATUS, 0),
        // push imm8; call $+5; add dword [esp], 7; ret 4
        2 => Item::new(vec![
            0x6A,
            r.val(8) as u8,
            0xE8,
            0,
            0,
            0,
            0,
            0x83,
            0x04,
            0x24,
            0x07,
            0xC2,
            0x04,
            0x00,
        ])
        .flags(0, STATUS, 0),
        // call $+5; pop reg; add reg, 6; jmp reg  (to the item's end)
        3 => {
            let reg = r.pick(&SAFE);
            Item::new(vec![
                0xE8,
                0,
                0,
                0,
                0,
                0x58 + reg,
                0x83,
                0xC0 + reg,
                6,
                0xFF,
                0xE0 + reg,
            ])
            .flags(0, STATUS, 0)
        }
        // mov ecx, n; loop/loope/loopne/jecxz $+3; nop
        _ => {
            let (op, reads) = r.pick(&[(0xE2u8, 0), (0xE1, ZF), (0xE0, ZF), (0xE3, 0)]);
            let mut b = vec![0xB9];
            b.extend(r.pick(&[0u32, 1, 2, 0xFFFF_FFFF]).to_le_bytes());
            b.extend([op, 0x01, 0x90]);
            Item::new(b).flags(reads, 0, 0)
        }
    }
}

/// A string instruction (MOVS, CMPS, STOS, LODS, SCAS on 8/16/32 bits),
/// its registers set first, with or without a REP prefix; now and then
/// with a 16-bit address size (SI, DI, CX in the 16-bit window).
fn string(r: &mut Rng) -> Item {
    let w = width(r);
    let op8 = r.pick(&[0xA4u8, 0xA6, 0xAA, 0xAC, 0xAE]);
    let compares = op8 == 0xA6 || op8 == 0xAE;
    let a16 = r.chance(10);
    let rep = match r.below(10) {
        0..=3 => None,
        4..=8 => Some(0xF3u8),
        _ if compares => Some(0xF2),
        _ => Some(0xF3),
    };
    let n: u32 = match r.below(20) {
        0 => 0,
        1 => 0xFFFF_FFFF,
        2 => 0x400,
        _ => r.below(17) as u32,
    };
    let mut b = vec![];
    if a16 {
        for reg in [6u8, 7] {
            let v = WIN16 as u64 + r.below(0x8000);
            b.extend([0x66, 0xB8 + reg]);
            b.extend((v as u16).to_le_bytes());
        }
        b.extend([0x66, 0xB9]);
        b.extend((n.min(0x40) as u16).to_le_bytes());
    } else {
        for reg in [6u8, 7] {
            b.extend([0x8D, 0x85 | reg << 3]); // lea reg, [ebp + disp32]
            let off = if r.chance(90) {
                r.below(0x2000) as i32
            } else {
                data_off(r, 4)
            };
            b.extend((off - EBP_OFF).to_le_bytes());
        }
        b.push(0xB9); // mov ecx, n
        b.extend(n.to_le_bytes());
    }
    if let Some(p) = rep {
        b.push(p);
    }
    b.extend(w.pfx());
    if a16 {
        b.push(0x67);
    }
    b.push(w.op(op8));
    // With REP and a zero count nothing runs and no flag changes.
    let runs = rep.is_none() || n != 0;
    if compares && runs {
        Item::new(b).flags(0, STATUS, 0)
    } else {
        Item::new(b)
    }
}

/// Stack forms.
fn stack(r: &mut Rng) -> Item {
    match r.below(12) {
        0 => Item::new(vec![0x60]),
        1 => Item::new(vec![0x61]),
        2 => Item::new(vec![r.pick(&[0x66u8, 0x66]), r.pick(&[0x60u8, 0x61])]),
        3 | 4 => {
            let size = r.pick(&[0u16, 4, 8, 0x20, 0x7FC, 0x1000]);
            let level = r.pick(&[0u8, 0, 0, 0, 0, 1, 1, 2, 3, 5, 31, 32, 33]);
            let mut b = vec![];
            if r.chance(10) {
                b.push(0x66);
            }
            b.push(0xC8);
            b.extend(size.to_le_bytes());
            b.push(level);
            Item::new(b)
        }
        5 => Item::new(if r.chance(10) {
            vec![0x66, 0xC9]
        } else {
            vec![0xC9]
        }),
        6 => {
            let mut b = vec![];
            if r.chance(15) {
                b.push(0x66);
            }
            b.push(0x50 + r.below(8) as u8);
            Item::new(b)
        }
        7 => {
            let mut b = vec![];
            if r.chance(15) {
                b.push(0x66);
            }
            b.push(0x58 + r.pick(&SAFE));
            Item::new(b)
        }
        8 => {
            if r.chance(50) {
                let mut b = vec![0x68];
                b.extend(r.val(32).to_le_bytes());
                Item::new(b)
            } else {
                Item::new(vec![0x6A, r.val(8) as u8])
            }
        }
        9 | 10 => {
            let w = wide(r);
            let m = mem(r, w.bytes());
            Item::new(m.insn(false, &w.pfx(), &[0xFF], 6, &[]))
        }
        _ => {
            // POP r/m32: with [esp + disp], ESP as incremented is the base
            // (SDM Vol 2B "POP").
            let w = wide(r);
            let m = mem(r, w.bytes());
            Item::new(m.insn(false, &w.pfx(), &[0x8F], 0, &[]))
        }
    }
}

/// MOV forms, MOVZX/MOVSX and XCHG.
fn mov(r: &mut Rng) -> Item {
    let w = width(r);
    match r.below(8) {
        0 | 1 => {
            let m = rm(r, w, true, 60);
            Item::new(m.insn(false, &w.pfx(), &[w.op(0x88)], r.below(8) as u8, &[]))
        }
        2 => {
            let m = rm(r, w, false, 60);
            let reg = if w == W::B {
                r.below(8) as u8
            } else {
                r.pick(&SAFE)
            };
            Item::new(m.insn(false, &w.pfx(), &[w.op(0x8A)], reg, &[]))
        }
        3 => {
            let m = rm(r, w, true, 50);
            Item::new(m.insn(false, &w.pfx(), &[w.op(0xC6)], 0, &w.imm(r.val(w.bits()))))
        }
        4 => {
            let mut b = w.pfx();
            match w {
                W::B => b.push(0xB0 + r.below(8) as u8),
                _ => b.push(0xB8 + r.pick(&SAFE)),
            }
            b.extend(w.imm(r.val(w.bits())));
            Item::new(b)
        }
        5 => {
            // moffs: A0-A3 with an absolute address.
            let mut b = w.pfx();
            b.push(r.pick(&[0xA0u8, 0xA2]) + (w != W::B) as u8);
            b.extend((DATA as i32 + data_off(r, w.bytes())).to_le_bytes());
            Item::new(b)
        }
        6 => {
            let src = r.pick(&[W::B, W::H]);
            let dst = if src == W::H { W::D } else { wide(r) };
            let m = rm(r, src, false, 50);
            let op = if src == W::B { 0xB6 } else { 0xB7 } + if r.chance(50) { 8 } else { 0 };
            Item::new(m.insn(false, &dst.pfx(), &[0x0F, op], r.pick(&SAFE), &[]))
        }
        _ => {
            if w != W::B && r.chance(30) {
                let mut b = w.pfx();
                b.push(0x90 + r.pick(&SAFE));
                Item::new(b)
            } else {
                // XCHG with memory is locked whether or not it says so.
                r.locked = true;
                let m = rm(r, w, true, 50);
                r.locked = false;
                let reg = if w == W::B {
                    r.below(8) as u8
                } else {
                    r.pick(&SAFE)
                };
                Item::new(m.insn(false, &w.pfx(), &[w.op(0x86)], reg, &[]))
            }
        }
    }
}
