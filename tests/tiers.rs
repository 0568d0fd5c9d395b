//! The escalation judge both front ends share (`Tiers::escalation`): one-shot mode and the chat
//! screen's driver ask it the same question, and `[router] escalate = false` silences it.

use tandem::config::{LoadOptions, load};
use tandem::router::{EscalationReason, Reason, ReasonCode, RouteDecision, Target};
use tandem::tiers::Tiers;

fn tiers(escalate: bool) -> Tiers {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    // A loopback provider counts as online without a key; nothing here calls it.
    std::fs::write(
        &file,
        format!(
            "[router]\nescalate = {escalate}\n\
             [providers.fake]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [{{ name = \"m\" }}]\n"
        ),
    )
    .unwrap();
    let cfg = load(&LoadOptions {
        config_file: Some(file),
        env: vec![],
        route: None,
        theme: None,
        model: None,
        no_pull: true,
    })
    .unwrap()
    .config;
    Tiers::new(&cfg).unwrap()
}

fn close_call(code: ReasonCode) -> RouteDecision {
    RouteDecision {
        target: Target::Local,
        score: 0.45,
        threshold: 0.5,
        reasons: vec![Reason {
            code,
            message: String::new(),
        }],
        contributions: vec![],
        est_cost_usd: 0.0,
        est_saved_usd: 0.0,
    }
}

#[test]
fn a_weak_close_call_escalates_unless_the_config_turns_it_off() {
    let weak = "I don't know the answer to that.";
    let on = tiers(true);
    assert!(on.cloud_online());
    let d = close_call(ReasonCode::ScoreBelowThreshold);
    assert_eq!(
        on.escalation(&d, weak, None).map(|e| e.reason),
        Some(EscalationReason::Unsure)
    );
    assert_eq!(
        on.escalation(&d, "Paris.", Some(0.9)),
        None,
        "a good answer stands"
    );
    // Only the score may be second-guessed: never a pin or a privacy rule.
    assert_eq!(
        on.escalation(&close_call(ReasonCode::Pinned), weak, None),
        None
    );
    assert_eq!(
        on.escalation(&close_call(ReasonCode::Private), weak, None),
        None
    );
    assert_eq!(tiers(false).escalation(&d, weak, None), None);
}
