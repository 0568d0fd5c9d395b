//! `/role` and `@path` in a real terminal: the real binary in a detached tmux session, the cloud
//! a loopback stand-in that records what it is sent. `/role shell` then a prompt must send the
//! shell role's system prompt; `@file` must send the file under its path and list it above the
//! prompt. Without tmux this test skips, except under CI (`CI=true`), where it fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Recorder;

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
    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", line]);
        self.run(&["send-keys", "-t", "e2e", "Enter"]);
    }
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.run(&["capture-pane", "-p", "-t", "e2e"]);
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn role_and_at_path_in_the_chat_screen() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "needs tmux (CI=true, so this fails rather than skips)"
        );
        eprintln!("skipped: needs tmux");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cloud = Recorder::answering("ls -S");
    let config = t.path().join("config/tandem/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, cloud.provider("lab", "tiny", "")).unwrap();
    std::fs::write(t.path().join("notes.txt"), "NOTES-LINE-42\n").unwrap();
    let tmux = Tmux {
        socket: format!("tandem-ctx-{}", std::process::id()),
    };
    let mut args: Vec<String> = ["new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30"]
        .map(String::from)
        .to_vec();
    args.extend(["-c".into(), t.path().display().to_string()]);
    for dir in ["config", "data", "state", "cache"] {
        let var = format!("XDG_{}_HOME", dir.to_uppercase());
        args.extend([
            "-e".into(),
            format!("{var}={}", t.path().join(dir).display()),
        ]);
    }
    args.push("bash --norc --noprofile --noediting".into());
    tmux.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let bin = env!("CARGO_BIN_EXE_tandem");
    tmux.type_line(&format!("{bin} --route cloud --no-pull"));
    tmux.wait("the chat screen", |s| s.contains("Enter sends"));

    tmux.type_line("/role shell");
    tmux.wait("the role notice", |s| s.contains("role: shell"));
    tmux.type_line("list files by size");
    tmux.wait("the answer", |s| s.contains("ls -S"));
    let first = &cloud.bodies()[0];
    assert_eq!(first["messages"][0]["role"], "system", "{first}");
    assert!(
        first["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("You turn a request into one shell command."),
        "{first}"
    );

    tmux.type_line("summarise @notes.txt");
    let screen = tmux.wait("the attachment line", |s| s.contains("notes.txt · 14 B"));
    tmux.wait("the second answer", |s| s.matches("ls -S").count() >= 2);
    let second = &cloud.bodies()[1];
    let user = second["messages"].as_array().unwrap().last().unwrap();
    let text = user["content"].as_str().unwrap();
    assert!(
        text.contains("NOTES-LINE-42") && text.contains("notes.txt`:"),
        "{second}\n{screen}"
    );
    tmux.run(&["send-keys", "-t", "e2e", "C-d"]);
}
