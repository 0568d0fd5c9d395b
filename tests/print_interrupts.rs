//! One-shot mode interrupted mid-answer: Ctrl-C, SIGTERM and SIGHUP keep the partial answer
//! marked interrupted and exit 128 + the signal; kill -9 leaves a sound database whose partial
//! answer shows as interrupted. Answers come from the real model (scripts/test installs it).

use std::process::Stdio;
use std::time::Duration;

mod common;
use common::{Sandbox, json_of, spawn_until_output, wait_bounded};
use tandem::session::Store;

/// Starts a long local answer and returns once some of it has streamed.
fn start_long_answer(sb: &Sandbox, extra: &[&str]) -> std::process::Child {
    let mut c = sb.std_cmd_with_model();
    c.env("TANDEM_LOCAL__MAX_TOKENS", "400").args(extra).args([
        "-p",
        "Write a very long story about a dragon and a knight.",
        "--route",
        "local",
    ]);
    spawn_until_output(c, Stdio::null(), 1)
}

/// A signal right after the first token (no fixed sleep: a faster engine cannot finish first)
/// keeps the partial answer, marked interrupted, and exits 128 + the signal.
#[test]
fn ctrl_c_sigterm_and_sighup_keep_the_partial_answer_marked_interrupted() {
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        let sb = Sandbox::new();
        let mut child = start_long_answer(&sb, &[]);
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = wait_bounded(&mut child, Duration::from_secs(30));
        assert_eq!(status.code(), Some(code), "signal {sig}");
        let store = Store::open(&sb.history_db()).unwrap();
        let conv = store.last_conversation().unwrap().unwrap();
        let turns = store.turns(conv.id).unwrap();
        assert_eq!(turns.len(), 2);
        assert!(
            turns[1].interrupted && turns[1].complete && !turns[1].content.is_empty(),
            "{:?}",
            turns[1]
        );
    }
}

#[test]
fn kill_9_mid_stream_leaves_a_sound_database_and_an_answer_shown_as_interrupted() {
    let sb = Sandbox::new();
    let first = sb
        .cmd_with_model()
        .args(["-p", "Say hello.", "--route", "local", "--json"])
        .output()
        .unwrap();
    let conv = json_of(&first)["conversation_id"].as_i64().unwrap();
    // The first token is on disk before it reaches stdout, so once a byte has been read the
    // partial answer is saved: no sleep needed.
    let mut child = start_long_answer(&sb, &["-c"]);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = Store::open(&sb.history_db()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let turns = store.turns(conv).unwrap();
    assert_eq!(turns.len(), 4, "{turns:?}");
    assert!(turns[0].complete && turns[1].complete && !turns[1].content.is_empty());
    assert!(
        !turns[3].complete && !turns[3].content.is_empty() && turns[3].cut_off(),
        "the partial answer was not saved: {:?}",
        turns[3]
    );
    let show = sb
        .cmd()
        .args(["history", "show", &conv.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8(show.stdout).unwrap();
    let last_heading = text.lines().rfind(|l| l.starts_with("**local")).unwrap();
    assert!(last_heading.contains("interrupted"), "{text}");
    let md = sb
        .cmd()
        .args(["history", "export", &conv.to_string(), "--format", "md"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(md.stdout)
            .unwrap()
            .contains("· interrupted**")
    );
    // Its usage is in the ledger, estimated: both answers count.
    let stats = sb.cmd().args(["stats", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v["local"]["turns"], 2, "{v}");
}
