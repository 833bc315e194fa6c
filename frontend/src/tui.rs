//! `ringlab step`: the terminal UI (ratatui over crossterm) that steps a
//! guest through its rings.
//!
//! The screen: a header (guest, engine, instruction count, the ring, large),
//! the disassembly around EIP and the CPU (registers, EFLAGS, segment
//! registers with their hidden descriptor caches) on top; below them the
//! stack (ESP's neighbourhood and the last interrupt or exception frame),
//! the events, the serial console and VGA text screen, and a memory dump;
//! the status line and the key bar at the bottom. The layout adapts to the
//! terminal (from 80x24 up): the lower panes get a column each as far as
//! the width allows and the rest share the last column as tabs (Tab cycles
//! them; their names are in that pane's title), the CPU pane goes compact
//! and hands the descriptor caches to a "segments" tab, and every line or
//! pane that is cut says so. The status line and key bar are always there.
//! `Debugger` does what the keys say; this file reads the keys and lays the
//! screen out, `tui/panes.rs` draws the panes.

mod panes;

use crate::debugger::{Command, Debugger};
use crate::engines::EngineKind;
use crate::inspect;
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use machine::CpuState;
use panes::fit;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
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
        "m",
        "memory: dump a linear address (through paging); PgUp/PgDn move",
    ),
    (
        "x",
        "restart: reload the guest and start again on this engine",
    ),
    (
        "w",
        "switch engine: move the running machine to interp, bt or kvm",
    ),
    (
        "g",
        "guest keyboard: run, keys go to the guest's PS/2 keyboard; Ctrl-G gives them back",
    ),
    ("Tab", "show the next of the panes sharing the last column"),
    ("?", "show or hide this list"),
    ("q, Esc", "quit"),
];

/// The key bar: key, long label, short label, tiny label (the last tier,
/// for 80 columns; `?` lists them all in words).
const KEY_BAR: &[(&str, &str, &str, &str)] = &[
    ("s", "step", "step", "step"),
    ("n", "over", "over", "over"),
    ("r", "next ring change", "ring", "ring"),
    ("e", "next exception/interrupt", "exc", "exc"),
    ("c", "continue", "cont", "cont"),
    ("b", "break", "brk", "brk"),
    ("m", "memory", "mem", "mem"),
    ("x", "restart", "restart", "restart"),
    ("w", "switch engine", "engine", "engine"),
    ("Tab", "next pane", "pane", ""),
    ("?", "keys", "keys", ""),
    ("q", "quit", "quit", "quit"),
];

/// What the keyboard is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a breakpoint address.
    Breakpoint(String),
    /// Typing the address of the memory pane.
    Memory(String),
    /// Choosing the engine to switch to.
    Switch,
    /// Running (`c`) until a stop or a key.
    Running,
    /// Running with the keyboard given to the guest (`g`) until Ctrl-G.
    GuestKeys,
}

/// The panes below the code and the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Stack,
    Events,
    Console,
    Memory,
    Segments,
    HostCode,
}

impl Pane {
    fn name(self) -> &'static str {
        match self {
            Pane::Stack => "stack",
            Pane::Events => "events",
            Pane::Console => "console",
            Pane::Memory => "memory",
            Pane::Segments => "segments",
            Pane::HostCode => "host code",
        }
    }
}

pub struct App {
    pub debugger: Debugger,
    pub title: String,
    pub mode: Mode,
    pub quit: bool,
    /// `--vga window`: the screen in a window too.
    pub window: Option<crate::vga::VgaWindow>,
    /// The linear address the memory pane dumps from, once typed.
    pub memory: Option<u32>,
    /// The pane shown in the shared (tabbed) column.
    pub tab: Pane,
    /// The panes sharing the last column at the last draw (Tab cycles).
    tabs: Vec<Pane>,
    /// `--gdb`: the socket gdb may connect to.
    pub gdb: Option<crate::gdb::Server>,
}

/// How far PgUp/PgDn move the memory pane.
const MEMORY_PAGE: u32 = 0x100;

impl App {
    pub fn new(debugger: Debugger, title: String) -> App {
        App {
            debugger,
            title,
            mode: Mode::Normal,
            quit: false,
            window: None,
            memory: None,
            tab: Pane::Events,
            tabs: Vec::new(),
            gdb: None,
        }
    }

    fn pc(&mut self) -> Option<u32> {
        self.debugger
            .session
            .cpu_state()
            .ok()
            .map(|s| s.pc_linear())
    }

    /// Parses a typed address: hex, with or without 0x; empty means EIP.
    fn address(&mut self, text: &str) -> Result<u32, String> {
        let t = text.trim();
        if t.is_empty() {
            return self
                .pc()
                .ok_or_else(|| "no CPU state to take EIP from".to_string());
        }
        let h = t.strip_prefix("0x").unwrap_or(t);
        u32::from_str_radix(h, 16).map_err(|_| format!("`{t}` is not a hex address"))
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
        if self.mode == Mode::GuestKeys {
            if k.code == KeyCode::Char('g') && k.modifiers.contains(KeyModifiers::CONTROL) {
                self.mode = Mode::Normal;
                self.debugger.message = "paused; the keyboard is the debugger's again".into();
            } else {
                let keys = guest_keys(k);
                if !keys.is_empty() {
                    self.debugger.session.m.key_events(keys);
                }
            }
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Running | Mode::GuestKeys => {
                self.debugger.message = "paused".into();
            }
            Mode::Help => {}
            Mode::Breakpoint(text) => {
                if let Some(text) = self.edit(k, text, Mode::Breakpoint) {
                    match self.address(&text) {
                        Ok(a) => self.debugger.exec(Command::ToggleBreakpoint(a)),
                        Err(e) => self.debugger.message = e,
                    }
                } else if self.mode == Mode::Normal {
                    self.debugger.message = "no breakpoint set".into();
                }
            }
            Mode::Memory(text) => {
                if let Some(text) = self.edit(k, text, Mode::Memory) {
                    match self.address(&text) {
                        Ok(a) => {
                            self.memory = Some(a);
                            self.tab = Pane::Memory;
                            self.debugger.message = format!("memory pane at {a:#010x} (linear)");
                        }
                        Err(e) => self.debugger.message = e,
                    }
                } else if self.mode == Mode::Normal {
                    self.debugger.message = "memory pane unchanged".into();
                }
            }
            Mode::Switch => {
                let to = match k.code {
                    KeyCode::Char('i') => Some(EngineKind::Interp),
                    KeyCode::Char('b') => Some(EngineKind::Bt),
                    KeyCode::Char('k') => Some(EngineKind::Kvm),
                    _ => None,
                };
                match to {
                    Some(to) => self.debugger.exec(Command::Switch(to)),
                    None => self.debugger.message = "engine unchanged".into(),
                }
            }
            Mode::Normal => match k.code {
                KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
                KeyCode::Char('s') | KeyCode::Char(' ') => self.debugger.exec(Command::Step),
                KeyCode::Char('n') => self.debugger.exec(Command::StepOver),
                KeyCode::Char('r') => self.debugger.exec(Command::RunToRingChange),
                KeyCode::Char('e') => self.debugger.exec(Command::RunToException),
                KeyCode::Char('c') => {
                    self.mode = Mode::Running;
                    self.run_slice();
                }
                KeyCode::Char('x') => self.debugger.exec(Command::Restart),
                KeyCode::Char('b') => self.mode = Mode::Breakpoint(String::new()),
                KeyCode::Char('m') => self.mode = Mode::Memory(String::new()),
                KeyCode::Char('w') => self.mode = Mode::Switch,
                KeyCode::Char('g') => {
                    self.mode = Mode::GuestKeys;
                    self.debugger.message =
                        "guest keyboard: keys go to the guest as it runs (Ctrl-G: back)".into();
                    self.run_slice();
                }
                KeyCode::Tab => self.next_tab(),
                KeyCode::PageDown | KeyCode::PageUp if self.memory.is_some() => {
                    let a = self.memory.unwrap_or_default();
                    self.memory = Some(if k.code == KeyCode::PageDown {
                        a.wrapping_add(MEMORY_PAGE)
                    } else {
                        a.wrapping_sub(MEMORY_PAGE)
                    });
                    self.tab = Pane::Memory;
                }
                KeyCode::Char('?') | KeyCode::Char('h') => self.mode = Mode::Help,
                _ => {
                    self.debugger.message = "unknown key: press ? for the list".into();
                }
            },
        }
    }

    /// Edits the text of an address prompt: Some(text) on Enter; None
    /// while typing (the mode stays) or on Esc (back to Normal).
    fn edit(&mut self, k: KeyEvent, mut text: String, mode: fn(String) -> Mode) -> Option<String> {
        match k.code {
            KeyCode::Enter => return Some(text),
            KeyCode::Esc => return None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if c.is_ascii_hexdigit() || c == 'x' => text.push(c),
            _ => {}
        }
        self.mode = mode(text);
        None
    }

    fn next_tab(&mut self) {
        if self.tabs.len() < 2 {
            self.debugger.message = "every pane has its own place at this terminal size".into();
            return;
        }
        let i = self.tabs.iter().position(|&p| p == self.tab).unwrap_or(0);
        self.tab = self.tabs[(i + 1) % self.tabs.len()];
        self.debugger.message = format!("showing the {} pane", self.tab.name());
    }

    /// While running: one slice, then back to the keyboard.
    pub fn run_slice(&mut self) {
        self.debugger.exec(Command::Continue);
        if !matches!(self.debugger.last_stop, Some(machine::Stop::Timeout))
            || self.debugger.engine_failed.is_some()
        {
            self.mode = Mode::Normal;
        }
    }
}

/// A terminal key as PS/2 key events: a press and release, with Shift
/// (from the character) and Ctrl or Alt (from the modifiers) held around
/// it.
fn guest_keys(k: KeyEvent) -> Vec<(machine::devices::ps2kbd::Key, bool)> {
    use machine::devices::ps2kbd::{parse_key_text, Key};
    let tap = |key: Key| vec![(key, true), (key, false)];
    let mut keys = match k.code {
        KeyCode::Char(c) => {
            let text = if c == '\\' {
                "\\\\".to_string()
            } else {
                c.to_string()
            };
            parse_key_text(&text).unwrap_or_default()
        }
        KeyCode::Enter => tap(Key::Enter),
        KeyCode::Backspace => tap(Key::Backspace),
        KeyCode::Tab => tap(Key::Tab),
        KeyCode::Esc => tap(Key::Escape),
        KeyCode::Up => tap(Key::Up),
        KeyCode::Down => tap(Key::Down),
        KeyCode::Left => tap(Key::Left),
        KeyCode::Right => tap(Key::Right),
        KeyCode::Home => tap(Key::Home),
        KeyCode::End => tap(Key::End),
        KeyCode::PageUp => tap(Key::PageUp),
        KeyCode::PageDown => tap(Key::PageDown),
        KeyCode::Insert => tap(Key::Insert),
        KeyCode::Delete => tap(Key::Delete),
        KeyCode::F(n @ 1..=12) => tap([
            Key::F1,
            Key::F2,
            Key::F3,
            Key::F4,
            Key::F5,
            Key::F6,
            Key::F7,
            Key::F8,
            Key::F9,
            Key::F10,
            Key::F11,
            Key::F12,
        ][n as usize - 1]),
        _ => vec![],
    };
    if keys.is_empty() {
        return keys;
    }
    for (held, m) in [
        (Key::LeftCtrl, KeyModifiers::CONTROL),
        (Key::LeftAlt, KeyModifiers::ALT),
    ] {
        if k.modifiers.contains(m) {
            keys.insert(0, (held, true));
            keys.push((held, false));
        }
    }
    keys
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
            if !w.show(&app.debugger.session.m.screen()) {
                app.window = None;
            }
        }
        if matches!(app.mode, Mode::Running | Mode::GuestKeys) {
            if event::poll(Duration::ZERO)? {
                if let TermEvent::Key(k) = event::read()? {
                    app.key(k);
                }
            } else {
                app.run_slice();
            }
            continue;
        }
        // With a window open, wake up now and then so its cursor blinks;
        // with --gdb, to see gdb connect.
        if (app.window.is_some() || app.gdb.is_some()) && !event::poll(Duration::from_millis(30))? {
            if let Some(conn) = app.gdb.as_ref().and_then(|g| g.poll_accept()) {
                serve_gdb(terminal, app, conn)?;
            }
            continue;
        }
        if let TermEvent::Key(k) = event::read()? {
            app.key(k);
        }
    }
    Ok(())
}

/// gdb connected: it drives the guest until it detaches (or kills it), and
/// the screen follows every slice it runs and every stop. The session
/// goes to the gdb server for that time; to draw, the UI swaps it back in
/// for the moment of the draw (a one-megabyte interpreter stands in).
fn serve_gdb(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    (stream, peer): (std::net::TcpStream, std::net::SocketAddr),
) -> std::io::Result<()> {
    use crate::gdb::Ended;
    use crate::session::{Options, Session};
    let Some(server) = app.gdb.take() else {
        return Ok(());
    };
    let stand_in = machine::Machine::new(machine::MachineConfig::with_ram(1 << 20))
        .map_err(std::io::Error::other)
        .and_then(|m| {
            Session::new(
                m,
                EngineKind::Interp,
                Options::default(),
                &CpuState::reset(),
            )
            .map_err(std::io::Error::other)
        })?;
    let mut session = std::mem::replace(&mut app.debugger.session, stand_in);
    app.debugger.message = format!(
        "gdb attached from {peer}: gdb drives the guest and this screen follows (q quits ringlab)"
    );
    let limits = machine::Limits::default();
    let mut io_error = None;
    let ended = server.attached(&mut session, &limits, stream, &mut |s: &mut Session| {
        std::mem::swap(&mut app.debugger.session, s);
        if let Err(e) = terminal.draw(|f| draw(f, app)) {
            io_error = Some(e);
        }
        std::mem::swap(&mut app.debugger.session, s);
        // q ends ringlab (and gdb's session with it).
        while let Ok(true) = event::poll(Duration::ZERO) {
            if let Ok(TermEvent::Key(k)) = event::read() {
                if k.code == KeyCode::Char('q') {
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    app.debugger.session = session;
    app.gdb = Some(server);
    app.debugger.message = match ended {
        Ok(Ended::Detached) => "gdb detached; the keys drive the guest again".to_string(),
        Ok(Ended::Killed) => {
            app.quit = true;
            "gdb killed the guest".into()
        }
        Ok(Ended::Stop(s)) => {
            if s == machine::Stop::Quit {
                app.quit = true;
            }
            app.debugger.last_stop = Some(s.clone());
            format!("under gdb the guest stopped: {s}")
        }
        Err(e) => format!("gdb: {e:#}"),
    };
    match io_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(crate) fn ring_style(st: &CpuState) -> Style {
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

/// The smallest screen the layout fills; below it the UI says so.
const MIN_W: u16 = 40;
const MIN_H: u16 = 12;
/// The CPU pane's width with every descriptor cache on one line.
const CPU_FULL: u16 = 60;
/// The narrowest column a lower pane gets.
const COLUMN: u16 = 38;

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let state = app.debugger.session.cpu_state();
    let st = state.as_ref().ok().cloned();
    let state_error = state.err().map(|e| machine::Chain(&e).to_string());
    let status = status_lines(&app.debugger.message, area.width);
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(status.len() as u16),
        Constraint::Length(1),
    ])
    .split(area);
    draw_header(f, rows[0], app, st.as_ref(), state_error.as_deref());
    f.render_widget(Paragraph::new(status), rows[2]);
    let main = rows[1];
    if main.width < MIN_W || main.height < MIN_H - 3 {
        f.render_widget(
            Paragraph::new(fit(
                &format!(
                    "the terminal is {}x{}: ringlab step needs at least {MIN_W}x{MIN_H}",
                    area.width, area.height
                ),
                main.width as usize,
            )),
            main,
        );
    } else {
        draw_panes(f, main, app, st.as_ref());
    }
    // After the panes: the bar lists Tab only when panes share a column.
    draw_key_bar(f, rows[3], app);
    match &app.mode {
        Mode::Help => draw_help(f, area),
        Mode::Breakpoint(text) => draw_prompt(
            f,
            area,
            " breakpoint ",
            &format!("linear address (hex; Enter alone: EIP): {text}_"),
        ),
        Mode::Memory(text) => draw_prompt(
            f,
            area,
            " memory ",
            &format!("dump at linear address (hex; Enter alone: EIP): {text}_"),
        ),
        Mode::Switch => draw_prompt(
            f,
            area,
            " switch engine ",
            "move the machine to: [i]nterp  [b]t  [k]vm   (Esc: stay)",
        ),
        _ => {}
    }
}

/// Lays the panes out in `main`: code and CPU on top, the lower panes in
/// columns below, the last column shared as tabs when they do not all fit.
fn draw_panes(f: &mut Frame, main: Rect, app: &mut App, st: Option<&CpuState>) {
    let bt = app.debugger.session.kind() == EngineKind::Bt;
    // The top half, a little more on tall screens (the disassembly and the
    // full CPU pane want 18 rows).
    let top_h = if main.height >= 34 {
        main.height * 55 / 100
    } else {
        main.height / 2 + 1
    };
    let halves = Layout::vertical([Constraint::Length(top_h), Constraint::Fill(1)]).split(main);
    let cpu_w = CPU_FULL.min(main.width / 2);
    let top = Layout::horizontal([Constraint::Fill(1), Constraint::Length(cpu_w)]).split(halves[0]);
    let full_cpu = cpu_w >= CPU_FULL;
    let host_on_top = bt && top[0].height >= 16;
    if host_on_top {
        let code =
            Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).split(top[0]);
        panes::draw_code(f, code[0], &mut app.debugger, st);
        panes::draw_host_code(f, code[1], &mut app.debugger);
    } else {
        panes::draw_code(f, top[0], &mut app.debugger, st);
    }
    panes::draw_cpu(f, top[1], st, full_cpu);

    let mut lower = vec![Pane::Stack, Pane::Events, Pane::Console];
    if app.memory.is_some() {
        lower.push(Pane::Memory);
    }
    if !full_cpu {
        lower.push(Pane::Segments);
    }
    if bt && !host_on_top {
        lower.push(Pane::HostCode);
    }
    let cols = (halves[1].width / COLUMN).clamp(1, 4) as usize;
    let own = (cols - 1).min(lower.len() - 1);
    let shared: Vec<Pane> = lower[own..].to_vec();
    if !shared.contains(&app.tab) {
        app.tab = shared[0];
    }
    let mut constraints: Vec<Constraint> = vec![Constraint::Ratio(1, own as u32 + 1); own + 1];
    if own + 1 < cols {
        // The last column gets what the others leave.
        constraints[own] = Constraint::Fill(1);
    }
    let areas = Layout::horizontal(constraints).split(halves[1]);
    for (i, &p) in lower[..own].iter().enumerate() {
        draw_pane(f, areas[i], app, st, p, None);
    }
    let room = areas[own].width.saturating_sub(2) as usize;
    let tab_title = (shared.len() > 1).then(|| tab_title(&shared, app.tab, room));
    app.tabs = shared;
    let tab = app.tab;
    draw_pane(f, areas[own], app, st, tab, tab_title);
}

/// The title of the shared column: every pane in it, the one shown in
/// brackets; where they do not fit, the one shown and its place among
/// them ("[memory] 3/5 Tab").
fn tab_title(panes: &[Pane], shown: Pane, width: usize) -> Line<'static> {
    let bold = Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED);
    let hint = Style::default().fg(Color::DarkGray);
    let names: usize = panes.iter().map(|p| p.name().len() + 1).sum();
    if names + 2 + 2 + "Tab ".len() > width {
        let i = panes.iter().position(|&p| p == shown).unwrap_or(0);
        return Line::from(vec![
            Span::raw(" "),
            Span::styled(format!("[{}]", shown.name()), bold),
            Span::styled(format!(" {}/{} Tab ", i + 1, panes.len()), hint),
        ]);
    }
    let mut spans = vec![Span::raw(" ")];
    for &p in panes {
        if p == shown {
            spans.push(Span::styled(format!("[{}]", p.name()), bold));
        } else {
            spans.push(Span::raw(p.name()));
        }
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled("Tab ", hint));
    Line::from(spans)
}

fn draw_pane(
    f: &mut Frame,
    r: Rect,
    app: &mut App,
    st: Option<&CpuState>,
    p: Pane,
    tabs: Option<Line<'static>>,
) {
    match p {
        Pane::Stack => panes::draw_stack(f, r, &app.debugger, st, tabs),
        Pane::Events => panes::draw_events(f, r, &app.debugger, tabs),
        Pane::Console => panes::draw_console(f, r, &app.debugger, tabs),
        Pane::Memory => panes::draw_memory(f, r, &app.debugger, st, app.memory, tabs),
        Pane::Segments => panes::draw_segments(f, r, st, tabs),
        Pane::HostCode => panes::draw_host_pane(f, r, &mut app.debugger, tabs),
    }
}

/// The status message, wrapped to the width (at most 4 lines, the last
/// marked when more was cut).
fn status_lines(msg: &str, width: u16) -> Vec<Line<'static>> {
    let w = (width as usize).saturating_sub(1).max(10);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in msg.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > w {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    if lines.len() > 4 {
        let rest = lines[3..].join(" ");
        lines.truncate(3);
        lines.push(fit(&rest, w));
    }
    lines
        .into_iter()
        .map(|l| {
            Line::styled(
                format!(" {}", fit(&l, w)),
                Style::default().add_modifier(Modifier::BOLD),
            )
        })
        .collect()
}

fn draw_header(
    f: &mut Frame,
    r: Rect,
    app: &mut App,
    st: Option<&CpuState>,
    state_error: Option<&str>,
) {
    let s = &mut app.debugger;
    let core = format!(
        " engine {}  instructions {} ",
        s.session.kind().name(),
        s.session.m.icount()
    );
    let ring = st.map(|st| (format!(" {} ", inspect::ring_name(st)), ring_style(st)));
    let mode = st.map_or(String::new(), |st| format!("  {}", st.mode_name()));
    let used = core.len() + ring.as_ref().map_or(0, |(t, _)| t.len());
    let room = (r.width as usize).saturating_sub(used);
    let long_title = format!(" ringlab step: {} ", app.title);
    let title = if long_title.len() + mode.len() <= room {
        long_title
    } else if app.title.len() + 2 + mode.len() <= room {
        format!(" {} ", app.title)
    } else {
        String::new()
    };
    let mut spans = vec![
        Span::styled(title, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(core),
    ];
    if let Some((t, style)) = ring {
        spans.push(Span::styled(t, style));
    }
    spans.push(Span::raw(mode));
    if let Some(e) = state_error {
        spans.push(Span::styled(
            format!(" CPU state unavailable: {e}"),
            Style::default().fg(Color::Red),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), r);
}

/// The key bar: long labels where they fit, else shorter ones, else as
/// many as fit and `? all keys` (the full list) last.
fn draw_key_bar(f: &mut Frame, r: Rect, app: &App) {
    let w = r.width as usize;
    let items: Vec<&(&str, &str, &str, &str)> = KEY_BAR
        .iter()
        .filter(|(k, ..)| *k != "Tab" || app.tabs.len() > 1)
        .collect();
    let join = |tier: usize, sep: &str| -> String {
        let parts: Vec<String> = items
            .iter()
            .map(|&&(k, l, s, t)| {
                let label = [l, s, t][tier];
                if label.is_empty() {
                    k.to_string()
                } else {
                    format!("{k} {label}")
                }
            })
            .collect();
        format!(" {}", parts.join(sep))
    };
    let mut text = String::new();
    for (tier, sep) in [(0, "  "), (1, "  "), (1, " "), (2, " ")] {
        text = join(tier, sep);
        if text.chars().count() <= w {
            break;
        }
    }
    if text.chars().count() > w {
        // Keep the start and say where the rest is.
        let tail = " ? all keys";
        let mut t = String::from(" ");
        for (k, _, s, _) in &items {
            let part = format!("{k} {s} ");
            if t.len() + part.len() + tail.len() > w {
                break;
            }
            t.push_str(&part);
        }
        text = format!("{}{tail}", t.trim_end());
    }
    let bps = &app.debugger.breakpoints;
    let mut spans = vec![Span::styled(text.clone(), Style::default().fg(Color::Gray))];
    if !bps.is_empty() {
        let list: Vec<String> = bps.iter().map(|b| format!("{b:#x}")).collect();
        let extra = format!("  breakpoints: {}", list.join(" "));
        if text.len() + extra.len() <= w {
            spans.push(Span::styled(extra, Style::default().fg(Color::Red)));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), r);
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
    let r = centered(area, 90, 24);
    let inner = r.width.saturating_sub(2) as usize;
    let key_w = 9;
    let mut lines: Vec<String> = Vec::new();
    for (k, what) in KEYS {
        // Wrapped under the description, so narrow screens lose nothing.
        let mut first = true;
        for part in panes::wrap(what, inner.saturating_sub(key_w + 2).max(10)) {
            let key = if first { *k } else { "" };
            lines.push(format!(" {key:<key_w$} {part}"));
            first = false;
        }
    }
    lines.push(String::new());
    let note =
        "On KVM the CPU runs the guest: stepping and \"run to\" single-step it (one VM exit \
                per instruction) and see ring changes between steps. The CPU clears the trap flag \
                when it enters a handler, so a step across INT n or a fault runs on in the handler \
                up to its next VM exit; KVM never sees the exceptions the CPU delivers itself \
                (e is the interpreter's and the translator's).";
    for part in panes::wrap(note, inner.saturating_sub(1).max(10)) {
        lines.push(format!(" {part}"));
    }
    lines.push(" any key closes this list".into());
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = centered(area, 90, h);
    let lines = panes::clip(lines.into_iter().map(Line::raw).collect(), h as usize - 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        r,
    );
}

fn draw_prompt(f: &mut Frame, area: Rect, title: &str, text: &str) {
    let r = centered(area, 80, 3);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(fit(text, r.width.saturating_sub(2) as usize)).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_string()),
        ),
        r,
    );
}

#[cfg(test)]
mod tests;
