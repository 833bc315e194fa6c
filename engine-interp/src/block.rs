//! Decoded blocks, cached by guest physical address (and the code size that
//! changes decoding), invalidated when a page holding them is written.

use crate::cpu::Cpu;
use crate::decode;
use crate::fault::{Exc, R};
use crate::mmu::{tlb_slot, Acc};
use crate::ops::Op;
use iced_x86::{Decoder, DecoderOptions, Instruction};
use machine::{Event, Machine};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

/// Longest block, in instructions.
pub const MAX_BLOCK: usize = 64;

pub struct Block {
    pub ops: Vec<Op>,
    /// Bytes covered, from the first instruction's start.
    pub bytes: u32,
    /// The last two successors run after this block: (linear address,
    /// TLB epoch, block). Following a link skips the lookup; a link made
    /// under another epoch (a mapping or CS changed) is ignored. Weak, so
    /// an invalidated block dies.
    succ: RefCell<[(u32, u64, Weak<Block>); 2]>,
}

impl Block {
    fn new(ops: Vec<Op>, bytes: u32) -> Block {
        Block {
            ops,
            bytes,
            succ: RefCell::new([(0, u64::MAX, Weak::new()), (0, u64::MAX, Weak::new())]),
        }
    }

    /// The successor at linear address `lin`, if linked under `epoch`.
    #[inline(always)]
    pub fn chained(&self, lin: u32, epoch: u64) -> Option<Rc<Block>> {
        let s = self.succ.borrow();
        for (l, e, b) in s.iter() {
            if *l == lin && *e == epoch {
                return b.upgrade();
            }
        }
        None
    }

    pub fn link(&self, lin: u32, epoch: u64, next: &Rc<Block>) {
        let mut s = self.succ.borrow_mut();
        s[1] = std::mem::replace(&mut s[0], (lin, epoch, Rc::downgrade(next)));
    }
}

/// Direct-mapped front cache size (entries).
const FAST: usize = 4096;

#[derive(Default)]
pub struct Cache {
    map: HashMap<u64, Rc<Block>>,
    pages: HashMap<u32, Vec<u64>>,
    fast: Vec<Option<(u64, Rc<Block>)>>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache {
            map: HashMap::new(),
            pages: HashMap::new(),
            fast: vec![None; FAST],
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.pages.clear();
        self.fast.iter_mut().for_each(|e| *e = None);
    }

    /// Drops every block decoded from physical page `page`.
    pub fn invalidate_page(&mut self, page: u32) -> usize {
        let Some(keys) = self.pages.remove(&page) else {
            return 0;
        };
        for k in &keys {
            self.map.remove(k);
            let slot = &mut self.fast[fast_index(*k)];
            if slot.as_ref().is_some_and(|(sk, _)| sk == k) {
                *slot = None;
            }
        }
        keys.len()
    }

    #[inline(always)]
    fn get(&mut self, key: u64) -> Option<Rc<Block>> {
        let i = fast_index(key);
        if let Some((k, b)) = &self.fast[i] {
            if *k == key {
                return Some(b.clone());
            }
        }
        let b = self.map.get(&key)?.clone();
        self.fast[i] = Some((key, b.clone()));
        Some(b)
    }

    fn insert(&mut self, key: u64, page: u32, b: Rc<Block>) {
        self.map.insert(key, b.clone());
        self.pages.entry(page).or_default().push(key);
        self.fast[fast_index(key)] = Some((key, b));
    }
}

#[inline(always)]
fn fast_index(key: u64) -> usize {
    ((key ^ (key >> 12) ^ (key >> 32)) as usize) % FAST
}

impl Cpu {
    /// The physical address of the code at linear `lin` (fetch permission).
    #[inline(always)]
    pub(crate) fn fetch_phys(&mut self, m: &mut Machine, lin: u32) -> R<u32> {
        let user = self.cpl == 3;
        let i = tlb_slot(lin);
        if self.tlb.e[user as usize][i].rtag == lin & !0xFFF {
            return Ok(self.tlb.meta[user as usize][i] & !0xFFF | (lin & 0xFFF));
        }
        self.translate(m, lin, Acc::Exec, user)
    }
}

/// Finds or builds the block starting at the current CS:EIP. A block built
/// ends before any of `breakpoints` (linear addresses) after its first
/// instruction.
pub fn lookup(
    c: &mut Cpu,
    m: &mut Machine,
    cache: &mut Cache,
    breakpoints: &[u32],
) -> R<Rc<Block>> {
    let lin = c.segs[crate::cpu::CS].base.wrapping_add(c.eip);
    let phys = c.fetch_phys(m, lin)?;
    let code32 = c.code32();
    let key = phys as u64 | ((code32 as u64) << 32);
    if let Some(b) = cache.get(key) {
        return Ok(b);
    }
    let page = phys >> 12;
    let bitness = if code32 { 32 } else { 16 };
    let Some(bytes) = m
        .mem
        .slice(phys as u64, 0x1000 - (phys & 0xFFF) as usize)
        .ok()
        .map(|b| b.to_vec())
    else {
        // Not RAM (MMIO or nothing): decode one instruction, uncached.
        return single(c, m, lin, bitness);
    };
    let mut dec = Decoder::with_ip(bitness, &bytes, c.eip as u64, DecoderOptions::NONE);
    let mut ops = Vec::new();
    let mut total = 0u32;
    let mut insn = Instruction::default();
    while dec.can_decode() && ops.len() < MAX_BLOCK {
        if !ops.is_empty() && breakpoints.contains(&lin.wrapping_add(total)) {
            break;
        }
        dec.decode_out(&mut insn);
        if insn.is_invalid() && dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
            // The instruction runs into the next page.
            break;
        }
        let mut op = lower_or_report(
            m,
            c,
            &insn,
            &bytes[total as usize..total as usize + insn.len()],
        );
        total += insn.len() as u32;
        // A conditional branch does not end its block: not taken, the
        // block goes on (a loop's test and its body in one block, which
        // then runs again without a lookup); taken, it ends there. One back
        // to the block's start does end it: the loop runs again from the
        // block's end (`Interp::exec`), which costs less than a taken
        // branch in the middle.
        let jcc = insn.is_jcc_short_or_near() && insn.near_branch_target() != c.eip as u64;
        if jcc {
            op.f = crate::control::jcc_mid;
        }
        let end = (decode::ends_block(&insn) && !jcc) || insn.is_invalid();
        ops.push(op);
        if end {
            break;
        }
    }
    if ops.is_empty() {
        // The first instruction crosses the page end.
        return single(c, m, lin, bitness);
    }
    c.counters.blocks_built += 1;
    c.mark_code(m, phys, total);
    let b = Rc::new(Block::new(ops, total));
    cache.insert(key, page, b.clone());
    Ok(b)
}

/// Decodes one instruction fetched byte by byte through the MMU (it
/// crosses a page, or lives outside RAM); the block is not cached.
fn single(c: &mut Cpu, m: &mut Machine, lin: u32, bitness: u32) -> R<Rc<Block>> {
    let user = c.cpl == 3;
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (k, b) in buf.iter_mut().enumerate() {
        match c.read_lin_slow(m, lin.wrapping_add(k as u32), 1, user, Acc::Exec) {
            Ok(v) => {
                *b = v as u8;
                n += 1;
            }
            Err(e) => {
                if k == 0 {
                    return Err(e);
                }
                // The fault only matters if the instruction needs the byte.
                let mut dec =
                    Decoder::with_ip(bitness, &buf[..n], c.eip as u64, DecoderOptions::NONE);
                let insn = dec.decode();
                if insn.is_invalid() && dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                    return Err(e);
                }
                break;
            }
        }
    }
    let mut dec = Decoder::with_ip(bitness, &buf[..n], c.eip as u64, DecoderOptions::NONE);
    let insn = dec.decode();
    let op = lower_or_report(m, c, &insn, &buf[..insn.len().max(1).min(n)]);
    let len = op.len as u32;
    Ok(Rc::new(Block::new(vec![op], len)))
}

/// Lowers an instruction; an unimplemented one becomes a #UD op and is
/// reported in the trace with its bytes and address.
fn lower_or_report(m: &mut Machine, c: &Cpu, insn: &Instruction, bytes: &[u8]) -> Op {
    if insn.is_invalid() {
        let mut op = Op::new(
            crate::system::undefined,
            insn.code(),
            insn.len().max(1) as u8,
        );
        op.len = insn.len().max(1) as u8;
        return op;
    }
    match decode::lower(insn) {
        Some(op) => op,
        None => {
            m.trace.record(
                m.icount() + c.pending,
                m.clock.now(),
                Event::Unimplemented {
                    eip: insn.ip() as u32,
                    bytes: bytes.to_vec(),
                },
            );
            Op::new(report_ud, insn.code(), insn.len() as u8)
        }
    }
}

/// An instruction ringlab does not implement: #UD.
fn report_ud(_c: &mut Cpu, _m: &mut Machine, _op: &Op) -> R<()> {
    Err(Exc::new(crate::fault::vec::UD, None))
}
