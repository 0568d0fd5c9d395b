//! `/role` and `@path` in a real terminal: the real binary in a detached tmux session, the cloud
//! a loopback stand-in that records what it is sent. `/role shell` then a prompt must send the
//! shell role's system prompt; `@file` must send the file under its path and list it above the
//! prompt. Without tmux this test skips, except under CI (`CI=true`), where it fails.

mod common;

use std::time::Duration;

use common::Recorder;
use common::tmux::session_without_model;

#[test]
fn role_and_at_path_in_the_chat_screen() {
    let t = tempfile::tempdir().unwrap();
    let cloud = Recorder::answering("ls -S");
    let config = t.path().join("config/tandem/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, cloud.provider("lab", "tiny", "")).unwrap();
    std::fs::write(t.path().join("notes.txt"), "NOTES-LINE-42\n").unwrap();
    let Some(tmux) = session_without_model(t.path(), "ctx") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_tandem");
    tmux.type_line(&format!("{bin} --route cloud --no-pull"));
    tmux.wait("the chat screen", Duration::from_secs(60), |s| {
        s.contains("Enter sends")
    });

    tmux.type_line("/role shell");
    tmux.wait("the role notice", Duration::from_secs(60), |s| {
        s.contains("role: shell")
    });
    tmux.type_line("list files by size");
    tmux.wait("the answer", Duration::from_secs(60), |s| {
        s.contains("ls -S")
    });
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
    let screen = tmux.wait("the attachment line", Duration::from_secs(60), |s| {
        s.contains("notes.txt · 14 B")
    });
    tmux.wait("the second answer", Duration::from_secs(60), |s| {
        s.matches("ls -S").count() >= 2
    });
    let second = &cloud.bodies()[1];
    let user = second["messages"].as_array().unwrap().last().unwrap();
    let text = user["content"].as_str().unwrap();
    assert!(
        text.contains("NOTES-LINE-42") && text.contains("notes.txt`:"),
        "{second}\n{screen}"
    );
    tmux.send(&["C-d"]);
}
