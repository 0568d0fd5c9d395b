//! The one streaming interface both tiers implement, and its events and errors.
//! Backends know nothing of the UI: the TUI and print mode consume the same stream.

pub mod cloud;
pub mod local;

use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::chat::{Message, Usage};

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// A specific model; `None` lets the backend use its default.
    pub model: Option<String>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub sampling: Sampling,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            model: None,
            max_tokens: None,
            temperature: None,
            sampling: Sampling::default(),
        }
    }
}

/// Sampling an API client may ask for beyond the cap and the temperature (`tandem serve`).
/// Each tier honours what it can; the README says which.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub top_p: Option<f64>,
    /// Strings that end the answer where they would begin (not included in it).
    pub stop: Vec<String>,
    /// Forwarded to the cloud; the in-process engine has one random generator for all requests.
    pub seed: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended the answer itself.
    Stop,
    /// The max-token cap cut it.
    Length,
    /// The user cancelled it.
    Cancelled,
    /// The connection or engine broke after some text was shown.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The request was accepted by this provider and model (after any failover).
    Started {
        provider: String,
        model: String,
    },
    Delta(String),
    Usage(Usage),
    Done(FinishReason),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error("the local model is not ready: {0}")]
    NotReady(String),
    #[error("key rejected for {provider}: run `tandem auth set {provider}`")]
    KeyRejected { provider: String },
    #[error("no API key for {provider}: run `tandem auth set {provider}` or set {hint}")]
    NoKey { provider: String, hint: String },
    #[error("the conversation is longer than {model}'s context window ({window} tokens): {detail}")]
    ContextLength {
        model: String,
        window: usize,
        detail: String,
    },
    #[error("{provider}: {message}")]
    Provider { provider: String, message: String },
    #[error("no cloud provider is available: {0}")]
    Unavailable(String),
    #[error("the local engine failed: {0}")]
    Engine(String),
    /// The in-process engine's queue is full; try again after about this many seconds.
    #[error(
        "the local model is busy: {waiting} requests are already waiting; try again in {retry_after_secs} s"
    )]
    Busy {
        waiting: usize,
        retry_after_secs: u64,
    },
}

pub type EventStream = BoxStream<'static, Result<StreamEvent, BackendError>>;

/// A tier that answers a conversation as a stream of events. Dropping the stream or
/// cancelling the token stops generation.
pub trait ChatBackend: Send + Sync {
    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> EventStream;
}
