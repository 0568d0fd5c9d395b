//! The status bar (route mode and the chat's cloud model pick, privacy, online, local model
//! state, today's and this month's spend against the caps and what local answers saved, key
//! hints) and the banner line above everything (offline, pull progress). Reads
//! `App`; never changes it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::router::LocalState;
use crate::tui::app::App;
use crate::tui::keymap::Action;
use crate::tui::theme::{Role, Theme};

pub fn local_label(app: &App) -> String {
    match app.local {
        LocalState::Ready => format!("{} ready", app.local_name),
        LocalState::Loading => format!("{} loading", app.local_name),
        LocalState::Pulling => match app.pull_pct {
            Some(p) => format!("{} pulling {p:.0}%", app.local_name),
            None => format!("{} pulling", app.local_name),
        },
        LocalState::Missing => format!("{} missing", app.local_name),
        LocalState::Failed => format!("{} failed", app.local_name),
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let st = theme.style(Role::Status);
    let sep = Span::styled(" │ ", st.patch(theme.style(Role::Muted)));
    let online = if !app.cloud_configured {
        Span::styled("no cloud", st.patch(theme.style(Role::Muted)))
    } else if app.cloud_online {
        Span::styled("online", st)
    } else {
        Span::styled("offline", st.patch(theme.style(Role::Warning)))
    };
    let local_role = match app.local {
        LocalState::Ready => Role::LocalBadge,
        LocalState::Failed | LocalState::Missing => Role::Error,
        _ => Role::Warning,
    };
    // The chat's `/model` pick rides along with the route mode: both say where answers go.
    let mode = match &app.cloud_model {
        Some((_, m)) => format!(" {} · {m}", app.mode.as_str()),
        None => format!(" {}", app.mode.as_str()),
    };
    // A reached cap is a warning: prompts stay local until the day or the month turns.
    let spend_style = if app.spend.refusal().is_some() {
        st.patch(theme.style(Role::Warning))
    } else {
        st
    };
    let mut spans = vec![Span::styled(mode, st.patch(theme.style(Role::Strong)))];
    if app.private || app.privacy.is_private() {
        spans.push(Span::styled(
            " private",
            st.patch(theme.style(Role::Warning)),
        ));
    }
    spans.extend([
        sep.clone(),
        online,
        sep.clone(),
        Span::styled(local_label(app), st.patch(theme.style(local_role))),
        sep.clone(),
        Span::styled(app.spend.label(), spend_style),
    ]);
    let mut left_w: usize = spans.iter().map(|s| s.width()).sum();
    // A notice (a refusal, an error) matters more than the spend: when both do not fit, the
    // spend steps aside until the notice clears.
    if let Some(n) = &app.notice
        && left_w + 1 + n.chars().count() > area.width as usize
    {
        spans.truncate(spans.len() - 2);
        left_w = spans.iter().map(|s| s.width()).sum();
    }
    let right = match &app.notice {
        Some(n) => n.clone(),
        None => format!(
            "{} route · {} new · {} help ",
            app.keymap.key_for(Action::CycleRoute),
            app.keymap.key_for(Action::NewChat),
            app.keymap.key_for(Action::Help)
        ),
    };
    let room = (area.width as usize).saturating_sub(left_w + 1);
    let len = right.chars().count();
    let right = if len <= room {
        right
    } else if app.notice.is_some() && room > 1 {
        // A notice matters more than the layout: keep its start.
        let mut r: String = right.chars().take(room - 1).collect();
        r.push('…');
        r
    } else {
        // Key hints are a convenience; a narrow bar drops them rather than show half.
        String::new()
    };
    let pad = room.saturating_sub(right.chars().count());
    spans.push(Span::styled(" ".repeat(pad + 1), st));
    spans.push(Span::styled(right, st.patch(theme.style(Role::Muted))));
    f.render_widget(Paragraph::new(Line::from(spans)).style(st), area);
}

pub fn banner(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let text = if super::offline(app) {
        " offline: every cloud provider is unreachable; answers stay local".to_string()
    } else {
        format!(" fetching the local model: {}", local_label(app))
    };
    f.render_widget(Paragraph::new(text).style(theme.style(Role::Banner)), area);
}
