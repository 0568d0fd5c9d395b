//! A conversation longer than the in-process model's window (SmolLM2: 8,192 tokens, read from
//! its GGUF header) is cut before it reaches the engine: the oldest turns go, room stays for
//! the answer, and one-shot mode says where it cut. The real model is needed (scripts/test
//! puts it in TANDEM_MODELS_DIR); the answer itself is not waited for, since prefilling
//! ~7,000 tokens on a CPU takes minutes and proves nothing more.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::Sandbox;
use tandem::chat::Role;
use tandem::session::{Store, TurnMeta};

/// `n` turns of about `tokens` (estimated) per message.
fn long_history(sb: &Sandbox, n: usize, tokens: usize) {
    let mut store = Store::open(&sb.history_db()).unwrap();
    let id = store.create_conversation("long", false, None).unwrap();
    let words = "word ".repeat(tokens * 4 / 5);
    let local = TurnMeta {
        target: Some("local".into()),
        ..Default::default()
    };
    for i in 0..n {
        let q = format!("question {i}: {words}");
        store
            .add_turn(id, Role::User, &q, &TurnMeta::default(), false)
            .unwrap();
        let a = format!("answer {i}: {words}");
        store
            .add_turn(id, Role::Assistant, &a, &local, false)
            .unwrap();
    }
}

#[test]
fn a_12000_token_history_is_cut_to_the_local_window_with_room_for_the_answer() {
    let sb = Sandbox::new();
    long_history(&sb, 30, 200);
    let mut child = sb
        .std_cmd_with_model()
        .args(["-c", "-p", "and now?", "--route", "local", "--no-pull"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut cut = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("left out to fit") {
            cut = Some(line);
            break;
        }
        seen.push(line);
        assert!(started.elapsed() < Duration::from_secs(120), "{seen:?}");
    }
    // The note comes before the engine starts on the prompt; nothing more is needed from it.
    let _ = child.kill();
    let _ = child.wait();
    let cut = cut.unwrap_or_else(|| panic!("no cut was reported: {seen:?}"));
    assert!(cut.contains("smollm2-135m's 8192-token window"), "{cut}");
    let number = |after: &str| -> usize {
        let rest = &cut[cut.find(after).unwrap() + after.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let dropped = number("tandem: ");
    let (sent, reserve) = (number("(~"), number("tokens sent, "));
    assert!(dropped > 0 && dropped < 30, "{cut}");
    assert_eq!(reserve, 512, "local.max_tokens stays free: {cut}");
    assert!(sent + reserve <= 8192, "{cut}");
    assert!(sent > 5000, "the window is used, not emptied: {cut}");
}
