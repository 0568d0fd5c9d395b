//! `ModelError`: every way resolving, pulling, verifying or checking a model can fail, each as one
//! line that names the model or file and says what to do about it.

use std::path::PathBuf;

use super::Source;
use super::gguf::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}. Add it under [models] in {}, or give a path to a .gguf file", config.display())]
    Unknown {
        name: String,
        known: String,
        config: PathBuf,
    },
    #[error("models.{name} in {}: {problem}; {fix}", config.display())]
    BadEntry {
        name: String,
        config: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("{} does not exist; give an existing .gguf file or a name from `tandem models list`", path.display())]
    FileNotFound { path: PathBuf },
    #[error("model {name} is not installed; run `tandem models pull {name}`{}", if *auto_pull_off { " (automatic download is off: --no-pull or local.auto_pull = false)" } else { "" })]
    NotInstalled { name: String, auto_pull_off: bool },
    #[error("{name} is a file on this machine ({}), so there is nothing to download", path.display())]
    NotDownloadable { name: String, path: PathBuf },
    #[error("{name} has no {via} source; drop --source or use --source {available}")]
    NoSuchSource {
        name: String,
        via: Source,
        available: String,
    },
    #[error("checksum mismatch for {}: expected sha256 {expected}, got {got}; the download was deleted, run `tandem models pull {name}` to try again", path.display())]
    ChecksumMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error("{} is corrupt: its sha256 is {got}, expected {expected}; run `tandem models pull {name}` to replace it", path.display())]
    Corrupt {
        name: String,
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{} is a {arch} model, which the local engine (mistral.rs) cannot run; use a GGUF model of one of these architectures: {}", path.display(), supported.join(", "))]
    UnsupportedArch {
        path: PathBuf,
        arch: String,
        supported: Vec<&'static str>,
    },
    #[error("{} stores tensors as {types}, which the local engine cannot run; use a file quantized as Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, BF16 or F32", path.display())]
    UnsupportedQuant { path: PathBuf, types: String },
    #[error("download of {name} from {via} failed: {message}")]
    Download {
        name: String,
        via: Source,
        message: String,
    },
    #[error("could not download {name} from any source: {details}")]
    AllSourcesFailed { name: String, details: String },
    #[error("cannot {action} {}: {err}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
}

impl ModelError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ModelError {
        let path = path.into();
        move |err| ModelError::Io { action, path, err }
    }
}
