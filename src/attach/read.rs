//! Reading attachments under the caps: one file, a directory walk, stdin. Nothing is read past
//! the bytes the caps still allow, so a huge file or an endless pipe costs at most the cap.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{AttachError, Attachment, Caps, FileText, Kind, SkipReason};

/// What the caps still allow this turn.
pub(super) struct Budget {
    caps: Caps,
    bytes: u64,
    files: usize,
}

impl Budget {
    pub(super) fn new(caps: Caps) -> Budget {
        Budget {
            caps,
            bytes: 0,
            files: 0,
        }
    }

    fn bytes_left(&self) -> u64 {
        self.caps.max_bytes.saturating_sub(self.bytes)
    }

    fn take_file(&mut self, shown_as: &Path) -> Result<(), AttachError> {
        if self.files >= self.caps.max_files {
            return Err(AttachError::TooManyFiles {
                path: shown_as.to_path_buf(),
                cap: self.caps.max_files,
            });
        }
        self.files += 1;
        Ok(())
    }
}

/// The bytes read, and whether the input went on past what the caps allow.
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

fn read_capped(input: &mut dyn Read, left: u64) -> std::io::Result<Capped> {
    let mut bytes = Vec::new();
    // One byte past what is left tells "exactly at the cap" from "over it".
    input.take(left.saturating_add(1)).read_to_end(&mut bytes)?;
    let over = bytes.len() as u64 > left;
    Ok(Capped { bytes, over })
}

/// A NUL byte marks binary data, as git and ripgrep decide it: text never holds one.
fn is_binary(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

/// A file that cannot be opened, in words a user reads (also `tandem route --stats FILE`).
pub(crate) fn unreadable(path: &Path, e: &std::io::Error) -> AttachError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    AttachError::Unreadable {
        path: path.to_path_buf(),
        reason,
    }
}

/// The text of one file, or why it is not text. `shown_as` names it in errors.
fn text_of(
    path: &Path,
    shown_as: &Path,
    budget: &mut Budget,
) -> Result<Result<String, SkipReason>, AttachError> {
    let mut f = std::fs::File::open(path).map_err(|e| unreadable(shown_as, &e))?;
    let read = read_capped(&mut f, budget.bytes_left()).map_err(|e| unreadable(shown_as, &e))?;
    // Binary wins over size: a large image in a directory is skipped, not "over the cap".
    if is_binary(&read.bytes) {
        return Ok(Err(SkipReason::Binary));
    }
    if read.over {
        return Err(AttachError::TooLarge {
            path: shown_as.to_path_buf(),
            cap: budget.caps.max_bytes,
        });
    }
    match String::from_utf8(read.bytes) {
        Ok(text) => {
            budget.bytes += text.len() as u64;
            Ok(Ok(text))
        }
        Err(_) => Ok(Err(SkipReason::NotUtf8)),
    }
}

/// A file or a directory, by what is on disk.
pub(super) fn path(path: &Path, budget: &mut Budget) -> Result<Attachment, AttachError> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, &e))?;
    if meta.is_dir() {
        return dir(path, budget);
    }
    budget.take_file(path)?;
    let text = match text_of(path, path, budget)? {
        Ok(t) => t,
        Err(SkipReason::Binary) => {
            return Err(AttachError::Binary {
                path: path.to_path_buf(),
            });
        }
        Err(SkipReason::NotUtf8) => {
            return Err(AttachError::NotUtf8 {
                path: path.to_path_buf(),
            });
        }
    };
    let file = FileText {
        path: path.to_path_buf(),
        text,
    };
    Ok(Attachment::new(
        path.to_path_buf(),
        Kind::File,
        vec![file],
        vec![],
    ))
}

fn dir(root: &Path, budget: &mut Budget) -> Result<Attachment, AttachError> {
    let walk = ignore::WalkBuilder::new(root)
        .hidden(true)
        // A .gitignore means "not part of this" even in a tree that is not a git repository.
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    for entry in walk {
        let entry = entry.map_err(|e| AttachError::Unreadable {
            path: root.to_path_buf(),
            reason: e.to_string().replace('\n', " "),
        })?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let shown = tidy(entry.path());
        budget.take_file(root)?;
        match text_of(entry.path(), &shown, budget)? {
            Ok(text) => files.push(FileText { path: shown, text }),
            Err(why) => {
                // A skipped file is not sent, so it does not count against max_files.
                budget.files -= 1;
                skipped.push((shown, why));
            }
        }
    }
    if files.is_empty() {
        return Err(AttachError::EmptyDir {
            path: root.to_path_buf(),
        });
    }
    Ok(Attachment::new(
        root.to_path_buf(),
        Kind::Dir,
        files,
        skipped,
    ))
}

/// `./src/x.rs` is shown as `src/x.rs`.
fn tidy(p: &Path) -> PathBuf {
    p.strip_prefix(".")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

pub(super) fn stdin(input: &mut dyn Read, budget: &mut Budget) -> Result<Attachment, AttachError> {
    let shown = PathBuf::from("-");
    budget.take_file(&shown)?;
    let read = read_capped(input, budget.bytes_left()).map_err(|e| unreadable(&shown, &e))?;
    if is_binary(&read.bytes) {
        return Err(AttachError::Binary { path: shown });
    }
    if read.over {
        return Err(AttachError::TooLarge {
            path: shown,
            cap: budget.caps.max_bytes,
        });
    }
    let text = String::from_utf8(read.bytes).map_err(|_| AttachError::NotUtf8 {
        path: shown.clone(),
    })?;
    budget.bytes += text.len() as u64;
    let file = FileText {
        path: shown.clone(),
        text,
    };
    Ok(Attachment::new(shown, Kind::Stdin, vec![file], vec![]))
}
