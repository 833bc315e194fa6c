//! `ringlab step`: load a guest and hand it to the terminal UI.

use crate::debugger::Debugger;
use crate::engines::EngineKind;
use crate::run::{parse_u32, prepare, GuestArgs};
use crate::session::{Options, Session};
use crate::status::{self, Status};
use crate::tui::{self, App};
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The engine to start on (w in the UI moves the machine to another).
    #[arg(long, value_enum, default_value = "interp")]
    pub engine: EngineKind,
    /// A breakpoint at this linear address (repeatable); decimal or 0x hex.
    #[arg(long = "break", value_name = "ADDR", value_parser = parse_u32)]
    pub breakpoints: Vec<u32>,
    /// Trap-and-emulate mode of the interpreter (see `ringlab run --help`).
    #[arg(long)]
    pub deprivilege: bool,
    /// The VGA screen: the UI always shows it as text in its console pane
    /// (`term`, the default; `none` is the same here); `window` also opens
    /// a window with it.
    // The values' own descriptions are `ringlab run`'s (where `none` is
    // the default), so they are not listed here.
    #[arg(long, value_enum, default_value = "term", hide_possible_values = true)]
    pub vga: crate::vga::VgaMode,
    /// Also listen for gdb on [HOST:]PORT (default 127.0.0.1:1234): when
    /// gdb connects it drives the guest and the UI follows it (the rings,
    /// the stack, the events as gdb stops and steps); when gdb detaches the
    /// keys drive it again. q quits ringlab (while gdb is attached, once
    /// gdb has the guest running or stopped again).
    #[arg(long, value_name = "[HOST:]PORT", num_args = 0..=1,
          default_missing_value = crate::gdb::DEFAULT_ADDR,
          value_parser = crate::gdb::parse_addr)]
    pub gdb: Option<std::net::SocketAddr>,
}

pub fn step(args: &StepArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(status::error(
            status::USAGE,
            "ringlab step is interactive and needs a terminal (stdin and stdout); \
             `ringlab run --trace FILE` records the same events without one",
        ));
    }
    if args.deprivilege && args.engine != EngineKind::Interp {
        return Err(status::error(
            status::USAGE,
            "--deprivilege is a mode of the interpreter (--engine interp)",
        ));
    }
    let (m, loaded) = prepare(&args.guest)?;
    let options = Options::deprivileged(args.deprivilege);
    let session = Session::new(m, args.engine, options, &loaded.entry)
        .with_context(|| format!("--engine {}", args.engine.name()))
        .status(status::ENGINE_ERROR)?;
    // `x` in the UI builds the machine again the same way.
    let guest = args.guest.clone();
    let reload = Box::new(move || prepare(&guest).map(|(m, loaded)| (m, loaded.entry)));
    let mut debugger = Debugger::with_reload(session, reload);
    debugger.breakpoints = args.breakpoints.clone();
    let mut app = App::new(debugger, args.guest.name());
    if let Some(addr) = args.gdb {
        let server = crate::gdb::Server::bind(addr).status(status::USAGE)?;
        app.debugger.message = format!(
            "gdb may connect on {} (in gdb: target remote {})",
            server.addr(),
            server.addr()
        );
        app.gdb = Some(server);
    }
    if args.vga == crate::vga::VgaMode::Window {
        let w = crate::vga::VgaWindow::open(&format!("ringlab step: {}", args.guest.name()))
            .status(status::ENGINE_ERROR)?;
        app.window = Some(w);
    }
    tui::run(&mut app)
        .context("terminal")
        .status(status::ENGINE_ERROR)?;
    Ok(0)
}
