//! Where KVM departs from the interpreter, and whose departure it is.
//!
//! When `compare` finds KVM ending differently from the interpreter, the
//! guest is run again on both, one instruction at a time in lockstep (KVM
//! single-steps through its debug exits), until the two CPUs disagree on
//! CS:EIP, a general register or a segment selector. EFLAGS are left out
//! (an emulator may differ in the flags the SDM leaves undefined); so is
//! memory, which the next instructions show anyway.
//!
//! On a kvm-pvm host (a software hypervisor for nested clouds, not VT-x or
//! AMD-V) everything a 32-bit guest can run there — real mode and unpaged
//! protected mode — runs in KVM's instruction emulator, inside KVM_RUN. If
//! the departing step reached ringlab's KVM engine through no exit but the
//! debug trap that ends it, the engine had no part in it: the departure is
//! kvm-pvm's.
//!
//! Found so (issue 14): 4 KiB of zeros at 0x7C00 (`add [bx+si], al` over
//! and over, AL = 0) loop forever on the interpreter, the translator and
//! kvm_amd (in the QEMU/SVM test VM), as on a CPU, whose 16-bit IP wraps
//! from an instruction ending at FFFF to 0000. kvm-pvm stops after about
//! 50 ms with three interrupt frames on the stack: its emulator (KVM's
//! arch/x86/kvm/emulate.c, which outside long mode truncates EIP to 32
//! bits after an instruction, not to 16 in 16-bit code) leaves EIP at
//! 0x10000; the fetch there is past CS's limit and raises #GP, whose
//! frame shifts the zeros' instruction boundaries, until a #UD and a HLT
//! made of pushed bytes (F4 at 0x7BEE) end the run.
//!
//! Only deterministic guests are compared so: where the interpreter saw a
//! hardware interrupt, its timing (host time on KVM) decides the path and
//! lockstep would find a difference that is no departure.

use crate::compare::Guest;
use crate::engines::EngineKind;
use crate::run::prepare;
use crate::session::{Options, Session};
use anyhow::Context;
use machine::cpu::{cr0, CpuState, Seg};
use machine::{Machine, Stop};
use std::time::{Duration, Instant};

/// How long the lockstep search may take.
pub const BUDGET: Duration = Duration::from_secs(10);

/// A departure found by stepping both engines.
pub struct Departure {
    /// Instructions both engines retired alike before it.
    pub icount: u64,
    /// What happened, for a human (several sentences).
    pub text: String,
}

/// The VM exits the engine saw so far, by kind ("exits: io" -> n).
fn exits(s: &Session) -> Vec<(String, u64)> {
    s.stats()
        .counters
        .into_iter()
        .filter(|(k, _)| k.starts_with("exits: "))
        .collect()
}

fn pc(s: &CpuState) -> String {
    format!("{:04x}:{:08x}", s.segs[Seg::Cs as usize].selector, s.eip)
}

/// The registers the comparison looks at differ.
fn differs(a: &CpuState, b: &CpuState) -> bool {
    a.eip != b.eip
        || a.regs != b.regs
        || a.segs
            .iter()
            .zip(&b.segs)
            .any(|(x, y)| x.selector != y.selector)
}

/// The instruction at CS:EIP: its length and its text, read through the
/// guest's page tables without side effects (`inspect::read_linear`).
fn instruction(m: &Machine, s: &CpuState) -> Option<(u32, String)> {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
    let bytes = crate::inspect::read_linear(m, s, s.pc_linear(), 15);
    let mut d = Decoder::with_ip(s.code_bits(), &bytes, s.eip as u64, DecoderOptions::NONE);
    let i = d.decode();
    if i.is_invalid() {
        return None;
    }
    let mut text = String::new();
    IntelFormatter::new().format(&i, &mut text);
    Some((i.len() as u32, text))
}

/// The three words a real-mode interrupt pushes (IP, CS, FLAGS), if KVM's
/// stack grew by exactly that.
fn real_mode_frame(m: &Machine, before: &CpuState, after: &CpuState) -> Option<[u16; 3]> {
    let sp = |s: &CpuState| s.regs[4] & 0xFFFF;
    if after.cr0 & cr0::PE != 0 || sp(before).wrapping_sub(sp(after)) & 0xFFFF != 6 {
        return None;
    }
    let base = after.segs[Seg::Ss as usize].base as u64 + sp(after) as u64;
    let w = |k: u64| -> Option<u16> {
        Some(u16::from_le_bytes([
            m.mem.read_u8(base + k)?,
            m.mem.read_u8(base + k + 1)?,
        ]))
    };
    Some([w(0)?, w(2)?, w(4)?])
}

/// Most interpreter steps that may catch up with one KVM step: KVM's
/// single-step trap can land a few instructions late where an exception
/// or interrupt delivery cleared TF, which is no departure.
const CATCH_UP: u32 = 64;

/// Runs `guest` on the interpreter and on KVM in lockstep until they
/// disagree. Err says why nothing was found: the engines stepped alike
/// for the whole `budget`, or to the same end, or one could not be
/// stepped.
pub fn find(guest: &Guest, budget: Duration) -> anyhow::Result<Departure> {
    let (mi, loaded) = prepare(&guest.args)?;
    let (mk, _) = prepare(&guest.args)?;
    let mut interp = Session::new(mi, EngineKind::Interp, Options::default(), &loaded.entry)?;
    let mut kvm = Session::new(mk, EngineKind::Kvm, Options::default(), &loaded.entry)?;
    let pvm = engine_kvm::host::detect() == engine_kvm::host::HostKind::Pvm;
    let start = Instant::now();
    let mut before = loaded.entry.clone();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        let exits_before = exits(&kvm);
        let si = interp.step().context("interp")?;
        let sk = kvm.step().context("kvm")?;
        let a = interp.cpu_state()?;
        let b = kvm.cpu_state()?;
        if !differs(&a, &b) && si == sk {
            if si != Stop::Stepped {
                anyhow::bail!(
                    "stepped side by side, both engines ran {} instructions alike and ended \
                     with: {si} (the difference depends on how they run at full speed)",
                    n + 1
                );
            }
            before = a;
            n += 1;
            continue;
        }
        // Read before the interpreter steps on (it may write its code).
        let insn = instruction(&interp.m, &before);
        if si == Stop::Stepped && sk == Stop::Stepped {
            // KVM ran ahead? Step the interpreter on to where it is.
            let mut caught = None;
            for k in 1..=CATCH_UP {
                if interp.step().context("interp")? != Stop::Stepped {
                    break;
                }
                let c = interp.cpu_state()?;
                if !differs(&c, &b) {
                    caught = Some((k, c));
                    break;
                }
            }
            if let Some((k, c)) = caught {
                before = c;
                n += 1 + k as u64;
                continue;
            }
        }
        let mut text = format!(
            "kvm departs from interp after {n} instructions alike, at {} ({}): interp went on \
             to {} (SP {:04x}), kvm to {} (SP {:04x})",
            pc(&before),
            insn.as_ref().map_or("undecodable", |(_, t)| t.as_str()),
            pc(&a),
            a.regs[4],
            pc(&b),
            b.regs[4],
        );
        if si != sk {
            text.push_str(&format!(" (stops: interp {si}, kvm {sk})"));
        }
        if let Some([ip, cs, flags]) = real_mode_frame(&kvm.m, &before, &b) {
            text.push_str(&format!(
                "; kvm delivered an interrupt or exception there (it pushed IP {ip:04x}, CS \
                 {cs:04x}, FLAGS {flags:04x})"
            ));
        }
        text.push('.');
        if !differs(&before, &b) {
            text.push_str(
                " KVM did not complete the instruction: after the step it is still on it, \
                 with the same registers.",
            );
        }
        let real = before.cr0 & cr0::PE == 0;
        if let Some((len, _)) = insn {
            if real && (before.eip & 0xFFFF) + len == 0x1_0000 {
                text.push_str(
                    " The instruction ends at offset FFFF: IP is 16 bits wide, so a CPU goes on \
                     at offset 0000 (no fault: the instruction lies within the 64 KiB limit, and the \
                     SDM's \"Segment Wraparound\" faults only accesses that cross it), as the \
                     interpreter does.",
                );
                if b.eip == (before.eip & 0xFFFF) + len {
                    text.push_str(&format!(
                        " KVM instead left EIP at {:08x}, past CS's 64 KiB limit, so its next \
                         instruction fetch raises #GP (vector 13) through the IVT, which no CPU \
                         does here.",
                        b.eip
                    ));
                }
            }
        }
        let only_debug = exits(&kvm)
            .iter()
            .filter(|(k, v)| {
                k != "exits: debug"
                    && exits_before.iter().find(|(j, _)| j == k).map(|x| x.1) != Some(*v)
            })
            .count()
            == 0;
        if pvm && only_debug {
            text.push_str(
                " This host's KVM is kvm-pvm, which runs real mode and unpaged protected mode in \
                 KVM's instruction emulator: that step ran inside one KVM_RUN and reached \
                 ringlab's KVM engine through no exit but the single-step trap, so the departure \
                 is kvm-pvm's emulation, not ringlab's KVM engine.",
            );
        } else if pvm {
            text.push_str(
                " This host's KVM is kvm-pvm (its instruction emulator runs real mode and \
                 unpaged protected mode); the step also made VM exits to ringlab's engine, so \
                 either may be at fault.",
            );
        }
        return Ok(Departure { icount: n, text });
    }
    anyhow::bail!(
        "stepped side by side for {} s, {n} instructions, without a difference",
        budget.as_secs()
    )
}
