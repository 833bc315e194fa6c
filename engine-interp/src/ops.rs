//! The pre-decoded instruction form: what iced-x86 decoded, lowered once
//! into a handler pointer and pre-extracted operands (Bochs' iCache idea),
//! so executing an instruction never looks at the encoding again.

use crate::cpu::Cpu;
use crate::fault::R;
use iced_x86::Code;
use machine::Machine;

pub type Handler = fn(&mut Cpu, &mut Machine, &Op) -> R<()>;

/// Operand kinds.
pub const K_NONE: u8 = 0;
pub const K_REG: u8 = 1;
pub const K_MEM: u8 = 2;
pub const K_IMM: u8 = 3;

/// "No register" in base/index.
pub const NOREG: u8 = 0xFF;

#[derive(Clone)]
pub struct Op {
    pub f: Handler,
    /// Instruction length in bytes.
    pub len: u8,
    /// Operand size in bytes (1, 2 or 4).
    pub w: u8,
    /// Address size is 32 bits.
    pub a32: bool,
    /// Kinds of the first two operands (K_*).
    pub k0: u8,
    pub k1: u8,
    /// Register numbers for K_REG operands (x86 encoding; for w = 1, 4-7
    /// are AH-BH).
    pub r0: u8,
    pub r1: u8,
    /// Memory operand: segment register index, base, index, scale shift,
    /// displacement.
    pub seg: u8,
    pub base: u8,
    pub index: u8,
    pub scale: u8,
    pub disp: u32,
    pub imm: u32,
    pub imm2: u32,
    /// Handler-specific: condition code, REP kind, sub-operation, source
    /// operand width...
    pub x: u8,
    pub code: Code,
}

impl Op {
    pub fn new(f: Handler, code: Code, len: u8) -> Op {
        Op {
            f,
            len,
            w: 4,
            a32: true,
            k0: K_NONE,
            k1: K_NONE,
            r0: 0,
            r1: 0,
            seg: crate::cpu::DS as u8,
            base: NOREG,
            index: NOREG,
            scale: 0,
            disp: 0,
            imm: 0,
            imm2: 0,
            x: 0,
            code,
        }
    }

    /// The effective address (offset within the segment) of the memory
    /// operand (SDM Vol 2A 2.1.5). 16-bit addressing wraps at 64 KiB.
    #[inline(always)]
    pub fn ea(&self, c: &Cpu) -> u32 {
        let mut a = self.disp;
        if self.base != NOREG {
            a = a.wrapping_add(c.regs[self.base as usize & 7]);
        }
        if self.index != NOREG {
            a = a.wrapping_add(c.regs[self.index as usize & 7] << self.scale);
        }
        if self.a32 {
            a
        } else {
            a & 0xFFFF
        }
    }
}

/// Effective-address shapes with their own handler copies (32-bit
/// addressing): the decoder picks one so the hot MOVs skip the generic
/// base/index tests.
pub const EA_ANY: u8 = 0;
pub const EA_BD: u8 = 1;
pub const EA_BID: u8 = 2;

impl Op {
    /// The shape of this op's memory operand, for `ea_k`.
    pub fn ea_shape(&self) -> u8 {
        if !self.a32 || self.base == NOREG {
            EA_ANY
        } else if self.index == NOREG {
            EA_BD
        } else {
            EA_BID
        }
    }

    #[inline(always)]
    pub fn ea_k<const K: u8>(&self, c: &Cpu) -> u32 {
        match K {
            EA_BD => c.regs[self.base as usize & 7].wrapping_add(self.disp),
            EA_BID => c.regs[self.base as usize & 7]
                .wrapping_add(c.regs[self.index as usize & 7] << self.scale)
                .wrapping_add(self.disp),
            _ => self.ea(c),
        }
    }
}

/// Where an operand lives, once its address is resolved.
#[derive(Clone, Copy)]
pub enum Loc {
    Reg(u8),
    /// A linear address already checked for writing.
    Lin(u32),
}

impl Cpu {
    /// Reads operand `k`/`r` (one of the op's two operands) at width `op.w`.
    #[inline(always)]
    pub fn get(&mut self, m: &mut Machine, op: &Op, k: u8, r: u8) -> R<u32> {
        match k {
            K_REG => Ok(self.reg(r, op.w)),
            K_MEM => {
                let off = op.ea(self);
                self.rd(m, op.seg as usize, off, op.w)
            }
            _ => Ok(op.imm),
        }
    }

    #[inline(always)]
    pub fn get0(&mut self, m: &mut Machine, op: &Op) -> R<u32> {
        self.get(m, op, op.k0, op.r0)
    }
    #[inline(always)]
    pub fn get1(&mut self, m: &mut Machine, op: &Op) -> R<u32> {
        self.get(m, op, op.k1, op.r1)
    }

    /// Writes the first operand.
    #[inline(always)]
    pub fn set0(&mut self, m: &mut Machine, op: &Op, v: u32) -> R<()> {
        if op.k0 == K_REG {
            self.set_reg(op.r0, op.w, v);
            Ok(())
        } else {
            let off = op.ea(self);
            self.wr(m, op.seg as usize, off, op.w, v)
        }
    }

    /// Resolves the first operand for a read-modify-write: the segment,
    /// the alignment (#AC) and the pages are checked for writing before
    /// anything is read, as the CPU does: a read-modify-write of a dword
    /// that starts in a read-only page and ends in an unmapped one faults
    /// on the read-only page (CR2 its first byte), not on the unmapped one
    /// that a read alone would reach first (found by the native oracle,
    /// tests/tests/native_oracle).
    #[inline(always)]
    pub fn loc0(&mut self, m: &mut Machine, op: &Op) -> R<(Loc, u32)> {
        if op.k0 == K_REG {
            Ok((Loc::Reg(op.r0), self.reg(op.r0, op.w)))
        } else {
            let off = op.ea(self);
            let lin = self.seg_lin(op.seg as usize, off, op.w as u32, true)?;
            self.align_check(lin, op.w)?;
            let user = self.cpl == 3;
            self.probe_write(m, lin, op.w, user)?;
            let v = self.read_lin(m, lin, op.w, user)?;
            Ok((Loc::Lin(lin), v))
        }
    }

    #[inline(always)]
    pub fn put(&mut self, m: &mut Machine, op: &Op, loc: Loc, v: u32) -> R<()> {
        match loc {
            Loc::Reg(r) => {
                self.set_reg(r, op.w, v);
                Ok(())
            }
            Loc::Lin(lin) => self.write_lin(m, lin, op.w, v, self.cpl == 3),
        }
    }
}
