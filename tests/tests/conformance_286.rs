//! The 80286 real-mode single-instruction corpus, run on the interpreter.
//!
//! Each test of the corpus (SingleStepTests/80286 v1.0.0, captured on a
//! Harris 80C286; see the README.md beside the data) records the registers
//! and memory before and after one instruction ran on real hardware, followed
//! by a HLT. This harness loads the initial state into the interpreter (a session),
//! steps until the CPU halts and compares registers and memory with the
//! final state.
//!
//! Where the data lives: `../shared/conformance/80286-real` beside the
//! workspace, or the directory named by `RINGLAB_CONFORMANCE_DIR` (any
//! directory of `*.jsonl.gz` files in the same format, normally with its
//! `metadata.json`). The data is required: a missing directory fails the
//! test, it never passes silently.
//!
//! Other environment variables:
//! - `RINGLAB_CONFORMANCE_FILTER`: comma-separated file stems ("00,F6.7") to
//!   run only those files.
//! - `RINGLAB_CONFORMANCE_VERBOSE=1`: print every failing test, not only the
//!   first 20.
//!
//! ringlab emulates a 386-class CPU (a P6, see machine/src/x86/cpuid.rs), not an
//! 80286. Where the two are specified to differ, a test is left out
//! ([`EXCLUSIONS`]) or one field is not compared ([`RELAXATIONS`]); each entry
//! says why, and every other test of the corpus must pass.
//!
//! Run it alone with
//! `cargo test --release -p tests --test conformance_286 -- --nocapture`.

use machine::cpu::{self, Seg, Segment};
use machine::{Chain, CpuState, EventMask, Machine, MachineConfig, Stop};
use ringlab::engines::EngineKind;
use ringlab::session::{Options, Session};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wall-clock time one test may take before the engine counts as hung (a
/// test takes microseconds).
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Failures printed when `RINGLAB_CONFORMANCE_VERBOSE` is not set.
const FAILURES_SHOWN: usize = 20;
/// Steps allowed before a test counts as not halting. The longest test is a
/// REP string instruction with CX below 128 (README, "REP string ops"), so
/// even an engine that steps once per iteration stays far below this.
const MAX_STEPS: usize = 1000;
/// 16 MiB of RAM: the corpus assumes all of the 286's 24-bit physical address
/// space is writable RAM (README, "Memory").
const RAM_BYTES: usize = 16 << 20;

// ---- the test format --------------------------------------------------------

/// The 14 registers of a test, in this order (README, "Line format").
const REG_NAMES: [&str; 14] = [
    "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
];
const AX: usize = 0;
const BX: usize = 1;
const CX: usize = 2;
const DX: usize = 3;
const CS: usize = 4;
const SS: usize = 5;
const DS: usize = 6;
const ES: usize = 7;
const SP: usize = 8;
const BP: usize = 9;
const SI: usize = 10;
const DI: usize = 11;
const IP: usize = 12;
const FLAGS: usize = 13;

/// The general registers: index in a test, index in `CpuState::regs`.
const GPRS: [(usize, usize); 8] = [
    (AX, cpu::EAX),
    (BX, cpu::EBX),
    (CX, cpu::ECX),
    (DX, cpu::EDX),
    (SP, cpu::ESP),
    (BP, cpu::EBP),
    (SI, cpu::ESI),
    (DI, cpu::EDI),
];
/// The segment registers of the 286: index in a test, ringlab's segment.
const SEGS: [(usize, Seg); 4] = [(CS, Seg::Cs), (SS, Seg::Ss), (DS, Seg::Ds), (ES, Seg::Es)];

/// FLAGS bits a real-mode 286 can hold. The initial states carry random
/// values in bits 12-15 (IOPL, NT, 15), which a real-mode 286 cannot set; the
/// README says to clear them on load, and the final states show them clear.
const LOADABLE_FLAGS: u16 = 0x0FFF;

type Regs = [u16; 14];

/// One line of a corpus file.
struct Test {
    idx: u64,
    name: String,
    /// The instruction followed by the HLT that ends the test.
    bytes: Vec<u8>,
    init: Regs,
    init_ram: Vec<(u32, u8)>,
    /// Final registers; `None` where the register did not change.
    fin: [Option<u16>; 14],
    /// Final memory: only the bytes that changed or were written.
    fin_ram: Vec<(u32, u8)>,
    /// The exception or interrupt the instruction raised (INT n included).
    exception: Option<u8>,
}

impl Test {
    fn parse(line: &str) -> Result<Test, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
        let idx = v["idx"].as_u64().ok_or("no idx")?;
        let name = v["name"].as_str().ok_or("no name")?.to_string();
        let bytes = v["bytes"]
            .as_array()
            .ok_or("no bytes")?
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("bytes: not a list of bytes")?;
        if bytes.len() < 2 {
            return Err("bytes: shorter than an instruction and its HLT".into());
        }
        let mut init = [0u16; 14];
        let mut fin = [None; 14];
        for (i, r) in REG_NAMES.iter().enumerate() {
            init[i] = reg_value(&v["initial"]["regs"][r])?
                .ok_or_else(|| format!("initial.regs.{r} missing"))?;
            fin[i] = reg_value(&v["final"]["regs"][r])?;
        }
        let exception = match v.get("exception") {
            None | Some(Value::Null) => None,
            Some(e) => Some(
                e["number"]
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or("exception.number: not a vector")?,
            ),
        };
        Ok(Test {
            idx,
            name,
            bytes,
            init,
            init_ram: ram_list(&v["initial"]["ram"], "initial.ram")?,
            fin,
            fin_ram: ram_list(&v["final"]["ram"], "final.ram")?,
            exception,
        })
    }

    /// The expected final value of register `r`: unchanged registers keep
    /// their initial (loaded) value.
    fn expected(&self, r: usize) -> u16 {
        self.fin[r].unwrap_or(if r == FLAGS {
            self.init[FLAGS] & LOADABLE_FLAGS
        } else {
            self.init[r]
        })
    }

    /// Length of the instruction under test (without the trailing HLT).
    fn insn_len(&self) -> usize {
        self.bytes.len() - 1
    }
}

fn reg_value(v: &Value) -> Result<Option<u16>, String> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .and_then(|x| u16::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| format!("register value {v} is not 16-bit")),
    }
}

fn ram_list(v: &Value, what: &str) -> Result<Vec<(u32, u8)>, String> {
    let list = v.as_array().ok_or_else(|| format!("{what}: not a list"))?;
    list.iter()
        .map(|pair| {
            let addr = pair[0].as_u64().and_then(|a| u32::try_from(a).ok());
            let byte = pair[1].as_u64().and_then(|b| u8::try_from(b).ok());
            addr.zip(byte)
                .ok_or_else(|| format!("{what}: bad entry {pair}"))
        })
        .collect()
}

/// metadata.json: the undefined-flags masks (README, "Undefined flags").
struct Metadata {
    opcodes: serde_json::Map<String, Value>,
}

impl Metadata {
    fn load(dir: &Path) -> Result<Option<Metadata>, String> {
        let path = dir.join("metadata.json");
        if !path.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match v.get_mut("opcodes").map(Value::take) {
            Some(Value::Object(opcodes)) => Ok(Some(Metadata { opcodes })),
            _ => Err(format!("{}: no \"opcodes\" object", path.display())),
        }
    }

    /// The FLAGS bits that are defined after the tests of file `stem`: for a
    /// group opcode ("F6.7") the entry of that ModR/M reg; for a file that
    /// holds every reg of a group ("C6") the reg of this test's ModR/M byte.
    fn flags_mask(&self, stem: &str, insn: &Insn) -> u16 {
        let (op, reg) = match stem.split_once('.') {
            Some((op, reg)) => (op, reg.parse::<u8>().ok()),
            None => (stem, None),
        };
        let Some(mut entry) = self.opcodes.get(op) else {
            return 0xFFFF;
        };
        if let Some(regs) = entry.get("reg") {
            let reg = reg.or(insn.modrm.map(|m| (m >> 3) & 7));
            match reg.and_then(|r| regs.get(r.to_string())) {
                Some(e) => entry = e,
                None => return 0xFFFF,
            }
        }
        entry
            .get("flags-mask")
            .and_then(Value::as_u64)
            .map_or(0xFFFF, |m| m as u16)
    }
}

// ---- just enough of a 286 decoder for the exclusion rules -------------------

/// Prefixes of the 80286: segment overrides, LOCK, REPNE, REP. (0x64-0x67
/// are undefined opcodes on the 286; the corpus has no test using them.)
const PREFIXES: [u8; 7] = [0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF2, 0xF3];

/// The instruction under test, split into prefixes, opcode and ModR/M.
struct Insn<'a> {
    prefixes: &'a [u8],
    opcode: u8,
    modrm: Option<u8>,
    /// The bytes after the ModR/M byte (displacement, immediate, ...).
    rest: &'a [u8],
}

impl<'a> Insn<'a> {
    fn decode(bytes: &'a [u8]) -> Insn<'a> {
        let n = bytes.iter().take_while(|b| PREFIXES.contains(b)).count();
        let (prefixes, body) = bytes.split_at(n.min(bytes.len() - 1));
        let opcode = body[0];
        let modrm = if has_modrm(opcode) {
            body.get(1).copied()
        } else {
            None
        };
        let rest = body
            .get(if modrm.is_some() { 2 } else { 1 }..)
            .unwrap_or(&[]);
        Insn {
            prefixes,
            opcode,
            modrm,
            rest,
        }
    }

    /// Byte `i` after the opcode and ModR/M (0 past the end: the data always
    /// has the HLT there, so that only happens with a malformed test).
    fn imm8(&self, i: usize) -> u8 {
        self.rest.get(i).copied().unwrap_or(0)
    }

    fn imm16(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.imm8(i), self.imm8(i + 1)])
    }

    /// Length of the ModR/M displacement.
    fn disp_len(&self) -> usize {
        match self.modrm.map(|m| (m >> 6, m & 7)) {
            Some((0, 6) | (2, _)) => 2,
            Some((1, _)) => 1,
            _ => 0,
        }
    }

    fn reg(&self) -> Option<u8> {
        self.modrm.map(|m| (m >> 3) & 7)
    }

    fn has_prefix(&self, p: u8) -> bool {
        self.prefixes.contains(&p)
    }

    /// The segment override in effect (the last one wins), as a register
    /// index.
    fn segment_override(&self) -> Option<usize> {
        self.prefixes.iter().rev().find_map(|p| match p {
            0x26 => Some(ES),
            0x2E => Some(CS),
            0x36 => Some(SS),
            0x3E => Some(DS),
            _ => None,
        })
    }

    /// The ModR/M memory operand: segment register index and 16-bit offset
    /// (Intel 80286 PRM, "Addressing modes"; BP-based forms default to SS).
    fn memory_operand(&self, r: &Regs) -> Option<(usize, u16)> {
        let m = self.modrm?;
        let (md, rm) = (m >> 6, m & 7);
        if md == 3 {
            return None;
        }
        let base = match rm {
            0 => r[BX].wrapping_add(r[SI]),
            1 => r[BX].wrapping_add(r[DI]),
            2 => r[BP].wrapping_add(r[SI]),
            3 => r[BP].wrapping_add(r[DI]),
            4 => r[SI],
            5 => r[DI],
            6 if md == 0 => 0,
            6 => r[BP],
            _ => r[BX],
        };
        let ea = match md {
            0 if rm == 6 => self.imm16(0),
            0 => base,
            1 => base.wrapping_add(self.imm8(0) as i8 as u16),
            _ => base.wrapping_add(self.imm16(0)),
        };
        let default = if matches!(rm, 2 | 3) || (rm == 6 && md != 0) {
            SS
        } else {
            DS
        };
        Some((self.segment_override().unwrap_or(default), ea))
    }

    /// The memory operand crosses offset 0xFFFF: a word (or one word of a
    /// far pointer or BOUND pair) starts at 0xFFFF.
    fn memory_word_at_ffff(&self, r: &Regs) -> Option<usize> {
        let (seg, ea) = self.memory_operand(r)?;
        let op = self.opcode;
        let byte_sized = match op {
            0x00..=0x3F | 0x84..=0x8B => op & 1 == 0,
            0x80 | 0x82 | 0xC0 | 0xC6 | 0xD0 | 0xD2 | 0xF6 | 0xFE => true,
            // LEA computes an address and reads nothing.
            0x8D => return None,
            _ => false,
        };
        let two_words =
            matches!(op, 0x62 | 0xC4 | 0xC5) || (op == 0xFF && matches!(self.reg(), Some(3 | 5)));
        let crosses = !byte_sized && (ea == 0xFFFF || (two_words && ea == 0xFFFD));
        crosses.then_some(seg)
    }

    /// Words this instruction pops (`true`) or pushes (`false`), for the
    /// instructions that use the stack.
    fn stack_words(&self) -> Option<(bool, u16)> {
        let pop = |n| Some((true, n));
        let push = |n| Some((false, n));
        match (self.opcode, self.reg()) {
            (0x07 | 0x17 | 0x1F | 0x58..=0x5F | 0x8F | 0x9D | 0xC2 | 0xC3, _) => pop(1),
            (0xCA | 0xCB, _) => pop(2),
            (0xCF, _) => pop(3),
            (0x61, _) => pop(8),
            (0x06 | 0x0E | 0x16 | 0x1E | 0x50..=0x57 | 0x68 | 0x6A | 0x9C | 0xE8, _) => push(1),
            (0xFF, Some(2 | 6)) => push(1),
            (0x9A, _) | (0xFF, Some(3)) => push(2),
            (0x60, _) => push(8),
            (0xCC..=0xCE, _) => push(3),
            _ => None,
        }
    }

    /// The stack access of this instruction crosses offset 0xFFFF of SS.
    fn stack_word_at_ffff(&self, r: &Regs) -> bool {
        if self.opcode == 0xC9 {
            // LEAVE: SP = BP, then pop BP.
            return r[BP] == 0xFFFF;
        }
        let Some((pop, n)) = self.stack_words() else {
            return false;
        };
        (0..n).any(|k| {
            let off = if pop {
                r[SP].wrapping_add(2 * k)
            } else {
                r[SP].wrapping_sub(2 * (k + 1))
            };
            off == 0xFFFF
        })
    }

    /// For a string instruction that faulted on a word at offset 0xFFFF:
    /// which segment did it fault in? The source (DS:SI, overridable) or the
    /// destination (ES:DI), whichever pointer reaches 0xFFFF first; MOVS and
    /// CMPS read the source first.
    fn string_fault_segment(&self, r: &Regs) -> Option<usize> {
        let op = self.opcode;
        let uses_src = matches!(op, 0xA4..=0xA7 | 0xAC | 0xAD | 0x6E | 0x6F);
        let uses_dst = matches!(op, 0xA4..=0xA7 | 0xAA | 0xAB | 0xAE | 0xAF | 0x6C | 0x6D);
        let down = r[FLAGS] & cpu::flags::DF as u16 != 0;
        // Iterations until the pointer (stepping by 2) sits at 0xFFFF.
        let steps = |p: u16| {
            let d = if down {
                p.wrapping_sub(0xFFFF)
            } else {
                0xFFFFu16.wrapping_sub(p)
            };
            (d % 2 == 0).then_some(d / 2)
        };
        let src = if uses_src { steps(r[SI]) } else { None };
        let dst = if uses_dst { steps(r[DI]) } else { None };
        match (src, dst) {
            (Some(s), Some(d)) if s <= d => Some(self.segment_override().unwrap_or(DS)),
            (Some(_), None) => Some(self.segment_override().unwrap_or(DS)),
            (_, Some(_)) => Some(ES),
            (None, None) => None,
        }
    }

    /// The segment in which the 286 raised its segment-overrun exception 13
    /// (a word access at offset 0xFFFF), as far as it can be told from the
    /// initial state.
    fn overrun_segment(&self, r: &Regs) -> Option<usize> {
        let op = self.opcode;
        if is_string_op(op) {
            return self.string_fault_segment(r);
        }
        // POP r/m pops before it writes its operand.
        if op == 0x8F && self.stack_word_at_ffff(r) {
            return Some(SS);
        }
        if let Some(seg) = self.memory_word_at_ffff(r) {
            return Some(seg);
        }
        if self.stack_word_at_ffff(r) {
            return Some(SS);
        }
        // MOV AX,moffs and MOV moffs,AX.
        if matches!(op, 0xA1 | 0xA3) && self.imm16(0) == 0xFFFF {
            return Some(self.segment_override().unwrap_or(DS));
        }
        None
    }
}

/// Opcodes of the 286 that take a ModR/M byte.
fn has_modrm(op: u8) -> bool {
    match op {
        // ALU ops: the r/m forms 00-03, 08-0B, ..., 38-3B.
        0x00..=0x3F => op & 0x04 == 0,
        0x62 | 0x63 | 0x69 | 0x6B | 0x80..=0x8F | 0xC0 | 0xC1 | 0xC4..=0xC7 => true,
        0xD0..=0xD3 | 0xD8..=0xDF | 0xF6 | 0xF7 | 0xFE | 0xFF => true,
        _ => false,
    }
}

/// The instructions a 386 accepts a LOCK prefix on, when their destination
/// is memory (i386 PRM, LOCK and 14.8.1; SDM Vol 2A, LOCK): ADD, OR, ADC,
/// SBB, AND, SUB, XOR (mem, reg/imm), XCHG, INC, DEC, NOT, NEG. (BT, BTS,
/// BTR, BTC are 0F opcodes, absent from the corpus.)
fn lockable_on_386(insn: &Insn) -> bool {
    let Some(modrm) = insn.modrm else {
        return false;
    };
    if modrm >> 6 == 3 {
        return false;
    }
    let reg = (modrm >> 3) & 7;
    match insn.opcode {
        0x00 | 0x01 | 0x08 | 0x09 | 0x10 | 0x11 | 0x18 | 0x19 => true,
        0x20 | 0x21 | 0x28 | 0x29 | 0x30 | 0x31 => true,
        // Group 1 (the 0x82 forms are aliases of 0x80); /7 is CMP.
        0x80..=0x83 => reg != 7,
        0x86 | 0x87 => true,
        // Group 3: /2 NOT, /3 NEG.
        0xF6 | 0xF7 => reg == 2 || reg == 3,
        // Groups 4 and 5: /0 INC, /1 DEC.
        0xFE | 0xFF => reg <= 1,
        _ => false,
    }
}

// ---- where a 386-class CPU differs from the 286 -----------------------------

/// A class of tests left out because a 386-class CPU is specified to behave
/// differently from the 286 that produced the data.
struct Exclusion {
    name: &'static str,
    why: &'static str,
    applies: fn(&Test, &Insn) -> bool,
}

/// Everything left out. Each rule is as narrow as the difference it covers.
///
/// Looked at and deliberately *not* excluded (a 386 does the same as this
/// 286, or the case is absent from the corpus):
/// - Opcodes with no file in the corpus: 0F (two-byte opcodes, and POP CS on
///   the 8086), 63 (ARPL), 64-67 (FS/GS/operand/address-size prefixes on a
///   386; undefined on the 286), C8 (ENTER), D9-DF (the other ESC opcodes),
///   F1, and the prefixes themselves.
/// - Alias and undocumented forms that 386-class CPUs execute the same way
///   (and iced-x86 decodes so): 82 /0-7 (= 80), F6 /1 and F7 /1 (= TEST),
///   the shift /6 forms (= SHL, named `sal` by the corpus; SETMO only on the
///   8086), D6 (SALC).
/// - Undefined group forms 8F /1-7, C6 /1-7, C7 /1-7 and register operands of
///   LEA, LES, LDS, BOUND, CALL FAR and JMP FAR: #UD (6) on both (SDM Vol 2
///   opcode map, groups 1A and 11, and the instruction pages; C6 F8 and C7 F8
///   are XABORT/XBEGIN only with RTM, which ringlab's CPUID does not list);
///   the data shows exception 6 for all of them. MOV to CS (8E /1) and
///   Sreg 6-7 (8C/8E /6-7): #UD on both.
/// - PUSH SP pushes the value before the push on both (i386 PRM 14.7 item 4;
///   all 300 tests of file 54 show the old value).
/// - Shift and rotate counts are masked to 5 bits on both (i386 PRM 14.7).
/// - A divide error points at the DIV/IDIV, prefixes included, on both
///   (i386 PRM 14.7). No IDIV test in the corpus has the most negative
///   quotient (the 8086 case that differs).
/// - A word access at offset 0xFFFF of DS, ES or CS raises 13 on both
///   (i386 PRM table 14-1); only the SS case differs (see below).
/// - POPA, RETF, IRET and PUSHA whose frame wraps past offset 0xFFFF/0 one
///   whole word at a time (SP = 0xFFFE, 0xFFFC or 8; 74 tests): no word
///   crosses the limit, so the 286 does not fault, and neither does a 386,
///   which pops and pushes word by word with a 16-bit SP (SDM Vol 2 POPA,
///   RET and IRET operation: each Pop() wraps SP).
/// - IN reads all ones on the capture board; ringlab's bare bus
///   (`MachineConfig::bare_bus`) reads unclaimed ports as all ones too.
const EXCLUSIONS: &[Exclusion] = &[
    Exclusion {
        name: "fpu-escape",
        why: "ESC (D8-DF, metadata status \"fpu\"): the capture board had no 80287, so the \
              286 (MSW.EM=0) ran ESC as a no-op that only checks its memory operand (the data \
              changes nothing but IP). On a 386-class CPU the outcome depends on the x87 unit \
              and its state, which the corpus does not record",
        applies: |_, insn| (0xD8..=0xDF).contains(&insn.opcode),
    },
    Exclusion {
        name: "lock-not-lockable",
        why: "LOCK before an instruction other than a read-modify-write of memory by ADD, OR, \
              ADC, SBB, AND, SUB, XOR, XCHG, INC, DEC, NOT or NEG: the 286 ignores the prefix, \
              a 386 raises #UD (i386 PRM 14.7 and 14.8.1; SDM Vol 2A, LOCK)",
        applies: |_, insn| insn.has_prefix(0xF0) && !lockable_on_386(insn),
    },
    Exclusion {
        name: "mov-sreg-fs-gs",
        why: "MOV r/m,Sreg and MOV Sreg,r/m (8C, 8E) with reg 4 or 5: #UD on the 286, MOV to or \
              from FS or GS on a 386",
        applies: |_, insn| matches!(insn.opcode, 0x8C | 0x8E) && matches!(insn.reg(), Some(4 | 5)),
    },
    Exclusion {
        name: "longer-than-10-bytes",
        why: "the 286 raises exception 13 for an instruction longer than 10 bytes (redundant \
              prefixes; every such test of the corpus raises 13 unless it is #UD anyway); the \
              386 limit is 15 bytes (i386 PRM 14.7 item 5), so a 386 executes it",
        applies: |t, _| t.exception == Some(13) && t.insn_len() > 10,
    },
    Exclusion {
        name: "stack-segment-overrun",
        why: "a word access crossing offset 0xFFFF of SS (a pop or push at 0xFFFF, or a \
              BP-based or SS: operand at 0xFFFF): the 286 raises 13, a 386 raises the stack \
              fault, 12 (i386 PRM 14.7 \"Operand crossing offset 0 or 65,535\", table 14-1; \
              SDM Vol 2 real-address-mode exceptions: #SS)",
        applies: |t, insn| {
            t.exception == Some(13)
                && t.insn_len() <= 10
                && insn.overrun_segment(&t.init) == Some(SS)
        },
    },
    Exclusion {
        name: "string-fault-not-restartable",
        why: "a string instruction that raises 13 on a word at offset 0xFFFF of DS or ES: the \
              286 has already advanced SI and/or DI (and CX under REP) when it faults (all 117 \
              such tests without REP show SI or DI changed), while a 386 faults restartably, \
              with the registers as before the faulting iteration (SDM Vol 3A 6.5, faults; SDM \
              Vol 2B, REP: the state is preserved so the operation can resume)",
        applies: |t, insn| t.exception == Some(13) && is_string_op(insn.opcode),
    },
];

/// String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS).
fn is_string_op(op: u8) -> bool {
    matches!(op, 0xA4..=0xA7 | 0xAA..=0xAF | 0x6C..=0x6F)
}

/// A field that is not compared for a class of tests.
struct Relaxation {
    name: &'static str,
    why: &'static str,
    applies: fn(&Test, &Insn) -> bool,
    /// FLAGS bits left out of the comparison of the final FLAGS.
    flags_ignored: u16,
}

const RELAXATIONS: &[Relaxation] = &[
    Relaxation {
        name: "popf-iret-iopl-nt",
        why: "POPF and IRET: a real-mode 286 keeps IOPL and NT (bits 12-14) at 0 (80C286 \
              data sheet, instruction set notes: \"The IOPL and NT fields will remain 0\"); a \
              386 in real mode runs at CPL 0 and loads them from the stack (i386 PRM 14.7, \
              \"Flags in stack\"). Bit 15 is 0 on both",
        applies: |_, insn| matches!(insn.opcode, 0x9D | 0xCF),
        flags_ignored: 0xF000,
    },
    Relaxation {
        name: "c0-shift-rotate-of",
        why: "shifts and rotates by an immediate (C0) with a masked count above 1: OF is \
              undefined (SDM Vol 2B, SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR, \"Flags Affected\"; \
              80286 PRM, SAL/SAR/SHL/SHR: \"also overflow for multibit shifts\"). metadata.json \
              masks OF for C1, D2 and D3 but not for C0, so it is left out here as it is there",
        applies: |_, insn| insn.opcode == 0xC0 && insn.imm8(insn.disp_len()) & 0x1F > 1,
        flags_ignored: 0x0800,
    },
];

// ---- running one test ---------------------------------------------------------

/// A test that did not pass, with everything needed to debug it.
struct Failure {
    stem: String,
    idx: u64,
    name: String,
    bytes: Vec<u8>,
    init: Regs,
    exception: Option<u8>,
    problems: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: Vec<String> = self.bytes.iter().map(|b| format!("{b:02X}")).collect();
        write!(
            f,
            "{} #{} `{}` bytes [{}]",
            self.stem,
            self.idx,
            self.name,
            bytes.join(" ")
        )?;
        if let Some(e) = self.exception {
            write!(f, " (raises interrupt {e} on the 286)")?;
        }
        let init: Vec<String> = REG_NAMES
            .iter()
            .zip(self.init)
            .map(|(n, v)| format!("{n}={v:04x}"))
            .collect();
        write!(f, "\n    initial: {}", init.join(" "))?;
        for p in &self.problems {
            write!(f, "\n    {p}")?;
        }
        Ok(())
    }
}

/// The CPU state a test starts from: real mode, segment caches as a
/// real-mode load leaves them (base = selector * 16, 64 KiB limit).
fn initial_state(t: &Test) -> CpuState {
    let r = &t.init;
    let mut s = CpuState::reset();
    s.regs = [0; 8];
    for (reg, gpr) in GPRS {
        s.regs[gpr] = u32::from(r[reg]);
    }
    s.eip = u32::from(r[IP]);
    s.eflags = u32::from(r[FLAGS] & LOADABLE_FLAGS) | cpu::flags::FIXED;
    for (reg, seg) in SEGS {
        s.segs[seg as usize] = if seg == Seg::Cs {
            Segment::real_mode_code(r[reg])
        } else {
            Segment::real_mode_data(r[reg])
        };
    }
    // FS and GS do not exist on the 286; they stay as after reset.
    s
}

/// Names of the FLAGS bits set in `bits`.
fn flag_names(bits: u16) -> String {
    const NAMES: [(u16, &str); 12] = [
        (0x0001, "CF"),
        (0x0004, "PF"),
        (0x0010, "AF"),
        (0x0040, "ZF"),
        (0x0080, "SF"),
        (0x0100, "TF"),
        (0x0200, "IF"),
        (0x0400, "DF"),
        (0x0800, "OF"),
        (0x3000, "IOPL"),
        (0x4000, "NT"),
        (0x8000, "bit15"),
    ];
    let mut names: Vec<&str> = NAMES
        .iter()
        .filter(|&&(b, _)| bits & b != 0)
        .map(|&(_, n)| n)
        .collect();
    if bits & 0x002A != 0 {
        names.push("reserved");
    }
    names.join(" ")
}

/// Runs one test on `engine` and returns what differs (empty: passed).
fn run_test(engine: &mut Session, t: &Test, flags_mask: u16, flags_ignored: u16) -> Vec<String> {
    let mut problems = Vec::new();
    // Bytes the test does not list are don't-care, so the RAM of the previous
    // test can stay. GuestMemory::write notes writes to cached code pages,
    // so the interpreter's decode cache sees the new code.
    for &(addr, byte) in &t.init_ram {
        if let Err(e) = engine.m.mem.write_u8(u64::from(addr), byte) {
            return vec![format!("cannot load initial RAM: {}", Chain(&e))];
        }
    }
    if let Err(e) = engine.set_cpu_state(&initial_state(t)) {
        return vec![format!("set_cpu_state failed: {}", Chain(&e))];
    }

    // Step until the HLT (README, "How to run a test", step 3).
    let at = |s: &CpuState| format!("{:04x}:{:04x}", s.segs[Seg::Cs as usize].selector, s.eip);
    let mut state = None;
    let mut after_first = String::new();
    for step in 0..MAX_STEPS {
        let stop = match engine.step() {
            Ok(stop) => stop,
            Err(e) => return vec![format!("step {} failed: {}", step + 1, Chain(&e))],
        };
        let s = match engine.cpu_state() {
            Ok(s) => s,
            Err(e) => return vec![format!("cpu_state failed: {}", Chain(&e))],
        };
        if step == 0 {
            after_first = at(&s);
        }
        if s.halted || matches!(stop, Stop::Halted | Stop::Idle) {
            state = Some(s);
            break;
        }
        if stop.is_final() {
            return vec![format!(
                "stopped before reaching the HLT: {stop} (at {}; after the first step at \
                 {after_first})",
                at(&s)
            )];
        }
    }
    let Some(s) = state else {
        // Usually the engine went somewhere the test does not define (an
        // exception the 286 did not raise, say) and ran leftover bytes.
        return vec![format!(
            "did not reach a HLT within {MAX_STEPS} steps (after the first step at \
             {after_first}; expected to halt with cs:ip {:04x}:{:04x})",
            t.expected(CS),
            t.expected(IP)
        )];
    };

    // Registers: 16-bit values, upper halves (never written in 16-bit code)
    // expected to stay 0 as loaded.
    for (reg, gpr) in GPRS {
        let (want, got) = (u32::from(t.expected(reg)), s.regs[gpr]);
        if want != got {
            problems.push(format!(
                "{}: expected {want:04x}, got {got:04x}",
                REG_NAMES[reg]
            ));
        }
    }
    for (reg, seg) in SEGS {
        let want = t.expected(reg);
        let got = s.segs[seg as usize];
        if got.selector != want {
            problems.push(format!(
                "{}: expected {want:04x}, got {:04x}",
                REG_NAMES[reg], got.selector
            ));
        } else if got.base != u32::from(want) << 4 {
            problems.push(format!(
                "{}.base: expected {:05x} (selector * 16), got {:x}",
                REG_NAMES[reg],
                u32::from(want) << 4,
                got.base
            ));
        }
    }
    if s.eip != u32::from(t.expected(IP)) {
        problems.push(format!(
            "ip: expected {:04x}, got {:04x}",
            t.expected(IP),
            s.eip
        ));
    }
    let compared = flags_mask & !flags_ignored;
    let (want, got) = (t.expected(FLAGS), s.eflags as u16);
    if (want ^ got) & compared != 0 {
        problems.push(format!(
            "flags: expected {want:04x}, got {got:04x} (differ: {}; compared bits {compared:04x})",
            flag_names((want ^ got) & compared)
        ));
    }

    // Memory: the final bytes, and the initial bytes the final state does not
    // list, which must be unchanged.
    let mut want_ram: HashMap<u32, u8> = t.init_ram.iter().copied().collect();
    want_ram.extend(t.fin_ram.iter().copied());
    // The FLAGS image pushed by an exception or INT may hold undefined bits
    // too (README, "Undefined flags"). It sits at SS:SP+4 after the push of
    // FLAGS, CS and IP. (metadata's flag_address is off by one when SP is
    // odd, so it is computed here.)
    let pushed_flags = t.exception.map(|_| {
        let base = u32::from(t.expected(SS)) << 4;
        let sp = t.expected(SP);
        (
            base + u32::from(sp.wrapping_add(4)),
            base + u32::from(sp.wrapping_add(5)),
        )
    });
    let mut addrs: Vec<u32> = want_ram.keys().copied().collect();
    addrs.sort_unstable();
    for addr in addrs {
        let want = want_ram[&addr];
        let Some(got) = engine.m.mem.read_u8(u64::from(addr)) else {
            problems.push(format!("mem[{addr:06x}]: outside RAM"));
            continue;
        };
        let (mask, what) = match pushed_flags {
            Some((lo, _)) if addr == lo => (compared as u8, " (pushed FLAGS, low byte)"),
            Some((_, hi)) if addr == hi => ((compared >> 8) as u8, " (pushed FLAGS, high byte)"),
            _ => (0xFF, ""),
        };
        if (want ^ got) & mask != 0 {
            problems.push(format!(
                "mem[{addr:06x}]{what}: expected {want:02x}, got {got:02x}"
            ));
        }
    }
    problems
}

// ---- running a file ---------------------------------------------------------

#[derive(Default)]
struct FileResult {
    stem: String,
    passed: usize,
    counted: usize,
    /// Tests left out, per rule of [`EXCLUSIONS`].
    excluded: Vec<usize>,
    failures: Vec<Failure>,
    /// The file could not be read or parsed.
    error: Option<String>,
}

impl FileResult {
    fn excluded_total(&self) -> usize {
        self.excluded.iter().sum()
    }
}

/// The interpreter over a bare 16 MiB machine; each test loads its own
/// RAM bytes and CPU state into it.
fn new_session() -> Session {
    let mut m = Machine::new(MachineConfig {
        ram_bytes: RAM_BYTES,
        bare_bus: true,
        ..MachineConfig::default()
    })
    .expect("a 16 MiB machine");
    m.trace.set_enabled(EventMask::NONE);
    Session::new(
        m,
        EngineKind::Interp,
        Options::default(),
        &CpuState::reset(),
    )
    .expect("the interpreter")
}

/// What a worker is running and since when, for the watchdog.
type Busy = Mutex<Option<(String, Instant)>>;

fn run_file(path: &Path, stem: &str, meta: Option<&Metadata>, busy: &Busy) -> FileResult {
    let mut res = FileResult {
        stem: stem.to_string(),
        excluded: vec![0; EXCLUSIONS.len()],
        ..Default::default()
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            res.error = Some(format!("{}: {e}", path.display()));
            return res;
        }
    };
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut engine = new_session();
    for (lineno, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                res.error = Some(format!("{}: {e}", path.display()));
                return res;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let t = match Test::parse(&line) {
            Ok(t) => t,
            Err(e) => {
                res.error = Some(format!("{} line {}: {e}", path.display(), lineno + 1));
                return res;
            }
        };
        let insn = Insn::decode(&t.bytes);
        if let Some(i) = EXCLUSIONS.iter().position(|x| (x.applies)(&t, &insn)) {
            res.excluded[i] += 1;
            continue;
        }
        res.counted += 1;
        let flags_mask = meta.map_or(0xFFFF, |meta| meta.flags_mask(stem, &insn));
        let flags_ignored = RELAXATIONS
            .iter()
            .filter(|x| (x.applies)(&t, &insn))
            .fold(0, |acc, x| acc | x.flags_ignored);
        *lock(busy) = Some((format!("{stem} #{} `{}`", t.idx, t.name), Instant::now()));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_test(&mut engine, &t, flags_mask, flags_ignored)
        }));
        *lock(busy) = None;
        let problems = match outcome {
            Ok(p) => p,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                // The engine may be in any state after a panic: start over.
                engine = new_session();
                vec![format!("the engine panicked: {msg}")]
            }
        };
        if problems.is_empty() {
            res.passed += 1;
        } else {
            res.failures.push(Failure {
                stem: stem.to_string(),
                idx: t.idx,
                name: t.name,
                bytes: t.bytes,
                init: t.init,
                exception: t.exception,
                problems,
            });
        }
    }
    res
}

// ---- the corpus -------------------------------------------------------------

/// The corpus directory, or why there is none.
fn corpus_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RINGLAB_CONFORMANCE_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(format!(
                "RINGLAB_CONFORMANCE_DIR={} is not a directory",
                dir.display()
            ))
        };
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/80286-real");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "the 80286 conformance corpus is required but was not found at {} \
             (shared/conformance/80286-real beside the workspace); set \
             RINGLAB_CONFORMANCE_DIR to a copy of it",
            dir.display()
        ))
    }
}

/// The corpus files (stem, path), sorted, restricted to
/// `RINGLAB_CONFORMANCE_FILTER` when set.
fn corpus_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".jsonl.gz") {
            files.push((stem.to_string(), entry.path()));
        }
    }
    files.sort();
    let filter = std::env::var("RINGLAB_CONFORMANCE_FILTER").unwrap_or_default();
    let wanted: Vec<String> = filter
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect();
    if !wanted.is_empty() {
        let unknown: Vec<&String> = wanted
            .iter()
            .filter(|w| !files.iter().any(|(s, _)| s.eq_ignore_ascii_case(w)))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "RINGLAB_CONFORMANCE_FILTER names files that are not in {}: {unknown:?}",
                dir.display()
            ));
        }
        files.retain(|(s, _)| wanted.iter().any(|w| s.eq_ignore_ascii_case(w)));
    }
    if files.is_empty() {
        return Err(format!("no *.jsonl.gz test files in {}", dir.display()));
    }
    Ok(files)
}

fn lock(busy: &Busy) -> std::sync::MutexGuard<'_, Option<(String, Instant)>> {
    busy.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs every file, spread over the host's cores (the files are
/// independent), and returns the results in file order. A watchdog fails the
/// test, naming the test, if the engine hangs inside one step: the step cap
/// of [`run_test`] cannot catch that.
fn run_all(files: Vec<(String, PathBuf)>, meta: Option<Metadata>) -> Vec<FileResult> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(files.len());
    let files = Arc::new(files);
    let meta = Arc::new(meta);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for _ in 0..threads {
        let busy = Arc::new(Busy::default());
        let (files, meta, next, tx) = (files.clone(), meta.clone(), next.clone(), tx.clone());
        let handle = std::thread::spawn({
            let busy = busy.clone();
            move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((stem, path)) = files.get(i) else {
                    break;
                };
                let res = run_file(path, stem, meta.as_ref().as_ref(), &busy);
                if tx.send((i, res)).is_err() {
                    break;
                }
            }
        });
        workers.push((handle, busy));
    }
    drop(tx);

    let mut results = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(r) => results.push(r),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        for (_, busy) in &workers {
            if let Some((test, since)) = lock(busy).as_ref() {
                // The stuck thread cannot be stopped; failing here ends the
                // test, and the process exits when the test harness does.
                assert!(
                    since.elapsed() < TEST_TIMEOUT,
                    "the engine hangs: test {test} has run for more than {} s inside one \
                     step (expected microseconds)",
                    TEST_TIMEOUT.as_secs()
                );
            }
        }
    }
    for (handle, _) in workers {
        if handle.join().is_err() {
            panic!("a conformance worker thread panicked (see its message above)");
        }
    }
    assert_eq!(results.len(), files.len(), "some files were not run");
    results.sort_by_key(|&(i, _)| i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn conformance_80286_real_mode() {
    let started = Instant::now();
    let dir = corpus_dir().unwrap_or_else(|e| panic!("{e}"));
    let files = corpus_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    let meta = Metadata::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let verbose =
        std::env::var("RINGLAB_CONFORMANCE_VERBOSE").is_ok_and(|v| v != "0" && !v.is_empty());
    println!("80286 real-mode conformance corpus: {}", dir.display());
    if meta.is_none() {
        println!("note: no metadata.json there, so every FLAGS bit is compared");
    }

    let results = run_all(files, meta);

    println!("file: passed/counted (excluded)");
    let (mut passed, mut counted, mut total) = (0, 0, 0);
    let mut excluded = vec![0; EXCLUSIONS.len()];
    let mut errors = Vec::new();
    for r in &results {
        println!(
            "{}: {}/{} (excluded {})",
            r.stem,
            r.passed,
            r.counted,
            r.excluded_total()
        );
        passed += r.passed;
        counted += r.counted;
        total += r.counted + r.excluded_total();
        for (sum, n) in excluded.iter_mut().zip(&r.excluded) {
            *sum += n;
        }
        if let Some(e) = &r.error {
            errors.push(e.clone());
        }
    }
    let excluded_total: usize = excluded.iter().sum();
    for (x, n) in EXCLUSIONS.iter().zip(&excluded) {
        println!("excluded {n:5} {}: {}", x.name, x.why);
    }
    for x in RELAXATIONS {
        println!("relaxed: {}: {}", x.name, x.why);
    }

    let failures: Vec<&Failure> = results.iter().flat_map(|r| &r.failures).collect();
    if !failures.is_empty() {
        let shown = if verbose {
            failures.len()
        } else {
            failures.len().min(FAILURES_SHOWN)
        };
        println!(
            "\nfailures ({shown} of {} shown; RINGLAB_CONFORMANCE_VERBOSE=1 shows all):",
            failures.len()
        );
        for f in &failures[..shown] {
            println!("{f}");
        }
        let mut worst: Vec<&FileResult> =
            results.iter().filter(|r| !r.failures.is_empty()).collect();
        worst.sort_by_key(|r| std::cmp::Reverse(r.failures.len()));
        let worst: Vec<String> = worst
            .iter()
            .take(15)
            .map(|r| format!("{} {}", r.stem, r.failures.len()))
            .collect();
        println!("most failures: {}", worst.join(", "));
    }

    let rate = if counted == 0 {
        0.0
    } else {
        passed as f64 / counted as f64
    };
    println!(
        "\ntotal: {passed} passed of {counted} counted ({:.3}%), {excluded_total} excluded, \
         {total} tests in {} files, {:.1} s",
        rate * 100.0,
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        errors.is_empty(),
        "unreadable corpus files:\n{}",
        errors.join("\n")
    );
    assert!(counted > 0, "no test was run");
    assert_eq!(
        passed,
        counted,
        "{} of {counted} counted tests failed (pass rate {:.3}%): every test not \
         excluded by a rule of EXCLUSIONS must pass",
        counted - passed,
        rate * 100.0
    );
}

/// The decoder behind the exclusion rules, on cases taken from the corpus.
#[test]
fn exclusion_rules_find_the_faulting_segment() {
    let mut r: Regs = [0; 14];
    let seg = |bytes: &[u8], r: &Regs| Insn::decode(bytes).overrun_segment(r);
    // sbb [bp+si],ax with BP=0, SI=FFFF: BP-based, so SS.
    r[SI] = 0xFFFF;
    assert_eq!(seg(&[0x19, 0x02, 0xF4], &r), Some(SS));
    // add [si],ax: DS; with an ES: override, ES.
    assert_eq!(seg(&[0x01, 0x04, 0xF4], &r), Some(DS));
    assert_eq!(seg(&[0x26, 0x01, 0x04, 0xF4], &r), Some(ES));
    // The last of several overrides wins: es cs ss movsw reads SS:SI.
    assert_eq!(seg(&[0x26, 0x2E, 0x36, 0xA5, 0xF4], &r), Some(SS));
    // movsw with SI=0, DI=FFFF faults on the destination, ES:DI.
    r[SI] = 0;
    r[DI] = 0xFFFF;
    assert_eq!(seg(&[0x2E, 0x3E, 0xA5, 0xF4], &r), Some(ES));
    // LEAVE pops at BP; POP ES at SP; PUSHA with SP=8 crosses nothing.
    r[BP] = 0xFFFF;
    assert_eq!(seg(&[0xC9, 0xF4], &r), Some(SS));
    r[SP] = 0xFFFF;
    assert_eq!(seg(&[0x07, 0xF4], &r), Some(SS));
    r[SP] = 8;
    assert_eq!(seg(&[0x60, 0xF4], &r), None);
    // A byte operand at 0xFFFF does not cross the limit.
    r[BX] = 0xFFFF;
    assert_eq!(seg(&[0x00, 0x07, 0xF4], &r), None);
    // call far [bx] reads two words; the second one at 0xFFFF crosses.
    r[BX] = 0xFFFD;
    assert_eq!(seg(&[0xFF, 0x1F, 0xF4], &r), Some(DS));

    // LOCK is allowed on a read-modify-write of memory only.
    let lockable = |bytes: &[u8]| lockable_on_386(&Insn::decode(bytes));
    assert!(lockable(&[0xF0, 0x01, 0x04, 0xF4])); // lock add [si],ax
    assert!(!lockable(&[0xF0, 0x01, 0xC0, 0xF4])); // lock add ax,ax
    assert!(!lockable(&[0xF0, 0x39, 0x04, 0xF4])); // lock cmp [si],ax
    assert!(!lockable(&[0xF0, 0x83, 0x3C, 0x01, 0xF4])); // lock cmp word [si],1
    assert!(lockable(&[0xF0, 0xFE, 0x0F, 0xF4])); // lock dec byte [bx]

    // The count of C0 sits after the displacement.
    let c0 = Insn::decode(&[0xC0, 0x68, 0xD7, 0x25, 0xF4]); // shr byte [bx+si-29h],25h
    assert_eq!(c0.imm8(c0.disp_len()), 0x25);
}
