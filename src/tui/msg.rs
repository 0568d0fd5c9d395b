//! The TUI's vocabulary: `Msg` is everything that can happen to the app (keys, stream events,
//! results of effects, time), `Effect` is everything the app asks the driver to do. Plain data
//! only; nothing here performs IO.

use crossterm::event::KeyEvent;

use crate::backend::StreamEvent;
use crate::chat::Message;
use crate::config::RouteMode;
use crate::router::{Escalation, LocalState, RouteDecision, Target};
use crate::session::{ConversationId, TurnId};

/// Identifies one answer request, so late events from a cancelled stream are ignored.
pub type ReqId = u64;

/// One row of the sidebar, as the driver read it from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvRow {
    pub id: ConversationId,
    pub title: String,
    pub updated_at: i64,
    pub local_answers: usize,
    pub cloud_answers: usize,
}

/// A stored turn, handed to the app when a conversation is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTurn {
    pub message: Message,
    pub target: Option<Target>,
    pub model: Option<String>,
    pub ttft_ms: u64,
    pub tokens_per_s: f64,
    pub cost_usd: f64,
    pub interrupted: bool,
}

/// Where the local model stands, as reported by the background start-up task.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalEvent {
    /// Downloading; `None` when the size is unknown.
    Pulling(Option<f32>),
    State(LocalState),
    Failed(String),
}

/// A local model the user can switch to, as the driver found it (catalog and `[models]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModel {
    pub name: String,
    pub installed: bool,
}

#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// A bracketed paste: inserted as text, never interpreted as keys.
    Paste(String),
    Resize(u16, u16),
    /// Wall-clock time in unix milliseconds; sent while something runs, and at start.
    Tick(i64),
    Local(LocalEvent),
    CloudOnline(bool),
    Conversations(Vec<ConvRow>),
    /// The driver routed a request, stored the prompt and opened the answer turn.
    Routed {
        req: ReqId,
        conv: ConversationId,
        title: String,
        turn: Option<TurnId>,
        decision: RouteDecision,
        local_name: String,
    },
    Stream {
        req: ReqId,
        event: StreamEvent,
    },
    StreamError {
        req: ReqId,
        error: String,
    },
    /// The stream ended (after `Done`, an error, or cancellation).
    StreamEnded {
        req: ReqId,
    },
    /// The judge found the whole local answer to `req` weak (sent after its `StreamEnded`):
    /// `update` decides whether the cloud answers again.
    Escalate {
        req: ReqId,
        reason: Escalation,
    },
    /// The local models there are to switch to (at start, and after a switch installs one).
    LocalModels(Vec<LocalModel>),
    ConversationLoaded {
        id: ConversationId,
        title: String,
        turns: Vec<LoadedTurn>,
    },
    /// A theme was loaded (or failed to); `dark` picks the code highlighting palette.
    ThemeLoaded(Result<(String, bool), String>),
    EditorDone(Result<String, String>),
    /// A one-line report from the driver (copy done, store error ...).
    Notice(String),
}

/// How an answer should be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRequest {
    /// Ask the router with this mode.
    Mode(RouteMode),
    /// `/retry` or an escalation: this tier, whatever the router would say.
    Force(Target),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Route `prompt` (after `history`), store it unless it is a retry, and stream the answer.
    Ask {
        req: ReqId,
        conv: Option<ConversationId>,
        prompt: String,
        history: Vec<Message>,
        route: RouteRequest,
        private: bool,
        /// A retry answers the stored prompt again, so the prompt is not stored twice.
        store_prompt: bool,
        /// The chat's `/model` pick ("provider/model"), tried first if the answer goes to the
        /// cloud; `None` keeps the configured order.
        cloud_model: Option<String>,
    },
    /// `/model NAME` for a local model: load it in place of the running one (all chats).
    SwitchLocal(String),
    /// Cancel the running stream's token; its partial answer is kept.
    Cancel,
    SavePartial {
        turn: TurnId,
        text: String,
    },
    FinishAnswer {
        turn: TurnId,
        text: String,
        meta: crate::session::TurnMeta,
        interrupted: bool,
    },
    LoadConversation(ConversationId),
    RefreshConversations,
    Rename {
        conv: ConversationId,
        title: String,
    },
    Delete(ConversationId),
    LoadTheme(String),
    /// Copy text to the terminal's clipboard (OSC 52).
    Copy(String),
    /// Suspend the screen and edit this text in `$EDITOR`.
    OpenEditor(String),
    Quit,
}
