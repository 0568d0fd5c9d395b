//! What a key does: the pane-specific keys (sidebar filter, transcript counts, composer
//! editing) and every keymap `Action`. Pure, like the rest of `app`.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::chat::Role;
use crate::config::RouteMode;
use crate::tui::keymap::{Action, Focus};
use crate::tui::markdown;
use crate::tui::msg::Effect;

use super::{App, Composer, Overlay, commands, stream};

pub(super) fn key(app: &mut App, k: KeyEvent) -> Vec<Effect> {
    if k.kind == KeyEventKind::Release {
        return vec![];
    }
    app.notice = None;
    if let Some(overlay) = app.overlay {
        let action = app.keymap.action(app.focus, &k);
        if action == Some(Action::Quit) {
            return act(app, Action::Quit);
        }
        // Any key closes an overlay; it never leaks into the composer.
        app.overlay = None;
        if let Overlay::ConfirmDelete(conv) = overlay {
            let yes = matches!(k.code, KeyCode::Char('y' | 'Y'))
                && !k
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            return commands::confirm_delete(app, conv, yes);
        }
        return vec![];
    }
    if app.focus == Focus::Sidebar && !k.modifiers.contains(KeyModifiers::CONTROL) {
        let rows = app.visible_conversations().len();
        match k.code {
            KeyCode::Up => app.selected = app.selected.saturating_sub(1),
            KeyCode::Down => app.selected = (app.selected + 1).min(rows.saturating_sub(1)),
            KeyCode::Enter => {
                return match app.visible_conversations().get(app.selected) {
                    Some(c) if app.running.is_none() => vec![Effect::LoadConversation(c.id)],
                    Some(_) => {
                        app.notice = Some("an answer is running; Esc stops it".into());
                        vec![]
                    }
                    None => vec![],
                };
            }
            KeyCode::Backspace => {
                app.filter.pop();
                app.selected = 0;
            }
            KeyCode::Char(c) => {
                app.filter.push(c);
                app.selected = 0;
            }
            _ => {
                return app
                    .keymap
                    .action(app.focus, &k)
                    .map(|a| act(app, a))
                    .unwrap_or_default();
            }
        }
        return vec![];
    }
    if app.focus == Focus::Transcript
        && let KeyCode::Char(d @ '0'..='9') = k.code
        && k.modifiers.is_empty()
    {
        app.count = Some(app.count.unwrap_or(0) * 10 + d.to_digit(10).unwrap_or(0) as usize);
        return vec![];
    }
    match app.keymap.action(app.focus, &k) {
        Some(a) => act(app, a),
        None if app.focus == Focus::Composer => {
            edit(app, k);
            vec![]
        }
        None => vec![],
    }
}

/// Performs one action; the heart of the key tests.
pub fn act(app: &mut App, action: Action) -> Vec<Effect> {
    let count = app.count.take();
    match action {
        Action::Send => commands::send(app),
        Action::Newline => {
            insert(&mut app.composer, "\n");
            vec![]
        }
        Action::Cancel => stream::cancel(app),
        Action::Interrupt => {
            // A second Ctrl-C while the answer is still stopping quits anyway: the screen is
            // never held hostage by a turn that does not end.
            if app.running.as_ref().is_some_and(|r| r.cancelled) {
                vec![Effect::Quit]
            } else if app.running.is_some() {
                stream::cancel(app)
            } else if !app.composer.text.is_empty() {
                app.composer = Composer::default();
                vec![]
            } else {
                vec![Effect::Quit]
            }
        }
        Action::Quit => {
            if app.running.is_some() && !app.quitting {
                app.quitting = true;
                stream::cancel(app)
            } else {
                vec![Effect::Quit]
            }
        }
        Action::NewChat => {
            if app.running.is_some() {
                app.notice = Some("an answer is running; Esc stops it".into());
            } else {
                app.new_chat();
                app.notice = Some("new chat".into());
            }
            vec![]
        }
        Action::CycleRoute => {
            app.mode = match app.mode {
                RouteMode::Auto => RouteMode::Local,
                RouteMode::Local => RouteMode::Cloud,
                RouteMode::Cloud => RouteMode::Auto,
            };
            app.notice = Some(format!("route: {}", app.mode.as_str()));
            vec![]
        }
        Action::Editor => vec![Effect::OpenEditor(app.composer.text.clone())],
        Action::CopyCode => {
            let blocks: Vec<String> = app
                .entries
                .iter()
                .filter(|e| e.role == Role::Assistant)
                .flat_map(|e| markdown::code_blocks(&e.text))
                .collect();
            let pick = match count {
                Some(n) if n >= 1 => blocks.get(n - 1),
                _ => blocks.last(),
            };
            match pick {
                Some(code) => {
                    app.notice = Some(format!("copied {} lines of code", code.lines().count()));
                    vec![Effect::Copy(code.clone())]
                }
                None => {
                    app.notice = Some("no code block to copy".into());
                    vec![]
                }
            }
        }
        Action::PageUp => scroll_by(app, app.page() as isize),
        Action::PageDown => scroll_by(app, -(app.page() as isize)),
        Action::ScrollUp => scroll_by(app, 1),
        Action::ScrollDown => scroll_by(app, -1),
        Action::Top => scroll_by(app, isize::MAX),
        Action::Bottom => {
            app.scroll = 0;
            vec![]
        }
        Action::FocusNext => {
            // Tab after an `@path` word in the composer completes the path instead.
            if app.focus == Focus::Composer
                && let Some(prefix) = super::role::at_word(&app.composer)
            {
                return vec![Effect::CompletePath(prefix)];
            }
            app.focus = match app.focus {
                Focus::Composer => Focus::Transcript,
                Focus::Transcript if app.sidebar_visible => Focus::Sidebar,
                Focus::Transcript | Focus::Sidebar => Focus::Composer,
            };
            vec![]
        }
        Action::ToggleSidebar => {
            app.sidebar_visible = !app.sidebar_visible;
            if !app.sidebar_visible && app.focus == Focus::Sidebar {
                app.focus = Focus::Composer;
            }
            vec![]
        }
        Action::Help => {
            app.overlay = Some(Overlay::Help);
            vec![]
        }
    }
}

fn scroll_by(app: &mut App, delta: isize) -> Vec<Effect> {
    let max = crate::tui::ui::transcript::max_scroll(app);
    app.scroll = (app.scroll as isize)
        .saturating_add(delta)
        .clamp(0, max as isize) as usize;
    vec![]
}

pub(super) fn insert(c: &mut Composer, s: &str) {
    c.text.insert_str(c.cursor, s);
    c.cursor += s.len();
}

/// Plain typing in the composer.
fn edit(app: &mut App, k: KeyEvent) {
    let c = &mut app.composer;
    let prev = c.text[..c.cursor]
        .char_indices()
        .next_back()
        .map(|(i, _)| i);
    let next = c.text[c.cursor..]
        .chars()
        .next()
        .map(|ch| c.cursor + ch.len_utf8());
    match k.code {
        KeyCode::Char(ch)
            if !k
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
        {
            insert(c, ch.encode_utf8(&mut [0; 4]))
        }
        KeyCode::Backspace => {
            if let Some(p) = prev {
                c.text.replace_range(p..c.cursor, "");
                c.cursor = p;
            }
        }
        KeyCode::Delete => {
            if let Some(n) = next {
                c.text.replace_range(c.cursor..n, "");
            }
        }
        KeyCode::Left => c.cursor = prev.unwrap_or(c.cursor),
        KeyCode::Right => c.cursor = next.unwrap_or(c.cursor),
        KeyCode::Home => c.cursor = c.text[..c.cursor].rfind('\n').map(|i| i + 1).unwrap_or(0),
        KeyCode::End => {
            c.cursor += c.text[c.cursor..]
                .find('\n')
                .unwrap_or(c.text.len() - c.cursor)
        }
        // Without mouse capture many terminals turn the wheel into arrows: scroll with them.
        KeyCode::Up => {
            scroll_by(app, 1);
        }
        KeyCode::Down => {
            scroll_by(app, -1);
        }
        _ => {}
    }
}
