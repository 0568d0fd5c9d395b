//! The user's editor (`$VISUAL`, then `$EDITOR`, then `vi`): run on a file (`config edit`) or
//! on a text through a private temporary file (the chat screen's Ctrl-E). The caller hands
//! over the terminal first; nothing here touches it.

use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error("cannot start editor {prog:?} ({reason}); set $VISUAL or $EDITOR")]
    Start { prog: String, reason: String },
    #[error("editor {prog:?} exited with {status}")]
    Failed { prog: String, status: String },
    #[error("editor file: {0}")]
    File(#[from] std::io::Error),
}

/// The editor command line, split on whitespace (`code --wait` works).
fn command() -> (String, Vec<String>) {
    let line = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_default();
    let mut parts = line.split_whitespace().map(String::from);
    let prog = parts.next().unwrap_or_else(|| "vi".into());
    (prog, parts.collect())
}

/// Runs the editor on `path` and waits for it.
pub fn open(path: &Path) -> Result<(), EditorError> {
    let (prog, args) = command();
    run(prog, &args, path)
}

fn run(prog: String, args: &[String], path: &Path) -> Result<(), EditorError> {
    let status = std::process::Command::new(&prog)
        .args(args)
        .arg(path)
        .status()
        .map_err(|e| EditorError::Start {
            prog: prog.clone(),
            reason: e.to_string(),
        })?;
    if !status.success() {
        return Err(EditorError::Failed {
            prog,
            status: status.to_string(),
        });
    }
    Ok(())
}

/// Edits `text` and returns what was saved. The file is made by the OS temporary-file API:
/// an unpredictable name, created exclusively, mode 0600 (a prompt can hold a secret), and
/// removed afterwards whatever happens.
pub fn edit_text(text: &str) -> Result<String, EditorError> {
    let (prog, args) = command();
    edit_with(text, prog, &args)
}

fn edit_with(text: &str, prog: String, args: &[String]) -> Result<String, EditorError> {
    let mut file = tempfile::Builder::new()
        .prefix("tandem-prompt-")
        .suffix(".md")
        .tempfile()?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    run(prog, args, file.path())?;
    // Editors often replace the file rather than write into it, so read it by name.
    Ok(std::fs::read_to_string(file.path())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_file_is_private_unpredictable_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        // A stand-in editor that records the file's name and mode, then rewrites it.
        let script = format!(
            "printf '%s %s' \"$1\" $(stat -c %a \"$1\") > {}; printf 'edited' > \"$1\"",
            seen.display()
        );
        let args = ["-c".to_string(), script, "sh".to_string()];
        let out = edit_with("draft", "sh".into(), &args).unwrap();
        assert_eq!(out, "edited");
        let seen = std::fs::read_to_string(&seen).unwrap();
        let (path, mode) = seen.rsplit_once(' ').unwrap();
        assert_eq!(mode, "600");
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("tandem-prompt-") && name.ends_with(".md"));
        assert_ne!(&*name, format!("tandem-prompt-{}.md", std::process::id()));
        assert!(!Path::new(path).exists(), "the file is removed");
        let failed = edit_with("x", "false".into(), &[]).unwrap_err();
        assert!(failed.to_string().contains("exited with"), "{failed}");
    }
}
