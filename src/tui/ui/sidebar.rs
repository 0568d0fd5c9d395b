//! The conversations sidebar: title, age and a local/cloud mix marker per conversation, with
//! the typed filter and the selection. Reads `App`; never changes it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::tui::app::App;
use crate::tui::keymap::Focus;
use crate::tui::msg::ConvRow;
use crate::tui::theme::{Role, Theme};

/// "3m", "5h", "2d": short enough for a narrow column.
pub fn age(now_ms: i64, then_s: i64) -> String {
    let secs = (now_ms / 1000 - then_s).max(0);
    match secs {
        s if s < 60 => "now".into(),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// ● all local, ○ all cloud, ◐ both, · nothing answered yet.
pub fn mix(c: &ConvRow) -> (&'static str, Role) {
    match (c.local_answers, c.cloud_answers) {
        (0, 0) => ("·", Role::Muted),
        (_, 0) => ("●", Role::LocalBadge),
        (0, _) => ("○", Role::CloudBadge),
        _ => ("◐", Role::Warning),
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let focused = app.focus == Focus::Sidebar;
    let title = if app.filter.is_empty() {
        " chats ".to_string()
    } else {
        format!(" /{} ", app.filter)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(if focused {
            Role::BorderFocus
        } else {
            Role::Border
        }))
        .title(Span::styled(title, theme.style(Role::Muted)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rows = app.visible_conversations();
    let height = inner.height as usize;
    // Keep the selection in view.
    let first = app.selected.saturating_sub(height.saturating_sub(1));
    let width = inner.width as usize;
    let mut lines = Vec::new();
    for (i, c) in rows.iter().enumerate().skip(first).take(height) {
        let (mark, mark_role) = mix(c);
        let age = age(app.now_ms, c.updated_at);
        let room = width.saturating_sub(age.chars().count() + 3);
        let mut title: String = c.title.chars().take(room).collect();
        let pad = room.saturating_sub(title.chars().count());
        title.push_str(&" ".repeat(pad));
        let selected = focused && i == app.selected;
        let current = app.current == Some(c.id);
        let text_role = if selected {
            Role::Selection
        } else if current {
            Role::Strong
        } else {
            Role::Text
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} "), theme.style(mark_role)),
            Span::styled(title, theme.style(text_role)),
            Span::styled(format!(" {age}"), theme.style(Role::Muted)),
        ]));
    }
    if rows.is_empty() {
        let msg = if app.filter.is_empty() {
            "no chats yet"
        } else {
            "no match"
        };
        lines.push(Line::from(Span::styled(msg, theme.style(Role::Muted))));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
