//! Context in the chat screen, as pure `update` tests: `/role` (read by the driver, then sent
//! with every prompt), `@path` attachments (read by the driver before the turn; a bad one
//! gives the prompt back), and the seam that marks where a long chat was cut to the window.

mod tui_support;
use tandem::tui::msg::RoleSet;
use tandem::turn::Trim;
use tui_support::*;

fn shell() -> RoleSet {
    RoleSet {
        name: "shell".into(),
        system: "You turn a request into one shell command.".into(),
        temperature: Some(0.2),
        max_tokens: Some(200),
    }
}

#[test]
fn role_is_read_by_the_driver_then_sent_with_every_prompt_until_dropped() {
    let mut a = app();
    assert_eq!(
        send(&mut a, "/role shell"),
        [Effect::LoadRole(Some("shell".into()))]
    );
    assert_eq!(send(&mut a, "/role"), [Effect::LoadRole(None)]);
    update(&mut a, Msg::RoleLoaded(Ok(shell())));
    assert_eq!(a.notice.as_deref(), Some("role: shell"));
    let (_, request) = ask_of(&send(&mut a, "list files by size"));
    assert_eq!(request.system.as_deref(), Some(shell().system.as_str()));
    assert_eq!(request.role.as_deref(), Some("shell"));
    assert_eq!(
        (request.temperature, request.max_tokens),
        (Some(0.2), Some(200))
    );
    let req = a.running.as_ref().unwrap().req;
    done(&mut a, req, Finish::Answered);
    assert!(send(&mut a, "/role off").is_empty());
    assert!(a.role.is_none());
    let (_, request) = ask_of(&send(&mut a, "again"));
    assert_eq!((request.system, request.role), (None, None));
}

#[test]
fn a_broken_role_is_one_line_and_changes_nothing() {
    let mut a = app();
    update(
        &mut a,
        Msg::RoleLoaded(Err(
            "/home/u/.config/tandem/roles/bad.md:3: temperature: expected a number; fix it".into(),
        )),
    );
    assert!(a.role.is_none());
    assert!(a.notice.as_deref().unwrap().contains("bad.md:3"));
}

#[test]
fn at_paths_are_read_before_the_turn_and_listed_above_the_prompt() {
    let mut a = app();
    let fx = send(&mut a, "explain @src/main.rs please");
    let (req, attach) = match &fx[..] {
        [Effect::AskWith { req, attach, .. }] => (*req, attach.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(attach, [std::path::PathBuf::from("src/main.rs")]);
    update(
        &mut a,
        Msg::Attached {
            req,
            lines: vec!["src/main.rs · 4.2 KiB · ~1,170 tokens".into()],
        },
    );
    let prompt = &a.entries[0];
    assert!(
        prompt.text.starts_with("+ src/main.rs · 4.2 KiB"),
        "{}",
        prompt.text
    );
    assert!(prompt.text.ends_with("explain @src/main.rs please"));
}

#[test]
fn an_unreadable_at_path_gives_the_prompt_back() {
    let mut a = app();
    let fx = send(&mut a, "look at @nope.txt");
    let req = match &fx[..] {
        [Effect::AskWith { req, .. }] => *req,
        other => panic!("{other:?}"),
    };
    let why = "nope.txt: cannot read it: no such file or directory".to_string();
    ev(&mut a, req, TurnEvent::Refused(Refusal::Attachment(why)));
    done(&mut a, req, Finish::Refused);
    assert!(a.entries.is_empty());
    assert_eq!(a.composer.text, "look at @nope.txt");
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .contains("nope.txt: cannot read")
    );
}

#[test]
fn the_cut_is_marked_above_the_first_prompt_still_sent() {
    let mut a = app();
    for i in 0..3 {
        answer(&mut a, &format!("q{i}"), Target::Local, "a", true);
    }
    let req = req_of(&send(&mut a, "q3"));
    let trim = Trim {
        dropped_turns: 2,
        tokens: 7000,
        window: 8192,
        reserve: 512,
        model: "smollm2-135m".into(),
    };
    ev(&mut a, req, TurnEvent::Trimmed(trim.clone()));
    let prompts: Vec<_> = a.entries.iter().filter(|e| e.role == Role::User).collect();
    assert_eq!(prompts[2].text, "q2");
    assert_eq!(prompts[2].seam, Some(Seam::Cut(trim.words())));
    assert!(prompts[..2].iter().all(|e| e.seam.is_none()));
    assert!(trim.words().starts_with("2 earlier turns left out"));
}

#[test]
fn tab_after_an_at_word_completes_the_path() {
    let mut a = app();
    typed(&mut a, "read @src/ma");
    let fx = update(&mut a, key(KeyCode::Tab));
    assert_eq!(fx, [Effect::CompletePath("src/ma".into())]);
    assert_eq!(a.focus, Focus::Composer, "Tab stays in the composer");
    let choices = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    update(
        &mut a,
        Msg::PathChoices {
            prefix: "src/ma".into(),
            choices: choices(&["src/main.rs", "src/markdown.rs"]),
        },
    );
    assert_eq!(a.composer.text, "read @src/ma", "no common part to add");
    assert!(a.notice.as_deref().unwrap().contains("src/markdown.rs"));
    typed(&mut a, "i");
    update(
        &mut a,
        Msg::PathChoices {
            prefix: "src/mai".into(),
            choices: choices(&["src/main.rs"]),
        },
    );
    assert_eq!(a.composer.text, "read @src/main.rs");
    // Without an @ word, Tab moves focus as before.
    typed(&mut a, " ");
    assert!(update(&mut a, key(KeyCode::Tab)).is_empty());
    assert_eq!(a.focus, Focus::Transcript);
}
