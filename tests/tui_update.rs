//! Pure `update` tests for keys and answers: a key or message in, the state and the effects
//! out. No terminal, no IO. Slash commands are in tui_commands.rs.

mod tui_support;
use tui_support::*;

#[test]
fn enter_sends_the_prompt_and_clears_the_composer() {
    let mut a = app();
    let fx = send(&mut a, "hello");
    assert!(
        matches!(&fx[..], [Effect::Ask { prompt, route: RouteRequest::Mode(RouteMode::Auto), store_prompt: true, conv: None, .. }] if prompt == "hello")
    );
    assert_eq!(a.composer.text, "");
    assert_eq!(a.entries.len(), 2);
    assert_eq!(a.entries[0].role, Role::User);
    assert!(a.running.is_some());
}

#[test]
fn enter_on_an_empty_composer_does_nothing() {
    let mut a = app();
    assert!(send(&mut a, "   ").is_empty());
    assert!(a.entries.is_empty());
}

#[test]
fn alt_enter_and_shift_enter_add_a_newline() {
    let mut a = app();
    typed(&mut a, "a");
    update(
        &mut a,
        Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)),
    );
    typed(&mut a, "b");
    update(
        &mut a,
        Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::SHIFT)),
    );
    assert_eq!(a.composer.text, "a\nb\n");
    assert!(a.running.is_none());
}

#[test]
fn editing_keys_move_and_delete_by_character() {
    let mut a = app();
    typed(&mut a, "héllo");
    update(&mut a, key(KeyCode::Left));
    update(&mut a, key(KeyCode::Backspace));
    assert_eq!(a.composer.text, "hélo");
    update(&mut a, key(KeyCode::Home));
    update(&mut a, key(KeyCode::Delete));
    assert_eq!(a.composer.text, "élo");
    update(&mut a, Msg::Paste("X\r\nY".into()));
    assert_eq!(a.composer.text, "X\nYélo");
}

#[test]
fn a_finished_answer_gets_its_badge_and_is_saved_whole() {
    let mut a = app();
    let fx = answer(
        &mut a,
        "hi",
        Target::Local,
        "hello **there**",
        FinishReason::Stop,
    );
    let finish = fx.iter().find_map(|e| match e {
        Effect::FinishAnswer {
            turn,
            text,
            interrupted,
            meta,
        } => Some((*turn, text.clone(), *interrupted, meta.clone())),
        _ => None,
    });
    let (turn, text, interrupted, meta) = finish.expect("FinishAnswer");
    assert_eq!(
        (turn, text.as_str(), interrupted),
        (70, "hello **there**", false)
    );
    assert_eq!(meta.target.as_deref(), Some("local"));
    let e = a.entries.last().unwrap();
    assert_eq!(
        e.badge.as_ref().unwrap().label(),
        "local · smollm2-135m · 0.4s · 33 tok/s"
    );
    assert!(!e.interrupted);
    assert!(a.running.is_none());
    assert_eq!(a.current, Some(7));
}

#[test]
fn cloud_badge_shows_model_and_cost() {
    let mut a = app();
    a.prices.cloud = vec![("p".into(), "gpt-4o-mini".into(), 0.15, 0.60)];
    answer(&mut a, "hi", Target::Cloud, "ok", FinishReason::Stop);
    assert_eq!(
        a.entries[1].badge.as_ref().unwrap().label(),
        "cloud · gpt-4o-mini · $0.0000"
    );
    assert!(a.spent_usd > 0.0);
}

#[test]
fn esc_cancels_and_the_partial_answer_is_kept_interrupted() {
    let mut a = app();
    let req = req_of(&send(&mut a, "long"));
    update(
        &mut a,
        Msg::Routed {
            req,
            conv: 1,
            title: "long".into(),
            turn: Some(2),
            decision: decision(Target::Local),
            local_name: "m".into(),
        },
    );
    update(
        &mut a,
        Msg::Stream {
            req,
            event: StreamEvent::Delta("partial".into()),
        },
    );
    assert_eq!(update(&mut a, key(KeyCode::Esc)), vec![Effect::Cancel]);
    // A second Esc does not cancel twice.
    assert!(update(&mut a, key(KeyCode::Esc)).is_empty());
    let fx = update(&mut a, Msg::StreamEnded { req });
    assert!(fx.iter().any(
        |e| matches!(e, Effect::FinishAnswer { interrupted: true, text, .. } if text == "partial")
    ));
    assert!(a.entries[1].interrupted);
    assert_eq!(a.entries[1].text, "partial");
}

#[test]
fn ctrl_c_cancels_then_clears_then_quits() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Cancel]);
    update(&mut a, Msg::StreamEnded { req });
    typed(&mut a, "draft");
    assert!(update(&mut a, ctrl('c')).is_empty());
    assert_eq!(a.composer.text, "");
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Quit]);
}

#[test]
fn ctrl_d_quits_and_waits_for_a_running_answer_to_be_saved() {
    let mut a = app();
    typed(&mut a, "draft");
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Quit]);
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    update(
        &mut a,
        Msg::Routed {
            req,
            conv: 1,
            title: "x".into(),
            turn: Some(2),
            decision: decision(Target::Local),
            local_name: "m".into(),
        },
    );
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Cancel]);
    let fx = update(&mut a, Msg::StreamEnded { req });
    assert!(matches!(fx.last(), Some(Effect::Quit)));
    assert!(fx.iter().any(|e| matches!(e, Effect::FinishAnswer { .. })));
}

#[test]
fn events_from_an_old_request_are_ignored() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    update(
        &mut a,
        Msg::Stream {
            req: req + 100,
            event: StreamEvent::Delta("stale".into()),
        },
    );
    assert_eq!(a.entries[1].text, "");
    assert!(update(&mut a, Msg::StreamEnded { req: req + 100 }).is_empty());
    assert!(a.running.is_some());
}

#[test]
fn ticks_save_the_partial_answer_about_once_a_second() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    update(
        &mut a,
        Msg::Routed {
            req,
            conv: 1,
            title: "x".into(),
            turn: Some(9),
            decision: decision(Target::Local),
            local_name: "m".into(),
        },
    );
    update(
        &mut a,
        Msg::Stream {
            req,
            event: StreamEvent::Delta("abc".into()),
        },
    );
    assert!(update(&mut a, Msg::Tick(500)).is_empty());
    assert_eq!(
        update(&mut a, Msg::Tick(1000)),
        vec![Effect::SavePartial {
            turn: 9,
            text: "abc".into()
        }]
    );
    // Nothing new: nothing saved.
    assert!(update(&mut a, Msg::Tick(2500)).is_empty());
}

#[test]
fn a_prompt_while_answering_is_refused_and_kept() {
    let mut a = app();
    send(&mut a, "x");
    assert!(send(&mut a, "y").is_empty());
    assert_eq!(a.composer.text, "y");
    assert!(a.notice.is_some());
}

#[test]
fn ctrl_n_starts_a_new_chat() {
    let mut a = app();
    answer(&mut a, "hi", Target::Local, "ok", FinishReason::Stop);
    update(&mut a, ctrl('n'));
    assert!(a.entries.is_empty());
    assert_eq!(a.current, None);
}

#[test]
fn ctrl_r_cycles_the_route_mode() {
    let mut a = app();
    let modes: Vec<RouteMode> = (0..3)
        .map(|_| {
            update(&mut a, ctrl('r'));
            a.mode
        })
        .collect();
    assert_eq!(
        modes,
        vec![RouteMode::Local, RouteMode::Cloud, RouteMode::Auto]
    );
}

#[test]
fn tab_moves_focus_and_ctrl_b_hides_the_sidebar() {
    let mut a = app();
    let mut seen = vec![];
    for _ in 0..3 {
        update(&mut a, key(KeyCode::Tab));
        seen.push(a.focus);
    }
    assert_eq!(
        seen,
        vec![Focus::Transcript, Focus::Sidebar, Focus::Composer]
    );
    update(&mut a, ctrl('b'));
    update(&mut a, key(KeyCode::Tab));
    update(&mut a, key(KeyCode::Tab));
    assert_eq!(a.focus, Focus::Composer, "a hidden sidebar takes no focus");
}

#[test]
fn scrolling_is_clamped_and_g_jumps_in_the_transcript() {
    let mut a = app();
    let long: String = (0..200).map(|i| format!("line {i}\n\n")).collect();
    answer(&mut a, "hi", Target::Local, &long, FinishReason::Stop);
    update(&mut a, key(KeyCode::PageUp));
    let page = a.scroll;
    assert!(page > 0);
    update(&mut a, key(KeyCode::PageDown));
    assert_eq!(a.scroll, 0);
    update(&mut a, key(KeyCode::PageDown));
    assert_eq!(a.scroll, 0);
    update(&mut a, key(KeyCode::Tab)); // transcript
    update(&mut a, key(KeyCode::Char('g')));
    let top = a.scroll;
    assert!(top > page);
    update(&mut a, key(KeyCode::PageUp));
    assert_eq!(a.scroll, top, "cannot scroll past the top");
    update(
        &mut a,
        Msg::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
    );
    assert_eq!(a.scroll, 0);
    assert_eq!(a.composer.text, "", "g/G are not typed into the composer");
}

#[test]
fn ctrl_y_copies_the_last_or_the_nth_code_block() {
    let mut a = app();
    answer(
        &mut a,
        "hi",
        Target::Local,
        "```rust\nfn a() {}\n```\n\n```sh\necho b\n```\n",
        FinishReason::Stop,
    );
    assert_eq!(
        update(&mut a, ctrl('y')),
        vec![Effect::Copy("echo b\n".into())]
    );
    update(&mut a, key(KeyCode::Tab));
    update(&mut a, key(KeyCode::Char('1')));
    assert_eq!(
        update(&mut a, ctrl('y')),
        vec![Effect::Copy("fn a() {}\n".into())]
    );
}

#[test]
fn ctrl_e_opens_the_editor_and_its_text_comes_back() {
    let mut a = app();
    typed(&mut a, "draft");
    assert_eq!(
        update(&mut a, ctrl('e')),
        vec![Effect::OpenEditor("draft".into())]
    );
    update(&mut a, Msg::EditorDone(Ok("edited\n".into())));
    assert_eq!(a.composer.text, "edited");
}
