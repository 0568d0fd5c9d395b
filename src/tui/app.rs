//! The chat screen's state and its one entry point, `update(&mut App, Msg) -> Vec<Effect>`.
//! Pure: no IO, no async, no clock (time arrives as `Msg::Tick`). State and messages here;
//! keys in `app/keys.rs`, slash commands in `app/commands.rs`, `/model` in `app/model.rs`,
//! a turn's events in `app/stream.rs`. Text from a model, a provider or the history enters
//! this state through the sanitizer (`Entry`, titles, notices), so the screen never relies on
//! ratatui to drop what a terminal would obey.

mod commands;
mod keys;
mod model;
mod role;
mod stream;

pub use keys::act;
use keys::{insert, key};
pub use role::attachments;

use crate::chat::Role;
use crate::config::RouteMode;
use crate::router::{LocalState, RouteDecision, Target};
use crate::sanitize::{for_terminal, one_line};
use crate::session::ConversationId;
use crate::tui::keymap::{Focus, Keymap};
use crate::tui::markdown::{self, MdLine};
use crate::tui::msg::{ConvRow, Effect, LocalEvent, LocalModel, Msg, ReqId};
use crate::turn::{Privacy, SpendNow};

pub use crate::turn::{Badge, Seam};

/// One message in the transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub role: Role,
    pub text: String,
    /// Rendered markdown of `text[..stable]`: all of it for a finished message. While an
    /// answer streams, only its closed blocks are here; the tail after `stable` is rendered at
    /// draw time, so a frame costs the tail, not the whole answer.
    pub lines: Vec<MdLine>,
    pub stable: usize,
    pub badge: Option<Badge>,
    pub interrupted: bool,
    pub error: Option<String>,
    /// An answer to the same prompt again, drawn below a seam that says why.
    pub seam: Option<Seam>,
}

impl Entry {
    /// An entry showing `text`, sanitized.
    pub fn new(role: Role, text: String, dark: bool) -> Entry {
        let text = for_terminal(&text).into_owned();
        let lines = render(role, &text, dark);
        Entry {
            role,
            stable: text.len(),
            text,
            lines,
            badge: None,
            interrupted: false,
            error: None,
            seam: None,
        }
    }

    /// Takes new streamed text, and renders any blocks it closed once, here, rather than on
    /// every frame.
    pub fn push_stream(&mut self, delta: &str, dark: bool) {
        // Each character is sanitized alone, so deltas can be cleaned one by one.
        self.text.push_str(&for_terminal(delta));
        if let Some(cut) = markdown::stable_boundary(&self.text, self.stable) {
            let more = render(self.role, &self.text[self.stable..cut], dark);
            if !self.lines.is_empty() && !more.is_empty() {
                self.lines.push(MdLine::default());
            }
            self.lines.extend(more);
            self.stable = cut;
        }
    }

    /// Renders the whole text, as the answer ends.
    pub fn finish(&mut self, dark: bool) {
        self.lines = render(self.role, &self.text, dark);
        self.stable = self.text.len();
    }
}

fn render(role: Role, text: &str, dark: bool) -> Vec<MdLine> {
    match role {
        // What the user typed is shown as typed.
        Role::User | Role::System => text
            .lines()
            .map(|l| MdLine::plain(l, crate::tui::theme::Role::Text))
            .collect(),
        Role::Assistant => markdown::render(text, dark),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Why,
    /// `/model`: the local and cloud models, the ones in use marked.
    Models,
    /// `/delete` waits here for `y`; any other key keeps the chat.
    ConfirmDelete(ConversationId),
}

/// The multi-line prompt being written; `cursor` is a byte offset on a char boundary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Composer {
    pub text: String,
    pub cursor: usize,
}

/// The turn being answered, if any.
#[derive(Debug, Clone)]
pub struct Running {
    pub req: ReqId,
    /// The prompt, given back to the composer if the turn is refused; `None` for a retry.
    pub prompt: Option<String>,
    pub cancelled: bool,
    /// The pipeline said `Done`; the stream's end then only confirms it.
    pub done: bool,
}

/// The configured cloud models, for `/model`: (provider, model, input $/Mtok, output $/Mtok).
#[derive(Debug, Clone, Default)]
pub struct Prices {
    pub cloud: Vec<(String, String, f64, f64)>,
}

/// Everything the screen shows, and what is needed to decide what a key does.
pub struct App {
    pub keymap: Keymap,
    pub mode: RouteMode,
    /// This chat's privacy pin (`/private`), saved with the chat.
    pub private: bool,
    /// What the pipeline last said about this chat: pinned, or holding a secret.
    pub privacy: Privacy,
    pub focus: Focus,
    pub sidebar_visible: bool,
    pub filter: String,
    pub conversations: Vec<ConvRow>,
    pub selected: usize,
    pub current: Option<ConversationId>,
    pub title: String,
    pub entries: Vec<Entry>,
    pub composer: Composer,
    pub running: Option<Running>,
    next_req: ReqId,
    pub local: LocalState,
    pub pull_pct: Option<f32>,
    pub local_problem: Option<String>,
    pub local_name: String,
    /// The local models `/model` can switch to, from the driver.
    pub local_models: Vec<LocalModel>,
    /// This chat's `/model` pick among the cloud models: (provider, model). Cleared with the chat.
    pub cloud_model: Option<(String, String)>,
    /// This chat's role (`/role`, or the one a reopened chat was saved with).
    pub role: Option<crate::tui::msg::RoleSet>,
    pub cloud_configured: bool,
    pub cloud_online: bool,
    /// Spend today and this month against the caps, from the ledger.
    pub spend: SpendNow,
    /// Lines scrolled up from the bottom; 0 follows new text.
    pub scroll: usize,
    pub overlay: Option<Overlay>,
    pub notice: Option<String>,
    pub last_decision: Option<RouteDecision>,
    pub theme_name: String,
    pub themes: Vec<String>,
    pub dark: bool,
    pub prices: Prices,
    /// A count typed before Ctrl-Y in the transcript (vi style).
    pub count: Option<usize>,
    pub now_ms: i64,
    pub spinner: usize,
    pub size: (u16, u16),
    /// Quit was asked while an answer ran: finish saving it, then quit.
    pub quitting: bool,
}

impl App {
    pub fn new(keymap: Keymap, mode: RouteMode, local_name: String, theme: (String, bool)) -> App {
        App {
            keymap,
            mode,
            private: false,
            privacy: Privacy::Open,
            focus: Focus::Composer,
            sidebar_visible: true,
            filter: String::new(),
            conversations: vec![],
            selected: 0,
            current: None,
            title: "new chat".into(),
            entries: vec![],
            composer: Composer::default(),
            running: None,
            next_req: 1,
            local: LocalState::Missing,
            pull_pct: None,
            local_problem: None,
            local_name,
            local_models: vec![],
            cloud_model: None,
            role: None,
            cloud_configured: false,
            cloud_online: false,
            spend: SpendNow::default(),
            scroll: 0,
            overlay: None,
            notice: None,
            last_decision: None,
            theme_name: theme.0,
            themes: vec![],
            dark: theme.1,
            prices: Prices::default(),
            count: None,
            now_ms: 0,
            spinner: 0,
            size: (80, 24),
            quitting: false,
        }
    }

    /// Something is in progress, so the spinner should tick.
    pub fn busy(&self) -> bool {
        self.running.is_some() || matches!(self.local, LocalState::Pulling | LocalState::Loading)
    }

    /// The conversations the sidebar shows, after the filter.
    pub fn visible_conversations(&self) -> Vec<&ConvRow> {
        let f = self.filter.to_lowercase();
        self.conversations
            .iter()
            .filter(|c| f.is_empty() || c.title.to_lowercase().contains(&f))
            .collect()
    }

    fn alloc_req(&mut self) -> ReqId {
        self.next_req += 1;
        self.next_req
    }

    /// Clears the transcript for a fresh conversation.
    fn new_chat(&mut self) {
        self.current = None;
        self.title = "new chat".into();
        self.entries.clear();
        self.scroll = 0;
        self.private = false;
        self.privacy = Privacy::Open;
        self.last_decision = None;
        self.cloud_model = None;
        self.role = None;
        self.focus = Focus::Composer;
    }

    fn page(&self) -> usize {
        (self.size.1 as usize).saturating_sub(8).max(1)
    }
}

pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(k) => key(app, k),
        Msg::Paste(s) => {
            if app.focus == Focus::Composer {
                insert(
                    &mut app.composer,
                    &s.replace("\r\n", "\n").replace('\r', "\n"),
                );
            }
            vec![]
        }
        Msg::Resize(w, h) => {
            app.size = (w, h);
            vec![]
        }
        Msg::Tick(now) => stream::tick(app, now),
        Msg::Local(ev) => {
            match ev {
                LocalEvent::Pulling(p) => {
                    app.local = LocalState::Pulling;
                    app.pull_pct = p;
                }
                LocalEvent::State(s) => app.local = s,
                LocalEvent::Failed(why) => {
                    app.local = LocalState::Failed;
                    app.notice = Some(format!("local model: {why}"));
                    app.local_problem = Some(why);
                }
            }
            vec![]
        }
        Msg::CloudOnline(on) => {
            app.cloud_online = on;
            vec![]
        }
        Msg::Conversations(mut rows) => {
            for r in &mut rows {
                r.title = one_line(&r.title);
            }
            app.conversations = rows;
            app.selected = app
                .selected
                .min(app.visible_conversations().len().saturating_sub(1));
            vec![]
        }
        Msg::ConversationLoaded {
            id,
            title,
            private,
            turns,
        } => {
            app.new_chat();
            app.current = Some(id);
            app.title = one_line(&title);
            app.private = private;
            for t in turns {
                let mut e = Entry::new(t.message.role, t.message.content, app.dark);
                e.interrupted = t.interrupted;
                e.badge = t.badge;
                app.entries.push(e);
            }
            vec![]
        }
        Msg::ThemeLoaded(Ok((name, dark))) => {
            app.notice = Some(format!("theme: {name}"));
            app.theme_name = name;
            if app.dark != dark {
                app.dark = dark;
                // Code colours depend on the background, so finished messages re-render.
                for e in &mut app.entries {
                    e.lines = render(e.role, &e.text[..e.stable], dark);
                }
            }
            vec![]
        }
        Msg::RoleLoaded(r) => {
            role::loaded(app, r);
            vec![]
        }
        Msg::PathChoices { prefix, choices } => {
            role::complete(app, &prefix, &choices);
            vec![]
        }
        Msg::Attached { req, lines } => {
            stream::attached(app, req, lines);
            vec![]
        }
        Msg::ThemeLoaded(Err(e)) | Msg::Notice(e) => {
            app.notice = Some(one_line(&e));
            vec![]
        }
        Msg::EditorDone(Ok(text)) => {
            app.composer.text = text.trim_end_matches('\n').to_string();
            app.composer.cursor = app.composer.text.len();
            vec![]
        }
        Msg::EditorDone(Err(e)) => {
            app.notice = Some(format!("editor: {e}"));
            vec![]
        }
        Msg::Turn { req, event } => stream::event(app, req, event),
        Msg::TurnEnded { req } => stream::ended(app, req),
        Msg::Spend(s) => {
            app.spend = s;
            vec![]
        }
        Msg::Terminate => keys::act(app, crate::tui::keymap::Action::Quit),
        Msg::LocalModels(models) => {
            app.local_models = models;
            vec![]
        }
    }
}

/// The other tier, for `/retry`.
pub fn other(t: Target) -> Target {
    match t {
        Target::Local => Target::Cloud,
        Target::Cloud => Target::Local,
    }
}
