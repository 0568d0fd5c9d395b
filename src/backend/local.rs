//! The local tier: mistralrs running in this process, loaded in the background on its own
//! thread and runtime, exposed as a `ChatBackend` stream. It never runs on the UI task.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use mistralrs::Model;
use tokio::sync::watch;

use super::BackendError;
use crate::config::LocalDType;

mod build;
pub use build::PREFIX_CACHE_SEQS;
mod confidence;
mod gate;
mod penalty;
mod turn;
pub use confidence::Confidence;
use gate::Gate;
pub use gate::Load;

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
