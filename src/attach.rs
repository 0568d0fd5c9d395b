//! Attachments (`-f PATH`, `@path`): files, directories and stdin read as UTF-8 text under the
//! `[attach]` caps, rendered into the prompt with their paths, and summarised on one line for
//! the transcript. All or nothing: any unreadable, binary, non-UTF-8 or over-cap input is an
//! error naming the path, and then no attachment is returned. No terminal or routing code here.
//!
//! A directory is walked with the `ignore` crate: `.gitignore` (inside a git repository or
//! not), `.ignore` and the global git excludes are honoured, hidden files are skipped, and
//! binary or non-UTF-8 files found there are skipped and named in the listing, whereas a file
//! named on its own must be text.

mod read;
mod render;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::AttachConfig;

pub(crate) use read::unreadable;
pub use render::{human_bytes, render_all};

/// What one turn may attach, all attachments together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_bytes: u64,
    pub max_files: usize,
}

impl From<&AttachConfig> for Caps {
    fn from(c: &AttachConfig) -> Caps {
        Caps {
            max_bytes: c.max_bytes,
            max_files: c.max_files,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Stdin,
}

/// One text file's contents, under the path it is shown with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileText {
    pub path: PathBuf,
    pub text: String,
}

/// Why a file inside a directory was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Binary,
    NotUtf8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// As the user gave it; `-` for stdin.
    pub path: PathBuf,
    pub kind: Kind,
    /// One for a file or stdin; each text file found, in path order, for a directory.
    pub files: Vec<FileText>,
    pub skipped: Vec<(PathBuf, SkipReason)>,
    /// Bytes of text attached.
    pub bytes: u64,
    /// Estimated tokens of `render_for_prompt()`.
    pub tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{}: cannot read it: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: a binary file; attach text files only", path.display())]
    Binary { path: PathBuf },
    #[error("{}: not UTF-8 text; convert it first (iconv -t UTF-8) or attach another file", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{}: attachments would pass the cap of {} ([attach] max_bytes); attach less or raise the cap", path.display(), human_bytes(*cap))]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{}: attachments would pass the cap of {cap} files ([attach] max_files); attach a narrower directory or raise the cap", path.display())]
    TooManyFiles { path: PathBuf, cap: usize },
    #[error("{}: no text files to attach (hidden, ignored and binary files are skipped)", path.display())]
    EmptyDir { path: PathBuf },
    #[error("-: stdin can be attached only once")]
    StdinTwice,
}

impl AttachError {
    /// The path the error is about, for a front-end that marks it.
    pub fn path(&self) -> &Path {
        match self {
            AttachError::Unreadable { path, .. }
            | AttachError::Binary { path }
            | AttachError::NotUtf8 { path }
            | AttachError::TooLarge { path, .. }
            | AttachError::TooManyFiles { path, .. }
            | AttachError::EmptyDir { path } => path,
            AttachError::StdinTwice => Path::new("-"),
        }
    }
}

/// Reads every path (`-` is stdin) under `caps`, in order.
pub fn load(paths: &[PathBuf], caps: Caps) -> Result<Vec<Attachment>, AttachError> {
    load_with(paths, caps, &mut std::io::stdin().lock())
}

/// As `load`, with stdin given (tests, or a caller that already holds it).
pub fn load_with(
    paths: &[PathBuf],
    caps: Caps,
    stdin: &mut dyn Read,
) -> Result<Vec<Attachment>, AttachError> {
    let mut budget = read::Budget::new(caps);
    let mut stdin = Some(stdin);
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let a = if path.as_os_str() == "-" {
            let input = stdin.take().ok_or(AttachError::StdinTwice)?;
            read::stdin(input, &mut budget)?
        } else {
            read::path(path, &mut budget)?
        };
        out.push(a);
    }
    Ok(out)
}

impl Attachment {
    fn new(
        path: PathBuf,
        kind: Kind,
        files: Vec<FileText>,
        skipped: Vec<(PathBuf, SkipReason)>,
    ) -> Self {
        let bytes = files.iter().map(|f| f.text.len() as u64).sum();
        let mut a = Attachment {
            path,
            kind,
            files,
            skipped,
            bytes,
            tokens: 0,
        };
        a.tokens = crate::chat::estimate_tokens(&a.render_for_prompt());
        a
    }

    /// The text a model is sent: each file fenced under its path; a directory first lists
    /// what it holds (and what was skipped).
    pub fn render_for_prompt(&self) -> String {
        render::prompt(self)
    }

    /// The compact line a transcript shows: path, size, tokens (and a directory's file count).
    pub fn summary(&self) -> String {
        render::summary(self)
    }
}

#[cfg(test)]
#[path = "attach/tests.rs"]
mod tests;
