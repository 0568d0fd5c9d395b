//! Pure `update` tests for automatic escalation in the chat screen: the driver reports the
//! judge's verdict on a whole local answer as `Msg::Escalate`, and `update` alone decides
//! whether the cloud answers again (below a seam) or the verdict is stale.

mod tui_support;
use tui_support::*;

fn looped() -> Escalation {
    Escalation {
        reason: EscalationReason::RepetitionLoop,
        message: "the local answer repeats itself (the same line three times)".into(),
    }
}

/// The driver's report that the judge found the answer to `req` weak.
fn verdict(a: &mut App, req: u64) -> Vec<Effect> {
    update(
        a,
        Msg::Escalate {
            req,
            reason: looped(),
        },
    )
}

#[test]
fn a_weak_local_answer_is_answered_again_in_the_cloud_below_a_seam() {
    let mut a = app();
    answer(&mut a, "earlier", Target::Local, "fine", FinishReason::Stop);
    answer(
        &mut a,
        "capital?",
        Target::Local,
        "Paris Paris",
        FinishReason::Stop,
    );
    let req = a.last_finished.expect("a whole answer");
    let fx = verdict(&mut a, req);
    // Like /retry: the same prompt, forced to the cloud, not stored twice, and the cloud sees
    // the history before the prompt, not the weak answer.
    match &fx[..] {
        [
            Effect::Ask {
                prompt,
                history,
                route: RouteRequest::Force(Target::Cloud),
                store_prompt: false,
                conv: Some(7),
                ..
            },
        ] => {
            assert_eq!(prompt, "capital?");
            let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(texts, ["earlier", "fine"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.entries.len(), 5, "both answers stay");
    assert_eq!(a.entries[3].text, "Paris Paris");
    assert_eq!(
        a.entries[4].seam,
        Some(Seam::Escalated(looped().message)),
        "the seam says why"
    );
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .starts_with("escalated to the cloud")
    );
    // The verdict is acted on once.
    assert!(verdict(&mut a, req).is_empty());
}

#[test]
fn a_stale_or_cut_off_verdict_is_dropped() {
    // Cut off by the user: never whole, so never escalated.
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    update(&mut a, key(KeyCode::Esc));
    update(&mut a, Msg::StreamEnded { req });
    assert!(verdict(&mut a, req).is_empty());
    assert_eq!(a.entries.len(), 2);

    // The user moved on before the verdict came: a new prompt, or a new chat.
    let mut a = app();
    answer(&mut a, "x", Target::Local, "weak", FinishReason::Stop);
    let req = a.last_finished.unwrap();
    send(&mut a, "next");
    assert!(verdict(&mut a, req).is_empty());
    let mut a = app();
    answer(&mut a, "x", Target::Local, "weak", FinishReason::Stop);
    let req = a.last_finished.unwrap();
    update(&mut a, ctrl('n'));
    assert!(verdict(&mut a, req).is_empty());
    assert!(a.entries.is_empty());

    // Made private meanwhile: the forced cloud route would override that, so nothing goes out.
    let mut a = app();
    answer(&mut a, "x", Target::Local, "weak", FinishReason::Stop);
    let req = a.last_finished.unwrap();
    send(&mut a, "/private");
    assert!(verdict(&mut a, req).is_empty());
}
