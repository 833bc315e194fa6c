//! `ringlab step`: the terminal UI (ratatui over crossterm) that steps a
//! guest through its rings.
//!
//! The screen: the disassembly around EIP with the current instruction
//! highlighted; the ring the CPU is in, large; registers, EFLAGS and the
//! segment registers with their hidden descriptor caches; the latest events
//! with privilege changes highlighted; the serial console and the VGA text
//! screen. `Stepper` does what the keys say; this file draws it and reads
//! the keys.

use crate::engines::EngineKind;
use crate::inspect;
use crate::stepper::{Command, Stepper};
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use machine::{CpuState, Event, Seg};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use std::time::Duration;

/// The keys, as `?` lists them.
pub const KEYS: &[(&str, &str)] = &[
    (
        "s, space",
        "step one instruction (or one interrupt or exception)",
    ),
    (
        "n",
        "step over: run CALL, INT n, REP strings and LOOP to the next instruction",
    ),
    ("r", "run to the next privilege change (ring change)"),
    ("e", "run to the next exception or interrupt"),
    (
        "c",
        "continue until a breakpoint or the guest stops (any key pauses)",
    ),
    (
        "b",
        "set or clear a breakpoint at an address (empty: at EIP)",
    ),
    (
        "w",
        "switch engine: move the running machine to interp, bt or kvm",
    ),
    ("?", "show or hide this list"),
    ("q, Esc", "quit"),
];

/// What the keyboard is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a breakpoint address.
    Breakpoint(String),
    /// Choosing the engine to switch to.
    Switch,
    /// Running (`c`) until a stop or a key.
    Running,
}

pub struct App {
    pub stepper: Stepper,
    pub title: String,
    pub mode: Mode,
    pub quit: bool,
    /// `--vga window`: the screen in a window too.
    pub window: Option<crate::vga::VgaWindow>,
}

impl App {
    pub fn new(stepper: Stepper, title: String) -> App {
        App {
            stepper,
            title,
            mode: Mode::Normal,
            quit: false,
            window: None,
        }
    }

    /// Handles one key.
    pub fn key(&mut self, k: KeyEvent) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Running => {
                self.stepper.message = "paused".into();
            }
            Mode::Help => {}
            Mode::Breakpoint(mut text) => match k.code {
                KeyCode::Enter => {
                    let addr = if text.trim().is_empty() {
                        self.stepper.session.cpu_state().ok().map(|s| s.pc_linear())
                    } else {
                        let t = text.trim();
                        let t = t.strip_prefix("0x").unwrap_or(t);
                        u32::from_str_radix(t, 16).ok()
                    };
                    match addr {
                        Some(a) => self.stepper.exec(Command::ToggleBreakpoint(a)),
                        None => self.stepper.message = format!("`{text}` is not a hex address"),
                    }
                }
                KeyCode::Esc => self.stepper.message = "no breakpoint set".into(),
                KeyCode::Backspace => {
                    text.pop();
                    self.mode = Mode::Breakpoint(text);
                }
                KeyCode::Char(c) if c.is_ascii_hexdigit() || c == 'x' => {
                    text.push(c);
                    self.mode = Mode::Breakpoint(text);
                }
                _ => self.mode = Mode::Breakpoint(text),
            },
            Mode::Switch => {
                let to = match k.code {
                    KeyCode::Char('i') => Some(EngineKind::Interp),
                    KeyCode::Char('b') => Some(EngineKind::Bt),
                    KeyCode::Char('k') => Some(EngineKind::Kvm),
                    _ => None,
                };
                match to {
                    Some(to) => self.stepper.exec(Command::Switch(to)),
                    None => self.stepper.message = "engine unchanged".into(),
                }
            }
            Mode::Normal => match k.code {
                KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
                KeyCode::Char('s') | KeyCode::Char(' ') => self.stepper.exec(Command::Step),
                KeyCode::Char('n') => self.stepper.exec(Command::StepOver),
                KeyCode::Char('r') => self.stepper.exec(Command::RunToRingChange),
                KeyCode::Char('e') => self.stepper.exec(Command::RunToException),
                KeyCode::Char('c') => {
                    self.mode = Mode::Running;
                    self.run_slice();
                }
                KeyCode::Char('b') => self.mode = Mode::Breakpoint(String::new()),
                KeyCode::Char('w') => self.mode = Mode::Switch,
                KeyCode::Char('?') | KeyCode::Char('h') => self.mode = Mode::Help,
                _ => {
                    self.stepper.message = "unknown key: press ? for the list".into();
                }
            },
        }
    }

    /// While running: one slice, then back to the keyboard.
    pub fn run_slice(&mut self) {
        self.stepper.exec(Command::Continue);
        if !matches!(self.stepper.last_stop, Some(machine::Stop::Timeout)) {
            self.mode = Mode::Normal;
        }
    }
}

/// Runs the UI until the user quits. The terminal is restored on every
/// way out (ratatui's init installs a panic hook that restores it too).
pub fn run(app: &mut App) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let r = event_loop(&mut terminal, app);
    ratatui::restore();
    r
}

fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App) -> std::io::Result<()> {
    while !app.quit {
        terminal.draw(|f| draw(f, app))?;
        if let Some(w) = &mut app.window {
            if !w.show(&app.stepper.session.m.screen()) {
                app.window = None;
            }
        }
        if app.mode == Mode::Running {
            if event::poll(Duration::ZERO)? {
                if let TermEvent::Key(k) = event::read()? {
                    app.key(k);
                }
            } else {
                app.run_slice();
            }
            continue;
        }
        // With a window open, wake up now and then so its cursor blinks.
        if app.window.is_some() && !event::poll(Duration::from_millis(30))? {
            continue;
        }
        if let TermEvent::Key(k) = event::read()? {
            app.key(k);
        }
    }
    Ok(())
}

fn ring_style(st: &CpuState) -> Style {
    let bg = if !st.protected() {
        Color::Yellow
    } else if st.cpl() == 0 {
        Color::Red
    } else {
        Color::Green
    };
    Style::default()
        .fg(Color::Black)
        .bg(bg)
        .add_modifier(Modifier::BOLD)
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let st = app.stepper.session.cpu_state().ok();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(12),
            Constraint::Length(if area.height >= 50 { 14 } else { 8 }),
            Constraint::Length(2),
        ])
        .split(area);
    draw_header(f, rows[0], app, st.as_ref());
    let middle = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[1]);
    if app.stepper.session.kind() == EngineKind::Bt {
        let halves = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
            .split(middle[0]);
        draw_code(f, halves[0], app, st.as_ref());
        draw_host_code(f, halves[1], app);
    } else {
        draw_code(f, middle[0], app, st.as_ref());
    }
    draw_cpu(f, middle[1], st.as_ref());
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[2]);
    draw_events(f, bottom[0], app);
    draw_console(f, bottom[1], app);
    draw_status(f, rows[3], app);
    match &app.mode {
        Mode::Help => draw_help(f, area),
        Mode::Breakpoint(text) => draw_prompt(
            f,
            area,
            " breakpoint ",
            &format!("linear address (hex, Enter with nothing = EIP): {text}_"),
        ),
        Mode::Switch => draw_prompt(
            f,
            area,
            " switch engine ",
            "move the machine to: [i]nterp  [b]t (translator)  [k]vm   (Esc: stay)",
        ),
        _ => {}
    }
}

fn draw_header(f: &mut Frame, r: Rect, app: &mut App, st: Option<&CpuState>) {
    let s = &mut app.stepper;
    let mut spans = vec![Span::styled(
        format!(" ringlab step: {} ", app.title),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    spans.push(Span::raw(format!(
        " engine {}  instructions {} ",
        s.session.kind().name(),
        s.session.m.icount()
    )));
    if let Some(st) = st {
        spans.push(Span::styled(
            format!(" {} ", inspect::ring_name(st)),
            ring_style(st),
        ));
        spans.push(Span::raw(format!("  {}", st.mode_name())));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), r);
}

fn draw_code(f: &mut Frame, r: Rect, app: &mut App, st: Option<&CpuState>) {
    let block = Block::default().borders(Borders::ALL).title(" code ");
    let Some(st) = st else {
        f.render_widget(Paragraph::new("(no CPU state)").block(block), r);
        return;
    };
    let s = &app.stepper;
    let m = &s.session.m;
    let pc = st.pc_linear();
    let mut lines: Vec<Line> = Vec::new();
    let height = r.height.saturating_sub(2) as usize;
    // The instructions just executed (when stepping), then EIP onwards.
    for &a in s.history.iter().filter(|&&a| a != pc) {
        if let Some(d) = inspect::disassemble(m, st, a, 1).into_iter().next() {
            lines.push(code_line(&d, false, s.breakpoints.contains(&d.addr)));
        }
    }
    let ahead = height.saturating_sub(lines.len()).max(1);
    let dis = inspect::disassemble(m, st, pc, ahead);
    if dis.is_empty() {
        lines.push(Line::styled(
            format!("=> {pc:08x}  (no code: the page is not present or outside RAM)"),
            Style::default().fg(Color::Red),
        ));
    }
    for (i, d) in dis.iter().enumerate() {
        lines.push(code_line(d, i == 0, s.breakpoints.contains(&d.addr)));
    }
    f.render_widget(Paragraph::new(lines).block(block), r);
}

/// The translator's host code for the block at EIP, beside its guest code.
fn draw_host_code(f: &mut Frame, r: Rect, app: &mut App) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" host code (x86-64) the translator made of the block at EIP ");
    let lines: Vec<Line> = match app.stepper.session.translation_at_pc() {
        Some(Ok(t)) => {
            let mut v = vec![Line::styled(
                format!(
                    "{} guest instructions -> {} host bytes at {:#x}",
                    t.guest_insns,
                    t.code.len(),
                    t.host_addr
                ),
                Style::default().add_modifier(Modifier::BOLD),
            )];
            v.extend(
                inspect::disassemble_host(&t.code, t.host_addr)
                    .into_iter()
                    .map(|(a, text)| Line::raw(format!("  {a:012x}  {text}"))),
            );
            v
        }
        Some(Err(why)) => vec![Line::raw(format!("not translated: {why}"))],
        None => vec![Line::raw("(this engine does not translate)")],
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        r,
    );
}

fn code_line(d: &inspect::DisLine, current: bool, bp: bool) -> Line<'static> {
    let bytes: String = d.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mark = match (current, bp) {
        (true, _) => "=>",
        (false, true) => "* ",
        _ => "  ",
    };
    let text = format!("{mark}{:08x}  {bytes:<16} {}", d.addr, d.text);
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

fn draw_cpu(f: &mut Frame, r: Rect, st: Option<&CpuState>) {
    let block = Block::default().borders(Borders::ALL).title(" CPU ");
    let Some(st) = st else {
        f.render_widget(Paragraph::new("(no CPU state)").block(block), r);
        return;
    };
    let g = &st.regs;
    let mut lines = vec![
        Line::styled(
            format!("  {}   CPL {}  ", inspect::ring_name(st), st.cpl()),
            ring_style(st),
        ),
        Line::raw(""),
        Line::raw(format!(
            "EAX {:08x}  EBX {:08x}  ECX {:08x}  EDX {:08x}",
            g[0], g[3], g[1], g[2]
        )),
        Line::raw(format!(
            "ESI {:08x}  EDI {:08x}  EBP {:08x}  ESP {:08x}",
            g[6], g[7], g[5], g[4]
        )),
        Line::raw(format!(
            "EIP {:08x}  EFLAGS {:08x}  {}",
            st.eip,
            st.eflags,
            inspect::eflags_text(st.eflags)
        )),
        Line::raw(format!(
            "CR0 {:08x}  CR2 {:08x}  CR3 {:08x}  CR4 {:08x}",
            st.cr0, st.cr2, st.cr3, st.cr4
        )),
        Line::raw(format!(
            "GDTR {:08x}/{:04x}  IDTR {:08x}/{:04x}",
            st.gdtr.base, st.gdtr.limit, st.idtr.base, st.idtr.limit
        )),
        Line::raw(""),
    ];
    let prot = st.protected() && !st.v86();
    for (name, seg) in [
        ("CS", Seg::Cs),
        ("SS", Seg::Ss),
        ("DS", Seg::Ds),
        ("ES", Seg::Es),
        ("FS", Seg::Fs),
        ("GS", Seg::Gs),
    ] {
        lines.push(Line::raw(inspect::segment_text(name, st.seg(seg), prot)));
    }
    lines.push(Line::raw(inspect::segment_text(
        "TR",
        &st.tr,
        st.protected(),
    )));
    lines.push(Line::raw(inspect::segment_text(
        "LDTR",
        &st.ldtr,
        st.protected(),
    )));
    f.render_widget(Paragraph::new(lines).block(block), r);
}

/// Port I/O instructions (the UART polling loops of every guest) would
/// fill the event list; they are counted instead of listed.
fn is_port_io(e: &Event) -> bool {
    match e {
        Event::PortIo { .. } => true,
        Event::Sensitive { insn, .. } => matches!(insn.as_str(), "in" | "out" | "ins" | "outs"),
        _ => false,
    }
}

fn draw_events(f: &mut Frame, r: Rect, app: &mut App) {
    let n = r.height.saturating_sub(2) as usize;
    let trace = &app.stepper.session.m.trace;
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
    let title = if hidden > 0 {
        format!(" events (instruction count, what happened; {hidden} port I/O not listed) ")
    } else {
        " events (instruction count, what happened) ".to_string()
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let lines: Vec<Line> = recs
        .into_iter()
        .rev()
        .map(|rec| {
            let text = inspect::event_text(rec);
            match rec.event {
                Event::PrivilegeChange { .. } => Line::styled(
                    text,
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ),
                Event::Exception { .. } => Line::styled(text, Style::default().fg(Color::Red)),
                Event::Interrupt { .. } => Line::styled(text, Style::default().fg(Color::Magenta)),
                Event::EngineSwitch { .. } => Line::styled(text, Style::default().fg(Color::Cyan)),
                _ => Line::raw(text),
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), r);
}

fn draw_console(f: &mut Frame, r: Rect, app: &mut App) {
    let halves = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
        .split(r);
    let m = &app.stepper.session.m;
    let serial = String::from_utf8_lossy(m.serial_output()).into_owned();
    let n = halves[0].height.saturating_sub(2) as usize;
    let tail: Vec<Line> = serial
        .lines()
        .rev()
        .take(n)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|l| Line::raw(l.to_string()))
        .collect();
    f.render_widget(
        Paragraph::new(tail).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" serial (COM1) "),
        ),
        halves[0],
    );
    let screen = m.screen();
    let rows = halves[1].height.saturating_sub(2) as usize;
    let vga = crate::vga::term_lines(&screen, rows);
    f.render_widget(
        Paragraph::new(vga).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" VGA text screen (top rows) "),
        ),
        halves[1],
    );
}

fn draw_status(f: &mut Frame, r: Rect, app: &mut App) {
    let s = &app.stepper;
    let bps = if s.breakpoints.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = s.breakpoints.iter().map(|b| format!("{b:#x}")).collect();
        format!("   breakpoints: {}", list.join(" "))
    };
    let lines = vec![
        Line::styled(format!(" {}", s.message), Style::default().add_modifier(Modifier::BOLD)),
        Line::styled(
            format!(
                " s step  n over  r next ring change  e next exception/interrupt  c continue  b break  w switch engine  ? keys  q quit{bps}"
            ),
            Style::default().fg(Color::DarkGray),
        ),
    ];
    f.render_widget(Paragraph::new(lines), r);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_help(f: &mut Frame, area: Rect) {
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::raw(format!(" {k:<9} {what}")))
        .collect();
    lines.push(Line::raw(""));
    for l in [
        " On KVM the CPU runs the guest: stepping and \"run to\" single-step it (one VM",
        " exit per instruction) and see ring changes between steps. The CPU clears the",
        " trap flag when it enters a handler, so a step across INT n or a fault runs on",
        " in the handler up to its next VM exit; KVM never sees the exceptions the CPU",
        " delivers itself (e is the interpreter's and the translator's).",
    ] {
        lines.push(Line::raw(l));
    }
    lines.push(Line::raw(" any key closes this list"));
    let r = centered(area, 90, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" keys ")),
        r,
    );
}

fn draw_prompt(f: &mut Frame, area: Rect, title: &str, text: &str) {
    let r = centered(area, 80, 3);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_string()).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_string()),
        ),
        r,
    );
}
