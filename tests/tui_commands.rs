//! Pure `update` tests for slash commands, the sidebar and keymap overrides (`/model`:
//! tui_model_command.rs).

mod tui_support;
use tui_support::*;

#[test]
fn route_commands_set_the_mode() {
    let mut a = app();
    for (cmd, mode) in [
        ("/local", RouteMode::Local),
        ("/cloud", RouteMode::Cloud),
        ("/auto", RouteMode::Auto),
    ] {
        assert!(send(&mut a, cmd).is_empty());
        assert_eq!(a.mode, mode);
    }
    assert!(a.entries.is_empty(), "commands are not prompts");
}

#[test]
fn private_toggles_is_passed_with_the_prompt_and_saved_on_a_stored_chat() {
    let mut a = app();
    send(&mut a, "/private");
    assert!(a.private);
    let (req, request) = ask_of(&send(&mut a, "secret"));
    assert!(request.private);
    ev(&mut a, req, TurnEvent::Routed(decision(Target::Local)));
    opened(&mut a, req, 7);
    done(&mut a, req, Finish::Answered);
    assert_eq!(
        send(&mut a, "/private"),
        vec![Effect::SetPrivate {
            conv: 7,
            private: false
        }]
    );
    // A reopened chat brings its pin back.
    update(
        &mut a,
        Msg::ConversationLoaded {
            id: 7,
            title: "t".into(),
            private: true,
            turns: vec![],
        },
    );
    assert!(a.private);
}

#[test]
fn cloud_on_a_private_chat_is_refused_with_the_way_out() {
    let mut a = app();
    send(&mut a, "/private");
    assert!(send(&mut a, "/cloud").is_empty());
    assert_eq!(a.mode, RouteMode::Auto, "the route did not change");
    let n = a.notice.clone().unwrap();
    assert!(
        n.starts_with("not sent to the cloud") && n.contains("/private"),
        "{n}"
    );
    // A secret found by the pipeline counts as much as the pin.
    let mut a = app();
    let req = req_of(&send(&mut a, "key sk-proj-abcdefghijklmnopqrstuvwx"));
    ev(
        &mut a,
        req,
        TurnEvent::Opened {
            conversation: Some(3),
            title: "key".into(),
            privacy: Privacy::of(false, "key sk-proj-abcdefghijklmnopqrstuvwx", &[]),
        },
    );
    done(&mut a, req, Finish::Answered);
    send(&mut a, "/cloud");
    assert_eq!(a.mode, RouteMode::Auto);
    assert!(a.notice.clone().unwrap().contains("API key"));
}

#[test]
fn a_refused_turn_gives_the_prompt_back() {
    let mut a = app();
    let req = req_of(&send(&mut a, "please go out"));
    let why = Refusal::Private(Privacy::Pinned);
    ev(&mut a, req, TurnEvent::Refused(why.clone()));
    done(&mut a, req, Finish::Refused);
    assert!(a.entries.is_empty(), "nothing was sent or stored");
    assert_eq!(a.composer.text, "please go out");
    assert_eq!(a.notice, Some(why.to_string()));
    // A refused retry keeps the first answer and drops only the empty second one.
    let mut a = app();
    answer(&mut a, "hi", Target::Local, "first", true);
    let req = req_of(&send(&mut a, "/retry"));
    ev(&mut a, req, TurnEvent::Refused(why));
    done(&mut a, req, Finish::Refused);
    assert_eq!(a.entries.len(), 2);
    assert_eq!(a.composer.text, "");
}

#[test]
fn why_and_help_open_overlays_and_any_key_closes_them() {
    let mut a = app();
    send(&mut a, "/why");
    assert_eq!(a.overlay, None, "nothing routed yet");
    answer(&mut a, "hi", Target::Local, "ok", true);
    send(&mut a, "/why");
    assert_eq!(a.overlay, Some(Overlay::Why));
    update(&mut a, key(KeyCode::Char('x')));
    assert_eq!(a.overlay, None);
    assert_eq!(a.composer.text, "", "the closing key is not typed");
    send(&mut a, "/help");
    assert_eq!(a.overlay, Some(Overlay::Help));
    update(&mut a, key(KeyCode::Esc));
    update(&mut a, key(KeyCode::F(1)));
    assert_eq!(a.overlay, Some(Overlay::Help));
}

#[test]
fn new_rename_delete_commands() {
    let mut a = app();
    send(&mut a, "/rename nothing yet");
    assert!(a.notice.as_deref().unwrap().contains("nothing to rename"));
    answer(&mut a, "hi", Target::Local, "ok", true);
    let fx = send(&mut a, "/rename My chat");
    assert_eq!(
        fx,
        vec![
            Effect::Rename {
                conv: 7,
                title: "My chat".into()
            },
            Effect::RefreshConversations
        ]
    );
    assert_eq!(a.title, "My chat");
    assert!(send(&mut a, "/delete").is_empty(), "deleting waits for a y");
    let fx = update(&mut a, key(KeyCode::Char('y')));
    assert_eq!(fx, vec![Effect::Delete(7), Effect::RefreshConversations]);
    assert!(a.entries.is_empty());
    answer(&mut a, "again", Target::Local, "ok", true);
    send(&mut a, "/new");
    assert!(a.entries.is_empty() && a.current.is_none());
}

#[test]
fn theme_command_loads_named_or_next_theme() {
    let mut a = app();
    assert_eq!(
        send(&mut a, "/theme light"),
        vec![Effect::LoadTheme("light".into())]
    );
    update(&mut a, Msg::ThemeLoaded(Ok(("light".into(), false))));
    assert_eq!(a.theme_name, "light");
    assert!(!a.dark);
    assert_eq!(
        send(&mut a, "/theme"),
        vec![Effect::LoadTheme("high-contrast".into())]
    );
}

#[test]
fn retry_asks_the_other_tier_and_keeps_both_answers() {
    let mut a = app();
    answer(&mut a, "hi", Target::Local, "first", true);
    let (_, request) = ask_of(&send(&mut a, "/retry"));
    assert_eq!(
        request.ask,
        Ask::Again,
        "the stored prompt, not stored twice"
    );
    assert_eq!(request.route, RouteRequest::Force(Target::Cloud));
    assert_eq!(request.thread, Thread::Stored(7));
    assert_eq!(a.entries.len(), 3);
    assert_eq!(a.entries[2].seam, Some(Seam::Retry(Target::Cloud)));
    assert_eq!(a.entries[1].text, "first");
}

#[test]
fn unknown_commands_say_so() {
    let mut a = app();
    assert!(send(&mut a, "/frobnicate").is_empty());
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .contains("unknown command /frobnicate")
    );
}

#[test]
fn the_sidebar_filters_by_typing_and_opens_with_enter() {
    use tandem::tui::msg::ConvRow;
    let mut a = app();
    let row = |id, title: &str| ConvRow {
        id,
        title: title.into(),
        updated_at: 0,
        local_answers: 1,
        cloud_answers: 0,
    };
    update(
        &mut a,
        Msg::Conversations(vec![row(1, "rust lifetimes"), row(2, "pasta recipe")]),
    );
    a.focus = Focus::Sidebar;
    typed(&mut a, "pas");
    assert_eq!(a.visible_conversations().len(), 1);
    assert_eq!(
        update(&mut a, key(KeyCode::Enter)),
        vec![Effect::LoadConversation(2)]
    );
}

fn keymap(pairs: &[(&str, &str)]) -> Keymap {
    let keys = pairs
        .iter()
        .map(|(a, k)| (a.to_string(), k.to_string()))
        .collect();
    Keymap::from_config(&keys).unwrap()
}

#[test]
fn a_plain_letter_override_stays_in_the_transcript() {
    let km = keymap(&[("top", "t")]);
    assert!(
        km.describe().contains(&("t".into(), Action::Top)),
        "help shows the new key: {:?}",
        km.describe()
    );
    let mut a = App::new(km, RouteMode::Auto, "m".into(), ("default".into(), true));
    let long: String = (0..200).map(|i| format!("line {i}\n\n")).collect();
    answer(&mut a, "hi", Target::Local, &long, true);
    // In the composer `t` is a letter.
    typed(&mut a, "at");
    assert_eq!(a.composer.text, "at");
    assert_eq!(a.scroll, 0);
    // In the transcript it jumps to the top; the old `g` does nothing any more.
    a.focus = Focus::Transcript;
    update(&mut a, key(KeyCode::Char('g')));
    assert_eq!(a.scroll, 0);
    update(&mut a, key(KeyCode::Char('t')));
    assert!(a.scroll > 0);
    assert_eq!(a.composer.text, "at");
}

#[test]
fn transcript_actions_keep_their_scope_and_global_ones_theirs() {
    // A chord for a transcript-only action stays a transcript key.
    let km = keymap(&[("bottom", "ctrl-g"), ("new_chat", "ctrl-t"), ("help", "?")]);
    let ev = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
    assert_eq!(km.action(Focus::Transcript, &ev('g')), Some(Action::Bottom));
    assert_eq!(km.action(Focus::Composer, &ev('g')), None);
    // A global action rebound to a chord stays global.
    assert_eq!(km.action(Focus::Composer, &ev('t')), Some(Action::NewChat));
    assert_eq!(
        km.action(Focus::Transcript, &ev('t')),
        Some(Action::NewChat)
    );
    assert_eq!(km.action(Focus::Composer, &ev('n')), None);
    // A global action rebound to a letter: F1 is gone, `?` only works where it is not text.
    let q = KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE);
    assert_eq!(km.action(Focus::Transcript, &q), Some(Action::Help));
    assert_eq!(km.action(Focus::Composer, &q), None);
    let describe = km.describe();
    for (keys, action) in [
        ("Ctrl-G", Action::Bottom),
        ("Ctrl-T", Action::NewChat),
        ("?", Action::Help),
    ] {
        assert!(describe.contains(&(keys.into(), action)), "{describe:?}");
    }
}

#[test]
fn keymap_overrides_replace_defaults() {
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("new_chat".to_string(), "ctrl-t".to_string());
    keys.insert("send".to_string(), "ctrl-s".to_string());
    let km = Keymap::from_config(&keys).unwrap();
    let mut a = App::new(km, RouteMode::Auto, "m".into(), ("default".into(), true));
    typed(&mut a, "x");
    assert!(update(&mut a, key(KeyCode::Enter)).is_empty());
    assert!(matches!(
        &update(&mut a, ctrl('s'))[..],
        [Effect::Ask { .. }]
    ));
    keys.insert("nope".into(), "ctrl-x".into());
    assert!(Keymap::from_config(&keys).is_err());
}

#[test]
fn delete_asks_first_and_only_y_deletes() {
    let mut a = app();
    answer(&mut a, "hi", Target::Local, "ok", true);
    assert!(send(&mut a, "/delete").is_empty());
    assert_eq!(a.overlay, Some(Overlay::ConfirmDelete(7)));
    // Any other key keeps the chat, and is not typed.
    assert!(update(&mut a, key(KeyCode::Char('n'))).is_empty());
    assert_eq!(a.overlay, None);
    assert_eq!(a.notice.as_deref(), Some("kept “hi”"));
    assert_eq!((a.current, a.entries.len()), (Some(7), 2));
    assert_eq!(a.composer.text, "");
    send(&mut a, "/delete");
    assert!(update(&mut a, key(KeyCode::Esc)).is_empty());
    assert_eq!(a.current, Some(7));
    // Ctrl-Y is not a yes.
    send(&mut a, "/delete");
    assert!(update(&mut a, ctrl('y')).is_empty());
    assert_eq!(a.current, Some(7));

    send(&mut a, "/delete");
    assert_eq!(
        update(&mut a, key(KeyCode::Char('y'))),
        vec![Effect::Delete(7), Effect::RefreshConversations]
    );
    assert_eq!(a.notice.as_deref(), Some("deleted “hi”"));
    assert!(a.entries.is_empty() && a.current.is_none());
    assert!(send(&mut a, "/delete").is_empty());
    assert_eq!(a.overlay, None, "nothing to delete in a new chat");
}
