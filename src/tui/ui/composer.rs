//! The composer: the multi-line prompt with its cursor. Reads `App`; never changes it.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthStr;

use crate::tui::app::App;
use crate::tui::keymap::Focus;
use crate::tui::theme::{Role, Theme};

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let focused = app.focus == Focus::Composer;
    let hint = if app.running.is_some() {
        " Esc stops "
    } else {
        " Enter sends · Alt-Enter newline "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(if focused {
            Role::BorderFocus
        } else {
            Role::Border
        }))
        .title(Span::styled(" › ", theme.style(Role::User)))
        .title_bottom(Line::from(Span::styled(hint, theme.style(Role::Muted))).right_aligned());
    let inner = block.inner(area);
    f.render_widget(block, area);
    let c = &app.composer;
    let before = &c.text[..c.cursor];
    let cur_line = before.matches('\n').count();
    let cur_col = before.rsplit('\n').next().unwrap_or("").width();
    let height = inner.height as usize;
    // Keep the cursor's line in view when the prompt is taller than the box.
    let first = (cur_line + 1).saturating_sub(height);
    let width = inner.width as usize;
    let hscroll = (cur_col + 1).saturating_sub(width);
    let lines: Vec<Line> = c
        .text
        .split('\n')
        .skip(first)
        .take(height)
        .map(|l| {
            Line::from(Span::styled(
                l.chars().skip(hscroll).collect::<String>(),
                theme.style(Role::Text),
            ))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
    if focused && app.overlay.is_none() {
        f.set_cursor_position(Position::new(
            inner.x + (cur_col - hscroll) as u16,
            inner.y + (cur_line - first) as u16,
        ));
    }
}
