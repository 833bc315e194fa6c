//! The panes of `ringlab step`, each drawn into the rectangle the layout
//! (`tui.rs`) gives it. A pane too small for what it has to show cuts it
//! visibly: a line ends with `…`, a list ends with "… N more".

use crate::debugger::Debugger;
use crate::inspect::{self, IntFrame};
use machine::{CpuState, Event, Seg};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

/// What a pane shows when the engine cannot export its CPU state (the
/// header says why).
pub const NO_STATE: &str = "no CPU state: the engine could not export it (see the header)";

/// `s` cut to `w` characters, the cut marked with `…`.
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(w - 1).collect();
    t.push('…');
    t
}

/// Words of `s` in lines of at most `w` characters.
pub fn wrap(s: &str, w: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > w {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// At most `h` lines; when some are cut the last one says how many.
pub fn clip(mut lines: Vec<Line<'static>>, h: usize) -> Vec<Line<'static>> {
    if lines.len() > h && h > 0 {
        let more = lines.len() - (h - 1);
        lines.truncate(h - 1);
        lines.push(Line::styled(
            format!("… {more} more lines"),
            Style::default().fg(Color::DarkGray),
        ));
    }
    lines
}

/// A bordered pane; in the shared column its title lists the tabs.
fn block(title: String, tabs: Option<Line<'static>>) -> Block<'static> {
    let b = Block::default().borders(Borders::ALL);
    match tabs {
        Some(t) => b.title(t),
        None => b.title(title),
    }
}

fn inner_w(r: Rect) -> usize {
    r.width.saturating_sub(2) as usize
}

fn inner_h(r: Rect) -> usize {
    r.height.saturating_sub(2) as usize
}

pub fn draw_code(f: &mut Frame, r: Rect, s: &mut Debugger, st: Option<&CpuState>) {
    let title = if s.breakpoints.is_empty() {
        " code ".to_string()
    } else {
        let list: Vec<String> = s.breakpoints.iter().map(|b| format!("{b:#x}")).collect();
        fit(
            &format!(" code (breakpoints {}) ", list.join(" ")),
            inner_w(r),
        )
    };
    let block = block(title, None);
    let Some(st) = st else {
        f.render_widget(Paragraph::new(fit(NO_STATE, inner_w(r))).block(block), r);
        return;
    };
    let m = &s.session.m;
    let pc = st.pc_linear();
    let w = inner_w(r);
    // The instruction bytes only where there is room for them.
    let bytes = w >= 52;
    let mut lines: Vec<Line> = Vec::new();
    let height = inner_h(r);
    // The instructions just executed (when stepping), then EIP onwards.
    for &a in s.history.iter().filter(|&&a| a != pc) {
        if let Some(d) = inspect::disassemble(m, st, a, 1).into_iter().next() {
            lines.push(code_line(
                &d,
                false,
                s.breakpoints.contains(&d.addr),
                bytes,
                w,
            ));
        }
    }
    // Keep EIP in view: drop the oldest history lines first.
    let keep = height.saturating_sub(1).min(lines.len()).min(height / 2);
    lines.drain(..lines.len() - keep);
    let ahead = height.saturating_sub(lines.len()).max(1);
    let dis = inspect::disassemble(m, st, pc, ahead);
    if dis.is_empty() {
        lines.push(Line::styled(
            fit(
                &format!("=>{pc:08x}  no code: the page is not present or outside RAM"),
                w,
            ),
            Style::default().fg(Color::Red),
        ));
    }
    for (i, d) in dis.iter().enumerate() {
        lines.push(code_line(
            d,
            i == 0,
            s.breakpoints.contains(&d.addr),
            bytes,
            w,
        ));
    }
    f.render_widget(Paragraph::new(lines).block(block), r);
}

fn code_line(
    d: &inspect::DisLine,
    current: bool,
    bp: bool,
    bytes: bool,
    w: usize,
) -> Line<'static> {
    let mark = match (current, bp) {
        (true, _) => "=>",
        (false, true) => "* ",
        _ => "  ",
    };
    let text = if bytes {
        let hex: String = d.bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{mark}{:08x}  {hex:<16} {}", d.addr, d.text)
    } else {
        format!("{mark}{:08x}  {}", d.addr, d.text)
    };
    let text = fit(&text, w);
    if current {
        Line::styled(
            text,
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        )
    } else if bp {
        Line::styled(text, Style::default().fg(Color::Red))
    } else {
        Line::raw(text)
    }
}

fn host_code_lines(s: &mut Debugger, w: usize) -> Vec<Line<'static>> {
    match s.session.translation_at_pc() {
        Some(Ok(t)) => {
            let mut v = vec![Line::styled(
                fit(
                    &format!(
                        "{} guest instructions -> {} host bytes at {:#x}",
                        t.guest_insns,
                        t.code.len(),
                        t.host_addr
                    ),
                    w,
                ),
                Style::default().add_modifier(Modifier::BOLD),
            )];
            v.extend(
                inspect::disassemble_host(&t.code, t.host_addr)
                    .into_iter()
                    .map(|(a, text)| Line::raw(fit(&format!("{a:012x}  {text}"), w))),
            );
            v
        }
        Some(Err(why)) => wrap(&format!("not translated: {why}"), w)
            .into_iter()
            .map(Line::raw)
            .collect(),
        None => vec![Line::raw("this engine does not translate")],
    }
}

/// The translator's host code for the block at EIP, below its guest code.
pub fn draw_host_code(f: &mut Frame, r: Rect, s: &mut Debugger) {
    draw_host_pane(f, r, s, None);
}

pub fn draw_host_pane(f: &mut Frame, r: Rect, s: &mut Debugger, tabs: Option<Line<'static>>) {
    let title = fit(" host code (x86-64) of the block at EIP ", inner_w(r));
    let lines = clip(host_code_lines(s, inner_w(r)), inner_h(r));
    f.render_widget(Paragraph::new(lines).block(block(title, tabs)), r);
}

/// The CPU: in full (every descriptor cache on a line) where the pane is
/// wide enough, else compact (two registers a line; the caches in the
/// "segments" pane).
pub fn draw_cpu(f: &mut Frame, r: Rect, st: Option<&CpuState>, full: bool) {
    let title = if full {
        " CPU ".to_string()
    } else {
        fit(" CPU (caches: segments pane) ", inner_w(r))
    };
    let Some(st) = st else {
        f.render_widget(
            Paragraph::new(fit(NO_STATE, inner_w(r))).block(block(title, None)),
            r,
        );
        return;
    };
    let g = &st.regs;
    let w = inner_w(r);
    let mut lines = Vec::new();
    if full {
        lines.push(Line::styled(
            format!("  {}   CPL {}  ", inspect::ring_name(st), st.cpl()),
            super::ring_style(st),
        ));
        for t in [
            format!(
                "EAX {:08x}  EBX {:08x}  ECX {:08x}  EDX {:08x}",
                g[0], g[3], g[1], g[2]
            ),
            format!(
                "ESI {:08x}  EDI {:08x}  EBP {:08x}  ESP {:08x}",
                g[6], g[7], g[5], g[4]
            ),
            format!(
                "EIP {:08x}  EFLAGS {:08x}  {}",
                st.eip,
                st.eflags,
                inspect::eflags_text(st.eflags)
            ),
            format!(
                "CR0 {:08x}  CR2 {:08x}  CR3 {:08x}  CR4 {:08x}",
                st.cr0, st.cr2, st.cr3, st.cr4
            ),
            format!(
                "GDTR {:08x}/{:04x}  IDTR {:08x}/{:04x}",
                st.gdtr.base, st.gdtr.limit, st.idtr.base, st.idtr.limit
            ),
        ] {
            lines.push(Line::raw(fit(&t, w)));
        }
        lines.extend(segment_lines(st, w));
    } else {
        lines.push(Line::styled(
            fit(
                &format!(
                    "{} CS {:04x} SS {:04x}",
                    inspect::ring_name(st),
                    st.seg(Seg::Cs).selector,
                    st.seg(Seg::Ss).selector
                ),
                w,
            ),
            super::ring_style(st),
        ));
        for t in [
            format!("EAX {:08x}  EBX {:08x}", g[0], g[3]),
            format!("ECX {:08x}  EDX {:08x}", g[1], g[2]),
            format!("ESI {:08x}  EDI {:08x}", g[6], g[7]),
            format!("EBP {:08x}  ESP {:08x}", g[5], g[4]),
            format!("EIP {:08x}  EFLAGS {:08x}", st.eip, st.eflags),
            inspect::eflags_text(st.eflags),
            format!("CR0 {:08x}  CR3 {:08x}", st.cr0, st.cr3),
            format!(
                "DS {:04x} ES {:04x} FS {:04x} GS {:04x}",
                st.seg(Seg::Ds).selector,
                st.seg(Seg::Es).selector,
                st.seg(Seg::Fs).selector,
                st.seg(Seg::Gs).selector
            ),
            format!("CR2 {:08x}  CR4 {:08x}", st.cr2, st.cr4),
        ] {
            lines.push(Line::raw(fit(&t, w)));
        }
    }
    let lines = clip(lines, inner_h(r));
    f.render_widget(Paragraph::new(lines).block(block(title, None)), r);
}

fn segment_lines(st: &CpuState, w: usize) -> Vec<Line<'static>> {
    let prot = st.protected() && !st.v86();
    let mut lines = Vec::new();
    for (name, seg) in [
        ("CS", Seg::Cs),
        ("SS", Seg::Ss),
        ("DS", Seg::Ds),
        ("ES", Seg::Es),
        ("FS", Seg::Fs),
        ("GS", Seg::Gs),
    ] {
        lines.push(inspect::segment_text(name, st.seg(seg), prot));
    }
    lines.push(inspect::segment_text("TR", &st.tr, st.protected()));
    lines.push(inspect::segment_text("LDTR", &st.ldtr, st.protected()));
    lines.into_iter().map(|t| Line::raw(fit(&t, w))).collect()
}

/// The segment registers with their hidden descriptor caches, where the
/// CPU pane is too narrow for them.
pub fn draw_segments(f: &mut Frame, r: Rect, st: Option<&CpuState>, tabs: Option<Line<'static>>) {
    let title = " segments (hidden descriptor caches) ".to_string();
    let lines = match st {
        Some(st) => {
            let mut l = segment_lines(st, inner_w(r));
            l.push(Line::raw(fit(
                &format!(
                    "GDTR {:08x}/{:04x}  IDTR {:08x}/{:04x}",
                    st.gdtr.base, st.gdtr.limit, st.idtr.base, st.idtr.limit
                ),
                inner_w(r),
            )));
            clip(l, inner_h(r))
        }
        None => vec![Line::raw(fit(NO_STATE, inner_w(r)))],
    };
    f.render_widget(Paragraph::new(lines).block(block(title, tabs)), r);
}

fn value_text(m: &machine::Machine, st: &CpuState, addr: u32, size: u8) -> String {
    match inspect::read_value(m, st, addr, size) {
        Some(v) if size == 2 => format!("{v:04x}    "),
        Some(v) => format!("{v:08x}"),
        None => "unmapped".to_string(),
    }
}

/// The frame's header: what was delivered, when, and the ring change
/// (which is why the frame holds the old SS:ESP).
fn frame_header(fr: &IntFrame) -> String {
    match fr.rings {
        Some((a, b)) => format!("{} frame at {}, ring {a}->{b}", fr.what, fr.icount),
        None => format!("{} frame at {}", fr.what, fr.icount),
    }
}

/// The stack: the slots at SS:ESP upward (ESP marked), and the frame of
/// the last interrupt or exception the debugger stopped at. Where that
/// frame is in view and its slots still hold what the CPU pushed, they are
/// named in place; else the frame is listed below with the values as
/// pushed (a later frame, or the handler, may have written over them).
pub fn draw_stack(
    f: &mut Frame,
    r: Rect,
    s: &Debugger,
    st: Option<&CpuState>,
    tabs: Option<Line<'static>>,
) {
    let w = inner_w(r);
    let h = inner_h(r);
    let Some(st) = st else {
        f.render_widget(
            Paragraph::new(fit(NO_STATE, inner_w(r))).block(block(" stack ".into(), tabs)),
            r,
        );
        return;
    };
    let m = &s.session.m;
    let (size, sp) = inspect::stack_width(st);
    let top = inspect::stack_top(st);
    let ss = st.seg(Seg::Ss).selector;
    let title = fit(
        &if size == 4 {
            format!(" stack at SS:ESP {ss:04x}:{sp:08x} ")
        } else {
            format!(" stack at SS:SP {ss:04x}:{sp:04x} ")
        },
        w,
    );
    let frame = s.frame.as_ref();
    let rows_in_place = h.saturating_sub(1);
    let in_place = frame.is_some_and(|fr| {
        fr.slots.iter().all(|sl| {
            sl.size == size
                && sl.addr.wrapping_sub(top) < (rows_in_place * size as usize) as u32
                && (sl.addr.wrapping_sub(top)) % size as u32 == 0
                && inspect::read_value(m, st, sl.addr, sl.size) == Some(sl.pushed)
        })
    });
    let label = |addr: u32| -> &'static str {
        frame
            .filter(|_| in_place)
            .and_then(|fr| fr.slots.iter().find(|sl| sl.addr == addr))
            .map_or("", |sl| sl.name)
    };
    let row = |i: usize| -> Line<'static> {
        let addr = top.wrapping_add((i * size as usize) as u32);
        let mark = match (i, size) {
            (0, 4) => "ESP>",
            (0, _) => " SP>",
            _ => "    ",
        };
        let name = label(addr);
        let t = fit(
            &format!("{mark}{addr:08x} {} {name}", value_text(m, st, addr, size)),
            w,
        );
        if i == 0 {
            Line::styled(t, Style::default().add_modifier(Modifier::BOLD))
        } else if !name.is_empty() {
            Line::styled(t, Style::default().fg(Color::Yellow))
        } else {
            Line::raw(t)
        }
    };
    let yellow = Style::default().fg(Color::Yellow);
    let mut lines: Vec<Line> = Vec::new();
    match frame {
        Some(fr) if in_place => {
            lines.push(Line::styled(fit(&frame_header(fr), w), yellow));
            lines.extend((0..rows_in_place).map(row));
        }
        Some(fr) => {
            let rows = h.saturating_sub(fr.slots.len() + 1).max(1);
            lines.extend((0..rows).map(row));
            let rings = fr
                .rings
                .map_or(String::new(), |(a, b)| format!(", ring {a}->{b}"));
            lines.push(Line::styled(
                fit(&format!("{} at {} pushed{rings}:", fr.what, fr.icount), w),
                yellow,
            ));
            for sl in &fr.slots {
                let v = if sl.size == 2 {
                    format!("{:04x}    ", sl.pushed)
                } else {
                    format!("{:08x}", sl.pushed)
                };
                lines.push(Line::styled(
                    fit(&format!("    {:08x} {v} {}", sl.addr, sl.name), w),
                    yellow,
                ));
            }
        }
        None => {
            lines.extend((0..rows_in_place).map(row));
            lines.push(Line::styled(
                fit("no interrupt or exception frame yet", w),
                Style::default().fg(Color::DarkGray),
            ));
        }
    }
    let lines = clip(lines, h);
    f.render_widget(Paragraph::new(lines).block(block(title, tabs)), r);
}

/// Port I/O instructions (the UART polling loops of every guest) would
/// fill the event list; they are counted instead of listed.
fn is_port_io(e: &Event) -> bool {
    match e {
        Event::PortIo { .. } => true,
        Event::Sensitive { insn, .. } => matches!(insn.as_ref(), "in" | "out" | "ins" | "outs"),
        _ => false,
    }
}

pub fn draw_events(f: &mut Frame, r: Rect, s: &Debugger, tabs: Option<Line<'static>>) {
    let n = inner_h(r);
    let w = inner_w(r);
    let trace = &s.session.m.trace;
    let mut hidden = 0;
    let mut recs = Vec::new();
    for rec in trace.records().rev() {
        if recs.len() == n {
            break;
        }
        if is_port_io(&rec.event) {
            hidden += 1;
        } else {
            recs.push(rec);
        }
    }
    let title = match (hidden, w >= 60) {
        (0, true) => " events (at instruction) ".to_string(),
        (0, false) => " events ".to_string(),
        (n, true) => format!(" events (at instruction; {n} port I/O not listed) "),
        (n, false) => format!(" events ({n} port I/O not listed) "),
    };
    let digits = recs
        .iter()
        .map(|r| r.icount.to_string().len())
        .max()
        .unwrap_or(1);
    let lines: Vec<Line> = recs
        .into_iter()
        .rev()
        .map(|rec| {
            let text = fit(
                &format!(
                    "{:>digits$} {}",
                    rec.icount,
                    inspect::event_what(&rec.event)
                ),
                w,
            );
            let style = match rec.event {
                Event::PrivilegeChange { .. } => Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
                Event::Exception { .. } => Style::default().fg(Color::Red),
                Event::Interrupt { .. } => Style::default().fg(Color::Magenta),
                Event::EngineSwitch { .. } => Style::default().fg(Color::Cyan),
                _ => Style::default(),
            };
            Line::styled(text, style)
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block(fit(&title, w), tabs)), r);
}

/// The serial console (COM1) over the VGA text screen.
pub fn draw_console(f: &mut Frame, r: Rect, s: &Debugger, tabs: Option<Line<'static>>) {
    let halves = Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).split(r);
    let m = &s.session.m;
    let w = inner_w(r);
    let serial = String::from_utf8_lossy(m.serial_output()).into_owned();
    // Long lines wrap, so the newest output is always whole.
    let wrapped: Vec<String> = serial
        .lines()
        .flat_map(|l| {
            if l.is_empty() {
                vec![String::new()]
            } else {
                l.chars()
                    .collect::<Vec<_>>()
                    .chunks(w.max(1))
                    .map(|c| c.iter().collect())
                    .collect()
            }
        })
        .collect();
    let n = inner_h(halves[0]);
    let tail: Vec<Line> = wrapped[wrapped.len().saturating_sub(n)..]
        .iter()
        .map(|l| Line::raw(l.clone()))
        .collect();
    f.render_widget(
        Paragraph::new(tail).block(block(fit(" serial (COM1) ", w), tabs)),
        halves[0],
    );
    let screen = m.screen();
    let rows = inner_h(halves[1]);
    let vga = crate::vga::term_lines(&screen, rows);
    let title = if w < 80 {
        format!(" VGA text (left {w} of 80 columns) ")
    } else {
        " VGA text screen (top rows) ".to_string()
    };
    f.render_widget(
        Paragraph::new(vga).block(block(fit(&title, w), None)),
        halves[1],
    );
}

/// A hex and ASCII dump at a linear address, read through the guest's
/// page tables; bytes of pages that are not present (or outside RAM) show
/// as `--`.
pub fn draw_memory(
    f: &mut Frame,
    r: Rect,
    s: &Debugger,
    st: Option<&CpuState>,
    at: Option<u32>,
    tabs: Option<Line<'static>>,
) {
    let w = inner_w(r);
    let (Some(st), Some(at)) = (st, at) else {
        f.render_widget(
            Paragraph::new("m asks for an address").block(block(" memory ".into(), tabs)),
            r,
        );
        return;
    };
    let m = &s.session.m;
    // Per row: the address, groups of four bytes in hex, the characters.
    let per_row = if w >= 9 + 36 + 16 {
        16
    } else if w >= 9 + 18 + 8 {
        8
    } else {
        4
    };
    let title = fit(
        &format!(" memory at {at:08x} (linear; -- not mapped; PgUp/PgDn) "),
        w,
    );
    let mut lines = Vec::new();
    for row in 0..inner_h(r) {
        let base = at.wrapping_add((row * per_row) as u32);
        let bytes: Vec<Option<u8>> = (0..per_row as u32)
            .map(|i| inspect::peek_linear(m, st, base.wrapping_add(i)))
            .collect();
        let mut hex = String::new();
        for (i, b) in bytes.iter().enumerate() {
            if i % 4 == 0 {
                hex.push(' ');
            }
            match b {
                Some(b) => hex.push_str(&format!("{b:02x}")),
                None => hex.push_str("--"),
            }
        }
        let ascii: String = bytes
            .iter()
            .map(|b| match b {
                Some(b @ 0x20..=0x7E) => *b as char,
                Some(_) => '.',
                None => ' ',
            })
            .collect();
        let line = if bytes.iter().all(|b| b.is_none()) {
            format!("{base:08x}  not mapped")
        } else {
            format!("{base:08x}{hex} {ascii}")
        };
        lines.push(Line::raw(fit(&line, w)));
    }
    f.render_widget(Paragraph::new(lines).block(block(title, tabs)), r);
}
