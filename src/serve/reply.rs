//! Turns a turn's events into what an OpenAI client reads: the answer, its finish reason and
//! usage, the error when nothing was answered, and the `tandem` object that carries the route
//! decision (target, provider, model, reasons, cost, saved). Standard clients ignore the extra
//! object; tandem-aware ones read it. No IO here.

use serde_json::{Value, json};

use super::error::ApiError;
use crate::backend::BackendError;
use crate::chat::Usage;
use crate::router::{RouteDecision, Target};
use crate::turn::{Answer, Finish, TurnError, TurnEvent};

/// Everything a turn has said so far that the reply needs.
#[derive(Debug, Default)]
pub struct Tally {
    pub decision: Option<RouteDecision>,
    /// The tier, provider and model of the answer under way (after any failover).
    pub started: Option<(Target, String, String)>,
    pub answers: Vec<Answer>,
    pub escalated: Option<String>,
    /// Earlier messages left out to fit the answering model's window.
    pub dropped_turns: usize,
    refusal: Option<String>,
    failure: Option<TurnError>,
    pub finish: Option<Finish>,
    /// Text of the current answer so far.
    pub text: String,
}

impl Tally {
    /// Takes one event; returns the text to pass on, if it is a delta.
    pub fn take(&mut self, ev: TurnEvent) -> Option<String> {
        match ev {
            TurnEvent::Routed(d) => self.decision = Some(d),
            TurnEvent::Refused(r) => self.refusal = Some(r.to_string()),
            TurnEvent::Started {
                tier,
                provider,
                model,
            } => self.started = Some((tier, provider, model)),
            TurnEvent::Delta(d) => {
                self.text.push_str(&d);
                return Some(d);
            }
            TurnEvent::Failed(e) => self.failure = Some(e),
            TurnEvent::Answered(a) => self.answers.push(a),
            TurnEvent::Escalated(e) => {
                // The cloud answers again; the reply is its answer, not the weak one.
                self.escalated = Some(e.message);
                self.text.clear();
            }
            TurnEvent::Trimmed(t) => self.dropped_turns = t.dropped_turns,
            TurnEvent::Opened { .. } | TurnEvent::Notice(_) => {}
            TurnEvent::Done(d) => self.finish = Some(d.finish),
        }
        None
    }

    pub fn done(&self) -> bool {
        self.finish.is_some()
    }

    /// The error to answer with when the turn produced no text: refused, no tier, busy, failed.
    pub fn error(&self) -> Option<ApiError> {
        if let Some(r) = &self.refusal {
            return Some(ApiError::Refused(format!(
                "{r}; over the API, use model {} or {}",
                super::pick::AUTO,
                super::pick::LOCAL
            )));
        }
        if !self.text.is_empty() {
            return None;
        }
        match (&self.failure, self.finish) {
            (
                Some(TurnError::Backend(BackendError::Busy {
                    waiting,
                    retry_after_secs,
                })),
                _,
            ) => Some(ApiError::Busy {
                waiting: *waiting,
                retry_after_secs: *retry_after_secs,
            }),
            (Some(e @ TurnError::NoTier(_)), _) => Some(ApiError::NoTier(e.to_string())),
            (Some(e), Some(Finish::Failed(crate::turn::Failure::NoTier))) => {
                Some(ApiError::NoTier(e.to_string()))
            }
            (Some(e), _) => Some(ApiError::Model(e.to_string())),
            (None, None) => Some(ApiError::Model(
                "internal error: the answer stopped unexpectedly (details in the log)".into(),
            )),
            (None, Some(_)) => None,
        }
    }

    /// The error that cut a streamed answer short, if one did.
    pub fn failure(&self) -> Option<&TurnError> {
        self.failure.as_ref()
    }

    /// Usage of the answer the client got (the last one).
    pub fn usage(&self) -> Usage {
        self.answers.last().map(|a| a.usage).unwrap_or_default()
    }

    /// OpenAI's finish reason. A turn does not report a token cap apart from a natural end, so
    /// an answer that used every token it was allowed is taken to have been cut there.
    pub fn finish_reason(&self, max_tokens: Option<usize>) -> &'static str {
        match max_tokens {
            Some(m) if self.usage().completion_tokens >= m => "length",
            _ => "stop",
        }
    }

    pub fn target(&self) -> Option<Target> {
        self.started
            .as_ref()
            .map(|s| s.0)
            .or(self.decision.as_ref().map(|d| d.target))
    }

    pub fn model(&self) -> Option<&str> {
        self.started.as_ref().map(|s| s.2.as_str())
    }

    pub fn cost_usd(&self) -> f64 {
        self.answers.iter().map(|a| a.badge.cost_usd).sum()
    }

    /// Reason codes, comma-separated, for `x-tandem-reasons`.
    pub fn reason_codes(&self) -> String {
        let Some(d) = &self.decision else {
            return String::new();
        };
        d.reasons
            .iter()
            .filter_map(|r| serde_json::to_value(r.code).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The route decision and what it cost, as the `tandem` object of a reply.
    pub fn tandem(&self) -> Value {
        let (provider, model) = match &self.started {
            Some((_, p, m)) => (Some(p.as_str()), Some(m.as_str())),
            None => (None, None),
        };
        json!({
            "target": self.target().map(Target::as_str),
            "provider": provider,
            "model": model,
            "reasons": self.decision.as_ref().map(|d| &d.reasons),
            "score": self.decision.as_ref().map(|d| d.score),
            "cost_usd": self.cost_usd(),
            "saved_usd": self.answers.iter().map(|a| a.badge.saved_usd).sum::<f64>(),
            "escalated": self.escalated,
            "dropped_turns": self.dropped_turns,
            "interrupted": self.answers.last().is_some_and(|a| a.interrupted)
                && self.finish != Some(Finish::Answered),
        })
    }
}

/// `usage` as OpenAI reports it.
pub fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// The whole reply of a request that was not streamed.
pub fn completion(id: &str, created: u64, requested: &str, t: &Tally, max: Option<usize>) -> Value {
    let text = t.answers.last().map(|a| a.text.as_str()).unwrap_or("");
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": t.model().unwrap_or(requested),
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": t.finish_reason(max),
            "logprobs": null,
        }],
        "usage": usage_json(t.usage()),
        "tandem": t.tandem(),
    })
}

/// One streamed chunk: `data: {...}` and a blank line.
pub fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> String {
    let v = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
    });
    format!("data: {v}\n\n")
}

/// A chunk with extra top-level fields (`usage`, `tandem`) and the given choices.
pub fn chunk_with(
    id: &str,
    created: u64,
    model: &str,
    choices: Value,
    extra: &[(&str, Value)],
) -> String {
    let mut v = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    });
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    format!("data: {v}\n\n")
}
