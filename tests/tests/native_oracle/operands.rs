//! Operands for the native oracle's generator: operand widths, the
//! registers an instruction may write, and r/m operands (a register, or
//! memory through every addressing form, set up so that the address
//! mostly lands in the data pages).

use crate::gen::{Rng, EBP_OFF};
use crate::layout::{DATA, WIN16};

/// Registers a generated instruction may write: not ESP (the stack) or
/// EBP (the data base). Writes to them happen only through the forms that
/// are about them (ENTER, LEAVE, POPAD, PUSH/POP).
pub(crate) const SAFE: [u8; 6] = [0, 1, 2, 3, 6, 7];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum W {
    B,
    H,
    D,
}

impl W {
    pub(crate) fn bits(self) -> u32 {
        match self {
            W::B => 8,
            W::H => 16,
            W::D => 32,
        }
    }
    pub(crate) fn bytes(self) -> u32 {
        self.bits() / 8
    }
    /// The operand-size prefix for 16 bits.
    pub(crate) fn pfx(self) -> Vec<u8> {
        if self == W::H {
            vec![0x66]
        } else {
            vec![]
        }
    }
    /// Opcode for this width from the byte form (`op8`) and the
    /// word/dword form (`op8 + 1` in the classic encodings).
    pub(crate) fn op(self, op8: u8) -> u8 {
        if self == W::B {
            op8
        } else {
            op8 + 1
        }
    }
    pub(crate) fn imm(self, v: u32) -> Vec<u8> {
        v.to_le_bytes()[..self.bytes() as usize].to_vec()
    }
}

/// An r/m operand: set-up instructions, prefixes (0x67), and the ModRM
/// byte's mod and r/m with SIB and displacement (the reg field is or-ed
/// in by [`Rm::modrm`]).
pub(crate) struct Rm {
    setup: Vec<u8>,
    pfx: Vec<u8>,
    bytes: Vec<u8>,
    /// A memory operand (not a register).
    pub(crate) mem: bool,
}

impl Rm {
    pub(crate) fn modrm(&self, reg: u8) -> Vec<u8> {
        let mut b = self.bytes.clone();
        b[0] |= (reg & 7) << 3;
        b
    }
    /// setup, [LOCK], prefixes, opcode bytes, ModRM.., trailing bytes.
    pub(crate) fn insn(
        &self,
        lock: bool,
        pfx: &[u8],
        opcode: &[u8],
        reg: u8,
        tail: &[u8],
    ) -> Vec<u8> {
        let mut v = self.setup.clone();
        if lock {
            v.push(0xF0);
        }
        v.extend_from_slice(pfx);
        v.extend_from_slice(&self.pfx);
        v.extend_from_slice(opcode);
        v.extend(self.modrm(reg));
        v.extend_from_slice(tail);
        v
    }
}

/// A data offset from `DATA` for an access of `size` bytes: mostly
/// inside the writable pages, sometimes in the read-only page, across
/// into it, or across into the unmapped pages above and below.
pub(crate) fn data_off(r: &mut Rng, size: u32) -> i32 {
    let s = size as i32;
    if r.locked {
        return r.below(0x3000 / size as u64) as i32 * s;
    }
    let aligned = |r: &mut Rng, lo: i32, hi: i32| {
        let v = lo + r.below((hi - lo) as u64) as i32;
        if r.chance(70) {
            v & !(s - 1)
        } else {
            v
        }
    };
    match r.below(200) {
        0..=189 => aligned(r, 0, 0x2000 - s),
        190..=194 => aligned(r, 0x2000, 0x3000 - s),
        195 | 196 => 0x2000 - 1 - r.below(s as u64) as i32,
        197 => 0x3000 - 1 - r.below(s as u64) as i32,
        198 => -1 - r.below(s as u64) as i32,
        _ => 0x3000 + r.below(0x1000) as i32,
    }
}

/// An r/m operand of `size` bytes: a register (from `SAFE` if `writes`,
/// for 16/32 bits) or memory.
pub(crate) fn rm(r: &mut Rng, w: W, writes: bool, mem_percent: u64) -> Rm {
    if !r.chance(mem_percent) {
        let reg = if w == W::B || !writes {
            r.below(8) as u8
        } else {
            r.pick(&SAFE)
        };
        return Rm {
            setup: vec![],
            pfx: vec![],
            bytes: vec![0xC0 | reg],
            mem: false,
        };
    }
    mem(r, w.bytes())
}

/// A memory operand of `size` bytes.
pub(crate) fn mem(r: &mut Rng, size: u32) -> Rm {
    let off = data_off(r, size);
    let d32 = |v: i32| v.to_le_bytes().to_vec();
    let mut setup = vec![];
    let mut pfx = vec![];
    // A locked operand is always an absolute address: EBP and ESP may
    // have moved (LEAVE, POPAD), and only an address that does not
    // depend on them is sure to be aligned.
    let form = if r.locked { 8 } else { r.below(20) };
    let bytes = match form {
        // [ebp + disp8] / [ebp + disp32]
        0..=7 => {
            let d = off - EBP_OFF;
            if (-128..128).contains(&d) {
                vec![0x45, d as u8]
            } else {
                let mut b = vec![0x85];
                b.extend(d32(d));
                b
            }
        }
        // [disp32]
        8..=10 => {
            let mut b = vec![0x05];
            b.extend(d32(DATA as i32 + off));
            b
        }
        // [ebp + index*scale + disp32], the index set just before.
        11..=14 => {
            let idx = r.pick(&[0u8, 2, 3, 6, 7]); // not ECX: a shift count may be in CL
            let scale = r.below(4) as u8;
            let mut v = r.below(64) as i32 - 16;
            if r.locked {
                v &= !7;
            }
            setup.extend([0xB8 + idx]);
            setup.extend(d32(v));
            let mut b = vec![0x84, scale << 6 | idx << 3 | 5];
            b.extend(d32(off - EBP_OFF - (v << scale)));
            b
        }
        // [esp + disp32]: the stack page.
        15..=16 => {
            let mut d = r.below(0xF00) as i32 - 0x800;
            if r.locked {
                d &= !(size as i32 - 1);
            }
            let mut b = vec![0x84, 0x24];
            b.extend(d32(d));
            b
        }
        // 16-bit addressing: [bx+si], [bx+di], [si], [di], [bx] (+disp),
        // the registers set just before so that the effective address,
        // wrapping at 64 KiB, mostly lands in the 16-bit window.
        _ => {
            pfx.push(0x67);
            let mut target = if r.chance(97) {
                WIN16 + r.below(0x8000 - size as u64) as u32
            } else {
                r.below(0x10000) as u32
            };
            if r.locked {
                target &= !(size - 1);
            }
            let (rm, regs): (u8, &[u8]) = r.pick(&[
                (0, &[3u8, 6][..]),
                (1, &[3, 7]),
                (4, &[6]),
                (5, &[7]),
                (7, &[3]),
            ]);
            let (md, disp): (u8, Vec<u8>) = match r.below(3) {
                0 => (0, vec![]),
                1 => {
                    let d = r.below(256) as u8;
                    (1, vec![d])
                }
                _ => {
                    let d = r.below(0x10000) as u16;
                    (2, d.to_le_bytes().to_vec())
                }
            };
            let dval: u32 = match md {
                1 => disp[0] as i8 as i32 as u32,
                2 => u16::from_le_bytes([disp[0], disp[1]]) as u32,
                _ => 0,
            };
            let mut rest = target.wrapping_sub(dval);
            for (k, &reg) in regs.iter().enumerate() {
                let v = if k + 1 == regs.len() {
                    rest
                } else {
                    r.below(0x10000) as u32
                };
                rest = rest.wrapping_sub(v);
                setup.extend([0x66, 0xB8 + reg]);
                setup.extend((v as u16).to_le_bytes());
            }
            let mut b = vec![md << 6 | rm];
            b.extend(disp);
            b
        }
    };
    // Now and then a segment override: ES, SS, DS, FS and GS are the same
    // flat data segment; CS is readable, but a write through it is #GP.
    if r.chance(4) {
        pfx.insert(0, r.pick(&[0x26u8, 0x2E, 0x36, 0x3E, 0x64, 0x65]));
    }
    Rm {
        setup,
        pfx,
        bytes,
        mem: true,
    }
}
