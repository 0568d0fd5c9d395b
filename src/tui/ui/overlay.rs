//! Overlays drawn over the chat: help (generated from the live keymap, so overrides show),
//! `/why` (the last decision's reasons and feature contributions), `/model` (the models, the
//! ones in use marked) and `/delete`'s question. Reads `App` only.

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
    ("/model [NAME]", "show the models, or pick one"),
    (
        "/role [NAME]",
        "answer as a role (no name: list; off: none)",
    ),
    ("@path", "attach a file or directory to the prompt"),
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
    let mut hint = " any key closes ";
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
        Overlay::Models => (" models ", models(app, theme)),
        Overlay::ConfirmDelete(_) => {
            hint = " y deletes · any other key keeps it ";
            let n = app.entries.len();
            let lines = vec![
                Line::from(Span::styled(
                    format!(
                        "Delete “{}” and its {n} message{}?",
                        app.title,
                        if n == 1 { "" } else { "s" }
                    ),
                    key,
                )),
                Line::from(Span::styled(
                    "It leaves the history for good.",
                    theme.style(Role::Text),
                )),
            ];
            (" delete this chat ", lines)
        }
    };
    let h = lines.len() as u16 + 4;
    let area = centered(f.area(), 76, h);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(Role::BorderFocus))
        .title(Span::styled(title, key))
        .title_bottom(Line::from(Span::styled(hint, muted)).right_aligned())
        .style(theme.style(Role::Text));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The `/model` list: the local models (one engine for every chat) and the cloud models (this
/// chat's pick first when the answer goes to the cloud), the ones in use marked with ●.
fn models<'a>(app: &'a App, theme: &Theme) -> Vec<Line<'a>> {
    let key = theme.style(Role::Strong);
    let text = theme.style(Role::Text);
    let muted = theme.style(Role::Muted);
    let mark = |on: bool| if on { "● " } else { "  " };
    let mut lines = vec![Line::from(Span::styled(
        "local — one model for every chat",
        key,
    ))];
    let mut local: Vec<(&str, Option<bool>)> = app
        .local_models
        .iter()
        .map(|m| (m.name.as_str(), Some(m.installed)))
        .collect();
    if !local.iter().any(|(n, _)| *n == app.local_name) {
        local.insert(0, (app.local_name.as_str(), None));
    }
    let w = local
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    for (name, installed) in local {
        let current = name == app.local_name;
        let state = if current {
            crate::tui::ui::status::local_label(app)
                .trim_start_matches(name)
                .trim()
                .to_string()
        } else {
            match installed {
                Some(true) => "installed".into(),
                _ => "not installed".into(),
            }
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {}{name:<w$}", mark(current)), text),
            Span::styled(state, muted),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "cloud — this chat's answers in the cloud",
        key,
    )));
    if app.prices.cloud.is_empty() {
        lines.push(Line::from(Span::styled(
            "  none configured: add a [providers.NAME] with models to the config",
            muted,
        )));
    }
    let names: Vec<String> = app
        .prices
        .cloud
        .iter()
        .map(|(p, m, ..)| format!("{p}/{m}"))
        .collect();
    let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) + 2;
    for (i, ((p, m, input, output), name)) in app.prices.cloud.iter().zip(&names).enumerate() {
        let picked = match &app.cloud_model {
            Some((pp, pm)) => pp == p && pm == m,
            None => i == 0,
        };
        let note = if picked && app.cloud_model.is_none() {
            " · tried first"
        } else {
            ""
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {}{name:<w$}", mark(picked)), text),
            Span::styled(
                format!("${input:.2} in, ${output:.2} out per Mtok{note}"),
                muted,
            ),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "/model NAME picks one (a cloud model as NAME or provider/NAME)",
        muted,
    )));
    lines
}
