//! EFLAGS with lazily computed status flags.
//!
//! Most instructions set CF, PF, AF, ZF, SF and OF, and most of those values
//! are never read: the next ALU instruction overwrites them. So an ALU
//! instruction only records what it did (the operation, its operands, its
//! result and the operand size) and the flags are worked out when something
//! reads them (Jcc, ADC, PUSHF, an interrupt...). Bochs and QEMU do the same.

use machine::cpu::flags as f;

/// EFLAGS bits that always read 0 (bits 3, 5, 15 and 22-31; SDM Vol 1 3.4.3).
pub const RESERVED_ZERO: u32 = (1 << 3) | (1 << 5) | (1 << 15) | 0xFFC0_0000;

/// The operation whose result the status flags describe (the argument of
/// `set_lazy`; handlers pass a constant, so the match folds away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lazy {
    Add,
    /// ADC (the carry vector formula holds for any carry in).
    Adc,
    Sub,
    Sbb,
    /// AND, OR, XOR, TEST: CF = OF = 0, AF = 0 (undefined by the SDM).
    Logic,
    /// INC: like ADD of 1 but CF is kept.
    Inc,
    /// DEC: like SUB of 1 but CF is kept.
    Dec,
}

/// Bits of `aux`: the carry out of the top bit (CF), the carry out of the
/// bit below it (so OF = CF xor PO), and the carry out of bit 3 (AF).
const AUX_CF: u32 = 1 << 31;
const AUX_PO: u32 = 1 << 30;
const AUX_AF: u32 = 1 << 3;

/// EFLAGS with the status flags kept as the last result plus its carry
/// vector, the scheme Bochs uses: an ALU instruction stores its
/// sign-extended result and two bits of its carry chain; each flag is a
/// shift and a mask away, with no branch on the operation.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    /// Every flag; the status flags only when `lazy` is false.
    pub bits: u32,
    /// The status flags are described by `res` and `aux`.
    pub lazy: bool,
    /// The last result, sign-extended to 32 bits (SF = bit 31, ZF = 0).
    pub res: u32,
    pub aux: u32,
}

#[inline(always)]
pub fn mask(w: u8) -> u32 {
    match w {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

#[inline(always)]
pub fn sign(w: u8) -> u32 {
    1u32 << (w as u32 * 8 - 1)
}

#[inline(always)]
pub fn parity(v: u32) -> bool {
    (v as u8).count_ones().is_multiple_of(2)
}

#[inline(always)]
fn sext(v: u32, w: u8) -> u32 {
    match w {
        1 => v as u8 as i8 as i32 as u32,
        2 => v as u16 as i16 as i32 as u32,
        _ => v,
    }
}

/// Moves the two top carries of a `w`-byte carry vector to bits 31 and 30,
/// keeping the carry out of bit 3.
#[inline(always)]
fn aux_of(cout: u32, w: u8) -> u32 {
    let bits = w as u32 * 8;
    (cout & AUX_AF) | ((cout >> (bits - 2)) << 30)
}

impl Flags {
    pub fn new(bits: u32) -> Flags {
        Flags {
            bits: bits | f::FIXED,
            lazy: false,
            res: 0,
            aux: 0,
        }
    }

    /// Records the result `r` of operation `op` on `a` and `b` (width `w`).
    #[inline(always)]
    pub fn set_lazy(&mut self, op: Lazy, w: u8, a: u32, b: u32, r: u32) {
        let aux = match op {
            Lazy::Add | Lazy::Adc | Lazy::Inc => aux_of((a & b) | ((a | b) & !r), w),
            Lazy::Sub | Lazy::Sbb | Lazy::Dec => aux_of((!a & b) | (!(a ^ b) & r), w),
            Lazy::Logic => 0,
        };
        let aux = if matches!(op, Lazy::Inc | Lazy::Dec) {
            let mut aux = aux;
            // Keep the old CF; flip PO along with CF so OF = CF ^ PO holds.
            let old_cf = self.cf() as u32;
            if (aux >> 31) ^ old_cf != 0 {
                aux ^= AUX_CF | AUX_PO;
            }
            aux
        } else {
            aux
        };
        if !self.lazy {
            self.lazy = true;
        }
        self.res = sext(r, w);
        self.aux = aux;
    }

    /// Records INC or DEC, keeping CF.
    #[inline(always)]
    pub fn set_incdec(&mut self, dec: bool, w: u8, a: u32, r: u32) {
        let op = if dec { Lazy::Dec } else { Lazy::Inc };
        self.set_lazy(op, w, a, 1, r);
    }

    #[inline(always)]
    pub fn cf(&self) -> bool {
        if self.lazy {
            self.aux >> 31 != 0
        } else {
            self.bits & f::CF != 0
        }
    }

    #[inline(always)]
    pub fn zf(&self) -> bool {
        if self.lazy {
            self.res == 0
        } else {
            self.bits & f::ZF != 0
        }
    }

    #[inline(always)]
    pub fn sf(&self) -> bool {
        if self.lazy {
            self.res >> 31 != 0
        } else {
            self.bits & f::SF != 0
        }
    }

    #[inline(always)]
    pub fn of(&self) -> bool {
        if self.lazy {
            (self.aux ^ (self.aux << 1)) >> 31 != 0
        } else {
            self.bits & f::OF != 0
        }
    }

    #[inline(always)]
    pub fn pf(&self) -> bool {
        if self.lazy {
            parity(self.res)
        } else {
            self.bits & f::PF != 0
        }
    }

    #[inline(always)]
    pub fn af(&self) -> bool {
        if self.lazy {
            self.aux & AUX_AF != 0
        } else {
            self.bits & f::AF != 0
        }
    }

    /// The full EFLAGS value.
    pub fn get(&self) -> u32 {
        if !self.lazy {
            return self.bits;
        }
        let mut v = self.bits & !f::STATUS;
        v |= self.cf() as u32 * f::CF;
        v |= self.pf() as u32 * f::PF;
        v |= self.af() as u32 * f::AF;
        v |= self.zf() as u32 * f::ZF;
        v |= self.sf() as u32 * f::SF;
        v |= self.of() as u32 * f::OF;
        v
    }

    /// Replaces every flag (the caller applies the privilege rules).
    pub fn set(&mut self, v: u32) {
        self.bits = (v | f::FIXED) & !RESERVED_ZERO;
        self.lazy = false;
    }

    /// Materialises the status flags into `bits` so single ones can be
    /// changed.
    #[inline]
    pub fn materialize(&mut self) {
        if self.lazy {
            self.bits = self.get();
            self.lazy = false;
        }
    }

    /// Sets or clears one flag (materialising first).
    #[inline]
    pub fn put(&mut self, flag: u32, on: bool) {
        self.materialize();
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }

    /// Sets the six status flags from a result: ZF, SF and PF from `r` of
    /// width `w`, and the given CF, OF and AF. Kept lazily, as the ALU's
    /// are: the result and a carry vector that gives CF, OF and AF (the
    /// shifts' flags; materialising all six eagerly was most of a `SHL`'s
    /// time in the benchmark suite's real-mode member).
    #[inline]
    pub fn set_szp(&mut self, w: u8, r: u32, cf: bool, of: bool, af: bool) {
        self.res = sext(r & mask(w), w);
        self.aux = ((cf as u32) << 31) | (((cf ^ of) as u32) << 30) | (af as u32 * AUX_AF);
        self.lazy = true;
    }

    /// Sets CF and OF, the other status flags unchanged (the rotates):
    /// in the lazy form only the carry vector's two top bits change.
    #[inline]
    pub fn set_cf_of(&mut self, cf: bool, of: bool) {
        if self.lazy {
            self.aux =
                (self.aux & !(AUX_CF | AUX_PO)) | (cf as u32) << 31 | ((cf ^ of) as u32) << 30;
        } else {
            self.bits = (self.bits & !(f::CF | f::OF)) | (cf as u32 * f::CF) | (of as u32 * f::OF);
        }
    }

    #[inline(always)]
    pub fn if_(&self) -> bool {
        self.bits & f::IF != 0
    }
    #[inline(always)]
    pub fn df(&self) -> bool {
        self.bits & f::DF != 0
    }

    /// Condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc opcodes).
    #[inline(always)]
    pub fn cond(&self, cc: u8) -> bool {
        let v = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() || (self.sf() != self.of()),
        };
        v ^ (cc & 1 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_sub_edges() {
        let mut fl = Flags::new(0);
        fl.set_lazy(Lazy::Add, 1, 0x7F, 1, 0x80);
        assert!(fl.of() && !fl.cf() && fl.sf() && fl.af() && !fl.zf());
        fl.set_lazy(Lazy::Add, 1, 0xFF, 1, 0x100);
        assert!(fl.cf() && fl.zf() && !fl.of() && fl.pf());
        fl.set_lazy(Lazy::Sub, 4, 0, 1, 0xFFFF_FFFF);
        assert!(fl.cf() && fl.sf() && !fl.of());
        fl.set_lazy(Lazy::Sub, 2, 0x8000, 1, 0x7FFF);
        assert!(fl.of() && !fl.cf());
        // SBB 0 - 0xFF - 1 borrows; ADC 0xFF + 0 + 1 carries.
        fl.set_lazy(Lazy::Sbb, 1, 0, 0xFF, 0);
        assert!(fl.cf());
        fl.set_lazy(Lazy::Adc, 1, 0xFF, 0, 0);
        assert!(fl.cf() && fl.zf());
    }

    #[test]
    fn inc_keeps_carry() {
        let mut fl = Flags::new(f::CF);
        fl.set_incdec(false, 4, 0x7FFF_FFFF, 0x8000_0000);
        assert!(fl.cf() && fl.of());
        assert_eq!(fl.get() & f::STATUS, f::CF | f::OF | f::SF | f::AF | f::PF);
    }

    #[test]
    fn conditions() {
        let mut fl = Flags::new(0);
        fl.set_lazy(Lazy::Sub, 4, 1, 2, 1u32.wrapping_sub(2));
        assert!(fl.cond(0x2)); // B
        assert!(fl.cond(0xC)); // L
        assert!(!fl.cond(0x4)); // E
        assert!(fl.cond(0xE)); // LE
        assert!(!fl.cond(0xF)); // G
    }
}
