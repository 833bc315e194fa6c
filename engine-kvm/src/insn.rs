//! The instruction at the vCPU's PC, decoded with iced-x86: KVM runs the
//! guest without telling what it executed, so where the engine must know
//! (the cause of a ring change seen across a single step, a MOV SS that
//! holds the step's trap, the instruction kvm-pvm stopped on) it decodes
//! the guest's code itself.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use machine::cpu::{cr0, CpuState};
use machine::x86::paging;
use machine::{Machine, PrivCause};

/// The longest x86 instruction (SDM Vol 2A 2.3.11).
const MAX_INSN_LEN: usize = 15;

/// Guest code at linear address `lin` in `s`'s paging mode: up to 15
/// bytes, fewer where a page is not present or RAM ends. Read through the
/// guest's page tables without side effects (no accessed bits, no device
/// reads: machine::x86::paging), so a diagnosis never changes the guest.
fn read_code(m: &Machine, s: &CpuState, lin: u32) -> Vec<u8> {
    let mut buf = [0u8; MAX_INSN_LEN];
    let n = paging::peek_linear(m, paging::Regs::of(s), lin, &mut buf);
    buf[..n].to_vec()
}

/// The instruction at linear `lin` in `s`'s mode, if the bytes there
/// decode to one.
fn decode_at(m: &Machine, s: &CpuState, lin: u32) -> Option<Instruction> {
    let code = read_code(m, s, lin);
    let i = Decoder::with_ip(s.code_bits(), &code, lin as u64, DecoderOptions::NONE).decode();
    (!i.is_invalid()).then_some(i)
}

/// The instruction at CS:EIP.
fn at_pc(m: &Machine, s: &CpuState) -> Option<Instruction> {
    decode_at(m, s, s.pc_linear())
}

/// The instruction at CS:EIP as text (Intel syntax), for messages.
pub(crate) fn text_at(m: &Machine, s: &CpuState) -> Option<String> {
    use iced_x86::{Formatter, IntelFormatter};
    let i = at_pc(m, s)?;
    let mut out = String::new();
    IntelFormatter::new().format(&i, &mut out);
    Some(out)
}

/// The likely cause of a ring change across one stepped instruction, from
/// the instruction that was stepped. Anything else that changes rings
/// (a fault, a page fault on any instruction) counts as an exception.
pub(crate) fn ring_change_cause(m: &Machine, s: &CpuState) -> PrivCause {
    let Some(i) = at_pc(m, s) else {
        return PrivCause::Exception;
    };
    match i.mnemonic() {
        Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Into => PrivCause::SoftwareInterrupt,
        Mnemonic::Iret | Mnemonic::Iretd => PrivCause::Iret,
        Mnemonic::Retf => PrivCause::FarReturn,
        Mnemonic::Sysenter => PrivCause::Sysenter,
        Mnemonic::Sysexit => PrivCause::Sysexit,
        // A far CALL changes rings only through a call gate; a far JMP
        // cannot go through one to another ring (SDM Vol 3A 5.8.6), so
        // across rings it was a task switch.
        _ if i.is_call_far() || i.is_call_far_indirect() => PrivCause::CallGate,
        _ if i.is_jmp_far() || i.is_jmp_far_indirect() => PrivCause::TaskSwitch,
        _ => PrivCause::Exception,
    }
}

/// The vector the software interrupt at the PC delivers: INT n's n,
/// INT3's 3 (unless `int3_intercepted`: KVM takes it, for the debugger),
/// INTO's 4 when OF is set. None for anything else.
pub(crate) fn soft_interrupt_vector(
    m: &Machine,
    s: &CpuState,
    int3_intercepted: bool,
) -> Option<u8> {
    let i = at_pc(m, s)?;
    match i.mnemonic() {
        Mnemonic::Int => Some(i.immediate8()),
        Mnemonic::Int3 if !int3_intercepted => Some(3),
        Mnemonic::Into if s.eflags & machine::cpu::flags::OF != 0 => Some(4),
        _ => None,
    }
}

/// The instruction at the PC is MOV SS, r/m or POP SS, whose interrupt
/// shadow holds a single step's trap over the next instruction (SDM Vol 3A
/// 6.8.3).
pub(crate) fn loads_ss(m: &Machine, s: &CpuState) -> bool {
    at_pc(m, s).is_some_and(|i| {
        matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Pop)
            && i.op0_kind() == OpKind::Register
            && i.op0_register() == Register::SS
    })
}

/// The instruction at CS:EIP, or the one ending there, is MOV CR0, r32
/// with PG set in the register: kvm-pvm shuts the vCPU down there, before
/// CR0 changes (measured: EIP on the MOV, CR0 without PG).
pub(crate) fn sets_paging(m: &Machine, s: &CpuState) -> bool {
    let pc = s.pc_linear();
    // MOV CR0, r32 is 0F 22 /r with mod = 11: three bytes.
    [pc, pc.wrapping_sub(3)].into_iter().any(|at| {
        decode_at(m, s, at).is_some_and(|i| {
            (at == pc || at.wrapping_add(i.len() as u32) == pc)
                && i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Register
                && i.op0_register() == Register::CR0
                && i.op1_kind() == OpKind::Register
                && i.op1_register().is_gpr32()
                && s.regs[i.op1_register().number()] & cr0::PG != 0
        })
    })
}

/// The instruction at CS:EIP is a near relative JMP to its own address
/// (`jmp $`: EB FE, E9 with rel32 = -5, E9 with rel16 = -3 in 16-bit code,
/// or any of them with prefixes), as the interpreter's `jmp_rel` sees one.
/// Decoded at EIP, not the linear address, so a 16-bit target wraps
/// within the segment as the CPU's does.
pub(crate) fn is_self_jump(m: &Machine, s: &CpuState) -> bool {
    let code = read_code(m, s, s.pc_linear());
    let i = Decoder::with_ip(s.code_bits(), &code, s.eip as u64, DecoderOptions::NONE).decode();
    !i.is_invalid()
        && i.mnemonic() == Mnemonic::Jmp
        && matches!(i.op0_kind(), OpKind::NearBranch16 | OpKind::NearBranch32)
        && i.near_branch_target() == s.eip as u64
}

/// The instruction at CS:EIP can retire leaving EIP, CS and every
/// register as they were: a jump (near or far, conditional or not) to its
/// own address, or an indirect jump, whose target is not known here. Any
/// other instruction that retires changes at least EIP.
pub(crate) fn may_retire_in_place(m: &Machine, s: &CpuState) -> bool {
    use iced_x86::FlowControl;
    let Some(i) = at_pc(m, s) else {
        return false;
    };
    let here = s.pc_linear() as u64;
    match i.flow_control() {
        FlowControl::IndirectBranch => true,
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => match i.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 => i.near_branch_target() == here,
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                i.far_branch_selector() == s.segs[1].selector && i.far_branch32() == s.eip
            }
            _ => false,
        },
        _ => false,
    }
}

/// The length of the STI at CS:EIP, if that is what is there.
pub(crate) fn sti_len(m: &Machine, s: &CpuState) -> Option<u64> {
    at_pc(m, s)
        .filter(|i| i.mnemonic() == Mnemonic::Sti)
        .map(|i| i.len() as u64)
}

/// The instruction at CS:EIP is IRET (of any operand size).
pub(crate) fn is_iret(m: &Machine, s: &CpuState) -> bool {
    at_pc(m, s).is_some_and(|i| matches!(i.mnemonic(), Mnemonic::Iret | Mnemonic::Iretd))
}

/// (linear address, size, write) of each access, and whether the
/// instruction is a REP string instruction (an access per iteration).
pub(crate) type Accesses = (Vec<(u32, u32, bool)>, bool);

/// The memory the instruction at CS:EIP accesses if it runs now, as
/// (linear address, size, write) for each access (a read-modify-write is
/// a read and a write); None where it does not decode. From iced-x86's
/// instruction info, explicit and implicit operands alike (the stack of
/// PUSH, the strings of MOVS: one iteration, as a single step runs one).
/// For watchpoints where the debug registers do not work (`debug`).
pub(crate) fn accesses(m: &Machine, s: &CpuState) -> Option<Accesses> {
    use iced_x86::{InstructionInfoFactory, OpAccess};
    let i = at_pc(m, s)?;
    let mut factory = InstructionInfoFactory::new();
    let rep = (i.has_rep_prefix() || i.has_repne_prefix()) && i.is_string_instruction();
    // iced-x86 lists no memory for a repeated string instruction (it may
    // touch any number of elements): asked without the prefix, it gives
    // the first iteration's, which one step runs.
    let mut one = i;
    one.set_has_rep_prefix(false);
    one.set_has_repne_prefix(false);
    let info = factory.info(&one);
    if rep {
        // A string instruction with the count at zero does nothing; the
        // count is CX or ECX by the address size.
        let regs: Vec<Register> = info.used_registers().iter().map(|r| r.register()).collect();
        let ecx = s.regs[machine::cpu::ECX];
        let count = if regs.contains(&Register::ECX) {
            ecx
        } else {
            ecx & 0xFFFF
        };
        if count == 0 {
            return Some((Vec::new(), true));
        }
    }
    let reg = |r: Register, _: usize, _: usize| -> Option<u64> {
        use machine::Seg;
        let seg = |g: Seg| Some(s.seg(g).base as u64);
        match r {
            Register::ES => seg(Seg::Es),
            Register::CS => seg(Seg::Cs),
            Register::SS => seg(Seg::Ss),
            Register::DS => seg(Seg::Ds),
            Register::FS => seg(Seg::Fs),
            Register::GS => seg(Seg::Gs),
            Register::None => Some(0),
            r if r.is_gpr32() => Some(s.regs[r.number()] as u64),
            r if r.is_gpr16() => Some((s.regs[r.number()] & 0xFFFF) as u64),
            r if r.is_gpr8() => {
                // AL..BL are 0-3, AH..BH 4-7 (the high bytes of 0-3).
                let n = r.number();
                Some(if n < 4 {
                    s.regs[n] & 0xFF
                } else {
                    (s.regs[n - 4] >> 8) & 0xFF
                } as u64)
            }
            _ => None,
        }
    };
    let mut out = Vec::new();
    for u in info.used_memory() {
        let size = u.memory_size().size() as u32;
        if size == 0 {
            continue;
        }
        let Some(addr) = u.virtual_address(0, reg) else {
            continue;
        };
        let addr = addr as u32;
        let (read, write) = match u.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::Write | OpAccess::CondWrite => (false, true),
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
            _ => (false, false),
        };
        if read {
            out.push((addr, size, false));
        }
        if write {
            out.push((addr, size, true));
        }
    }
    Some((out, rep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::cpu::access;
    use machine::MachineConfig;

    /// A machine with `code` at 0x1000 and a CPU about to run it, in real
    /// mode or in flat 32-bit protected mode.
    fn at(code: &[u8], prot32: bool) -> (Machine, CpuState) {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        m.mem.write(0x1000, code).unwrap();
        let mut s = CpuState::reset();
        s.segs[1].base = 0;
        s.segs[1].selector = 0;
        s.eip = 0x1000;
        if prot32 {
            s.cr0 |= cr0::PE;
            s.segs[1].selector = 8;
            s.segs[1].access |= access::DB;
        }
        (m, s)
    }

    #[test]
    fn causes_of_ring_changes() {
        let cases: [(&[u8], PrivCause); 11] = [
            (&[0xCD, 0x80], PrivCause::SoftwareInterrupt),
            (&[0xCC], PrivCause::SoftwareInterrupt),
            (&[0xCF], PrivCause::Iret),
            (&[0x66, 0xCF], PrivCause::Iret),
            (&[0xCB], PrivCause::FarReturn),
            (&[0x9A, 0, 0, 0, 0, 0x1B, 0], PrivCause::CallGate),
            (&[0xFF, 0x18], PrivCause::CallGate),
            (&[0xEA, 0, 0, 0, 0, 0x28, 0], PrivCause::TaskSwitch),
            (&[0x0F, 0x34], PrivCause::Sysenter),
            (&[0x0F, 0x35], PrivCause::Sysexit),
            // MOV EAX, [EBX]: a page fault's way into ring 0.
            (&[0x8B, 0x03], PrivCause::Exception),
        ];
        for (code, want) in cases {
            let (m, s) = at(code, true);
            assert_eq!(ring_change_cause(&m, &s), want, "{code:02x?}");
        }
    }

    #[test]
    fn mov_ss_and_pop_ss_hold_the_trap() {
        for (code, want) in [
            (&[0x8E, 0xD0][..], true),  // MOV SS, AX
            (&[0x17][..], true),        // POP SS
            (&[0x66, 0x17][..], true),  // POP SS, other operand size
            (&[0x8E, 0xD8][..], false), // MOV DS, AX
            (&[0x1F][..], false),       // POP DS
        ] {
            let (m, s) = at(code, false);
            assert_eq!(loads_ss(&m, &s), want, "{code:02x?}");
        }
    }

    #[test]
    fn mov_cr0_with_pg_is_seen_on_it_and_after_it() {
        // MOV CR0, EBX (0F 22 C3) with PG set in EBX.
        let (m, mut s) = at(&[0x0F, 0x22, 0xC3], true);
        s.regs[3] = cr0::PG | cr0::PE;
        assert!(sets_paging(&m, &s));
        s.eip += 3;
        assert!(sets_paging(&m, &s), "EIP just past the MOV");
        s.regs[3] = cr0::PE;
        assert!(!sets_paging(&m, &s), "PG clear in the register");
        // MOV CR3, EBX is not it.
        let (m, mut s) = at(&[0x0F, 0x22, 0xDB], true);
        s.regs[3] = cr0::PG;
        assert!(!sets_paging(&m, &s));
    }

    #[test]
    fn jumps_to_themselves_in_every_form() {
        for (code, prot32, want) in [
            (&[0xEB, 0xFE][..], true, true),                    // jmp $ (rel8)
            (&[0xEB, 0xFE][..], false, true),                   // real mode
            (&[0xE9, 0xFB, 0xFF, 0xFF, 0xFF][..], true, true),  // rel32 = -5
            (&[0xE9, 0xFD, 0xFF][..], false, true),             // rel16 = -3
            (&[0x66, 0xEB, 0xFD][..], false, true),             // prefixed
            (&[0xEB, 0xFD][..], true, false),                   // jmp $-1
            (&[0xE9, 0xFD, 0xFF, 0xFF, 0xFF][..], true, false), // jmp $-2
            (&[0x74, 0xFE][..], true, false),                   // jz $
            (&[0xF4][..], true, false),                         // hlt
        ] {
            let (m, s) = at(code, prot32);
            assert_eq!(is_self_jump(&m, &s), want, "{code:02x?}");
        }
    }

    #[test]
    fn iret_in_either_operand_size() {
        assert!(is_iret(&at(&[0xCF], true).0, &at(&[0xCF], true).1));
        let (m, s) = at(&[0x66, 0xCF], false);
        assert!(is_iret(&m, &s));
        let (m, s) = at(&[0xCB], true);
        assert!(!is_iret(&m, &s));
    }

    #[test]
    fn memory_accesses_of_an_instruction() {
        // ADD [EBX+4], EAX: a read and a write of the dword.
        let (m, mut s) = at(&[0x01, 0x43, 0x04], true);
        s.regs[3] = 0x2000;
        assert_eq!(
            accesses(&m, &s),
            Some((vec![(0x2004, 4, false), (0x2004, 4, true)], false))
        );
        // PUSH EAX in flat 32-bit code: the dword below ESP.
        let (m, mut s) = at(&[0x50], true);
        s.segs[2].access |= access::DB;
        s.regs[4] = 0x3000;
        assert_eq!(accesses(&m, &s), Some((vec![(0x2FFC, 4, true)], false)));
        // REP STOSB with ECX = 0 writes nothing; with ECX = 2 the first
        // iteration writes [EDI].
        let (m, mut s) = at(&[0xF3, 0xAA], true);
        s.regs[1] = 0;
        assert_eq!(accesses(&m, &s), Some((vec![], true)));
        s.regs[1] = 2;
        s.regs[7] = 0x5000;
        assert_eq!(accesses(&m, &s), Some((vec![(0x5000, 1, true)], true)));
        // Real mode: DS base plus the 16-bit offset.
        let (m, mut s) = at(&[0x8A, 0x07], false); // MOV AL, [BX]
        s.segs[3].base = 0x10000;
        s.regs[3] = 0x1234;
        assert_eq!(accesses(&m, &s), Some((vec![(0x11234, 1, false)], false)));
    }

    #[test]
    fn code_past_the_end_of_ram_does_not_decode() {
        let (m, mut s) = at(&[], true);
        s.eip = (1 << 20) - 1;
        assert_eq!(ring_change_cause(&m, &s), PrivCause::Exception);
    }
}
