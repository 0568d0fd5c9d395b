use super::*;

fn meta(target: &str, cost: f64) -> TurnMeta {
    TurnMeta {
        target: Some(target.into()),
        cost_usd: cost,
        ..Default::default()
    }
}

#[test]
fn turns_round_trip_in_order() {
    let mut s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("first chat", false, None).unwrap();
    s.add_turn(c, Role::User, "hello there", &TurnMeta::default(), false)
        .unwrap();
    let a = s.begin_answer(c, &meta("local", 0.0)).unwrap();
    s.save_partial(a, "Hi").unwrap();
    let mid = s.turns(c).unwrap();
    assert!(!mid[1].complete && mid[1].content == "Hi");
    let done = TurnMeta {
        usage: Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 3,
            ttft_ms: 40,
            tokens_per_s: 30.0,
        }),
        ..meta("local", 0.0)
    };
    s.finish_answer(a, "Hi! How can I help?", &done, false)
        .unwrap();
    let turns = s.turns(c).unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1].content, "Hi! How can I help?");
    assert!(turns[1].complete && !turns[1].interrupted);
    assert_eq!(turns[1].meta.usage.unwrap().completion_tokens, 3);
    assert_eq!(
        s.messages(c).unwrap(),
        vec![
            Message::user("hello there"),
            Message::assistant("Hi! How can I help?")
        ]
    );
}

#[test]
fn find_by_id_title_and_prefix() {
    let mut s = Store::open_in_memory().unwrap();
    let a = s
        .create_conversation("rust lifetimes", false, None)
        .unwrap();
    let b = s.create_conversation("dinner plans", false, None).unwrap();
    assert_eq!(s.find(&a.to_string()).unwrap().id, a);
    assert_eq!(s.find("dinner plans").unwrap().id, b);
    assert_eq!(s.find("rust").unwrap().id, a);
    assert!(matches!(s.find("nothing"), Err(SessionError::NotFound(_))));
    assert_eq!(s.last_conversation().unwrap().unwrap().id, b);
}

#[test]
fn search_uses_fts_and_follows_edits_and_deletes() {
    let mut s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("t", false, None).unwrap();
    s.add_turn(
        c,
        Role::User,
        "how do I borrow a mutable reference",
        &TurnMeta::default(),
        false,
    )
    .unwrap();
    let t = s.begin_answer(c, &TurnMeta::default()).unwrap();
    s.finish_answer(
        t,
        "use a RefCell for interior mutability",
        &TurnMeta::default(),
        false,
    )
    .unwrap();
    assert_eq!(s.search("mutable reference", 10).unwrap().len(), 1);
    assert_eq!(s.search("RefCell", 10).unwrap()[0].turn_id, t);
    // Quotes and operators in a query are taken literally, not as FTS syntax.
    assert!(s.search("\"AND OR (", 10).unwrap().is_empty());
    s.delete(c).unwrap();
    assert!(s.search("RefCell", 10).unwrap().is_empty());
}

#[test]
fn summary_counts_and_spend_only_from_the_ledger() {
    let mut s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("t", false, None).unwrap();
    s.add_turn(c, Role::Assistant, "a", &meta("cloud", 0.25), false)
        .unwrap();
    s.add_turn(c, Role::Assistant, "b", &meta("local", 0.0), false)
        .unwrap();
    s.add_turn(c, Role::Assistant, "c", &meta("cloud", 0.5), true)
        .unwrap();
    // Spend is the ledger's, not the turns': nothing was entered there.
    assert_eq!(s.spent_since(0).unwrap(), 0.0);
    let l = &s.list(10).unwrap()[0];
    assert_eq!((l.turns, l.local_answers, l.cloud_answers), (3, 1, 2));
}

#[test]
fn file_is_private_and_migrations_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.sqlite3");
    let s = Store::open(&p).unwrap();
    let v: i64 = s
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, migrations::latest());
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(s);
    // Reopening applies nothing twice.
    Store::open(&p).unwrap();
}

#[test]
fn a_deleted_conversation_leaves_no_words_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.sqlite3");
    let mut s = Store::open(&p).unwrap();
    let keep = s.create_conversation("kept", false, None).unwrap();
    s.add_turn(
        keep,
        Role::User,
        "an ordinary question",
        &TurnMeta::default(),
        false,
    )
    .unwrap();
    let gone = s
        .create_conversation("about zebrafrobnicator", false, None)
        .unwrap();
    s.add_turn(
        gone,
        Role::User,
        "tell me about zebrafrobnicator",
        &TurnMeta::default(),
        false,
    )
    .unwrap();
    let a = s.begin_answer(gone, &meta("local", 0.0)).unwrap();
    s.save_partial(a, "A zebrafrobnicator is").unwrap();
    s.finish_answer(
        a,
        "A zebrafrobnicator is a gadget.",
        &meta("local", 0.0),
        false,
    )
    .unwrap();
    drop(s);
    let mut s = Store::open(&p).unwrap();
    s.delete(gone).unwrap();
    assert_eq!(s.search("ordinary", 10).unwrap().len(), 1);
    // Still open, as the chat screen keeps it: the write-ahead log must not hold them either.
    for f in ["h.sqlite3", "h.sqlite3-wal"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        let found = bytes.windows(8).any(|w| w == b"frobnica");
        assert!(!found, "{f} still holds the deleted words");
    }
}

/// Four connections opening one new file at the same instant, many times over: the moment
/// before it is in WAL mode is where SQLite returns "database is locked" without waiting.
#[test]
fn many_openers_of_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..100 {
        let path = dir.path().join(format!("h{round}.sqlite3"));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let (path, gate) = (path.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    let mut s = Store::open(&path)?;
                    s.create_conversation("c", false, None).map(|_| ())
                })
            })
            .collect();
        for o in openers {
            o.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}
