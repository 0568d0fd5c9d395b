//! The chat screen's entry point: terminal setup and restore around the driver. The state
//! machine is `app`, drawing is `ui`, the event loop and effects are `driver`.

pub mod app;
mod background;
mod driver;
mod effects;
pub mod keymap;
pub mod markdown;
pub mod msg;
pub mod theme;
pub mod ui;

use std::io::stdout;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use crate::config::Config;

/// Whether the chat screen has the terminal (raw mode, alternate screen). The terminal is one
/// per process, so this is process-wide: the panic hook must not write the alternate-screen
/// exit into one-shot mode's stdout.
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back in cooked mode on the main screen, if the chat screen had it. Safe
/// to call twice, and from the panic hook.
pub fn restore_terminal() {
    if !TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(
        stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Raw mode on the alternate screen, with bracketed paste so a pasted prompt is text, not keys.
pub(crate) fn enter_terminal() -> std::io::Result<()> {
    TERMINAL_TAKEN.store(true, Ordering::SeqCst);
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste)
}

/// Runs the chat screen until the user quits (or SIGTERM/SIGHUP). The terminal is restored on
/// every way out; the panic hook in main.rs covers panics that end the process.
pub fn run(cfg: &Config) -> anyhow::Result<()> {
    // Parse at the boundary: a bad `[keys]` entry or theme fails before the screen changes.
    let keymap = keymap::Keymap::from_config(&cfg.keys)?;
    let theme = theme::load(&cfg.theme, Some(&cfg.paths.themes_dir()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    enter_terminal()?;
    let result = rt.block_on(driver::run(cfg, keymap, theme));
    restore_terminal();
    // Background work (a download, the engine) must not keep the process alive after quitting.
    rt.shutdown_background();
    result
}
