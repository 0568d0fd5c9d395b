//! A detached tmux session running bash with its own XDG directories and the shared model
//! store: the chat screen's end-to-end tests drive the real binary through it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }
    /// Pastes `text` as one bracketed paste, as a terminal does with a clipboard.
    pub fn paste(&self, text: &str) {
        self.run(&["set-buffer", "--", text]);
        self.run(&["paste-buffer", "-p", "-t", "e2e"]);
    }
    pub fn type_line(&self, line: &str) {
        self.send(&["-l", line]);
        self.send(&["Enter"]);
    }
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }
    /// Polls the screen until `pred` holds; panics with the last screen after `limit`.
    pub fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > limit {
                panic!("timed out after {limit:?} waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Kills the tmux server even when an assertion fails.
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// A detached 100x30 tmux session running bash in `t`, with XDG dirs under `t` and the shared
/// model store, or `None` (after saying why) when tmux or the model is missing.
pub fn session(t: &Path, name: &str) -> Option<Tmux> {
    open(t, name, true)
}

/// The same, for tests that never start the local model.
pub fn session_without_model(t: &Path, name: &str) -> Option<Tmux> {
    open(t, name, false)
}

fn open(t: &Path, name: &str, needs_model: bool) -> Option<Tmux> {
    let models = super::models_dir();
    let model_missing = needs_model && !models.join("smollm2-135m.gguf").exists();
    if model_missing || Command::new("tmux").arg("-V").output().is_err() {
        let why = if needs_model {
            format!("needs tmux and {}/smollm2-135m.gguf", models.display())
        } else {
            "needs tmux".to_string()
        };
        // CI must run these: a missing dependency there is a failure, not a pass.
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{why} (CI=true, so this fails rather than skips)"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    let tmux = Tmux {
        socket: format!("tandem-{name}-{}", std::process::id()),
    };
    let env = [
        ("XDG_CONFIG_HOME", t.join("config")),
        ("XDG_DATA_HOME", t.join("data")),
        ("XDG_STATE_HOME", t.join("state")),
        ("XDG_CACHE_HOME", t.join("cache")),
        ("TANDEM_MODELS_DIR", models.clone()),
    ];
    let mut args: Vec<String> = vec![
        "new-session".into(),
        "-d".into(),
        "-s".into(),
        "e2e".into(),
        "-x".into(),
        "100".into(),
        "-y".into(),
        "30".into(),
        "-c".into(),
        t.display().to_string(),
    ];
    for (k, v) in &env {
        args.push("-e".into());
        args.push(format!("{k}={}", v.display()));
    }
    args.push("-e".into());
    args.push("PS1=$ ".into());
    // --noediting: bash must not fix the tty itself, or a broken restore would go unseen.
    args.push("bash --norc --noprofile --noediting".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    tmux.run(&argv);
    Some(tmux)
}
