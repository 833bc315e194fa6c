//! The generator of the native oracle: random sequences of 32-bit user-mode
//! instructions, as raw bytes (opcode, ModRM, SIB, displacement,
//! immediate), built from the instruction forms listed in RELIABILITY.md.
//!
//! A sequence is a list of [`Item`]s: one instruction, or one instruction
//! preceded by MOVs and LEAs that set up its operands (a shift count in CL,
//! ESI/EDI/ECX for a string instruction, a 16-bit base register). Those
//! set-up instructions never write flags and never fault, so a fault
//! inside an item is always at its last instruction and the flags there
//! are the flags before the item. Items are what shrinking removes.
//!
//! Each item says which status flags it reads, writes, and leaves
//! undefined (the SDM's "Flags Affected" sections, cited at each form).
//! [`Prog::plan`] folds them, merging the two paths of each forward
//! branch: a program that would read an undefined flag (ADC after MUL,
//! PUSHFD after a shift by more than one) is not generated, and the
//! flags still undefined where a run stops are masked in the comparison.
//! Where the SDM leaves a *result* undefined the generator avoids the case
//! (SHLD/SHRD on 16 bits by more than 16, BSWAP on 16 bits), except for
//! BSF/BSR's destination with a zero source, which is compared: Intel's
//! CPUs leave it unchanged and so do the engines (see RELIABILITY.md).

use crate::forms::item;
use crate::layout::{DATA, STACK_TOP};

pub const CF: u32 = 1;
pub const PF: u32 = 4;
pub const AF: u32 = 0x10;
pub const ZF: u32 = 0x40;
pub const SF: u32 = 0x80;
pub const OF: u32 = 0x800;
pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;

/// xorshift64*: small, seedable, the same on every host.
pub struct Rng {
    state: u64,
    /// The memory operand being generated is for a locked access (LOCK,
    /// or XCHG with memory): an absolute address, naturally aligned,
    /// never crossing a cache line. A locked access split across cache lines is a "split lock":
    /// this host's kernel traps it (bus-lock #DB, `split_lock_detect`)
    /// and, under a hypervisor, such accesses stalled the native child
    /// for seconds; what they compute is covered by the unlocked forms.
    pub(crate) locked: bool,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1,
            locked: false,
        }
    }
    pub fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Whether the next memory operand is locked (see `locked`), and
    /// marks it so.
    pub(crate) fn lock(&mut self) -> bool {
        self.locked = self.chance(8);
        self.locked
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A value of `bits` bits, edge values (carries, overflows, zero,
    /// sign changes) half of the time.
    pub fn val(&mut self, bits: u32) -> u32 {
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        let sign = 1u32 << (bits - 1);
        let v = match self.below(10) {
            0 => 0,
            1 => 1,
            2 => mask,
            3 => sign,
            4 => sign - 1,
            5 => sign + 1,
            6 => self.below(16) as u32,
            _ => self.next() as u32,
        };
        v & mask
    }
}

/// One unit of a sequence (see the module documentation).
#[derive(Clone, Debug)]
pub struct Item {
    pub bytes: Vec<u8>,
    pub reads: u32,
    pub writes: u32,
    pub undef: u32,
    /// A forward Jcc over this many following items (0: not a branch).
    pub skip: usize,
}

impl Item {
    pub(crate) fn new(bytes: Vec<u8>) -> Item {
        Item {
            bytes,
            reads: 0,
            writes: 0,
            undef: 0,
            skip: 0,
        }
    }
    pub(crate) fn flags(mut self, reads: u32, writes: u32, undef: u32) -> Item {
        self.reads = reads;
        self.writes = writes;
        self.undef = undef;
        self
    }
}

/// A generated sequence; it ends with INT3.
#[derive(Clone, Debug)]
pub struct Prog {
    pub items: Vec<Item>,
}

impl Prog {
    /// The flags undefined before each item and (last) at the end, or
    /// None if some item reads a flag undefined there.
    pub fn plan(&self) -> Option<Vec<u32>> {
        let mut und = 0;
        let mut merges: Vec<(usize, u32)> = Vec::new();
        let mut before = Vec::with_capacity(self.items.len() + 1);
        for it in &self.items {
            before.push(und);
            if it.reads & und != 0 {
                return None;
            }
            und = (und & !it.writes) | it.undef;
            for m in merges.iter_mut() {
                m.0 -= 1;
                if m.0 == 0 {
                    und |= m.1;
                }
            }
            merges.retain(|m| m.0 > 0);
            if it.skip > 0 {
                merges.push((it.skip, und));
            }
        }
        for m in &merges {
            und |= m.1;
        }
        before.push(und);
        Some(before)
    }

    /// The code at `at`, and the address where each item starts (then
    /// the INT3's).
    pub fn encode(&self, at: u32) -> (Vec<u8>, Vec<u32>) {
        let mut starts = Vec::new();
        let mut a = at;
        for it in &self.items {
            starts.push(a);
            a += it.bytes.len() as u32;
        }
        starts.push(a);
        let mut code = Vec::new();
        for (k, it) in self.items.iter().enumerate() {
            let mut b = it.bytes.clone();
            if it.skip > 0 {
                // 0F 8x rel32, the item's only instruction.
                let target = starts[(k + 1 + it.skip).min(self.items.len())];
                let rel = target.wrapping_sub(starts[k] + 6);
                b[2..6].copy_from_slice(&rel.to_le_bytes());
            }
            code.extend_from_slice(&b);
        }
        code.push(0xCC); // int3
        (code, starts)
    }
}

/// The sequence for `seed`: `len` items whose flag plan holds.
pub fn program(r: &mut Rng, len: usize) -> Prog {
    let mut p = Prog { items: Vec::new() };
    while p.items.len() < len {
        let it = item(r);
        p.items.push(it);
        if p.plan().is_none() {
            p.items.pop();
        }
    }
    p
}

/// EBP starts at `DATA + EBP_OFF` (so that ENTER's nesting levels read
/// frame pointers inside the data page); data offsets are from `DATA`.
pub const EBP_OFF: i32 = 0x400;

/// The initial registers: random with edge values, ESP and EBP pointing
/// at the stack and data pages.
pub fn start_regs(r: &mut Rng) -> [u32; 8] {
    let mut g = [0; 8];
    for v in g.iter_mut() {
        *v = r.val(32);
    }
    g[4] = STACK_TOP - 0x800;
    g[5] = DATA + EBP_OFF as u32;
    g
}
