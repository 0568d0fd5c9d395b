//! The turn pipeline shared by every front-end (the chat screen, one-shot mode, and the HTTP
//! server, `tandem serve`): load the conversation, route everything that would be sent, check privacy and
//! budget, stream the answer (and the cloud's second answer when a weak local one escalates),
//! and record the turn, its usage and its cost. It speaks only in `TurnEvent`s; the front-ends
//! render them and repeat none of this. No terminal and no HTTP code here.
//!
//! `badge` labels answers, `context` turns stored turns into messages, `guard` holds the
//! privacy and budget promises, `answer` streams and records one answer, `run` is the turn.

mod answer;
pub mod badge;
pub mod context;
pub mod guard;
mod run;
mod window;

use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::BoxStream;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::attach::Attachment;
use crate::backend::{BackendError, Sampling};
use crate::chat::{Message, Usage};
use crate::config::{Config, RouteMode};
use crate::models::PullEvent;
use crate::router::{Escalation, RouteDecision, Target};
use crate::session::{ConversationId, Store};
use crate::tiers::Tiers;

pub use badge::{Badge, Seam};
pub use guard::{Cap, Privacy, Refusal, SpendNow};

/// Where the conversation comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Thread {
    /// A new conversation, created (titled after the prompt) once the turn may go ahead.
    New,
    /// A stored conversation: its turns are the context and the turn is appended to it.
    Stored(ConversationId),
    /// Messages the caller holds (an HTTP client): the history is neither read nor written;
    /// the answer is still routed, guarded and entered in the spend ledger.
    Supplied(Vec<Message>),
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Prompt(String),
    /// The stored conversation's last prompt again (`/retry`); it is not stored twice.
    Again,
}

/// How the turn should be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRequest {
    /// Ask the router with this mode (`auto`, or a pin: `--route`, `/local`, `/cloud`).
    Mode(RouteMode),
    /// `/retry`: this tier, whatever the router would say (still guarded).
    Force(Target),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnRequest {
    pub thread: Thread,
    pub ask: Ask,
    pub route: RouteRequest,
    /// The front-end's privacy pin (`--private`, `/private`); saved on the conversation.
    pub private: bool,
    /// A cloud model to try first ("model" or "provider/model").
    pub cloud_model: Option<String>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    /// An API client's top_p, stop and seed (`tandem serve`).
    pub sampling: Sampling,
    /// Whether a weak local answer may be answered again by the cloud. A streamed HTTP answer
    /// cannot take back what it sent, so `tandem serve` turns this off for streams.
    pub escalate: bool,
    /// Read by the front-end (`-f`, `@path`) before the turn; sent ahead of the prompt and
    /// stored with it.
    pub attachments: Vec<Attachment>,
    /// The system prompt that opens the request (`--system`, a role's prompt).
    pub system: Option<String>,
    /// The role this conversation runs with, saved on it so it comes back with it.
    pub role: Option<String>,
}

impl TurnRequest {
    /// A prompt with the default options.
    pub fn new(thread: Thread, ask: Ask, route: RouteRequest) -> TurnRequest {
        TurnRequest {
            thread,
            ask,
            route,
            private: false,
            cloud_model: None,
            max_tokens: None,
            temperature: None,
            sampling: Sampling::default(),
            escalate: true,
            attachments: Vec::new(),
            system: None,
            role: None,
        }
    }
}

/// Everything a front-end hears about a turn, in this order: `Routed`, then either `Refused`
/// or `Opened` and one answer (`Started`, `Delta`s, `Failed`?, `Answered`), possibly an
/// `Escalated` and a second answer; `Notice`s anywhere; `Done` last, always.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// Where the turn goes, and why.
    Routed(RouteDecision),
    /// Not sent: the one-line reason says how to lift it. Nothing was stored.
    Refused(Refusal),
    /// The conversation the turn belongs to (`None` for supplied messages), and its state.
    Opened {
        conversation: Option<ConversationId>,
        title: String,
        privacy: Privacy,
    },
    /// An answer began on this tier, with this provider and model (after any failover).
    Started {
        tier: Target,
        provider: String,
        model: String,
    },
    Delta(String),
    /// The tier failed; the answer ends with what it had.
    Failed(TurnError),
    /// An answer ended, recorded, with its measures.
    Answered(Answer),
    /// Earlier turns were left out so the request fits the answering model's window; the
    /// transcript marks the cut.
    Trimmed(Trim),
    /// The local answer looked weak: the cloud answers the same prompt next.
    Escalated(Escalation),
    /// Something the user should know that does not stop the turn (history not saved ...).
    Notice(String),
    Done(Done),
}

/// How a request was cut to its model's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    /// Earlier turns (a prompt with its answer) left out, the oldest first.
    pub dropped_turns: usize,
    /// Estimated tokens of what is sent.
    pub tokens: usize,
    /// The model's window, and the part of it kept free for the answer.
    pub window: usize,
    pub reserve: usize,
    pub model: String,
}

impl Trim {
    /// One line for a transcript.
    pub fn words(&self) -> String {
        let s = if self.dropped_turns == 1 { "" } else { "s" };
        format!(
            "{} earlier turn{s} left out to fit {}'s {}-token window (~{} tokens sent, {} kept for the answer)",
            self.dropped_turns, self.model, self.window, self.tokens, self.reserve
        )
    }
}

/// One finished (or cut-off) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub badge: Badge,
    pub usage: Usage,
    /// Not whole: cancelled, broken off or failed.
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub finish: Finish,
    /// Spend after the turn, for a status line.
    pub spend: SpendNow,
}

/// How the turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Answered,
    /// Cancelled by the front-end; the partial answer is kept.
    Interrupted,
    Refused,
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No tier could take the turn at all.
    NoTier,
    /// The tier failed (after retries and failover).
    Model,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TurnError {
    #[error("no tier can answer: {0}")]
    NoTier(String),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Conversation(String),
}

/// The events of one turn, as they happen.
pub type TurnStream = BoxStream<'static, TurnEvent>;

pub(crate) type Emit = dyn Fn(TurnEvent) + Send + Sync;
type PullReport = Arc<dyn Fn(&PullEvent) + Send + Sync>;

/// The pipeline: cheap to clone, shared by a front-end's tasks.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    cfg: Config,
    tiers: Arc<RwLock<Tiers>>,
    store: Arc<Mutex<Store>>,
    /// Set by one-shot mode, which starts the local model only when a turn needs it.
    on_pull: Option<PullReport>,
}

impl Inner {
    /// The store; a panic elsewhere while it was held leaves SQLite consistent, so go on.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pipeline {
    pub fn new(cfg: Config, tiers: Arc<RwLock<Tiers>>, store: Arc<Mutex<Store>>) -> Pipeline {
        Pipeline {
            inner: Arc::new(Inner {
                cfg,
                tiers,
                store,
                on_pull: None,
            }),
        }
    }

    /// Lets a turn start the local model itself when the router may pick it and nobody has
    /// started it (one-shot mode), reporting a download through `progress`.
    pub fn starting_local(
        cfg: Config,
        tiers: Arc<RwLock<Tiers>>,
        store: Arc<Mutex<Store>>,
        progress: impl Fn(&PullEvent) + Send + Sync + 'static,
    ) -> Pipeline {
        let mut p = Pipeline::new(cfg, tiers, store);
        if let Some(inner) = Arc::get_mut(&mut p.inner) {
            inner.on_pull = Some(Arc::new(progress));
        }
        p
    }

    /// Runs one turn in its own task. Cancelling `cancel` stops the answer; the partial text
    /// is kept, marked interrupted, and `Done` still comes. A stream that ends without `Done`
    /// means the task died (a bug): front-ends treat that as a failed turn.
    pub fn start(&self, request: TurnRequest, cancel: CancellationToken) -> TurnStream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let emit = move |ev: TurnEvent| {
                let _ = tx.send(ev);
            };
            run::turn(&inner, request, &cancel, &emit).await;
        });
        Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
    }

    /// Spend today and this month, for a status line.
    pub fn spend(&self) -> SpendNow {
        SpendNow::read(&self.inner.store(), &self.inner.cfg)
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.inner.store()
    }

    pub fn tiers(&self) -> &Arc<RwLock<Tiers>> {
        &self.inner.tiers
    }
}
