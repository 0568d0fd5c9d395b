//! End to end in a real terminal: the real binary and the real local model inside a detached
//! tmux session. Types a prompt, waits for the answer and its badge, cancels a long answer with
//! Ctrl-C, quits, and checks the terminal came back in cooked mode; and watches a weak local
//! answer escalate to a canned cloud stream. Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }
    /// Polls the screen until `pred` holds; panics with the last screen after `limit`.
    fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
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

fn models_dir() -> PathBuf {
    std::env::var_os("TANDEM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tandem-models")
        })
}

/// A detached 100x30 tmux session running bash with XDG dirs under `t` and the shared model
/// store, or `None` (after saying why) when tmux or the model is missing.
fn session(t: &Path, name: &str) -> Option<Tmux> {
    let models = models_dir();
    if !models.join("smollm2-135m.gguf").exists()
        || Command::new("tmux").arg("-V").output().is_err()
    {
        eprintln!(
            "skipped: needs tmux and {}/smollm2-135m.gguf",
            models.display()
        );
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

#[test]
fn chat_cancel_quit_in_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tmux) = session(tmp.path(), "e2e") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_tandem");
    tmux.send(&["-l", &format!("{bin} --route local; echo EXITED:$?")]);
    tmux.send(&["Enter"]);

    tmux.wait("the model to load", Duration::from_secs(120), |s| {
        s.contains("smollm2-135m ready")
    });
    tmux.send(&["-l", "Say hello in one short sentence."]);
    tmux.send(&["Enter"]);
    let s = tmux.wait(
        "a finished local answer with its badge",
        Duration::from_secs(120),
        |s| s.contains("local · smollm2-135m ·") && s.contains("tok/s") && !s.contains("Esc stops"),
    );
    eprintln!("after the first answer:\n{s}");
    assert!(s.contains("Say hello in one short sentence."));

    tmux.send(&[
        "-l",
        "Write a very long story about a dragon and a lighthouse, with many chapters.",
    ]);
    tmux.send(&["Enter"]);
    tmux.wait(
        "the long answer to start streaming",
        Duration::from_secs(60),
        |s| s.contains("Esc stops"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    tmux.send(&["C-c"]);
    let s = tmux.wait("the interrupted marker", Duration::from_secs(30), |s| {
        s.contains("⏸ interrupted")
    });
    eprintln!("after Ctrl-C:\n{s}");
    assert!(!s.contains("Esc stops"), "the answer stopped");

    // Ctrl-C on an idle, empty composer quits.
    tmux.send(&["C-c"]);
    tmux.wait("tandem to exit", Duration::from_secs(20), |s| {
        s.contains("EXITED:0")
    });
    tmux.send(&["-l", "stty -a; echo STTY-DONE"]);
    tmux.send(&["Enter"]);
    let s = tmux.wait("stty output", Duration::from_secs(10), |s| {
        s.matches("STTY-DONE").count() >= 2
    });
    let flags: Vec<&str> = s.split_whitespace().collect();
    assert!(flags.contains(&"icanon"), "terminal left in raw mode:\n{s}");
    assert!(flags.contains(&"echo"), "echo left off:\n{s}");
    assert!(
        !flags.contains(&"-icanon") && !flags.contains(&"-echo"),
        "{s}"
    );
}

#[test]
fn a_weak_local_answer_escalates_in_the_chat_screen() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let port = common::canned_cloud("The capital of France is Paris.");
    let threshold = tandem::router::Policy::default()
        .score(&tandem::router::features(
            "What is the capital of France?",
            &[],
        ))
        .0
        + 0.05;
    // The one-shot escalation test's set-up: greedy decoding without a repetition penalty makes
    // the 135M model loop, and a threshold just above the prompt's score makes it a close call.
    let cfg = t.join("config/tandem/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[local]\ntemperature = 0.0\nrepeat_penalty = 1.0\nmax_tokens = 120\n\
             [router]\nthreshold = {threshold:.3}\n\
             [providers.fake]\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodels = [{{ name = \"m\", input_price = 1.0, output_price = 2.0 }}]\n"
        ),
    )
    .unwrap();
    let Some(tmux) = session(t, "escalate") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_tandem");
    tmux.send(&["-l", &format!("{bin}; echo EXITED:$?")]);
    tmux.send(&["Enter"]);
    tmux.wait("the model to load", Duration::from_secs(120), |s| {
        s.contains("smollm2-135m ready")
    });
    tmux.send(&["-l", "What is the capital of France?"]);
    tmux.send(&["Enter"]);
    let s = tmux.wait(
        "the cloud's second answer below the seam",
        Duration::from_secs(120),
        |s| s.contains("The capital of France is Paris.") && !s.contains("Esc stops"),
    );
    eprintln!("after the escalation:\n{s}");
    assert!(s.contains("escalated to the cloud"), "{s}");
    assert!(
        s.contains("local · smollm2-135m ·"),
        "the weak answer stays: {s}"
    );
    assert!(s.contains("cloud · m ·"), "{s}");
    tmux.send(&["C-d"]);
    tmux.wait("tandem to exit", Duration::from_secs(20), |s| {
        s.contains("EXITED:0")
    });
    // Both answers are in the history, the local one first, the prompt stored once.
    let store = tandem::session::Store::open(&t.join("data/tandem/history.sqlite3")).unwrap();
    let conv = store.last_conversation().unwrap().expect("a conversation");
    let targets: Vec<_> = store
        .turns(conv.id)
        .unwrap()
        .iter()
        .map(|t| t.meta.target.clone())
        .collect();
    assert_eq!(
        targets,
        vec![None, Some("local".into()), Some("cloud".into())]
    );
}
