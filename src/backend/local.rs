//! The local tier: mistralrs running in this process, loaded in the background on its own
//! thread and runtime, exposed as a `ChatBackend` stream. It never runs on the UI task.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures::StreamExt;
use mistralrs::{Model, RequestBuilder, Response, SamplingParams, StopTokens, TextMessageRole};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{BackendError, ChatBackend, ChatRequest, EventStream, FinishReason, StreamEvent};
use crate::chat::{Role, Usage};
use crate::config::LocalDType;

mod build;
pub use build::PREFIX_CACHE_SEQS;
mod confidence;
mod gate;
mod penalty;
pub use confidence::Confidence;
use gate::Gate;
pub use gate::Load;

/// How long a cancelled answer may wait for the engine to finish its prefill.
const PREFILL_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
/// Bounds on the wait for the engine to notice a cancelled answer after prefill.
const SETTLE_MIN: std::time::Duration = std::time::Duration::from_millis(20);
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_millis(300);

/// How the engine is built and how it samples; filled from `[local]` in config.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub path: PathBuf,
    /// Short name for badges and usage reports (e.g. "smollm2-135m").
    pub name: String,
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub repeat_penalty: f32,
    /// From the GGUF header; history is trimmed to fit.
    pub context_window: usize,
    pub dtype: LocalDType,
    /// Finished conversations whose KV the engine keeps for a follow-up turn (0: none).
    pub prefix_cache: usize,
}

impl LocalOptions {
    /// A reproducible run of the engine, as the benches and tests make it: greedy, no repetition
    /// penalty, an 8,192-token window, the default dtype, no prefix cache; named after the file.
    pub fn greedy(path: impl Into<PathBuf>, max_tokens: usize) -> LocalOptions {
        let path = path.into();
        let name = path
            .file_stem()
            .map_or_else(|| "local".into(), |s| s.to_string_lossy().into_owned());
        LocalOptions {
            path,
            name,
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            context_window: 8192,
            dtype: LocalDType::default(),
            prefix_cache: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    Loading,
    Ready,
    Failed(String),
}

struct Inner {
    opts: LocalOptions,
    state: watch::Sender<EngineState>,
    model: OnceLock<Arc<Model>>,
    gate: Arc<Gate>,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct LocalEngine {
    inner: Arc<Inner>,
}

impl LocalEngine {
    /// Starts loading at once and returns immediately; watch `state()` for readiness.
    pub fn start(opts: LocalOptions) -> LocalEngine {
        build::limit_malloc_arenas();
        let (state, _) = watch::channel(EngineState::Loading);
        let inner = Arc::new(Inner {
            opts,
            state,
            model: OnceLock::new(),
            // As many answers run as the engine batches; the waiting list is unbounded until a
            // front-end that takes many requests at once sets a bound.
            gate: Gate::new(build::MAX_SEQS, usize::MAX),
        });
        let bg = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("tandem-local-load".into())
            .spawn(move || {
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&bg.opts)));
                let next = match result {
                    Ok(Ok(model)) => {
                        let _ = bg.model.set(Arc::new(model));
                        EngineState::Ready
                    }
                    Ok(Err(e)) => EngineState::Failed(e),
                    Err(_) => {
                        EngineState::Failed("the engine crashed while loading (see the log)".into())
                    }
                };
                tracing::info!(state = ?next, "local engine");
                bg.state.send_replace(next);
            });
        if let Err(e) = spawned {
            inner.state.send_replace(EngineState::Failed(format!(
                "cannot start the loader thread: {e}"
            )));
        }
        LocalEngine { inner }
    }

    pub fn state(&self) -> EngineState {
        self.inner.state.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<EngineState> {
        self.inner.state.subscribe()
    }

    pub fn options(&self) -> &LocalOptions {
        &self.inner.opts
    }

    /// How many answers decode together; more wait their turn.
    pub fn slots(&self) -> usize {
        build::MAX_SEQS
    }

    /// Answers that may wait while the engine's batch is full; more are refused with `Busy`.
    pub fn limit_queue(&self, waiting: usize) {
        self.inner.gate.set_max_waiting(waiting);
    }

    /// Answers generating and waiting right now.
    pub fn load(&self) -> Load {
        self.inner.gate.load()
    }

    /// Waits until loading has finished, one way or the other.
    pub async fn ready(&self) -> Result<(), BackendError> {
        let mut rx = self.subscribe();
        let state = rx
            .wait_for(|s| *s != EngineState::Loading)
            .await
            .map(|s| s.clone());
        match state {
            Ok(EngineState::Ready) => Ok(()),
            Ok(EngineState::Failed(e)) => Err(BackendError::NotReady(e)),
            _ => Err(BackendError::NotReady("the loader stopped".into())),
        }
    }
}

/// The directory and file name mistralrs is given. The directory is absolute: mistralrs reads
/// an empty one (a bare `model.gguf`) as a Hugging Face repo id and tries to download.
fn dir_and_file(path: &Path) -> Result<(PathBuf, String), String> {
    let bad = || format!("bad model path {}", path.display());
    let path = std::path::absolute(path).map_err(|_| bad())?;
    let file = path.file_name().and_then(|f| f.to_str()).ok_or_else(bad)?;
    let dir = path.parent().ok_or_else(bad)?;
    Ok((dir.to_path_buf(), file.to_string()))
}

fn load(opts: &LocalOptions) -> Result<Model, String> {
    let (dir, file) = dir_and_file(&opts.path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let model = rt.block_on(build::build(&dir.to_string_lossy(), &file, opts));
    // The runtime only drove loading; the engine runs on mistralrs's own thread.
    std::mem::forget(rt);
    let model = model.map_err(|e| first_line(&e.to_string()))?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, path = %opts.path.display(), "local model loaded");
    Ok(model)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("unknown error").to_string()
}

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

/// A lock that survives a panicking holder: the data here are plain counters.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_read_from_the_current_directory() {
        let (dir, file) = dir_and_file(Path::new("model.gguf")).unwrap();
        assert_eq!(dir, std::env::current_dir().unwrap());
        assert_eq!(file, "model.gguf");
        let (dir, _) = dir_and_file(Path::new("/m/x.gguf")).unwrap();
        assert_eq!(dir, Path::new("/m"));
    }
}
