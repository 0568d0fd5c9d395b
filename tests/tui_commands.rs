//! Pure `update` tests for slash commands, the sidebar and keymap overrides.

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
fn private_toggles_and_is_passed_with_the_prompt() {
    let mut a = app();
    send(&mut a, "/private");
    assert!(a.private);
    assert!(matches!(
        &send(&mut a, "secret")[..],
        [Effect::Ask { private: true, .. }]
    ));
}

#[test]
fn why_and_help_open_overlays_and_any_key_closes_them() {
    let mut a = app();
    send(&mut a, "/why");
    assert_eq!(a.overlay, None, "nothing routed yet");
    answer(&mut a, "hi", Target::Local, "ok", FinishReason::Stop);
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
    answer(&mut a, "hi", Target::Local, "ok", FinishReason::Stop);
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
    let fx = send(&mut a, "/delete");
    assert_eq!(fx, vec![Effect::Delete(7), Effect::RefreshConversations]);
    assert!(a.entries.is_empty());
    answer(&mut a, "again", Target::Local, "ok", FinishReason::Stop);
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
    answer(&mut a, "hi", Target::Local, "first", FinishReason::Stop);
    let fx = send(&mut a, "/retry");
    assert!(
        matches!(&fx[..], [Effect::Ask { prompt, route: RouteRequest::Force(Target::Cloud), store_prompt: false, conv: Some(7), history, .. }] if prompt == "hi" && history.is_empty())
    );
    assert_eq!(a.entries.len(), 3);
    assert!(a.entries[2].seam);
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
