//! One-shot flags typed where the chat screen would open: refused with one line and exit 2,
//! never dropped without a word (a dropped `--private` or `--no-history` breaks a promise).
//! Needs tmux for a real terminal; under CI (`CI=true`) its absence is a failure.

mod common;

use std::time::Duration;

use common::tmux::session_without_model;

#[test]
fn one_shot_flags_on_a_terminal_are_refused_not_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(tmux) = session_without_model(tmp.path(), "flags") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_tandem");
    for (i, flag) in ["--no-history", "--private", "-x"].iter().enumerate() {
        // Split, so the typed line itself never shows what the wait looks for.
        tmux.send(&["-l", &format!("{bin} {flag}; echo EXIT\"\"ED{i}:$?")]);
        tmux.send(&["Enter"]);
        let done = format!("EXITED{i}:");
        let s = tmux.wait("the refusal", Duration::from_secs(60), |s| {
            s.contains(&done)
        });
        assert!(s.contains(&format!("EXITED{i}:2")), "{flag}: {s}");
        assert!(s.contains("is for one-shot mode"), "{flag}: {s}");
    }
}
