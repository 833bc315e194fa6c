//! A one-pass encoder for a translated block's host instructions.
//!
//! The translator writes a block with iced-x86's `CodeAssembler`, whose
//! `assemble` hands the instructions to iced's `BlockEncoder`. That is a
//! general encoder: it makes an object per instruction, encodes each one
//! once to learn its size and again to write it, and goes round shrinking
//! branches to their short forms. For the translator's blocks that was
//! two thirds of the translation time (perf, the nanobench lesson and
//! xv6's boot on bt: 47 us a block, a quarter of the boot).
//!
//! Here each instruction is encoded once, in order, at its final address:
//! every JMP, Jcc and CALL in its near form (rel32, a size known before
//! its target is), so no instruction moves after it is written; a branch
//! to a label further on is written aimed at itself and its
//! displacement, the instruction's last bytes, patched once the label's
//! address is known. JRCXZ has only a short form: one whose label ends
//! up out of its reach, or anything else this encoder does not place
//! (a memory operand that names a label), gives None and the block goes
//! through `assemble_options` as before (`Placed::new`).
//!
//! Labels: the assembler numbers them 1, 2, ... in the order they are
//! made and marks the instruction after `set_label` with the number as
//! its IP; a branch to a label has the number as its target. A
//! `CodeLabel` compares equal by its number only, so `label_id` finds it
//! among labels made in the same order by an assembler of its own.

use iced_x86::code_asm::{CodeAssembler, CodeAssemblerResult, CodeLabel};
use iced_x86::{BlockEncoderOptions, Code, Encoder};
use std::cell::RefCell;

/// Labels a block may have for this encoder (more: `assemble_options`).
const MAX_LABELS: usize = 1024;

/// A block encoded: in one pass, else by iced's block encoder.
pub(crate) enum Placed {
    OnePass(Assembled),
    Iced(CodeAssemblerResult),
}

impl Placed {
    /// `a`'s instructions encoded for address `ip`: by `assemble`, else
    /// (what it does not place) by `assemble_options`; None when neither
    /// can.
    pub fn new(a: &mut CodeAssembler, ip: u64) -> Option<Placed> {
        match assemble(a, ip) {
            Some(r) => Some(Placed::OnePass(r)),
            None => a
                .assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
                .ok()
                .map(Placed::Iced),
        }
    }

    pub fn code(&self) -> &[u8] {
        match self {
            Placed::OnePass(r) => &r.code,
            Placed::Iced(r) => &r.inner.code_buffer,
        }
    }

    /// The address of `label`'s instruction.
    pub fn label_ip(&self, label: &CodeLabel) -> Option<u64> {
        match self {
            Placed::OnePass(r) => r.label_ip(label),
            Placed::Iced(r) => r.label_ip(label).ok(),
        }
    }
}

/// A block's code and where its labels went.
pub(crate) struct Assembled {
    code: Vec<u8>,
    ip: u64,
    /// Each instruction's offset in `code`.
    offsets: Vec<u32>,
    /// The instruction each label (by number) is on, u32::MAX for none.
    at_label: Vec<u32>,
}

impl Assembled {
    /// The address of `label`'s instruction.
    pub fn label_ip(&self, label: &CodeLabel) -> Option<u64> {
        let i = *self.at_label.get(label_id(label)?)?;
        Some(self.ip + u64::from(*self.offsets.get(i as usize)?))
    }
}

thread_local! {
    /// Labels numbered 1 to MAX_LABELS (index 0: number 1).
    static PROBES: Vec<CodeLabel> = {
        let mut a = CodeAssembler::new(64).expect("64-bit assembler");
        (0..MAX_LABELS).map(|_| a.create_label()).collect()
    };
    static ENCODER: RefCell<Encoder> = RefCell::new(Encoder::new(64));
}

/// The number the assembler gave `label`.
fn label_id(label: &CodeLabel) -> Option<usize> {
    PROBES.with(|p| p.iter().position(|q| q == label).map(|i| i + 1))
}

/// A branch whose target is one of the block's labels still to come: the
/// instruction's offset and size, and the label's number.
struct Fixup {
    at: u32,
    len: u32,
    label: usize,
}

/// Encodes `a`'s instructions for address `ip`; None where this encoder
/// does not place them (see the module comment).
pub(crate) fn assemble(a: &CodeAssembler, ip: u64) -> Option<Assembled> {
    let insns = a.instructions();
    let mut at_label = vec![u32::MAX; 1];
    for (k, i) in insns.iter().enumerate() {
        let id = i.ip() as usize;
        if id != 0 {
            if id > MAX_LABELS {
                return None;
            }
            if at_label.len() <= id {
                at_label.resize(id + 1, u32::MAX);
            }
            at_label[id] = k as u32;
        }
    }
    let label_of = |at_label: &[u32], target: u64| -> Option<usize> {
        let id = usize::try_from(target).ok()?;
        (id < at_label.len() && at_label[id] != u32::MAX).then_some(id)
    };
    ENCODER.with(|enc| {
        let mut enc = enc.borrow_mut();
        // (A failed block may have left bytes behind.)
        drop(enc.take_buffer());
        let mut offsets = Vec::with_capacity(insns.len());
        let mut fixups = Vec::new();
        let mut pos = 0u32;
        for i in insns {
            offsets.push(pos);
            let here = ip + u64::from(pos);
            let mut i = *i;
            if i.is_ip_rel_memory_operand()
                && label_of(&at_label, i.ip_rel_memory_address()).is_some()
            {
                return None;
            }
            let branch = i.is_jmp_short_or_near()
                || i.is_jcc_short_or_near()
                || i.is_call_near()
                || i.code() == Code::Jrcxz_rel8_64;
            let mut forward = None;
            if branch {
                if i.code() != Code::Jrcxz_rel8_64 {
                    i.as_near_branch();
                }
                if let Some(id) = label_of(&at_label, i.near_branch64()) {
                    let k = at_label[id] as usize;
                    match offsets.get(k) {
                        // Already placed (a branch back).
                        Some(&off) => i.set_near_branch64(ip + u64::from(off)),
                        None => {
                            i.set_near_branch64(here);
                            forward = Some(id);
                        }
                    }
                }
            }
            let len = enc.encode(&i, here).ok()? as u32;
            if let Some(label) = forward {
                fixups.push(Fixup {
                    at: pos,
                    len,
                    label,
                });
            }
            pos = pos.checked_add(len)?;
        }
        let mut code = enc.take_buffer();
        for f in fixups {
            let target = *offsets.get(at_label[f.label] as usize)?;
            let rel = i64::from(target) - i64::from(f.at + f.len);
            let end = (f.at + f.len) as usize;
            if f.len >= 5 {
                let rel = i32::try_from(rel).ok()?;
                code[end - 4..end].copy_from_slice(&rel.to_le_bytes());
            } else {
                // JRCXZ (E3 rel8).
                code[end - 1] = i8::try_from(rel).ok()? as u8;
            }
        }
        Some(Assembled {
            code,
            ip,
            offsets,
            at_label,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;
    use iced_x86::{Decoder, DecoderOptions, Instruction};

    /// Decodes `code` at `ip`: (offset, instruction) pairs.
    fn decode(code: &[u8], ip: u64) -> Vec<(u64, Instruction)> {
        let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
        let mut v = Vec::new();
        while d.can_decode() {
            let i = d.decode();
            assert!(!i.is_invalid(), "{:02x?}", code);
            v.push((i.ip() - ip, i));
        }
        v
    }

    /// Branches back and forward, to an address outside the block, a
    /// JRCXZ, raw bytes: every target lands where iced's own block
    /// encoder puts the same label, and the instructions are the same.
    #[test]
    fn labels_and_branches_land_where_the_block_encoder_puts_them() {
        let ip = 0x7f00_1234_0000u64;
        let build = || -> (CodeAssembler, CodeLabel, CodeLabel, CodeLabel) {
            let mut a = CodeAssembler::new(64).unwrap();
            let mut top = a.create_label();
            let mut end = a.create_label();
            let mut mid = a.create_label();
            a.set_label(&mut top).unwrap();
            a.mov(rax, qword_ptr(r15 + 0x40)).unwrap();
            a.jrcxz(end).unwrap();
            a.jne(mid).unwrap();
            a.add(rax, 1).unwrap();
            a.call(ip + 0x10_0000).unwrap();
            a.set_label(&mut mid).unwrap();
            a.db(&[0xE9, 0, 0, 0, 0]).unwrap();
            a.sub(ecx, 1).unwrap();
            a.jmp(top).unwrap();
            a.set_label(&mut end).unwrap();
            a.ret().unwrap();
            (a, top, mid, end)
        };
        let (a, top, mid, end) = build();
        let ours = assemble(&a, ip).expect("placed");
        let (mut b, ..) = build();
        let theirs = b
            .assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
            .unwrap();
        let ins = decode(&ours.code, ip);
        let at = |l: &CodeLabel| ours.label_ip(l).unwrap() - ip;
        // The instruction at each label is the one the assembler put
        // there.
        let first = |off: u64| ins.iter().find(|(o, _)| *o == off).unwrap().1;
        assert_eq!(at(&top), 0);
        assert_eq!(first(at(&top)).code(), Code::Mov_r64_rm64);
        assert_eq!(first(at(&mid)).code(), Code::Jmp_rel32_64, "the raw E9");
        assert_eq!(first(at(&end)).code(), Code::Retnq);
        // The branches reach those labels.
        let targets: Vec<u64> = ins
            .iter()
            .filter(|(o, i)| {
                use iced_x86::FlowControl as F;
                let f = i.flow_control();
                let branch = matches!(f, F::UnconditionalBranch | F::ConditionalBranch | F::Call);
                branch && *o != at(&mid)
            })
            .map(|(_, i)| i.near_branch64())
            .collect();
        assert_eq!(
            targets,
            [ip + at(&end), ip + at(&mid), ip + 0x10_0000, ip + at(&top)]
        );
        // The same instructions as iced's encoder writes, in near form.
        let names = |v: &[(u64, Instruction)]| -> Vec<iced_x86::Mnemonic> {
            v.iter().map(|(_, i)| i.mnemonic()).collect()
        };
        assert_eq!(names(&ins), names(&decode(&theirs.inner.code_buffer, ip)));
        for l in [top, mid, end] {
            let (o, t) = (at(&l), theirs.label_ip(&l).unwrap() - ip);
            assert_eq!(
                first(o).mnemonic(),
                decode(&theirs.inner.code_buffer, ip)
                    .iter()
                    .find(|(x, _)| *x == t)
                    .unwrap()
                    .1
                    .mnemonic()
            );
        }
    }

    /// A JRCXZ whose label is beyond a rel8's reach is not placed here
    /// (iced's encoder rewrites it into a longer sequence).
    #[test]
    fn a_jrcxz_out_of_reach_is_left_to_the_block_encoder() {
        let mut a = CodeAssembler::new(64).unwrap();
        let mut far = a.create_label();
        a.jrcxz(far).unwrap();
        for _ in 0..40 {
            a.mov(rax, qword_ptr(r15 + 0x1000)).unwrap();
        }
        a.set_label(&mut far).unwrap();
        a.ret().unwrap();
        assert!(assemble(&a, 0x10_0000).is_none());
        // Backward, too.
        let mut a = CodeAssembler::new(64).unwrap();
        let mut back = a.create_label();
        a.set_label(&mut back).unwrap();
        for _ in 0..40 {
            a.mov(rax, qword_ptr(r15 + 0x1000)).unwrap();
        }
        a.jrcxz(back).unwrap();
        assert!(assemble(&a, 0x10_0000).is_none());
    }
}
