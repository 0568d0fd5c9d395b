//! `POST /v1/chat/completions`: a parsed request becomes one turn of the shared pipeline (the
//! client's messages are the conversation, so privacy, budget and routing hold exactly as in
//! the chat screen), and the turn's events become a JSON reply or an SSE stream. The status is
//! chosen once the turn has either said its first word or ended, so a refusal, a full local
//! queue or a missing tier is a proper error status rather than a broken stream.
//!
//! A client that goes away cancels its turn: the stream's sender notices the closed body, a
//! dropped request future drops its guard, and either way the engine stops within a token.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::access::Entry;
use super::error::ApiError;
use super::reply::{self, Tally};
use super::wire::{self, Completion};
use super::{App, Body, json_response, pick};
use crate::backend::Sampling;
use crate::turn::{Ask, Thread, TurnRequest, TurnStream};

/// How long a stream waits for a client to take the next chunk.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers one request and logs it (a stream is logged when it ends).
pub async fn completions(
    app: Arc<App>,
    body: Bytes,
    mut entry: Entry,
    t0: Instant,
) -> Response<Body> {
    match start(&app, &body, &mut entry, t0).await {
        Ok(resp) => resp,
        Err(e) => {
            entry.status = e.status();
            entry.error = Some(e.body()["error"]["code"].as_str().unwrap_or("").into());
            entry.took(t0.elapsed());
            app.log.write(&entry);
            super::error_response(&e)
        }
    }
}

async fn start(
    app: &Arc<App>,
    body: &[u8],
    entry: &mut Entry,
    t0: Instant,
) -> Result<Response<Body>, ApiError> {
    let c = wire::parse(body)?;
    entry.requested = Some(c.model.clone());
    entry.stream = c.stream;
    let local_name = app.pipeline.tiers().read().await.local_name.clone();
    let pick = pick::pick(&c.model, &app.cfg, &local_name)?;
    tracing::debug!(prompt = %c.prompt, history = c.history.len(), user = ?c.user, "serve request");
    let mut turn = TurnRequest::new(
        Thread::Supplied(c.history.clone()),
        Ask::Prompt(c.prompt.clone()),
        pick.route,
    );
    turn.cloud_model = pick.cloud_model;
    turn.max_tokens = c.max_tokens;
    turn.temperature = c.temperature;
    turn.sampling = Sampling {
        top_p: c.top_p,
        stop: c.stop.clone(),
        seed: c.seed,
    };
    // A stream cannot take back words it has sent, so a weak local answer is not re-asked.
    turn.escalate = !c.stream;
    if app.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let cancel = app.shutdown.child_token();
    // Cancels the turn if this future is dropped (the client hung up) before it hands over.
    let guard = cancel.clone().drop_guard();
    let mut events = app.pipeline.start(turn, cancel);
    let mut tally = Tally::default();
    let first = loop {
        let Some(ev) = events.next().await else {
            break None;
        };
        if let Some(d) = tally.take(ev) {
            break Some(d);
        }
        if tally.done() {
            break None;
        }
    };
    if first.is_none()
        && let Some(e) = tally.error()
    {
        fill(entry, &tally);
        return Err(e);
    }
    let id = format!(
        "chatcmpl-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let created = crate::session::now().max(0) as u64;
    if !c.stream {
        while !tally.done() {
            let Some(ev) = events.next().await else { break };
            tally.take(ev);
        }
        drop(guard);
        if let Some(e) = tally.error() {
            fill(entry, &tally);
            return Err(e);
        }
        let v = reply::completion(&id, created, &c.model, &tally, c.max_tokens);
        let mut resp = json_response(StatusCode::OK, &v);
        headers(&mut resp, &tally, true);
        fill(entry, &tally);
        entry.status = 200;
        entry.took(t0.elapsed());
        app.log.write(entry);
        return Ok(resp);
    }
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let body = BodyExt::boxed(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("static"));
    resp.headers_mut()
        .insert("cache-control", "no-cache".parse().expect("static"));
    headers(&mut resp, &tally, false);
    entry.status = 200;
    let streamed = Streamed {
        app: app.clone(),
        c,
        id,
        created,
        entry: entry.clone(),
        t0,
    };
    tokio::spawn(streamed.run(events, tally, first.unwrap_or_default(), tx, guard));
    Ok(resp)
}

/// The decision's headers; the cost is known only at the end, so a stream carries it in its
/// final chunk instead.
fn headers(resp: &mut Response<Body>, t: &Tally, with_cost: bool) {
    let h = resp.headers_mut();
    if let Some(target) = t.target()
        && let Ok(v) = target.as_str().parse()
    {
        h.insert("x-tandem-route", v);
    }
    if let Ok(v) = t.reason_codes().parse() {
        h.insert("x-tandem-reasons", v);
    }
    if with_cost && let Ok(v) = format!("{:.6}", t.cost_usd()).parse() {
        h.insert("x-tandem-cost-usd", v);
    }
}

fn fill(e: &mut Entry, t: &Tally) {
    e.route = t.target().map(|t| t.as_str());
    e.model = t.model().map(str::to_string);
    let u = t.usage();
    (e.prompt_tokens, e.completion_tokens) = (u.prompt_tokens, u.completion_tokens);
}

/// A streamed reply after its first word.
struct Streamed {
    app: Arc<App>,
    c: Completion,
    id: String,
    created: u64,
    entry: Entry,
    t0: Instant,
}

type Tx = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

impl Streamed {
    async fn run(
        mut self,
        mut events: TurnStream,
        mut tally: Tally,
        first: String,
        tx: Tx,
        _guard: tokio_util::sync::DropGuard,
    ) {
        let model = tally.model().unwrap_or(&self.c.model).to_string();
        let chunk = |delta| reply::chunk(&self.id, self.created, &model, delta, None);
        // A client that stops reading (gone without a word) fills the socket and then this
        // channel; after SEND_TIMEOUT it counts as gone, so its answer stops holding the engine.
        let send = |s: String| {
            let tx = tx.clone();
            async move {
                let sent =
                    tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(Frame::data(Bytes::from(s)))));
                matches!(sent.await, Ok(Ok(())))
            }
        };
        let mut open = send(chunk(json!({ "role": "assistant", "content": first }))).await;
        while open && !tally.done() {
            let ev = tokio::select! {
                // The client hung up: dropping the guard below cancels the turn.
                _ = tx.closed() => { open = false; break; }
                ev = events.next() => ev,
            };
            let Some(ev) = ev else { break };
            if let Some(d) = tally.take(ev) {
                open = send(chunk(json!({ "content": d }))).await;
            }
        }
        if open {
            for frame in self.ending(&tally, &model) {
                if !send(frame).await {
                    break;
                }
            }
        } else {
            self.entry.status = 499;
            self.entry.error = Some("client_closed".into());
        }
        fill(&mut self.entry, &tally);
        self.entry.took(self.t0.elapsed());
        self.app.log.write(&self.entry);
    }

    /// The frames after the last word: the finish chunk with the `tandem` object, usage if
    /// asked for, `[DONE]`. An answer the tier broke off ends with an OpenAI error event,
    /// which SDKs raise, rather than passing for a whole answer.
    fn ending(&mut self, t: &Tally, model: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(e), Some(crate::turn::Finish::Failed(_))) = (t.failure(), t.finish) {
            let err = ApiError::Model(e.to_string());
            out.push(format!("data: {}\n\n", err.body()));
            self.entry.error = Some("upstream_error".into());
        } else {
            let finish = t.finish_reason(self.c.max_tokens);
            let choices =
                json!([{ "index": 0, "delta": {}, "finish_reason": finish, "logprobs": null }]);
            out.push(reply::chunk_with(
                &self.id,
                self.created,
                model,
                choices,
                &[("tandem", t.tandem())],
            ));
            if self.c.include_usage {
                out.push(reply::chunk_with(
                    &self.id,
                    self.created,
                    model,
                    json!([]),
                    &[
                        ("usage", reply::usage_json(t.usage())),
                        ("tandem", t.tandem()),
                    ],
                ));
            }
        }
        out.push("data: [DONE]\n\n".into());
        out
    }
}

/// A body that is all there.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}
