//! Drawing: the layout of the chat screen and `draw(&App, &Theme)`, which only reads state.
//! Each pane lives in its own file under `ui/`.

pub mod composer;
pub mod overlay;
pub mod sidebar;
pub mod status;
pub mod transcript;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Block;

use crate::tui::app::App;
use crate::tui::theme::{Role, Theme};

/// Where each pane goes for a given screen size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub banner: Option<Rect>,
    pub sidebar: Option<Rect>,
    pub transcript: Rect,
    pub composer: Rect,
    pub status: Rect,
}

pub const SIDEBAR_WIDTH: u16 = 28;

/// Whether the offline banner shows: cloud providers exist and every one is unusable.
pub fn offline(app: &App) -> bool {
    app.cloud_configured && !app.cloud_online
}

pub fn areas(app: &App, area: Rect) -> Areas {
    let composer_lines = app.composer.text.split('\n').count().clamp(1, 6) as u16;
    let banner_h = u16::from(
        offline(app) || app.pull_pct.is_some() && app.local == crate::router::LocalState::Pulling,
    );
    let [banner, main, composer, status] = Layout::vertical([
        Constraint::Length(banner_h),
        Constraint::Min(3),
        Constraint::Length(composer_lines + 2),
        Constraint::Length(1),
    ])
    .areas(area);
    // A narrow terminal gives all its width to the conversation.
    let show_sidebar = app.sidebar_visible && area.width >= 60;
    let (sidebar, transcript) = if show_sidebar {
        let [s, t] = Layout::horizontal([Constraint::Length(SIDEBAR_WIDTH), Constraint::Min(20)])
            .areas(main);
        (Some(s), t)
    } else {
        (None, main)
    };
    Areas {
        banner: (banner_h > 0).then_some(banner),
        sidebar,
        transcript,
        composer,
        status,
    }
}

pub fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let a = areas(app, f.area());
    f.render_widget(Block::default().style(theme.style(Role::Text)), f.area());
    if let Some(b) = a.banner {
        status::banner(f, b, app, theme);
    }
    if let Some(s) = a.sidebar {
        sidebar::draw(f, s, app, theme);
    }
    transcript::draw(f, a.transcript, app, theme);
    composer::draw(f, a.composer, app, theme);
    status::draw(f, a.status, app, theme);
    if let Some(o) = app.overlay {
        overlay::draw(f, o, app, theme);
    }
}
