//! A turn's events in the app: the route and its badge, the streamed text, a refusal (the
//! prompt goes back to the composer), a failure, the finished answer as the pipeline measured
//! and recorded it, an escalation's second answer, and the end of the turn. The pipeline did
//! the work; this only shows it. Pure, like the rest of `app`.

use crate::chat::Role;
use crate::router::Target;
use crate::sanitize::one_line;
use crate::tui::msg::{Effect, ReqId};
use crate::turn::{Badge, Seam, TurnEvent};

use super::{App, Entry};

pub(super) fn tick(app: &mut App, now: i64) -> Vec<Effect> {
    app.now_ms = now;
    app.spinner = app.spinner.wrapping_add(1);
    vec![]
}

fn current(app: &App, req: ReqId) -> bool {
    app.running.as_ref().is_some_and(|r| r.req == req)
}

/// The answer being written: the last entry, when it is an answer.
fn answer(app: &mut App) -> Option<&mut Entry> {
    app.entries.last_mut().filter(|e| e.role == Role::Assistant)
}

pub(super) fn event(app: &mut App, req: ReqId, ev: TurnEvent) -> Vec<Effect> {
    if !current(app, req) {
        return vec![];
    }
    let dark = app.dark;
    match ev {
        TurnEvent::Routed(d) => {
            // The chat's pick shows at once; `Started` then names the model that really answers.
            let model = match d.target {
                Target::Local => app.local_name.clone(),
                Target::Cloud => app
                    .cloud_model
                    .as_ref()
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default(),
            };
            if let Some(e) = answer(app) {
                e.badge = Some(Badge::routed(d.target, model));
            }
            app.last_decision = Some(d);
        }
        TurnEvent::Refused(why) => return refused(app, why.to_string()),
        TurnEvent::Opened {
            conversation,
            title,
            privacy,
        } => {
            let new = conversation.is_some() && app.current != conversation;
            app.current = conversation.or(app.current);
            app.title = one_line(&title);
            app.privacy = privacy;
            if new {
                return vec![Effect::RefreshConversations];
            }
        }
        TurnEvent::Started { tier, model, .. } => {
            if let Some(b) = answer(app).and_then(|e| e.badge.as_mut()) {
                (b.tier, b.model) = (tier, model);
            }
        }
        TurnEvent::Delta(d) => {
            if let Some(e) = answer(app) {
                e.push_stream(&d, dark);
            }
        }
        TurnEvent::Failed(err) => {
            if let Some(e) = answer(app) {
                e.error = Some(one_line(&err.to_string()));
            }
        }
        TurnEvent::Answered(a) => {
            if let Some(e) = answer(app) {
                // A failure before any text is an error, not an interrupted answer.
                e.interrupted = a.interrupted && !(e.text.is_empty() && e.error.is_some());
                e.badge = Some(a.badge);
                e.finish(dark);
            }
        }
        TurnEvent::Escalated(esc) => {
            app.notice = Some(format!("escalated to the cloud: {}", esc.message));
            let mut e = Entry::new(Role::Assistant, String::new(), dark);
            e.seam = Some(Seam::Escalated(one_line(&esc.message)));
            app.entries.push(e);
            app.scroll = 0;
        }
        TurnEvent::Trimmed(t) => {
            // The cut sits above the first prompt still sent; the last prompt is this turn's.
            let prompts: Vec<usize> = (0..app.entries.len())
                .filter(|&i| app.entries[i].role == Role::User)
                .collect();
            if let Some(&i) = prompts.get(t.dropped_turns)
                && app.entries[i].seam.is_none()
            {
                app.entries[i].seam = Some(Seam::Cut(t.words()));
            }
            app.notice = Some(one_line(&t.words()));
        }
        TurnEvent::Notice(n) => app.notice = Some(one_line(&n)),
        TurnEvent::Done(done) => {
            app.spend = done.spend;
            if let Some(r) = &mut app.running {
                r.done = true;
            }
            return vec![Effect::RefreshConversations];
        }
    }
    vec![]
}

/// The running turn's attachments were read: one line each above its prompt.
pub(super) fn attached(app: &mut App, req: ReqId, lines: Vec<String>) {
    if !current(app, req) {
        return;
    }
    let dark = app.dark;
    if let Some(e) = app.entries.iter_mut().rev().find(|e| e.role == Role::User) {
        let above: String = lines
            .iter()
            .map(|l| format!("+ {}\n", one_line(l)))
            .collect();
        // A blank line ends the list, so the prompt is not read as part of its last item.
        *e = Entry::new(Role::User, format!("{above}\n{}", e.text), dark);
    }
}

/// Nothing was sent: the empty answer goes, a new prompt goes back to the composer (it was not
/// stored), and the notice says why and how to lift it.
fn refused(app: &mut App, why: String) -> Vec<Effect> {
    if answer(app).is_some_and(|e| e.text.is_empty()) {
        app.entries.pop();
    }
    let prompt = app.running.as_ref().and_then(|r| r.prompt.clone());
    if let Some(p) = prompt
        && app.entries.last().is_some_and(|e| e.role == Role::User)
    {
        app.entries.pop();
        if app.composer.text.is_empty() {
            app.composer.cursor = p.len();
            app.composer.text = p;
        }
    }
    app.notice = Some(why);
    vec![]
}

pub(super) fn cancel(app: &mut App) -> Vec<Effect> {
    if app.overlay.take().is_some() {
        return vec![];
    }
    match &mut app.running {
        Some(r) if !r.cancelled => {
            r.cancelled = true;
            app.notice = Some("stopping…".into());
            vec![Effect::Cancel]
        }
        _ => vec![],
    }
}

/// The turn's stream closed. Without a `Done` first, its task died: the answer is shown as cut
/// off with an error, and the app stops waiting, so it can always be quit.
pub(super) fn ended(app: &mut App, req: ReqId) -> Vec<Effect> {
    if !current(app, req) {
        return vec![];
    }
    let Some(r) = app.running.take() else {
        return vec![];
    };
    let dark = app.dark;
    if !r.done
        && let Some(e) = answer(app)
    {
        e.error = Some("the answer stopped unexpectedly (details in the log)".into());
        e.interrupted = !e.text.is_empty();
        e.finish(dark);
    }
    if r.cancelled {
        app.notice = None;
    }
    if app.quitting {
        return vec![Effect::Quit];
    }
    if r.done {
        vec![]
    } else {
        vec![Effect::RefreshConversations]
    }
}
