//! Overlays drawn over the chat: help (generated from the live keymap, so overrides show)
//! and `/why` (the last decision's reasons and feature contributions). Reads `App` only.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::app::{App, Overlay};
use crate::tui::theme::{Role, Theme};

pub const COMMANDS: &[(&str, &str)] = &[
    ("/local /cloud /auto", "route mode"),
    ("/private", "keep this chat on this machine"),
    ("/why", "why the last answer went where it did"),
    ("/retry", "answer again on the other tier"),
    ("/model", "show the models"),
    ("/theme NAME", "switch theme (no name: next)"),
    ("/new /rename T /delete", "manage chats"),
    ("/help", "this help"),
];

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(r);
    r
}

pub fn draw(f: &mut Frame, o: Overlay, app: &App, theme: &Theme) {
    let key = theme.style(Role::Strong);
    let muted = theme.style(Role::Muted);
    let (title, lines) = match o {
        Overlay::Help => {
            let mut lines = vec![];
            let keys_list = app.keymap.describe();
            let w = keys_list
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0)
                + 2;
            for (keys, action) in keys_list {
                lines.push(Line::from(vec![
                    Span::styled(format!("{keys:<w$}"), key),
                    Span::styled(action.help(), theme.style(Role::Text)),
                ]));
            }
            // Commands go on as few lines as possible so the whole help fits in 24 rows.
            lines.push(Line::from(""));
            let cmds: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
            lines.push(Line::from(Span::styled(
                format!("commands: {}", cmds.join("  ")),
                key,
            )));
            (" keys and commands ", lines)
        }
        Overlay::Why => {
            let mut lines = vec![];
            if let Some(d) = &app.last_decision {
                lines.push(Line::from(vec![
                    Span::styled(format!("→ {}", d.target.as_str()), key),
                    Span::styled(
                        format!("  score {:.2} vs threshold {:.2}", d.score, d.threshold),
                        muted,
                    ),
                ]));
                for r in &d.reasons {
                    lines.push(Line::from(Span::styled(
                        format!("• {}", r.message),
                        theme.style(Role::Text),
                    )));
                }
                lines.push(Line::from(""));
                let mut contributions = d.contributions.clone();
                contributions.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                for (feat, v) in contributions.iter().filter(|(_, v)| *v != 0.0) {
                    lines.push(Line::from(Span::styled(
                        format!("  {feat:?}: {v:+.3}"),
                        muted,
                    )));
                }
            }
            (" why this route ", lines)
        }
    };
    let h = lines.len() as u16 + 4;
    let area = centered(f.area(), 76, h);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(Role::BorderFocus))
        .title(Span::styled(title, key))
        .title_bottom(Line::from(Span::styled(" any key closes ", muted)).right_aligned())
        .style(theme.style(Role::Text));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}
