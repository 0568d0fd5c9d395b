//! One local answer: the mistralrs request built from a `ChatRequest`, streamed as events,
//! cancelled cleanly, and its usage measured.

use std::time::Instant;

use futures::StreamExt;
use mistralrs::{RequestBuilder, Response, SamplingParams, StopTokens, TextMessageRole};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Confidence, LocalEngine, first_line, penalty};
use crate::backend::{
    BackendError, ChatBackend, ChatRequest, EventStream, FinishReason, StreamEvent,
};
use crate::chat::{Role, Usage};

/// How long a cancelled answer may wait for the engine to finish its prefill.
const PREFILL_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
/// Bounds on the wait for the engine to notice a cancelled answer after prefill.
const SETTLE_MIN: std::time::Duration = std::time::Duration::from_millis(20);
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_millis(300);

impl LocalEngine {
    fn build_request(&self, req: &ChatRequest, confidence: Option<&Confidence>) -> RequestBuilder {
        let o = &self.inner.opts;
        let max_tokens = req.max_tokens.unwrap_or(o.max_tokens);
        let messages = crate::context::fit(&req.messages, o.context_window, max_tokens, 1).messages;
        let mut rb = RequestBuilder::new();
        for m in &messages {
            let role = match m.role {
                Role::System => TextMessageRole::System,
                Role::User => TextMessageRole::User,
                Role::Assistant => TextMessageRole::Assistant,
            };
            rb = rb.add_message(role, &m.content);
        }
        let temperature = req.temperature.unwrap_or(o.temperature);
        let mut sampling = SamplingParams::neutral();
        sampling.max_len = Some(max_tokens);
        rb = rb.add_logits_processor(penalty::processor(o.repeat_penalty));
        if temperature <= 0.0 {
            // An explicit zero, not `None`: mistral.rs fills an unset temperature from the
            // model's defaults and would then softmax and sample 49k logits on every token
            // to pick the only candidate top_k leaves; zero takes its argmax path.
            sampling.temperature = Some(0.0);
            sampling.top_k = Some(1);
        } else {
            sampling.temperature = Some(temperature);
            sampling.top_p = Some(req.sampling.top_p.unwrap_or(o.top_p));
        }
        if !req.sampling.stop.is_empty() {
            sampling.stop_toks = Some(StopTokens::Seqs(req.sampling.stop.clone()));
        }
        rb = rb.set_sampling(sampling);
        if let Some(c) = confidence {
            rb = rb.add_logits_processor(c.processor());
        }
        rb
    }

    /// Streams an answer and also reports the mean top-token probability through `confidence`.
    pub fn stream_with_confidence(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
        confidence: Option<Confidence>,
    ) -> EventStream {
        let (tx, rx) = mpsc::channel(64);
        let engine = self.clone();
        tokio::spawn(async move {
            let res = engine.run(request, cancel, confidence, &tx).await;
            if let Err(e) = res {
                let _ = tx.send(Err(e)).await;
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    async fn run(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
        confidence: Option<Confidence>,
        tx: &mpsc::Sender<Result<StreamEvent, BackendError>>,
    ) -> Result<(), BackendError> {
        self.ready().await?;
        // Held until this answer ends, however it ends: the next in line goes then.
        let Some(_pass) = self.inner.gate.enter(&cancel).await? else {
            let _ = tx
                .send(Ok(StreamEvent::Done(FinishReason::Cancelled)))
                .await;
            return Ok(());
        };
        let model = self
            .inner
            .model
            .get()
            .cloned()
            .ok_or_else(|| BackendError::NotReady("no model".into()))?;
        let rb = self.build_request(&request, confidence.as_ref());
        let started = Instant::now();
        let mut stream = model
            .stream_chat_request(rb)
            .await
            .map_err(|e| BackendError::Engine(first_line(&e.to_string())))?;
        let name = self.inner.opts.name.clone();
        let _ = tx
            .send(Ok(StreamEvent::Started {
                provider: "local".into(),
                model: name,
            }))
            .await;
        let (mut first, mut last, mut deltas) = (None::<Instant>, started, 0usize);
        let mut heard = false;
        let finish = loop {
            let resp = tokio::select! {
                // Dropping `stream` closes mistralrs's channel, which cancels the sequence at
                // its next token.
                _ = cancel.cancelled() => break FinishReason::Cancelled,
                r = stream.next() => r,
            };
            let Some(resp) = resp else {
                break FinishReason::Interrupted;
            };
            heard = true;
            match resp {
                Response::Chunk(chunk) => {
                    let Some(choice) = chunk.choices.first() else {
                        continue;
                    };
                    if let Some(text) = choice.delta.content.as_ref().filter(|t| !t.is_empty()) {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        deltas += 1;
                        if tx.send(Ok(StreamEvent::Delta(text.clone()))).await.is_err() {
                            break FinishReason::Cancelled;
                        }
                    }
                    if let Some(reason) = &choice.finish_reason {
                        let f = if reason == "length" {
                            FinishReason::Length
                        } else {
                            FinishReason::Stop
                        };
                        let usage = chunk
                            .usage
                            .as_ref()
                            .map(|u| (u.prompt_tokens, u.completion_tokens));
                        let usage = usage_from(usage, started, first, last, deltas);
                        let _ = tx.send(Ok(StreamEvent::Usage(usage))).await;
                        let _ = tx.send(Ok(StreamEvent::Done(f))).await;
                        return Ok(());
                    }
                }
                Response::InternalError(e) | Response::ValidationError(e) => {
                    return Err(BackendError::Engine(first_line(&e.to_string())));
                }
                Response::ModelError(e, _) => return Err(BackendError::Engine(first_line(&e))),
                _ => {}
            }
        };
        // mistral.rs drops a cancelled sequence only when it next fails to send a token, and
        // until then the sequence still holds one of the engine's places. Before its first
        // token it is in prefill, which cannot stop, so its slot is not given to the next
        // answer until prefill is over; after it, one decode step lets the engine notice. So
        // the gate's count stays the engine's. `_pass` is held until this returns.
        if !heard {
            let _ = tokio::time::timeout(PREFILL_LIMIT, stream.next()).await;
        }
        drop(stream);
        let usage = usage_from(None, started, first, last, deltas);
        let _ = tx.send(Ok(StreamEvent::Usage(usage))).await;
        let _ = tx.send(Ok(StreamEvent::Done(finish))).await;
        let step = match (first, deltas) {
            (Some(f), n) if n > 1 => (last - f) / (n as u32 - 1),
            _ => SETTLE_MIN,
        };
        tokio::time::sleep((step * 2).clamp(SETTLE_MIN, SETTLE_MAX)).await;
        Ok(())
    }
}

fn usage_from(
    counts: Option<(usize, usize)>,
    started: Instant,
    first: Option<Instant>,
    last: Instant,
    deltas: usize,
) -> Usage {
    let (prompt_tokens, completion_tokens) = counts.unwrap_or((0, deltas));
    let ttft_ms = first.map(|f| (f - started).as_millis() as u64).unwrap_or(0);
    let decode_s = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    // The first token's time is prefill; decode speed counts the tokens after it.
    let tokens_per_s = if decode_s > 0.0 {
        completion_tokens.saturating_sub(1) as f64 / decode_s
    } else {
        0.0
    };
    Usage {
        prompt_tokens,
        completion_tokens,
        ttft_ms,
        tokens_per_s,
    }
}

impl ChatBackend for LocalEngine {
    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> EventStream {
        self.stream_with_confidence(request, cancel, None)
    }
}
