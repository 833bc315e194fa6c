//! Looking at a stopped machine without touching it: guest memory through
//! the guest's own page tables, disassembly, descriptor caches, EFLAGS and
//! events as text. What the stepping UI shows, kept apart from drawing so
//! it can be tested.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use machine::cpu::access;
use machine::x86::descriptor::{Descriptor, GateKind, Kind};
use machine::x86::paging::{self, Regs};
use machine::{CpuState, Event, Machine, PrivCause, Record, Segment};

/// The physical address of linear `lin`, walking the guest's page tables
/// (machine::x86::paging) without setting accessed or dirty bits (a
/// debugger must not change the guest). None when the page is not present.
pub fn linear_to_phys(m: &Machine, st: &CpuState, lin: u32) -> Option<u32> {
    paging::linear_to_phys(Regs::of(st), lin, paging::ram_reader(m)).map(|p| p & m.a20_mask())
}

/// Up to `len` bytes at linear `lin`, stopping at the first byte that is
/// unmapped or outside RAM and ROM.
pub fn read_linear(m: &Machine, st: &CpuState, lin: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    let n = paging::peek_linear(m, Regs::of(st), lin, &mut out);
    out.truncate(n);
    out
}

/// The byte at linear `lin`, or None where the page is not present or
/// the address is outside RAM and ROM.
pub fn peek_linear(m: &Machine, st: &CpuState, lin: u32) -> Option<u8> {
    m.peek_phys(linear_to_phys(m, st, lin)?)
}

/// A little-endian value of `size` (1, 2 or 4) bytes at linear `lin`;
/// None if any byte is unmapped.
pub fn read_value(m: &Machine, st: &CpuState, lin: u32, size: u8) -> Option<u32> {
    let mut v = 0u32;
    for i in (0..size as u32).rev() {
        v = (v << 8) | peek_linear(m, st, lin.wrapping_add(i))? as u32;
    }
    Some(v)
}

/// The width of a stack slot and the stack pointer the CPU uses: 32-bit
/// ESP when SS is a 32-bit (B=1) segment in protected mode, else SP (SDM
/// Vol 3A 6.2: the B flag of the stack segment).
pub fn stack_width(st: &CpuState) -> (u8, u32) {
    let ss = st.seg(machine::Seg::Ss);
    if st.protected() && !st.v86() && ss.big() {
        (4, st.regs[4])
    } else {
        (2, st.regs[4] & 0xFFFF)
    }
}

/// The linear address of the top of the stack (SS.base + ESP or SP).
pub fn stack_top(st: &CpuState) -> u32 {
    let (_, sp) = stack_width(st);
    st.seg(machine::Seg::Ss).base.wrapping_add(sp)
}

/// One slot of an interrupt or exception frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSlot {
    /// What the CPU pushed there: "error code", "EIP", "CS", "EFLAGS",
    /// "ESP", "SS" (and ES, DS, FS, GS from virtual-8086 mode; IP and FLAGS
    /// in real mode and through 16-bit gates).
    pub name: &'static str,
    /// Linear address.
    pub addr: u32,
    /// Bytes: 4, or 2 in real mode and through 16-bit gates.
    pub size: u8,
    /// The value the CPU pushed (read when the debugger stopped at the
    /// handler's start; the handler, or a later frame, may change it).
    pub pushed: u32,
}

/// The frame a delivery pushed, where the debugger stopped at the handler's
/// first instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntFrame {
    /// What was delivered: "INT 0x80", "#GP(13)", "interrupt 0x20".
    pub what: String,
    /// The instruction count it was delivered at.
    pub icount: u64,
    /// A privilege change (from, to), which pushes the old SS:ESP too.
    pub rings: Option<(u8, u8)>,
    /// Lowest address first (the order the handler pops them).
    pub slots: Vec<FrameSlot>,
}

/// How a delivery shows in the trace: the address the event names, and
/// whether the instruction that caused it retired (INT n, INT3 and INTO
/// do: the machine's count is one on) or not (faults, interrupts).
struct Delivery {
    eip: u32,
    retires: bool,
    external: bool,
}

fn delivery(e: &Event) -> Option<Delivery> {
    let d = |eip, retires, external| Delivery {
        eip,
        retires,
        external,
    };
    match e {
        Event::Exception { vector, eip, .. } => Some(d(*eip, matches!(vector, 3 | 4), false)),
        Event::Interrupt { eip, .. } => Some(d(*eip, false, true)),
        Event::PrivilegeChange { cause, eip, .. } => match cause {
            PrivCause::SoftwareInterrupt => Some(d(*eip, true, false)),
            PrivCause::Exception => Some(d(*eip, false, false)),
            PrivCause::HardwareInterrupt => Some(d(*eip, false, true)),
            _ => None,
        },
        Event::Sensitive { insn, eip, .. } if insn == "int" => Some(d(*eip, true, false)),
        _ => None,
    }
}

/// The base of the segment `sel` names: real mode and virtual-8086 mode
/// shift the selector; protected mode reads the descriptor from the GDT or
/// LDT (SDM Vol 3A 3.4.5).
fn segment_base(m: &Machine, st: &CpuState, sel: u16, v86: bool) -> Option<u32> {
    if !st.protected() || v86 {
        return Some((sel as u32) << 4);
    }
    let table = if sel & 4 != 0 {
        st.ldtr.base
    } else {
        st.gdtr.base
    };
    let d = read_linear(m, st, table.wrapping_add((sel & !7) as u32), 8);
    let raw: [u8; 8] = d.try_into().ok()?;
    Some(Descriptor::decode(u64::from_le_bytes(raw)).base)
}

/// The frame of the interrupt or exception whose handler the CPU is about
/// to start (nothing of the handler run yet), or None when it is not at
/// such a point. The layout is the CPU's (SDM Vol 3A 6.12.1, figure 6-4):
/// the error code (6.13) on top where the exception has one, then EIP, CS
/// and EFLAGS, and below them the interrupted code's ESP and SS when the
/// handler runs in an inner ring (the CPU switched to the stack the TSS
/// names); from virtual-8086 mode ES, DS, FS and GS too (20.3.1.1, figure
/// 20-5). Real mode pushes FLAGS, CS and IP, 16 bits each (20.1.4).
pub fn frame_at_entry(m: &Machine, st: &CpuState) -> Option<IntFrame> {
    let recs: Vec<&Record> = m.trace.records().collect();
    let last = recs.iter().rposition(|r| delivery(&r.event).is_some())?;
    let r = recs[last];
    let d = delivery(&r.event)?;
    if r.icount + d.retires as u64 != m.icount() {
        return None;
    }
    // The records of this delivery (an exception during it, the #DF it
    // became): the last exception or interrupt names the vector delivered.
    let group = recs[..=last]
        .iter()
        .rev()
        .take_while(|x| x.icount == r.icount && delivery(&x.event).is_some());
    let mut vector = None;
    let mut error_code = None;
    let mut external = d.external;
    for x in group {
        match &x.event {
            Event::Exception {
                vector: v,
                error_code: c,
                ..
            } => {
                vector = Some(*v);
                error_code = *c;
                external = false;
                break;
            }
            Event::Interrupt { vector: v, .. } => {
                vector = Some(*v);
                external = true;
                break;
            }
            _ => {}
        }
    }
    let top = stack_top(st);
    let mut slots: Vec<FrameSlot> = Vec::new();
    fn slot_in(slots: &mut Vec<FrameSlot>, top: u32, name: &'static str, size: u8) {
        let off: u32 = slots.iter().map(|s| s.size as u32).sum();
        slots.push(FrameSlot {
            name,
            addr: top.wrapping_add(off),
            size,
            pushed: 0,
        });
    }
    let mut rings = None;
    if !st.protected() {
        for n in ["IP", "CS", "FLAGS"] {
            slot_in(&mut slots, top, n, 2);
        }
    } else {
        // The gate's size sets the slots' size (SDM Vol 3A 6.11: 16-bit
        // interrupt and trap gates push 16-bit values).
        let w = match vector {
            Some(v) => {
                // The gate's kind and size are in its high dword (6.11,
                // figure 6-2).
                let hi = read_value(m, st, st.idtr.base.wrapping_add(v as u32 * 8 + 4), 4)?;
                match Descriptor::decode((hi as u64) << 32).kind() {
                    Kind::Gate {
                        kind: GateKind::Interrupt | GateKind::Trap,
                        bits32,
                    } => {
                        if bits32 {
                            4
                        } else {
                            2
                        }
                    }
                    // A task gate: the frame is on the new task's stack.
                    _ => return None,
                }
            }
            None => stack_width(st).0,
        };
        let names: [&'static str; 3] = if w == 4 {
            ["EIP", "CS", "EFLAGS"]
        } else {
            ["IP", "CS", "FLAGS"]
        };
        if error_code.is_some() {
            slot_in(&mut slots, top, "error code", w);
        }
        for n in names {
            slot_in(&mut slots, top, n, w);
        }
        let cs = read_value(m, st, slots[slots.len() - 2].addr, w)? as u16;
        let flags = read_value(m, st, slots[slots.len() - 1].addr, w)?;
        let vm = w == 4 && flags & (1 << 17) != 0;
        let from = if vm { 3 } else { (cs & 3) as u8 };
        if from != st.cpl() {
            rings = Some((from, st.cpl()));
            slot_in(&mut slots, top, if w == 4 { "ESP" } else { "SP" }, w);
            slot_in(&mut slots, top, "SS", w);
            if vm {
                for n in ["ES", "DS", "FS", "GS"] {
                    slot_in(&mut slots, top, n, w);
                }
            }
        }
    }
    // The pushed return address must be where the event says the CPU was
    // (a fault's own address, or up to one instruction on for INT n and
    // traps): else the stack is not what this delivery left.
    let eip_slot = slots.iter().find(|s| s.name == "EIP" || s.name == "IP")?;
    let cs_slot = &slots[slots.iter().position(|s| s.name == "CS")?];
    let pushed_eip = read_value(m, st, eip_slot.addr, eip_slot.size)?;
    if pushed_eip.wrapping_sub(d.eip) > 15 {
        return None;
    }
    let what = match vector {
        Some(v) if external => format!("interrupt {v:#x}"),
        Some(3) => "INT3 #BP(3)".to_string(),
        Some(4) => "INTO #OF(4)".to_string(),
        Some(v) if vector_name(v).is_empty() => format!("exception {v}"),
        Some(v) => format!("{}({v})", vector_name(v)),
        None => {
            // INT n (CD ib) just before the return address.
            let cs = read_value(m, st, cs_slot.addr, cs_slot.size)? as u16;
            let vm = rings.is_some() && slots.iter().any(|s| s.name == "GS");
            let base = segment_base(m, st, cs, vm)?;
            let at = base.wrapping_add(pushed_eip.wrapping_sub(2));
            match (
                peek_linear(m, st, at),
                peek_linear(m, st, at.wrapping_add(1)),
            ) {
                (Some(0xCD), Some(v)) => format!("INT {v:#x}"),
                _ => "a software interrupt".to_string(),
            }
        }
    };
    for sl in &mut slots {
        sl.pushed = read_value(m, st, sl.addr, sl.size)?;
    }
    Some(IntFrame {
        what,
        icount: r.icount,
        rings,
        slots,
    })
}

/// One disassembled instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisLine {
    /// Linear address.
    pub addr: u32,
    pub bytes: Vec<u8>,
    /// Intel syntax, as iced-x86 formats it.
    pub text: String,
}

/// Disassembles up to `count` instructions from linear `lin` (the decoder
/// stops at unmapped memory).
pub fn disassemble(m: &Machine, st: &CpuState, lin: u32, count: usize) -> Vec<DisLine> {
    let bytes = read_linear(m, st, lin, count * 15);
    let bits = st.code_bits();
    let mut dec = Decoder::with_ip(bits, &bytes, lin as u64, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_space_after_operand_separator(true);
    let mut out = Vec::new();
    while out.len() < count && dec.can_decode() {
        let insn = dec.decode();
        let off = (insn.ip() as u32).wrapping_sub(lin) as usize;
        if insn.is_invalid() {
            // Not enough bytes (unmapped next page) or a bad opcode.
            let b = bytes.get(off).copied();
            out.push(DisLine {
                addr: insn.ip() as u32,
                bytes: b.into_iter().collect(),
                text: "(bad)".into(),
            });
            break;
        }
        let mut text = String::new();
        fmt.format(&insn, &mut text);
        if let Some(t) = far_branch_text(&insn) {
            text = t;
        }
        out.push(DisLine {
            addr: insn.ip() as u32,
            bytes: bytes[off..off + insn.len()].to_vec(),
            text,
        });
    }
    out
}

/// JMP/CALL FAR ptr16:16/32 as selector:offset (iced's Intel formatter
/// prints "0,0F000h", offset first, which reads like two operands).
fn far_branch_text(insn: &iced_x86::Instruction) -> Option<String> {
    use iced_x86::OpKind;
    let off = match insn.op0_kind() {
        OpKind::FarBranch16 => insn.far_branch16() as u32,
        OpKind::FarBranch32 => insn.far_branch32(),
        _ => return None,
    };
    let m = format!("{:?}", insn.mnemonic()).to_lowercase();
    Some(format!(
        "{m} far {:#06x}:{off:#x}",
        insn.far_branch_selector()
    ))
}

/// Disassembles host x86-64 code (a translated block) at `addr`: (host
/// address, Intel syntax) per instruction.
pub fn disassemble_host(code: &[u8], addr: u64) -> Vec<(u64, String)> {
    let mut dec = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_space_after_operand_separator(true);
    let mut out = Vec::new();
    while dec.can_decode() {
        let insn = dec.decode();
        let mut text = String::new();
        fmt.format(&insn, &mut text);
        out.push((insn.ip(), text));
    }
    out
}

/// Where "step over" should stop instead of stepping into the
/// instruction at EIP (CALL, INT n, a REP string instruction, LOOP): the
/// next instruction's address, and the instruction's text.
pub fn step_over_target(m: &Machine, st: &CpuState) -> Option<(u32, String)> {
    use iced_x86::{FlowControl, Mnemonic};
    let pc = st.pc_linear();
    let d = disassemble(m, st, pc, 1).into_iter().next()?;
    let mut dec = Decoder::with_ip(st.code_bits(), &d.bytes, pc as u64, DecoderOptions::NONE);
    let insn = dec.decode();
    if insn.is_invalid() {
        return None;
    }
    let over = matches!(
        insn.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall | FlowControl::Interrupt
    ) || insn.has_rep_prefix()
        || insn.has_repe_prefix()
        || insn.has_repne_prefix()
        || matches!(
            insn.mnemonic(),
            Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne
        );
    over.then(|| (pc.wrapping_add(insn.len() as u32), d.text))
}

/// The ring the CPU runs in, in words.
pub fn ring_name(st: &CpuState) -> String {
    if !st.protected() {
        return "real mode (no rings; acts as ring 0)".into();
    }
    if st.v86() {
        return "RING 3 (virtual-8086)".into();
    }
    match st.cpl() {
        0 => "RING 0 (kernel)".into(),
        3 => "RING 3 (user)".into(),
        n => format!("RING {n}"),
    }
}

/// EFLAGS as the letters of the set flags, and IOPL.
pub fn eflags_text(f: u32) -> String {
    const NAMES: [(u32, &str); 13] = [
        (1 << 0, "CF"),
        (1 << 2, "PF"),
        (1 << 4, "AF"),
        (1 << 6, "ZF"),
        (1 << 7, "SF"),
        (1 << 8, "TF"),
        (1 << 9, "IF"),
        (1 << 10, "DF"),
        (1 << 11, "OF"),
        (1 << 14, "NT"),
        (1 << 16, "RF"),
        (1 << 17, "VM"),
        (1 << 18, "AC"),
    ];
    let set: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|&(_, n)| n)
        .collect();
    let iopl = format!("IOPL={}", (f >> 12) & 3);
    if set.is_empty() {
        iopl
    } else {
        format!("{} {iopl}", set.join(" "))
    }
}

/// A segment register with its hidden descriptor cache.
pub fn segment_text(name: &str, s: &Segment, protected: bool) -> String {
    if !protected {
        return format!(
            "{name} {:04x} base {:08x} limit {:05x}",
            s.selector, s.base, s.limit
        );
    }
    if !s.usable() || (s.access & access::S == 0 && s.selector & !3 == 0) {
        return format!("{name} {:04x} (null: unusable)", s.selector);
    }
    let pick = |b: bool, yes: &'static str, no: &'static str| if b { yes } else { no };
    let (kind, rw) = match Kind::of_access(s.access) {
        Kind::Tss { bits32, busy } => (pick(bits32, "tss32", "tss16"), pick(busy, " busy", "")),
        Kind::Ldt => ("ldt", ""),
        Kind::Gate { .. } | Kind::Reserved => ("system", ""),
        Kind::Code {
            conforming,
            readable,
            ..
        } => (
            pick(conforming, "code conforming", "code"),
            pick(readable, " r-x", " --x"),
        ),
        Kind::Data {
            expand_down,
            writable,
            ..
        } => (
            pick(expand_down, "data expand-down", "data"),
            pick(writable, " rw-", " r--"),
        ),
    };
    let size = if s.access & access::S != 0 {
        pick(s.big(), " 32-bit", " 16-bit")
    } else {
        ""
    };
    format!(
        "{name} {:04x} base {:08x} limit {:08x} DPL {} {kind}{rw}{size}",
        s.selector,
        s.base,
        s.limit,
        s.dpl()
    )
}

fn cause_text(c: PrivCause) -> &'static str {
    match c {
        PrivCause::SoftwareInterrupt => "INT",
        PrivCause::Exception => "exception",
        PrivCause::HardwareInterrupt => "hardware interrupt",
        PrivCause::Iret => "IRET",
        PrivCause::CallGate => "call gate",
        PrivCause::FarReturn => "far RET",
        PrivCause::TaskSwitch => "task switch",
        PrivCause::Sysenter => "SYSENTER",
        PrivCause::Sysexit => "SYSEXIT",
        PrivCause::ModeSwitch => "mode switch",
    }
}

/// The names of the exception vectors (SDM Vol 3A 6.3.1).
pub fn vector_name(v: u8) -> &'static str {
    match v {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        _ => "",
    }
}

/// One event record as a line of text: instruction count, then what.
pub fn event_text(r: &Record) -> String {
    format!("{:>10}  {}", r.icount, event_what(&r.event))
}

/// What an event says, in words.
pub fn event_what(e: &Event) -> String {
    match e {
        Event::PrivilegeChange {
            from,
            to,
            cause,
            eip,
            eax,
        } => {
            let by = cause_text(*cause);
            match cause {
                // A system call's number, for OSes that pass it in EAX.
                PrivCause::SoftwareInterrupt => {
                    format!("ring {from} -> {to} by {by} at {eip:#x} (EAX {eax:#x})")
                }
                _ => format!("ring {from} -> {to} by {by} at {eip:#x}"),
            }
        }
        Event::Exception {
            vector,
            error_code,
            eip,
        } => {
            let code = error_code.map_or(String::new(), |c| format!(" error code {c:#x}"));
            format!(
                "exception {vector} {}{code} at {eip:#x}",
                vector_name(*vector)
            )
        }
        Event::Interrupt { vector, eip } => format!("interrupt vector {vector:#x} at {eip:#x}"),
        Event::PortIo {
            port,
            size,
            write,
            value,
        } => {
            let dir = if *write { "out" } else { "in" };
            format!("{dir} port {port:#x} ({size} bytes) = {value:#x}")
        }
        Event::Sensitive {
            insn,
            cpl,
            eip,
            how,
        } => {
            let how = how.name().replace('_', " ");
            format!("sensitive {insn} in ring {cpl} at {eip:#x}: {how}")
        }
        Event::VmExit { reason } => format!("VM exit: {reason}"),
        Event::BlockTranslated { eip, insns, bytes } => {
            format!("translated block at {eip:#x}: {insns} instructions, {bytes} host bytes")
        }
        Event::Unimplemented { eip, bytes } => {
            format!("unimplemented instruction at {eip:#x}: {bytes:02x?}")
        }
        Event::EngineSwitch { from, to } => format!("engine switched {from} -> {to}"),
        Event::DeviceNote { device, note } => format!("{device}: {note}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::MachineConfig;

    #[test]
    fn paging_walk_reads_through_the_guests_tables_without_changing_them() {
        let mut m = Machine::new(MachineConfig::with_ram(8 << 20)).unwrap();
        let mut st = CpuState::multiboot(0x1000, 0, 0x500);
        // Page directory at 0x10000, one table at 0x11000 mapping linear
        // 0x40_0000.. to physical 0x20000..; a 4 MiB page at 0x80_0000.
        m.mem.write_u32(0x10000 + 4, 0x11000 | 1).unwrap();
        m.mem.write_u32(0x11000 + 3 * 4, 0x20000 | 1).unwrap();
        m.mem
            .write_u32(0x10000 + 8, 0x0040_0000 | paging::pte::PS | 1)
            .unwrap();
        m.mem.write_u8(0x20000 + 0x123, 0xAB).unwrap();
        st.cr0 |= machine::cpu::cr0::PG;
        st.cr3 = 0x10000;
        assert_eq!(linear_to_phys(&m, &st, 0x0040_3123), Some(0x20123));
        assert_eq!(read_linear(&m, &st, 0x0040_3123, 1), vec![0xAB]);
        assert_eq!(linear_to_phys(&m, &st, 0x0040_4000), None);
        // PSE off: the PS bit is ignored, the entry names a page table
        // (at 0x40_0000, all zero: not present).
        assert_eq!(linear_to_phys(&m, &st, 0x0080_0010), None);
        st.cr4 |= machine::cpu::cr4::PSE;
        assert_eq!(linear_to_phys(&m, &st, 0x0080_0010), Some(0x0040_0010));
        assert_eq!(linear_to_phys(&m, &st, 0x00BF_FFFF), Some(0x007F_FFFF));
        // No accessed bits were set.
        assert_eq!(m.mem.read_u32(0x10000 + 4), Some(0x11000 | 1));
        assert_eq!(m.mem.read_u32(0x11000 + 12), Some(0x20000 | 1));
    }

    #[test]
    fn disassembles_real_and_protected_mode_code() {
        let mut m = Machine::new(MachineConfig::with_ram(1 << 20)).unwrap();
        // int 0x80; call +0; mov eax, 1 (32-bit) at 0x1000.
        m.mem
            .write(0x1000, &[0xCD, 0x80, 0xE8, 0, 0, 0, 0, 0xB8, 1, 0, 0, 0])
            .unwrap();
        let st = CpuState::multiboot(0x1000, 0, 0x500);
        let d = disassemble(&m, &st, 0x1000, 3);
        let text: Vec<&str> = d.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, ["int 0x80", "call 0x00001007", "mov eax, 1"]);
        m.mem.write(0x2000, &[0xEA, 0, 0, 0, 0xF0]).unwrap();
        let rm0 = CpuState::boot_sector(0x2000);
        assert_eq!(
            disassemble(&m, &rm0, 0x2000, 1)[0].text,
            "jmp far 0xf000:0x0"
        );
        assert_eq!(d[1].bytes, [0xE8, 0, 0, 0, 0]);
        assert_eq!(
            step_over_target(&m, &st),
            Some((0x1002, "int 0x80".to_string()))
        );
        // The same bytes in real mode: 16-bit decoding.
        let rm = CpuState::boot_sector(0x1000);
        let d = disassemble(&m, &rm, 0x1000, 2);
        assert_eq!(d[1].text, "call 0x1005");
    }

    #[test]
    fn descriptor_caches_and_flags_read_as_text() {
        let s = Segment::flat32(0x1B, true);
        let mut user = s;
        user.access = (user.access & !0x60) | (3 << 5);
        assert_eq!(
            segment_text("CS", &user, true),
            "CS 001b base 00000000 limit ffffffff DPL 3 code r-x 32-bit"
        );
        assert_eq!(eflags_text(0x3246), "PF ZF IF IOPL=3");
        assert_eq!(eflags_text(0x2), "IOPL=0");
    }
}
