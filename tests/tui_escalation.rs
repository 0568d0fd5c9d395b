//! Escalation in the chat screen: the pipeline decides and runs it (tests/turn.rs); the app
//! shows the weak answer, a seam that says why, and the cloud's answer below it, all in one
//! turn, so nothing can start (or be escalated) in between.

mod tui_support;
use tui_support::*;

fn looped() -> Escalation {
    Escalation {
        reason: EscalationReason::RepetitionLoop,
        message: "the local answer repeats itself (the same line three times)".into(),
    }
}

#[test]
fn a_weak_local_answer_is_followed_by_the_clouds_below_a_seam() {
    let mut a = app();
    answer(&mut a, "earlier", Target::Local, "fine", true);
    let req = req_of(&send(&mut a, "capital?"));
    ev(&mut a, req, TurnEvent::Routed(decision(Target::Local)));
    ev(&mut a, req, TurnEvent::Delta("Paris Paris".into()));
    ev(
        &mut a,
        req,
        answered(Target::Local, "smollm2-135m", "Paris Paris", true),
    );
    ev(&mut a, req, TurnEvent::Escalated(looped()));
    assert!(a.running.is_some(), "still one turn");
    assert!(
        a.notice
            .as_deref()
            .unwrap()
            .starts_with("escalated to the cloud")
    );
    ev(
        &mut a,
        req,
        TurnEvent::Started {
            tier: Target::Cloud,
            provider: "p".into(),
            model: "m".into(),
        },
    );
    ev(&mut a, req, TurnEvent::Delta("Paris.".into()));
    ev(&mut a, req, answered(Target::Cloud, "m", "Paris.", true));
    done(&mut a, req, Finish::Answered);
    assert_eq!(a.entries.len(), 5, "both answers stay");
    assert_eq!(a.entries[3].text, "Paris Paris");
    assert_eq!(a.entries[3].badge.as_ref().unwrap().tier, Target::Local);
    assert_eq!(
        a.entries[4].seam,
        Some(Seam::Escalated(looped().message)),
        "the seam says why"
    );
    assert_eq!(a.entries[4].text, "Paris.");
    assert_eq!(a.entries[4].badge.as_ref().unwrap().tier, Target::Cloud);
    assert!(a.running.is_none());
}

#[test]
fn a_prompt_cannot_slip_in_between_the_two_answers() {
    let mut a = app();
    let req = req_of(&send(&mut a, "x"));
    ev(&mut a, req, answered(Target::Local, "m", "weak", true));
    ev(&mut a, req, TurnEvent::Escalated(looped()));
    assert!(send(&mut a, "next").is_empty());
    assert_eq!(a.composer.text, "next");
    // Esc stops the cloud's answer like any other.
    assert_eq!(update(&mut a, key(KeyCode::Esc)), vec![Effect::Cancel]);
}
