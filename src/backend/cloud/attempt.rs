//! One request to one provider and model: build the async-openai request, open the SSE stream,
//! and map its chunks to the shared `StreamEvent`s. It decides nothing about retries; it reports
//! whether anything reached the user, because after the first token nothing may be retried.

use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionStreamOptions, CompletionUsage,
    CreateChatCompletionRequest, FinishReason as WireFinish, StopConfiguration,
};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::retry::{Failure, HttpFailure, classify, classify_status};
use super::transport::OpenAi;
use crate::backend::{BackendError, ChatRequest, FinishReason, StreamEvent};
use crate::chat::{Role, Usage, estimate_tokens};

pub type Tx = UnboundedSender<Result<StreamEvent, BackendError>>;

/// Where one attempt is going and what it may take.
pub struct Attempt<'a> {
    pub client: &'a OpenAi,
    pub provider: &'a str,
    pub model: &'a str,
    /// Bounds the wait for the first token, and then for each later chunk.
    pub timeout: Duration,
    /// When the user's request began (before any retries), for time-to-first-token.
    pub call_started: Instant,
}

pub enum Outcome {
    /// Text was shown (or the answer was legitimately empty): the events, ending with `Usage`
    /// and `Done`, were sent. `Interrupted` means the stream broke after the first token.
    Answered(FinishReason),
    /// The user cancelled before anything was shown; nothing was sent.
    Cancelled,
    /// Failed before anything was shown; nothing was sent, so the caller may retry.
    Failed(Failure),
}

/// Below this much room in the window an answer is not worth capping to: the request goes out
/// with its full cap, the server refuses it as too long, and failover moves to a larger window.
const MIN_ANSWER_ROOM: usize = 256;

/// The answer cap sent to one model: what the request asks, else the provider's `max_tokens`,
/// lowered to the room the prompt (estimated, padded as `context::need` pads it) leaves in the
/// model's window.
pub fn answer_cap(
    requested: Option<usize>,
    provider: usize,
    window: usize,
    prompt: usize,
) -> usize {
    let cap = requested.unwrap_or(provider).max(1);
    let room = window.saturating_sub(crate::context::need(prompt, 0));
    if room >= MIN_ANSWER_ROOM {
        cap.min(room)
    } else {
        cap
    }
}

pub fn build_request(
    model: &str,
    req: &ChatRequest,
    max_tokens: usize,
) -> CreateChatCompletionRequest {
    let messages = req
        .messages
        .iter()
        .map(|m| match m.role {
            Role::System => ChatCompletionRequestMessage::System(m.content.as_str().into()),
            Role::User => ChatCompletionRequestMessage::User(m.content.as_str().into()),
            Role::Assistant => ChatCompletionRequestMessage::Assistant(m.content.as_str().into()),
        })
        .collect();
    #[allow(deprecated)]
    CreateChatCompletionRequest {
        model: model.to_string(),
        messages,
        stream: Some(true),
        // Servers that ignore this send no usage; `finish` then falls back to counting.
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        // `max_tokens`, though deprecated by OpenAI, is the field every OpenAI-compatible server
        // (llama.cpp, vLLM, Ollama, OpenRouter) understands; `max_completion_tokens` is not.
        max_tokens: Some(max_tokens.min(u32::MAX as usize) as u32),
        temperature: req.temperature.map(|t| t as f32),
        top_p: req.sampling.top_p.map(|p| p as f32),
        stop: (!req.sampling.stop.is_empty())
            .then(|| StopConfiguration::StringArray(req.sampling.stop.clone())),
        seed: req.sampling.seed,
        ..Default::default()
    }
}

/// What has arrived so far.
struct Progress {
    text: String,
    finish: Option<WireFinish>,
    usage: Option<CompletionUsage>,
    first: Option<Instant>,
    last: Instant,
}

pub async fn run(
    a: &Attempt<'_>,
    body: CreateChatCompletionRequest,
    prompt_estimate: usize,
    cancel: &CancellationToken,
    tx: &Tx,
) -> Outcome {
    let deadline = after(a.timeout);
    let chat = a.client.chat();
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Outcome::Cancelled,
        r = timeout_at(deadline, chat.create_stream(body)) => r,
    };
    let mut stream = match opened {
        Err(_) => return Outcome::Failed(no_answer(a.timeout)),
        Ok(Err(e)) => return Outcome::Failed(failure(&e)),
        Ok(Ok(s)) => s,
    };
    let mut p = Progress {
        text: String::new(),
        finish: None,
        usage: None,
        first: None,
        last: Instant::now(),
    };
    let reason = loop {
        // Before the first token the whole attempt shares one deadline; after it, each chunk
        // gets the full timeout, so a long answer is never cut for being long.
        let until = if p.first.is_some() {
            after(a.timeout)
        } else {
            deadline
        };
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                if p.first.is_none() {
                    return Outcome::Cancelled;
                }
                break FinishReason::Cancelled;
            }
            r = timeout_at(until, stream.next()) => r,
        };
        match next {
            Err(_) if p.first.is_none() => return Outcome::Failed(no_answer(a.timeout)),
            Err(_) => {
                tracing::warn!(
                    provider = a.provider,
                    model = a.model,
                    "stream stalled mid-answer"
                );
                break FinishReason::Interrupted;
            }
            Ok(Some(Err(e))) if p.first.is_none() => return Outcome::Failed(failure(&e)),
            Ok(Some(Err(e))) => {
                tracing::warn!(provider = a.provider, model = a.model, error = %failure(&e).message(), "stream broke mid-answer");
                break FinishReason::Interrupted;
            }
            Ok(Some(Ok(chunk))) => {
                if chunk.usage.is_some() {
                    p.usage = chunk.usage;
                }
                // We never ask for n > 1, so only the first choice carries the answer.
                let Some(choice) = chunk.choices.into_iter().next() else {
                    continue;
                };
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    let now = Instant::now();
                    if p.first.is_none() {
                        p.first = Some(now);
                        send(
                            tx,
                            StreamEvent::Started {
                                provider: a.provider.into(),
                                model: a.model.into(),
                            },
                        );
                    }
                    p.last = now;
                    p.text.push_str(&text);
                    send(tx, StreamEvent::Delta(text));
                }
                if choice.finish_reason.is_some() {
                    p.finish = choice.finish_reason;
                }
            }
            Ok(None) => match (p.first.is_some(), p.finish) {
                (_, Some(WireFinish::Length)) => {
                    break started(a, &mut p, tx, FinishReason::Length);
                }
                (_, Some(_)) => break started(a, &mut p, tx, FinishReason::Stop),
                // Every OpenAI-compatible server sends a finish_reason; a stream that ends
                // without one was cut, whatever the transport said.
                (true, None) => break FinishReason::Interrupted,
                (false, None) => return Outcome::Failed(Failure::EmptyStream),
            },
        }
    };
    drop(stream);
    send(tx, StreamEvent::Usage(usage(a, &p, prompt_estimate)));
    send(tx, StreamEvent::Done(reason));
    Outcome::Answered(reason)
}

/// An empty but finished answer still tells the user who answered.
fn started(a: &Attempt<'_>, p: &mut Progress, tx: &Tx, reason: FinishReason) -> FinishReason {
    if p.first.is_none() {
        p.first = Some(Instant::now());
        send(
            tx,
            StreamEvent::Started {
                provider: a.provider.into(),
                model: a.model.into(),
            },
        );
    }
    reason
}

fn usage(a: &Attempt<'_>, p: &Progress, prompt_estimate: usize) -> Usage {
    let (prompt_tokens, completion_tokens) = match &p.usage {
        Some(u) => (u.prompt_tokens as usize, u.completion_tokens as usize),
        None => (prompt_estimate, estimate_tokens(&p.text)),
    };
    let first = p.first.unwrap_or(p.last);
    let decode = p.last.saturating_duration_since(first).as_secs_f64();
    Usage {
        prompt_tokens,
        completion_tokens,
        ttft_ms: first.saturating_duration_since(a.call_started).as_millis() as u64,
        tokens_per_s: if decode > 0.0 {
            completion_tokens as f64 / decode
        } else {
            0.0
        },
    }
}

/// The receiver is gone only when the stream was dropped, which also drops this future.
fn send(tx: &Tx, ev: StreamEvent) {
    let _ = tx.send(Ok(ev));
}

/// `timeout` from now. Config bounds `timeout_secs`, but an `Instant` that would overflow (which
/// panics) means "no deadline" all the same: a year from now.
fn after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

fn no_answer(timeout: Duration) -> Failure {
    Failure::Retryable {
        message: format!("no answer within {} s", timeout.as_secs_f64()),
        retry_after: None,
    }
}

/// Like `classify`, but a chunk that is an error object (some servers report failures inside a
/// 200 stream) is read as that error instead of as malformed JSON.
fn failure(e: &OpenAIError) -> Failure {
    if let OpenAIError::JSONDeserialize(_, content) = e
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(content)
        && let Some(err) = v.get("error")
    {
        let message = err["message"]
            .as_str()
            .or(err.as_str())
            .unwrap_or("error")
            .to_string();
        let code = err["code"].as_str().map(str::to_string);
        return classify_status(&HttpFailure {
            status: 500,
            message,
            code,
            retry_after: None,
        });
    }
    classify(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    #[test]
    fn every_request_carries_a_cap_that_fits_the_window() {
        // The provider's default, when the prompt leaves room for it.
        assert_eq!(answer_cap(None, 4096, 128_000, 1000), 4096);
        // A request's own cap wins over the provider's.
        assert_eq!(answer_cap(Some(300), 4096, 128_000, 1000), 300);
        // Lowered to the room left: 8192 - (6000 + 600 slack).
        assert_eq!(answer_cap(None, 4096, 8192, 6000), 1592);
        // No useful room: the full cap goes out, so the server's refusal moves failover on.
        assert_eq!(answer_cap(None, 4096, 8192, 7400), 4096);
        let body = build_request("m", &ChatRequest::new(vec![Message::user("hi")]), 1592);
        #[allow(deprecated)]
        let sent = body.max_tokens;
        assert_eq!(sent, Some(1592));
    }
}
