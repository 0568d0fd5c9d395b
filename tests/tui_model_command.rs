//! Pure `update` tests for `/model`: listing the configured models, picking a cloud model for
//! this chat by the names the cloud tier reads, and asking the driver to load a local one.

mod tui_support;
use tui_support::*;

fn with_models() -> App {
    let mut a = app();
    a.prices.cloud = vec![
        ("openai".into(), "gpt-4o-mini".into(), 0.15, 0.60),
        ("openai".into(), "gpt-4o".into(), 2.5, 10.0),
        ("azure".into(), "gpt-4o".into(), 2.5, 10.0),
    ];
    a.local_models = vec![
        LocalModel {
            name: "smollm2-135m".into(),
            installed: true,
        },
        LocalModel {
            name: "qwen2.5-0.5b".into(),
            installed: false,
        },
    ];
    a
}

fn ask_model(fx: &[Effect]) -> Option<String> {
    ask_of(fx).1.cloud_model
}

#[test]
fn model_without_a_name_lists_the_models() {
    let mut a = with_models();
    assert!(send(&mut a, "/model").is_empty());
    assert_eq!(a.overlay, Some(Overlay::Models));
}

#[test]
fn model_picks_a_cloud_model_for_this_chat_like_the_cloud_tier_reads_names() {
    let mut a = with_models();
    let fx = send(&mut a, "before");
    assert_eq!(ask_model(&fx), None);
    update(&mut a, Msg::TurnEnded { req: req_of(&fx) });

    // A bare name is the first provider listing it; provider/name picks the provider.
    assert!(send(&mut a, "/model gpt-4o").is_empty());
    assert_eq!(a.cloud_model, Some(("openai".into(), "gpt-4o".into())));
    assert_eq!(
        a.notice.as_deref(),
        Some("cloud model: openai/gpt-4o (when routed to the cloud)")
    );
    send(&mut a, "/model azure/gpt-4o");
    assert_eq!(a.cloud_model, Some(("azure".into(), "gpt-4o".into())));

    let fx = send(&mut a, "hello");
    assert_eq!(ask_model(&fx).as_deref(), Some("azure/gpt-4o"));
    // The badge names the pick as soon as the answer is routed to the cloud.
    ev(
        &mut a,
        req_of(&fx),
        TurnEvent::Routed(decision(Target::Cloud)),
    );
    assert_eq!(
        a.entries.last().unwrap().badge.as_ref().unwrap().model,
        "gpt-4o"
    );
    update(&mut a, Msg::TurnEnded { req: req_of(&fx) });

    // The pick belongs to the chat.
    update(&mut a, ctrl('n'));
    assert_eq!(a.cloud_model, None);
    assert_eq!(ask_model(&send(&mut a, "fresh")), None);
}

#[test]
fn model_with_an_unknown_name_lists_the_choices_on_one_line() {
    let mut a = with_models();
    assert!(send(&mut a, "/model gpt-5").is_empty());
    let n = a.notice.clone().unwrap();
    assert!(!n.contains('\n'), "{n}");
    assert!(n.starts_with("no model “gpt-5”; pick one of: "), "{n}");
    for name in [
        "smollm2-135m",
        "qwen2.5-0.5b",
        "openai/gpt-4o-mini",
        "azure/gpt-4o",
    ] {
        assert!(n.contains(name), "{name} missing from {n}");
    }
    assert_eq!(a.cloud_model, None);
}

#[test]
fn model_with_a_local_name_asks_the_driver_to_load_it() {
    let mut a = with_models();
    update(&mut a, Msg::Local(LocalEvent::State(LocalState::Ready)));
    send(&mut a, "/model smollm2-135m");
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .contains("already the local model")
    );
    assert_eq!(
        send(&mut a, "/model qwen2.5-0.5b"),
        vec![Effect::SwitchLocal("qwen2.5-0.5b".into())]
    );
    assert_eq!(a.local_name, "qwen2.5-0.5b");
    assert_eq!(
        a.local,
        LocalState::Loading,
        "the status bar shows the load"
    );
    update(&mut a, Msg::Local(LocalEvent::State(LocalState::Ready)));
    // Not while an answer runs: the engine it uses would go away.
    send(&mut a, "x");
    assert!(send(&mut a, "/model smollm2-135m").is_empty());
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .contains("an answer is running")
    );
}
