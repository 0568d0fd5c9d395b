//! Terminal setup and restore, and the driver loop. Until the full chat screen lands this
//! draws a placeholder, but setup, restore and the event loop are the real ones.

pub mod theme;

use std::io::stdout;

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Alignment;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::config::Config;
use theme::Role;

/// Puts the terminal back in cooked mode on the main screen. Safe to call twice, and from the
/// panic hook.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

pub fn run_placeholder(cfg: &Config) -> anyhow::Result<()> {
    let theme = theme::load(&cfg.theme, Some(&cfg.paths.themes_dir()))?;
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen)?;
    let result = (|| -> anyhow::Result<()> {
        let mut term = Terminal::new(CrosstermBackend::new(stdout()))?;
        loop {
            term.draw(|f| {
                let lines = vec![
                    Line::from(Span::styled("tandem", theme.style(Role::Heading))),
                    Line::from(""),
                    Line::from(Span::styled(
                        format!(
                            "route: {} · local model: {}",
                            cfg.route.as_str(),
                            cfg.local.model
                        ),
                        theme.style(Role::Muted),
                    )),
                    Line::from(""),
                    Line::from("The chat screen is not built yet. Try `tandem route \"...\"`."),
                    Line::from(Span::styled("q or Ctrl-C quits", theme.style(Role::Muted))),
                ];
                let block = Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.style(Role::Border));
                let p = Paragraph::new(lines)
                    .block(block)
                    .alignment(Alignment::Center)
                    .style(theme.style(Role::Text));
                f.render_widget(p, f.area());
            })?;
            // Blocks until input arrives: nothing is redrawn while nothing changes.
            if let Event::Key(k) = event::read()? {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if k.kind == KeyEventKind::Press && (k.code == KeyCode::Char('q') || ctrl_c) {
                    return Ok(());
                }
            }
        }
    })();
    restore_terminal();
    result
}
