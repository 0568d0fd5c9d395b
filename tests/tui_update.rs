//! Pure `update` tests for keys and answers: a key or message in, the state and the effects
//! out. No terminal, no IO. Slash commands are in tui_commands.rs.

mod tui_support;
use tui_support::*;

#[test]
fn enter_sends_the_prompt_and_clears_the_composer() {
    let mut a = app();
    let (_, request) = ask_of(&send(&mut a, "hello"));
    assert_eq!(request.ask, Ask::Prompt("hello".into()));
    assert_eq!(request.thread, Thread::New);
    assert_eq!(request.route, RouteRequest::Mode(RouteMode::Auto));
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
fn a_finished_answer_gets_the_pipelines_badge_and_the_next_prompt_continues_the_chat() {
    let mut a = app();
    let fx = answer(&mut a, "hi", Target::Local, "hello **there**", true);
    assert!(fx.contains(&Effect::RefreshConversations));
    let e = a.entries.last().unwrap();
    assert_eq!(
        e.badge.as_ref().unwrap().label(),
        "local · smollm2-135m · 0.4s · 33 tok/s · $0.0000"
    );
    assert!(!e.interrupted);
    assert!(a.running.is_none());
    assert_eq!(a.current, Some(7));
    // The status bar's spend is what the pipeline read from the ledger after the turn.
    assert_eq!(a.spend.today_usd, 0.5);
    let (_, next) = ask_of(&send(&mut a, "more"));
    assert_eq!(next.thread, Thread::Stored(7));
}

#[test]
fn cloud_badge_shows_time_speed_and_cost() {
    let mut a = app();
    answer(&mut a, "hi", Target::Cloud, "ok", true);
    assert_eq!(
        a.entries[1].badge.as_ref().unwrap().label(),
        "cloud · gpt-4o-mini · 0.4s · 33 tok/s · $0.0000"
    );
}

#[test]
fn esc_cancels_and_the_partial_answer_is_kept_interrupted() {
    let mut a = app();
    let req = req_of(&send(&mut a, "long"));
    ev(&mut a, req, TurnEvent::Routed(decision(Target::Local)));
    ev(&mut a, req, TurnEvent::Delta("partial".into()));
    assert_eq!(update(&mut a, key(KeyCode::Esc)), vec![Effect::Cancel]);
    // A second Esc does not cancel twice.
    assert!(update(&mut a, key(KeyCode::Esc)).is_empty());
    ev(&mut a, req, answered(Target::Local, "m", "partial", false));
    done(&mut a, req, Finish::Interrupted);
    assert!(a.entries[1].interrupted);
    assert_eq!(a.entries[1].text, "partial");
    assert!(a.running.is_none());
}

#[test]
fn ctrl_c_cancels_then_clears_then_quits() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Cancel]);
    done(&mut a, req, Finish::Interrupted);
    typed(&mut a, "draft");
    assert!(update(&mut a, ctrl('c')).is_empty());
    assert_eq!(a.composer.text, "");
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Quit]);
}

#[test]
fn a_second_ctrl_c_quits_even_when_the_answer_never_stops() {
    let mut a = app();
    req_of(&send(&mut a, "x"));
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Cancel]);
    // The turn never reports back (stuck); the user can still leave.
    assert_eq!(update(&mut a, ctrl('c')), vec![Effect::Quit]);
    let mut a = app();
    req_of(&send(&mut a, "x"));
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Cancel]);
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Quit]);
}

#[test]
fn a_turn_whose_task_died_ends_with_an_error_and_the_app_stays_usable() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    ev(&mut a, req, TurnEvent::Routed(decision(Target::Cloud)));
    ev(&mut a, req, TurnEvent::Delta("half".into()));
    // The stream closes without `Done`: the task panicked.
    update(&mut a, Msg::TurnEnded { req });
    assert!(a.running.is_none());
    let e = &a.entries[1];
    assert!(e.interrupted && e.error.as_deref().unwrap().contains("stopped unexpectedly"));
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Quit]);
}

#[test]
fn ctrl_d_and_sigterm_quit_after_the_running_answer_is_saved() {
    let mut a = app();
    typed(&mut a, "draft");
    assert_eq!(update(&mut a, ctrl('d')), vec![Effect::Quit]);
    for stop in [ctrl('d'), Msg::Terminate] {
        let mut a = app();
        let req = req_of(&send(&mut a, "x"));
        ev(&mut a, req, TurnEvent::Routed(decision(Target::Local)));
        assert_eq!(update(&mut a, stop), vec![Effect::Cancel]);
        ev(&mut a, req, answered(Target::Local, "m", "", false));
        let fx = done(&mut a, req, Finish::Interrupted);
        assert!(matches!(fx.last(), Some(Effect::Quit)), "{fx:?}");
    }
    assert_eq!(update(&mut app(), Msg::Terminate), vec![Effect::Quit]);
}

#[test]
fn events_from_an_old_request_are_ignored() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    ev(&mut a, req + 100, TurnEvent::Delta("stale".into()));
    assert_eq!(a.entries[1].text, "");
    assert!(update(&mut a, Msg::TurnEnded { req: req + 100 }).is_empty());
    assert!(a.running.is_some());
}

#[test]
fn escape_sequences_from_a_model_never_reach_the_screen_state() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    ev(&mut a, req, TurnEvent::Routed(decision(Target::Cloud)));
    ev(
        &mut a,
        req,
        TurnEvent::Started {
            tier: Target::Cloud,
            provider: "p".into(),
            model: "evil\x1b]0;title\x07".into(),
        },
    );
    ev(
        &mut a,
        req,
        TurnEvent::Delta("ok \x1b]52;c;aGk=\x07 \u{9b}2J".into()),
    );
    ev(
        &mut a,
        req,
        TurnEvent::Notice("provider said \x1b[31mred".into()),
    );
    let e = &a.entries[1];
    let shown = format!(
        "{}{}{}",
        e.text,
        e.badge.as_ref().unwrap().streaming_label(),
        a.notice.clone().unwrap()
    );
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\n'),
        "{shown:?}"
    );
    assert!(e.text.contains("␛]52;c;aGk=␇"), "{:?}", e.text);
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
    answer(&mut a, "hi", Target::Local, "ok", true);
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
    answer(&mut a, "hi", Target::Local, &long, true);
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
        true,
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
