//! The chat screen's state and its one entry point, `update(&mut App, Msg) -> Vec<Effect>`.
//! Pure: no IO, no async, no clock (time arrives as `Msg::Tick`). State and messages here;
//! keys in `app/keys.rs`, slash commands in `app/commands.rs`, `/model` in `app/model.rs`,
//! answers and escalation in `app/stream.rs`.

mod commands;
mod keys;
mod model;
mod stream;

pub use keys::act;
use keys::{insert, key};

use crate::chat::{Message, Role};
use crate::config::RouteMode;
use crate::router::{CloudPrice, LocalState, RouteDecision, Target};
use crate::session::{ConversationId, TurnId};
use crate::tui::keymap::{Focus, Keymap};
use crate::tui::markdown::{self, MdLine};
use crate::tui::msg::{ConvRow, Effect, LocalEvent, LocalModel, Msg, ReqId};

pub use stream::Badge;

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

/// Why the same prompt was answered again.
#[derive(Debug, Clone, PartialEq)]
pub enum Seam {
    /// `/retry` on the other tier.
    Retry,
    /// The judge found the local answer weak; the cloud answered again. Holds the judge's reason.
    Escalated(String),
}

impl Entry {
    pub fn new(role: Role, text: String, dark: bool) -> Entry {
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
        self.text.push_str(delta);
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

/// The answer being streamed, if any.
#[derive(Debug, Clone)]
pub struct Running {
    pub req: ReqId,
    pub turn: Option<TurnId>,
    pub decision: Option<RouteDecision>,
    pub provider: String,
    pub model: String,
    pub usage: crate::chat::Usage,
    pub finish: Option<crate::backend::FinishReason>,
    pub cancelled: bool,
    pub last_save_ms: i64,
    pub saved_len: usize,
}

/// What answers cost, from `[providers]`: (provider, model, input $/Mtok, output $/Mtok), and
/// the cheapest cloud price that a local answer saves.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    pub cloud: Vec<(String, String, f64, f64)>,
    pub local_saving: Option<CloudPrice>,
}

/// Everything the screen shows, and what is needed to decide what a key does.
pub struct App {
    pub keymap: Keymap,
    pub mode: RouteMode,
    pub private: bool,
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
    pub cloud_configured: bool,
    pub cloud_online: bool,
    pub spent_usd: f64,
    pub saved_usd: f64,
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
    /// The request whose answer ended whole, while nothing has started since: the only answer
    /// an escalation may follow.
    pub last_finished: Option<ReqId>,
}

impl App {
    pub fn new(keymap: Keymap, mode: RouteMode, local_name: String, theme: (String, bool)) -> App {
        App {
            keymap,
            mode,
            private: false,
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
            cloud_configured: false,
            cloud_online: false,
            spent_usd: 0.0,
            saved_usd: 0.0,
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
            last_finished: None,
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

    /// The transcript as model messages, for the next request.
    pub fn history(&self) -> Vec<Message> {
        self.entries
            .iter()
            .filter(|e| !e.text.is_empty())
            .map(|e| Message::new(e.role, e.text.clone()))
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
        self.last_decision = None;
        self.cloud_model = None;
        self.last_finished = None;
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
        Msg::Conversations(rows) => {
            app.conversations = rows;
            app.selected = app
                .selected
                .min(app.visible_conversations().len().saturating_sub(1));
            vec![]
        }
        Msg::ConversationLoaded { id, title, turns } => {
            app.new_chat();
            app.current = Some(id);
            app.title = title;
            for t in turns {
                let mut e = Entry::new(t.message.role, t.message.content, app.dark);
                e.interrupted = t.interrupted;
                e.badge = t.target.map(|target| Badge {
                    target,
                    model: t.model.unwrap_or_default(),
                    ttft_ms: t.ttft_ms,
                    tokens_per_s: t.tokens_per_s,
                    cost_usd: t.cost_usd,
                });
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
        Msg::ThemeLoaded(Err(e)) | Msg::Notice(e) => {
            app.notice = Some(e);
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
        Msg::Routed {
            req,
            conv,
            title,
            turn,
            decision,
            local_name,
        } => stream::routed(app, req, conv, title, turn, decision, local_name),
        Msg::Stream { req, event } => stream::event(app, req, event),
        Msg::StreamError { req, error } => stream::error(app, req, error),
        Msg::StreamEnded { req } => stream::ended(app, req),
        Msg::Escalate { req, reason } => stream::escalate(app, req, reason),
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
