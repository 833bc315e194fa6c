//! ringlab's `monitor` commands: what gdb cannot show of an x86 machine —
//! rings, descriptor tables, the TSS, page tables, the engine — read from
//! the stopped machine without changing it (inspect.rs's readers: the
//! guest's page tables walked without setting accessed bits).

use crate::engines::EngineKind;
use crate::inspect;
use crate::session::Session;
use machine::x86::descriptor::{Descriptor, Gate, GateKind, Kind};
use machine::x86::paging::{self, pte};
use machine::{CpuState, EventKind, Machine, Segment};
use std::fmt::Write;

/// The help text (`monitor help`).
pub const HELP: &str = "\
ringlab monitor commands (monitor COMMAND in gdb):
  info rings          the CPL and mode, and the last privilege changes
  info registers      control, descriptor-table and segment registers
  info gdt            the GDT's descriptors
  info idt            the IDT's gates
  info ldt            the LDT's descriptors
  info tss            the current TSS: its stacks (ESP0:SS0 ...) and I/O map
  info pagetable      the mappings of the current page tables (CR3)
  info pagetable ADDR the walk for one linear address
  events [N]          the last N events of the trace (default 20)
  engine              the engine running the guest and its counters
  switch ENGINE       move the machine to interp, bt or kvm
  help                this text
";

/// Runs one command and returns what it prints.
pub fn run(session: &mut Session, cmd: &str) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let st = match session.cpu_state() {
        Ok(st) => st,
        Err(e) => {
            return format!(
                "ringlab: cannot read the CPU state: {}\n",
                machine::Chain(&e)
            )
        }
    };
    let m = &session.m;
    match words.as_slice() {
        [] | ["help"] => HELP.to_string(),
        ["info", "rings"] => rings(m, &st),
        ["info", "registers"] => registers(&st),
        ["info", "gdt"] => table(m, &st, "GDT", st.gdtr.base, st.gdtr.limit as u32, 0),
        ["info", "ldt"] => {
            if st.ldtr.selector & !3 == 0 {
                "the LDT register is null: no LDT\n".into()
            } else {
                table(m, &st, "LDT", st.ldtr.base, st.ldtr.limit, 4)
            }
        }
        ["info", "idt"] => idt(m, &st),
        ["info", "tss"] => tss(m, &st),
        ["info", "pagetable"] => mappings(m, &st),
        ["info", "pagetable", addr] => match crate::run::parse_u32(addr) {
            Ok(a) => walk(m, &st, a),
            Err(e) => format!("info pagetable: {e}\n"),
        },
        ["events"] => events(m, 20),
        ["events", n] => match n.parse::<usize>() {
            Ok(n) => events(m, n),
            Err(_) => format!("events: {n:?} is not a number\n"),
        },
        ["engine"] => engine(session),
        ["switch", to] => switch(session, to),
        _ => format!("ringlab: unknown monitor command {cmd:?}\n{HELP}"),
    }
}

fn mode(st: &CpuState) -> String {
    let paging = st.cr0 & machine::cpu::cr0::PG != 0;
    let mode = if !st.protected() {
        "real mode"
    } else if st.v86() {
        "virtual-8086 mode"
    } else {
        "protected mode"
    };
    format!("{mode}, paging {}", if paging { "on" } else { "off" })
}

fn rings(m: &Machine, st: &CpuState) -> String {
    let mut out = format!(
        "{} (CPL {}), {}; CS {:04x} EIP {:08x}\n",
        inspect::ring_name(st),
        st.cpl(),
        mode(st),
        st.segs[machine::Seg::Cs as usize].selector,
        st.eip
    );
    let changes: Vec<_> = m
        .trace
        .records()
        .filter(|r| r.event.kind() == EventKind::PrivilegeChange)
        .collect();
    let all = m.trace.count(EventKind::PrivilegeChange);
    if changes.is_empty() && all > 0 {
        let _ = writeln!(
            out,
            "privilege changes: {all} in all, none among the last {} events the trace keeps \
             (of every kind); `--trace FILE` writes them all",
            m.trace.records().len()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "privilege changes: {all} in all; the last {} kept:",
        changes.len().min(10)
    );
    for r in changes.iter().rev().take(10).rev() {
        let _ = writeln!(out, "  {}", inspect::event_text(r));
    }
    out
}

fn registers(st: &CpuState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CR0 {:08x}  CR2 {:08x}  CR3 {:08x}  CR4 {:08x}  EFER {:016x}",
        st.cr0, st.cr2, st.cr3, st.cr4, st.efer
    );
    let _ = writeln!(
        out,
        "GDTR base {:08x} limit {:04x}  IDTR base {:08x} limit {:04x}",
        st.gdtr.base, st.gdtr.limit, st.idtr.base, st.idtr.limit
    );
    let _ = writeln!(
        out,
        "EFLAGS {:08x} {}",
        st.eflags,
        inspect::eflags_text(st.eflags)
    );
    let p = st.protected();
    for s in machine::Seg::ALL {
        let _ = writeln!(
            out,
            "{}",
            inspect::segment_text(s.name(), &st.segs[s as usize], p)
        );
    }
    let _ = writeln!(out, "{}", inspect::segment_text("LDTR", &st.ldtr, p));
    let _ = writeln!(out, "{}", inspect::segment_text("TR", &st.tr, p));
    let _ = writeln!(
        out,
        "DR0-3 {:08x} {:08x} {:08x} {:08x}  DR6 {:08x}  DR7 {:08x}",
        st.dr[0], st.dr[1], st.dr[2], st.dr[3], st.dr6, st.dr7
    );
    out
}

/// The 8 bytes at linear `lin`, if readable.
fn qword(m: &Machine, st: &CpuState, lin: u32) -> Option<u64> {
    let lo = inspect::read_value(m, st, lin, 4)?;
    let hi = inspect::read_value(m, st, lin.wrapping_add(4), 4)?;
    Some((hi as u64) << 32 | lo as u64)
}

fn gate_text(g: &Gate) -> String {
    let kind = match g.kind {
        GateKind::Call => "call gate",
        GateKind::Task => "task gate",
        GateKind::Interrupt => "interrupt gate",
        GateKind::Trap => "trap gate",
    };
    let size = match (g.kind, g.bits32) {
        (GateKind::Task, _) => "",
        (_, true) => " 32-bit",
        (_, false) => " 16-bit",
    };
    let present = if g.present { "" } else { " not present" };
    if g.kind == GateKind::Task {
        return format!("{kind} -> TSS {:04x} DPL {}{present}", g.selector, g.dpl);
    }
    let params = if g.kind == GateKind::Call {
        format!(" params {}", g.params)
    } else {
        String::new()
    };
    format!(
        "{kind}{size} -> {:04x}:{:08x} DPL {}{params}{present}",
        g.selector, g.offset, g.dpl
    )
}

/// One GDT/LDT entry as text.
fn descriptor_text(sel: u16, raw: u64) -> String {
    if raw == 0 {
        return "null".into();
    }
    if let Some(g) = Gate::decode(raw) {
        return gate_text(&g);
    }
    let d = Descriptor::decode(raw);
    let seg = Segment::from_descriptor(sel, raw);
    let mut t = inspect::segment_text("", &seg, true);
    t = t.trim_start().to_string();
    if !d.present {
        t.push_str(" not present");
    }
    if let Kind::Reserved = d.kind() {
        t = format!("reserved system type {:#x}", (raw >> 40) & 0xF);
    }
    t
}

/// The descriptors of a GDT or LDT (`ti` = 4 for the LDT's selectors).
fn table(m: &Machine, st: &CpuState, name: &str, base: u32, limit: u32, ti: u16) -> String {
    let n = (limit as u64 + 1) / 8;
    let mut out = format!(
        "{name} at {base:08x}, limit {limit:#x}: {n} descriptors{}\n",
        if n > 64 { " (the first 64 shown)" } else { "" }
    );
    for i in 0..n.min(64) as u32 {
        let sel = (i as u16) << 3 | ti;
        match qword(m, st, base.wrapping_add(i * 8)) {
            Some(raw) => {
                let _ = writeln!(
                    out,
                    "  {i:3} sel {sel:04x}  {raw:016x}  {}",
                    descriptor_text(sel, raw)
                );
            }
            None => {
                let _ = writeln!(out, "  {i:3} sel {sel:04x}  (not mapped)");
            }
        }
    }
    out
}

fn idt(m: &Machine, st: &CpuState) -> String {
    if !st.protected() {
        // The real-mode interrupt vector table: segment:offset pairs.
        let mut out = format!(
            "real mode: the interrupt vector table at {:08x}, limit {:#x}\n",
            st.idtr.base, st.idtr.limit
        );
        for v in 0..=((st.idtr.limit as u64 + 1) / 4).min(256) as u32 {
            if v >= 256 {
                break;
            }
            if let Some(e) = inspect::read_value(m, st, st.idtr.base.wrapping_add(v * 4), 4) {
                if e != 0 {
                    let _ = writeln!(out, "  {v:#04x} -> {:04x}:{:04x}", e >> 16, e & 0xFFFF);
                }
            }
        }
        return out;
    }
    let n = ((st.idtr.limit as u64 + 1) / 8).min(256);
    let mut out = format!(
        "IDT at {:08x}, limit {:#x}: {n} gates (the empty ones not shown)\n",
        st.idtr.base, st.idtr.limit
    );
    for v in 0..n as u32 {
        match qword(m, st, st.idtr.base.wrapping_add(v * 8)) {
            Some(0) => {}
            Some(raw) => {
                let what = match Gate::decode(raw) {
                    Some(g) => gate_text(&g),
                    None => format!("not a gate: {raw:016x}"),
                };
                let _ = writeln!(
                    out,
                    "  {v:#04x} {:<22} {what}",
                    inspect::vector_name(v as u8)
                );
            }
            None => {
                let _ = writeln!(out, "  {v:#04x} (not mapped)");
            }
        }
    }
    out
}

fn tss(m: &Machine, st: &CpuState) -> String {
    if !st.protected() {
        return "real mode: no TSS\n".into();
    }
    if st.tr.selector & !3 == 0 {
        return "TR is null: no TSS loaded (LTR has not run)\n".into();
    }
    let tr = &st.tr;
    let kind = Kind::of_access(tr.access);
    let bits32 = matches!(kind, Kind::Tss { bits32: true, .. });
    let mut out = format!(
        "TR {:04x}: {} TSS at {:08x}, limit {:#x}\n",
        tr.selector,
        if bits32 { "32-bit" } else { "16-bit" },
        tr.base,
        tr.limit
    );
    let rd = |off: u32, size: u8| inspect::read_value(m, st, tr.base.wrapping_add(off), size);
    if !bits32 {
        for (ring, off) in [(0, 2), (1, 6), (2, 10)] {
            if let (Some(sp), Some(ss)) = (rd(off, 2), rd(off + 2, 2)) {
                let _ = writeln!(out, "  ring {ring} stack SS:SP {ss:04x}:{sp:04x}");
            }
        }
        return out;
    }
    // SDM Vol 3A 7.2.1, figure 7-2.
    for (ring, off) in [(0, 4), (1, 12), (2, 20)] {
        match (rd(off, 4), rd(off + 4, 2)) {
            (Some(esp), Some(ss)) => {
                let _ = writeln!(out, "  ring {ring} stack SS:ESP {ss:04x}:{esp:08x}");
            }
            _ => {
                let _ = writeln!(out, "  ring {ring} stack: not mapped");
            }
        }
    }
    let field = |name: &str, off: u32, size: u8, out: &mut String| {
        if let Some(v) = rd(off, size) {
            let _ = writeln!(out, "  {name} {v:#x}");
        }
    };
    field("CR3", 28, 4, &mut out);
    field("EIP", 32, 4, &mut out);
    field("EFLAGS", 36, 4, &mut out);
    field("LDT selector", 96, 2, &mut out);
    if let Some(iomap) = rd(102, 2) {
        let _ = writeln!(
            out,
            "  I/O map base {iomap:#x}{}",
            if iomap > tr.limit {
                " (beyond the limit: no I/O permission bitmap, every port faults at CPL > IOPL)"
            } else {
                ""
            }
        );
    }
    out
}

fn entry_flags(v: u32) -> String {
    let f = |bit: u32, c: char| if v & bit != 0 { c } else { '-' };
    format!(
        "{}{}{}{}{}",
        f(pte::P, 'P'),
        f(pte::RW, 'W'),
        f(pte::US, 'U'),
        f(pte::A, 'A'),
        f(pte::D, 'D')
    )
}

fn walk(m: &Machine, st: &CpuState, lin: u32) -> String {
    if st.cr0 & machine::cpu::cr0::PG == 0 {
        return format!("paging is off: linear {lin:08x} is physical {lin:08x}\n");
    }
    let read = paging::ram_reader(m);
    let mut out = format!("linear {lin:08x} through CR3 {:08x}:\n", st.cr3);
    match paging::walk(st.cr3, st.cr4, lin, read) {
        Ok(w) => {
            let _ = writeln!(
                out,
                "  PDE {:3} at {:08x} = {:08x} {}",
                lin >> 22,
                w.pde.addr,
                w.pde.value,
                entry_flags(w.pde.value)
            );
            if let Some(p) = w.pte() {
                let _ = writeln!(
                    out,
                    "  PTE {:3} at {:08x} = {:08x} {}",
                    (lin >> 12) & 0x3FF,
                    p.addr,
                    p.value,
                    entry_flags(p.value)
                );
            } else {
                let _ = writeln!(out, "  (a 4 MiB page: the PDE maps it)");
            }
            let _ = writeln!(
                out,
                "  -> physical {:08x} ({}, {})",
                w.phys,
                if w.writable() {
                    "writable"
                } else {
                    "read-only"
                },
                if w.user() { "user" } else { "supervisor only" }
            );
        }
        Err(np) => {
            let _ = writeln!(
                out,
                "  not present: the {} entry at {:08x} is {:08x}",
                match np.level {
                    paging::Level::Directory => "page-directory",
                    paging::Level::Table => "page-table",
                },
                np.entry.addr,
                np.entry.value
            );
        }
    }
    out
}

/// The current page tables' mappings, runs of pages with contiguous
/// physical addresses and the same rights merged into one line.
fn mappings(m: &Machine, st: &CpuState) -> String {
    if st.cr0 & machine::cpu::cr0::PG == 0 {
        return "paging is off: linear addresses are physical\n".into();
    }
    let mut out = format!(
        "mappings of the page directory at {:08x}:\n",
        st.cr3 & pte::FRAME
    );
    // (linear start, physical start, pages, rights)
    let mut run: Option<(u32, u32, u32, (bool, bool))> = None;
    let mut lines = 0;
    let mut flush = |run: &mut Option<(u32, u32, u32, (bool, bool))>, out: &mut String| {
        if let Some((l, p, n, (w, u))) = run.take() {
            lines += 1;
            if lines <= 200 {
                let end = l as u64 + n as u64 * 4096 - 1;
                let _ = writeln!(
                    out,
                    "  {l:08x}-{end:08x} -> {p:08x}-{:08x} {} {}",
                    p as u64 + n as u64 * 4096 - 1,
                    if w { "rw" } else { "r-" },
                    if u { "user" } else { "kernel" }
                );
            }
        }
    };
    let mut read = paging::ram_reader(m);
    for pdi in 0..1024u32 {
        let pde = read((st.cr3 & pte::FRAME) + pdi * 4);
        if pde & pte::P == 0 {
            flush(&mut run, &mut out);
            continue;
        }
        for pti in 0..1024u32 {
            let lin = pdi << 22 | pti << 12;
            match paging::walk(st.cr3, st.cr4, lin, &mut read) {
                Ok(w) => {
                    let rights = (w.writable(), w.user());
                    let phys = w.phys & !0xFFF;
                    match &mut run {
                        Some((l, p, n, r))
                            if *r == rights
                                && *l as u64 + *n as u64 * 4096 == lin as u64
                                && *p as u64 + *n as u64 * 4096 == phys as u64 =>
                        {
                            *n += 1;
                        }
                        _ => {
                            flush(&mut run, &mut out);
                            run = Some((lin, phys, 1, rights));
                        }
                    }
                }
                Err(_) => flush(&mut run, &mut out),
            }
        }
    }
    flush(&mut run, &mut out);
    if lines > 200 {
        let _ = writeln!(out, "  ... {} runs in all (the first 200 shown)", lines);
    }
    out
}

fn events(m: &Machine, n: usize) -> String {
    let kept = m.trace.records().len();
    let mut out = format!(
        "{} events in all; the last {} of the {kept} kept:\n",
        m.trace.total(),
        n.min(kept)
    );
    for r in m.trace.records().rev().take(n).rev() {
        let _ = writeln!(out, "  {}", inspect::event_text(r));
    }
    out
}

fn engine(session: &Session) -> String {
    let s = session.stats();
    let mut out = format!("engine {} ({})\n", session.kind().name(), s.engine);
    if let Some(n) = s.instructions {
        let _ = writeln!(out, "  instructions retired {n}");
    }
    for (k, v) in &s.counters {
        let _ = writeln!(out, "  {k} {v}");
    }
    for sw in &session.switches {
        let _ = writeln!(
            out,
            "  switched {} -> {} at instruction {}",
            sw.from.name(),
            sw.to.name(),
            sw.icount
        );
    }
    out
}

fn switch(session: &mut Session, to: &str) -> String {
    let Some(kind) = [EngineKind::Interp, EngineKind::Bt, EngineKind::Kvm]
        .into_iter()
        .find(|k| k.name() == to)
    else {
        return format!("switch: {to:?} is not an engine (interp, bt or kvm)\n");
    };
    if kind == session.kind() {
        return format!("the machine runs on {to} already\n");
    }
    let from = session.kind();
    match session.switch_to(kind) {
        Ok(()) => format!(
            "moved the machine from {} to {} at instruction {}\n",
            from.name(),
            kind.name(),
            session.m.icount()
        ),
        Err(e) => format!(
            "switch {to}: {} (the machine stays on {})\n",
            machine::Chain(&e),
            from.name()
        ),
    }
}
