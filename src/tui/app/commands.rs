//! Sending the composer: a prompt starts an answer; a `/command` is parsed once into `Command`
//! and applied here. Pure, like the rest of `app`.

use crate::chat::Role;
use crate::config::RouteMode;
use crate::session::ConversationId;
use crate::tui::msg::Effect;
use crate::turn::{Ask, Privacy, Refusal, RouteRequest, Thread, TurnRequest};

use super::{App, Composer, Entry, Overlay, Running, Seam, model, other, role};

/// A slash command, parsed from the composer.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Route(RouteMode),
    Private,
    Why,
    Retry,
    /// `/model` lists the models; `/model NAME` picks one.
    Model(Option<String>),
    /// `/role` lists the roles; `/role NAME` picks one; `/role off` drops it.
    Role(Option<String>),
    Theme(Option<String>),
    New,
    Rename(String),
    Delete,
    Help,
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim().trim_start_matches('/');
        let (name, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let arg = arg.trim();
        Ok(match name {
            "local" => Command::Route(RouteMode::Local),
            "cloud" => Command::Route(RouteMode::Cloud),
            "auto" => Command::Route(RouteMode::Auto),
            "private" => Command::Private,
            "why" => Command::Why,
            "retry" => Command::Retry,
            "model" => Command::Model(Some(arg.to_string()).filter(|a| !a.is_empty())),
            "role" => Command::Role(Some(arg.to_string()).filter(|a| !a.is_empty())),
            "theme" => Command::Theme(Some(arg.to_string()).filter(|a| !a.is_empty())),
            "new" => Command::New,
            "rename" if !arg.is_empty() => Command::Rename(arg.to_string()),
            "rename" => return Err("/rename needs a title: /rename My title".into()),
            "delete" => Command::Delete,
            "help" => Command::Help,
            other => {
                return Err(format!("unknown command /{other}; try /help for the list"));
            }
        })
    }
}

pub(super) fn send(app: &mut App) -> Vec<Effect> {
    let text = app.composer.text.trim().to_string();
    if text.is_empty() {
        return vec![];
    }
    if text.starts_with('/') && !text.starts_with("//") {
        app.composer = Composer::default();
        return match Command::parse(&text) {
            Ok(c) => command(app, c),
            Err(e) => {
                app.notice = Some(e);
                vec![]
            }
        };
    }
    if app.running.is_some() {
        app.notice = Some("an answer is running; Esc stops it".into());
        return vec![];
    }
    app.composer = Composer::default();
    app.entries
        .push(Entry::new(Role::User, text.clone(), app.dark));
    let route = RouteRequest::Mode(app.mode);
    start(app, Ask::Prompt(text.clone()), route, None, Some(text))
}

/// Starts a turn in the pipeline, with an empty answer to fill.
fn start(
    app: &mut App,
    ask: Ask,
    route: RouteRequest,
    seam: Option<Seam>,
    prompt: Option<String>,
) -> Vec<Effect> {
    let req = app.alloc_req();
    let mut answer = Entry::new(Role::Assistant, String::new(), app.dark);
    answer.seam = seam;
    app.entries.push(answer);
    app.scroll = 0;
    app.running = Some(Running {
        req,
        prompt,
        cancelled: false,
        done: false,
    });
    let request = TurnRequest {
        thread: app.current.map_or(Thread::New, Thread::Stored),
        private: app.private,
        cloud_model: app.cloud_model.as_ref().map(|(p, m)| format!("{p}/{m}")),
        system: app.role.as_ref().map(|r| r.system.clone()),
        role: app.role.as_ref().map(|r| r.name.clone()),
        temperature: app.role.as_ref().and_then(|r| r.temperature),
        max_tokens: app.role.as_ref().and_then(|r| r.max_tokens),
        ..TurnRequest::new(Thread::New, ask, route)
    };
    let attach = match &request.ask {
        Ask::Prompt(p) => role::attachments(p),
        Ask::Again => vec![],
    };
    if attach.is_empty() {
        vec![Effect::Ask { req, request }]
    } else {
        vec![Effect::AskWith {
            req,
            request,
            attach,
        }]
    }
}

fn command(app: &mut App, c: Command) -> Vec<Effect> {
    let busy = app.running.is_some();
    match c {
        Command::Route(RouteMode::Cloud) if private(app) => {
            app.notice = Some(Refusal::Private(privacy(app)).to_string());
        }
        Command::Route(m) => {
            app.mode = m;
            app.notice = Some(format!("route: {}", m.as_str()));
        }
        Command::Private => {
            app.private = !app.private;
            app.notice = Some(if app.private {
                "private: this chat stays on this machine".into()
            } else if app.privacy.is_private() && app.privacy != Privacy::Pinned {
                format!("private: unpinned, but {}", app.privacy.reason())
            } else {
                "private: off".into()
            });
            if !app.private && app.privacy == Privacy::Pinned {
                app.privacy = Privacy::Open;
            }
            // The pin is saved on a stored chat now; a new chat gets it with its first prompt.
            if let Some(conv) = app.current {
                return vec![Effect::SetPrivate {
                    conv,
                    private: app.private,
                }];
            }
        }
        Command::Why => match app.last_decision {
            Some(_) => app.overlay = Some(Overlay::Why),
            None => app.notice = Some("nothing routed yet in this chat".into()),
        },
        Command::Help => app.overlay = Some(Overlay::Help),
        Command::Model(name) => return model::pick(app, name),
        Command::Role(name) => return role::pick(app, name),
        Command::Theme(Some(name)) => return vec![Effect::LoadTheme(name)],
        Command::Theme(None) => {
            // Without a name, step to the next theme: quick to preview them all.
            let i = app
                .themes
                .iter()
                .position(|t| *t == app.theme_name)
                .map(|i| i + 1)
                .unwrap_or(0);
            if let Some(next) = app.themes.get(i % app.themes.len().max(1)) {
                return vec![Effect::LoadTheme(next.clone())];
            }
        }
        _ if busy => app.notice = Some("an answer is running; Esc stops it".into()),
        Command::New => {
            app.new_chat();
            app.notice = Some("new chat".into());
        }
        Command::Rename(title) => match app.current {
            Some(conv) => {
                app.title = title.clone();
                return vec![Effect::Rename { conv, title }, Effect::RefreshConversations];
            }
            None => app.notice = Some("nothing to rename yet: send a prompt first".into()),
        },
        // Deleting cannot be undone, so it waits for a `y` (see `confirm_delete`).
        Command::Delete => match app.current {
            Some(conv) => app.overlay = Some(Overlay::ConfirmDelete(conv)),
            None => app.notice = Some("nothing to delete".into()),
        },
        Command::Retry => return retry(app),
    }
    vec![]
}

/// The answer to `/delete`'s question: only `yes` deletes; anything else keeps the chat.
pub(super) fn confirm_delete(app: &mut App, conv: ConversationId, yes: bool) -> Vec<Effect> {
    if !yes {
        app.notice = Some(format!("kept “{}”", app.title));
        return vec![];
    }
    // An escalation may have started an answer while the question was open.
    if app.running.is_some() {
        app.notice = Some("an answer is running; Esc stops it, then /delete".into());
        return vec![];
    }
    app.notice = Some(format!("deleted “{}”", app.title));
    if app.current == Some(conv) {
        app.new_chat();
    }
    vec![Effect::Delete(conv), Effect::RefreshConversations]
}

/// Whether this chat may not leave the machine, as far as the app knows (the pipeline is the
/// guard; this only answers `/cloud` at once).
fn private(app: &App) -> bool {
    app.private || app.privacy.is_private()
}

fn privacy(app: &App) -> Privacy {
    match &app.privacy {
        Privacy::Open => Privacy::Pinned,
        p => p.clone(),
    }
}

/// Answers the last prompt again on the other tier, below a seam, keeping the first answer.
/// The pipeline refuses a private chat's retry in the cloud, as it refuses any cloud route.
fn retry(app: &mut App) -> Vec<Effect> {
    let Some(user_at) = app.entries.iter().rposition(|e| e.role == Role::User) else {
        app.notice = Some("nothing to retry yet".into());
        return vec![];
    };
    let tier = app.entries[user_at..]
        .iter()
        .rev()
        .find_map(|e| e.badge.as_ref().map(|b| b.tier));
    let Some(tier) = tier else {
        app.notice = Some("the last prompt has no answer to retry".into());
        return vec![];
    };
    let tier = other(tier);
    start(
        app,
        Ask::Again,
        RouteRequest::Force(tier),
        Some(Seam::Retry(tier)),
        None,
    )
}
