//! The transcript pane: messages with their route badges, seams and interrupted markers,
//! wrapped to the pane's current width on every draw (so a resize mid-stream re-wraps), and
//! scrolled from the bottom. Builds only as many rows as the view needs.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar;

use crate::chat::Role as ChatRole;
use crate::router::Target;
use crate::tui::app::{App, Entry};
use crate::tui::keymap::Focus;
use crate::tui::markdown::{self, MdLine, MdSpan};
use crate::tui::theme::{Role, Theme};

/// A span's look, resolved against the theme only at the very end.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tag {
    role: Role,
    fg: Option<Color>,
    add: Modifier,
}

type Row = Vec<(String, Tag)>;

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

fn tag(role: Role) -> Tag {
    Tag {
        role,
        fg: None,
        add: Modifier::empty(),
    }
}

/// The text width inside the pane's borders.
fn inner_width(app: &App) -> u16 {
    let a = super::areas(app, Rect::new(0, 0, app.size.0, app.size.1));
    a.transcript.width.saturating_sub(2).max(1)
}

/// How far up the transcript can scroll, for the current size.
pub fn max_scroll(app: &App) -> usize {
    let a = super::areas(app, Rect::new(0, 0, app.size.0, app.size.1));
    let width = inner_width(app);
    let total: usize = (0..app.entries.len())
        .map(|i| entry_rows(app, i, width).len())
        .sum();
    total.saturating_sub(a.transcript.height.saturating_sub(2) as usize)
}

/// The rows of one message: header (who, badge), body, markers, and a blank line after.
fn entry_rows(app: &App, i: usize, width: u16) -> Vec<Row> {
    let e: &Entry = &app.entries[i];
    let streaming =
        app.running.is_some() && i + 1 == app.entries.len() && e.role == ChatRole::Assistant;
    let mut rows: Vec<Row> = Vec::new();
    let mut header: Vec<MdLine> = Vec::new();
    if let Some(seam) = &e.seam {
        header.push(MdLine::plain(format!("╌╌ {} ╌╌", seam.words()), Role::Seam));
    }
    let head = match e.role {
        ChatRole::User => MdLine::plain("you", Role::User),
        ChatRole::System => MdLine::plain("system", Role::Muted),
        ChatRole::Assistant => {
            let spin = if streaming {
                format!("{} ", SPINNER[app.spinner % SPINNER.len()])
            } else {
                String::new()
            };
            match &e.badge {
                Some(b) => {
                    let role = match b.tier {
                        Target::Local => Role::LocalBadge,
                        Target::Cloud => Role::CloudBadge,
                    };
                    // Timing and cost are only known once the answer ends.
                    let label = if streaming {
                        b.streaming_label()
                    } else {
                        b.label()
                    };
                    MdLine::plain(format!("{spin}{label}"), role)
                }
                None if streaming => MdLine::plain(format!("{spin}routing…"), Role::Muted),
                None => MdLine::plain("assistant", Role::Muted),
            }
        }
    };
    header.push(head);
    for l in &header {
        rows.extend(wrap(&l.spans, width));
    }
    for l in &e.lines {
        rows.extend(wrap(&l.spans, width));
    }
    // Only a streaming answer has a tail past its closed blocks.
    if e.stable < e.text.len() {
        let tail = markdown::render(&e.text[e.stable..], app.dark);
        if !e.lines.is_empty() && !tail.is_empty() {
            rows.extend(wrap(&[], width));
        }
        for l in &tail {
            rows.extend(wrap(&l.spans, width));
        }
    }
    if e.interrupted {
        rows.push(vec![("⏸ interrupted".into(), tag(Role::Warning))]);
    }
    if let Some(err) = &e.error {
        rows.extend(wrap(
            &MdLine::plain(format!("error: {err}"), Role::Error).spans,
            width,
        ));
    }
    rows.push(vec![]);
    rows
}

/// Greedy word wrap of styled spans to `width` columns; long words break anywhere.
fn wrap(spans: &[MdSpan], width: u16) -> Vec<Row> {
    let width = width.max(1) as usize;
    let chars: Vec<(char, usize)> = spans
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.text.chars().map(move |c| (c, i)))
        .collect();
    let mut rows = Vec::new();
    let (mut start, mut col, mut last_space) = (0usize, 0usize, None::<usize>);
    let mut i = 0;
    while i < chars.len() {
        let w = chars[i].0.width().unwrap_or(0);
        if col + w > width && i > start {
            let end = match last_space {
                Some(s) if s > start => s + 1,
                _ => i,
            };
            rows.push(row(spans, &chars[start..end]));
            start = end;
            col = chars[start..i]
                .iter()
                .map(|(c, _)| c.width().unwrap_or(0))
                .sum();
            last_space = None;
            continue;
        }
        if chars[i].0 == ' ' {
            last_space = Some(i);
        }
        col += w;
        i += 1;
    }
    if start < chars.len() || rows.is_empty() {
        rows.push(row(spans, &chars[start..]));
    }
    rows
}

fn row(spans: &[MdSpan], chars: &[(char, usize)]) -> Row {
    let mut out: Row = Vec::new();
    for &(c, i) in chars {
        let s = &spans[i];
        let t = Tag {
            role: s.role,
            fg: s.fg,
            add: s.add,
        };
        match out.last_mut() {
            Some((text, last)) if *last == t => text.push(c),
            _ => out.push((c.to_string(), t)),
        }
    }
    out
}

fn style(theme: &Theme, t: Tag) -> Style {
    let mut s = theme.style(t.role).add_modifier(t.add);
    if let Some(fg) = t.fg.filter(|_| theme.has_colour()) {
        s = s.fg(fg);
    }
    s
}

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let border = if app.focus == Focus::Transcript {
        Role::BorderFocus
    } else {
        Role::Border
    };
    let title = if app.private || app.privacy.is_private() {
        format!(" {} · private ", app.title)
    } else {
        format!(" {} ", app.title)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(border))
        .title(Span::styled(title, theme.style(Role::Muted)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    if app.entries.is_empty() {
        let hint = vec![
            Line::from(Span::styled(
                "Ask anything. Enter sends, Alt-Enter adds a line.",
                theme.style(Role::Muted),
            )),
            Line::from(Span::styled(
                format!(
                    "{} shows every key; /help lists commands.",
                    app.keymap.key_for(crate::tui::keymap::Action::Help)
                ),
                theme.style(Role::Muted),
            )),
        ];
        f.render_widget(Paragraph::new(hint), inner);
        return;
    }
    // Build from the newest message up, only as far as the view (plus the scroll) reaches.
    let need = height + app.scroll;
    let mut rows: Vec<Row> = Vec::new();
    for i in (0..app.entries.len()).rev() {
        let mut r = entry_rows(app, i, inner.width);
        r.append(&mut rows);
        rows = r;
        if rows.len() >= need {
            break;
        }
    }
    let end = rows.len().saturating_sub(
        app.scroll
            .min(rows.len().saturating_sub(height.min(rows.len()))),
    );
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = rows[start..end]
        .iter()
        .map(|r| {
            Line::from(
                r.iter()
                    .map(|(t, g)| Span::styled(t.clone(), style(theme, *g)))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}
