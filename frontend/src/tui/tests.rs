//! The layout of `ringlab step` drawn on a test terminal at several sizes.

use super::*;
use crate::session::{Options, Session};
use machine::loader::{self, LoadOptions};
use machine::{Machine, MachineConfig};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn app(kind: EngineKind) -> App {
    let l = lessons::find("rings")
        .and_then(lessons::Lesson::builtin)
        .expect("rings lesson");
    let mut m = Machine::new(MachineConfig::default()).expect("machine");
    let loaded = loader::load(&mut m.mem, l.image, &LoadOptions::default()).expect("load");
    let s = Session::new(m, kind, Options::default(), &loaded.entry).expect("session");
    App::new(Debugger::new(s), "lesson rings".into())
}

fn screen(app: &mut App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| draw(f, app)).expect("draw");
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect()
}

fn press(app: &mut App, c: char) {
    app.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
}

#[test]
fn every_size_keeps_the_header_status_and_key_bar() {
    let mut a = app(EngineKind::Interp);
    press(&mut a, 'r');
    press(&mut a, 'r');
    for (w, h) in [
        (80, 24),
        (100, 30),
        (120, 40),
        (160, 50),
        (220, 60),
        (60, 20),
        (50, 14),
    ] {
        let s = screen(&mut a, w, h);
        let all = s.join("\n");
        assert!(s[0].contains("RING 0 (kernel)"), "{w}x{h}:\n{all}");
        assert!(
            s[h as usize - 1].starts_with(" s step") && s[h as usize - 1].contains('?'),
            "{w}x{h}: no key bar on the last line:\n{all}"
        );
        assert!(
            all.contains("stopped after 6 instructions"),
            "{w}x{h}:\n{all}"
        );
        assert!(all.contains("=>00100104"), "{w}x{h}:\n{all}");
        // The stack has a column of its own from 80 columns; below,
        // it is the first tab of the one shared column.
        if w < 80 {
            a.tab = Pane::Stack;
        }
        let all = screen(&mut a, w, h).join("\n");
        if w < 80 {
            assert!(all.contains("┌ [stack] events console"), "{w}x{h}:\n{all}");
        }
        // In place where the pane is tall enough, else listed (and
        // on the smallest screens cut, saying so).
        assert!(
            h < 20
                || all.contains("INT 0x80 frame at 3768, ring 3->0")
                || all.contains("INT 0x80 at 3768 pushed, ring 3->0:"),
            "{w}x{h}:\n{all}"
        );
        if h >= 24 {
            assert!(all.contains("ESP>0008ffec 001000c8 EIP"), "{w}x{h}:\n{all}");
        }
    }
    // 80 columns and more: every key in the bar, quitting included.
    for (w, h) in [(80, 24), (120, 40)] {
        let s = screen(&mut a, w, h);
        assert!(
            s[h as usize - 1].contains("q quit"),
            "{w}x{h}: {}",
            s[h as usize - 1]
        );
    }
}

#[test]
fn too_small_a_terminal_says_so() {
    let mut a = app(EngineKind::Interp);
    let s = screen(&mut a, 36, 10).join("\n");
    assert!(s.contains("the terminal is 36x10: ringlab step…"), "{s}");
}

#[test]
fn panes_share_the_last_column_as_tabs_that_tab_cycles() {
    let mut a = app(EngineKind::Bt);
    let s = screen(&mut a, 80, 24).join("\n");
    // Stack has a column; events, console, segments and the host code
    // share the other, listed in its title by position.
    assert!(s.contains("┌ stack at SS:ESP"), "{s}");
    assert!(s.contains("[events] 1/4 Tab"), "{s}");
    a.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    assert_eq!(a.debugger.message, "showing the console pane");
    let s = screen(&mut a, 80, 24).join("\n");
    assert!(s.contains("[console] 2/4 Tab"), "{s}");
    // Wide enough, every pane has its place and Tab says so.
    screen(&mut a, 220, 60);
    a.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    assert_eq!(
        a.debugger.message,
        "every pane has its own place at this terminal size"
    );
}

#[test]
fn terminal_keys_become_ps2_key_events() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use machine::devices::ps2kbd::Key;
    let k = |code, m| guest_keys(KeyEvent::new(code, m));
    assert_eq!(
        k(KeyCode::Char('A'), KeyModifiers::SHIFT),
        vec![
            (Key::LeftShift, true),
            (Key::A, true),
            (Key::A, false),
            (Key::LeftShift, false)
        ]
    );
    assert_eq!(
        k(KeyCode::Char('c'), KeyModifiers::CONTROL),
        vec![
            (Key::LeftCtrl, true),
            (Key::C, true),
            (Key::C, false),
            (Key::LeftCtrl, false)
        ]
    );
    assert_eq!(
        k(KeyCode::F(5), KeyModifiers::NONE),
        vec![(Key::F5, true), (Key::F5, false)]
    );
    assert_eq!(
        k(KeyCode::Char('\\'), KeyModifiers::NONE),
        vec![(Key::Backslash, true), (Key::Backslash, false)]
    );
    assert!(k(KeyCode::CapsLock, KeyModifiers::NONE).is_empty());
}
