//! The TUI's vocabulary: `Msg` is everything that can happen to the app (keys, stream events,
//! results of effects, time), `Effect` is everything the app asks the driver to do. Plain data
//! only; nothing here performs IO.

use crossterm::event::KeyEvent;

use crate::chat::Message;
use crate::router::LocalState;
use crate::session::ConversationId;
use crate::turn::{Badge, SpendNow, TurnEvent, TurnRequest};

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
    pub badge: Option<Badge>,
    /// Cut off: cancelled, broken, or never finished because its process died.
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

/// A role as the chat uses it: read and checked by the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSet {
    pub name: String,
    pub system: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<usize>,
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
    /// An event of the turn `req`, from the turn pipeline.
    Turn {
        req: ReqId,
        event: TurnEvent,
    },
    /// The turn's event stream closed. Normally right after its `Done`; without one, the
    /// turn's task died, and the app must still stop waiting for it.
    TurnEnded {
        req: ReqId,
    },
    /// Spend today and this month, read at start.
    Spend(SpendNow),
    /// SIGTERM or SIGHUP: save the running answer as interrupted, then quit.
    Terminate,
    /// The local models there are to switch to (at start, and after a switch installs one).
    LocalModels(Vec<LocalModel>),
    ConversationLoaded {
        id: ConversationId,
        title: String,
        /// Pinned private; the pin comes back with the chat.
        private: bool,
        turns: Vec<LoadedTurn>,
    },
    /// A theme was loaded (or failed to); `dark` picks the code highlighting palette.
    ThemeLoaded(Result<(String, bool), String>),
    EditorDone(Result<String, String>),
    /// A one-line report from the driver (copy done, store error ...).
    Notice(String),
    /// `/role NAME` (or a reopened chat's role) read, or why not.
    RoleLoaded(Result<RoleSet, String>),
    /// The entries whose names start with what `CompletePath(prefix)` asked about (a
    /// directory's name ends in `/`), sorted.
    PathChoices {
        prefix: String,
        choices: Vec<String>,
    },
    /// The attachments of turn `req` were read: their compact lines, for its prompt.
    Attached {
        req: ReqId,
        lines: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a turn in the pipeline; its events come back as `Msg::Turn`.
    Ask {
        req: ReqId,
        request: TurnRequest,
    },
    /// Start a turn after reading the attachments its prompt names (`@path`); if one cannot
    /// be read, the turn is refused with the reason and nothing is sent.
    AskWith {
        req: ReqId,
        request: TurnRequest,
        attach: Vec<std::path::PathBuf>,
    },
    /// List what the path typed after `@` could be (Tab in the composer).
    CompletePath(String),
    /// Read role `NAME` for this chat (`None`: list the roles in a notice).
    LoadRole(Option<String>),
    /// `/model NAME` for a local model: load it in place of the running one (all chats).
    SwitchLocal(String),
    /// Cancel the running turn; its partial answer is kept.
    Cancel,
    /// `/private` on a stored chat: save the pin, so it comes back when the chat is reopened.
    SetPrivate {
        conv: ConversationId,
        private: bool,
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
