//! History across processes: concurrent writers lose nothing, and `tandem history` reads,
//! searches, exports and deletes what was saved.

use std::process::Command;

use tandem::chat::Role;
use tandem::session::{Store, TurnMeta};

mod common;
use common::Sandbox;

const PER_WRITER: usize = 200;

/// Runs as a child process when WRITER_DB is set: adds PER_WRITER turns to one conversation.
#[test]
#[ignore = "run by two_processes_writing_at_once_lose_nothing as a child process"]
fn writer_child() {
    let Ok(db) = std::env::var("WRITER_DB") else {
        return;
    };
    let tag = std::env::var("WRITER_TAG").unwrap();
    let mut store = Store::open(std::path::Path::new(&db)).unwrap();
    let conv = store
        .create_conversation(&format!("writer {tag}"), false, None)
        .unwrap();
    for i in 0..PER_WRITER {
        store
            .add_turn(
                conv,
                Role::User,
                &format!("{tag} turn {i}"),
                &TurnMeta::default(),
                false,
            )
            .unwrap();
    }
}

#[test]
fn two_processes_writing_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let spawn = |tag: &str| {
        Command::new(&exe)
            .args(["writer_child", "--exact", "--ignored", "--nocapture"])
            .env("WRITER_DB", &db)
            .env("WRITER_TAG", tag)
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("a"), spawn("b"));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let store = Store::open(&db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let convs = store.list(10).unwrap();
    assert_eq!(convs.len(), 2);
    let total: usize = convs
        .iter()
        .map(|c| store.turns(c.conversation.id).unwrap().len())
        .sum();
    assert_eq!(total, 2 * PER_WRITER);
}

#[test]
fn history_commands_read_search_export_and_delete() {
    let sb = Sandbox::new();
    {
        let mut s = Store::open(&sb.history_db()).unwrap();
        let c = s
            .create_conversation("borrow checker help", false, None)
            .unwrap();
        s.add_turn(
            c,
            Role::User,
            "why does the borrow checker reject this",
            &TurnMeta::default(),
            false,
        )
        .unwrap();
        let meta = TurnMeta {
            target: Some("cloud".into()),
            model: Some("gpt-4o-mini".into()),
            cost_usd: 0.0004,
            ..Default::default()
        };
        s.add_turn(
            c,
            Role::Assistant,
            "Because of an aliasing mutable reference.",
            &meta,
            false,
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        let out = sb.cmd().arg("history").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["list"]);
    assert!(
        list.contains("borrow checker help") && list.contains("0L/1C"),
        "{list}"
    );
    let show = run(&["show", "borrow"]);
    assert!(
        show.contains("**cloud · gpt-4o-mini · $0.0004**") && show.contains("aliasing"),
        "{show}"
    );
    let found = run(&["search", "aliasing mutable"]);
    assert!(
        found.contains("borrow checker help") && found.contains("[aliasing]"),
        "{found}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["export", "1", "--format", "json"])).unwrap();
    assert_eq!(json["turns"].as_array().unwrap().len(), 2);
    assert_eq!(json["turns"][1]["meta"]["target"], "cloud");
    assert!(run(&["export", "1"]).starts_with("# borrow checker help"));
    assert!(run(&["rm", "1"]).contains("deleted #1"));
    assert!(run(&["list"]).contains("no conversations yet"));
    let out = sb.cmd().args(["history", "show", "1"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a name that matches nothing is a usage error"
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no conversation \"1\"")
    );
}
