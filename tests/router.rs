//! Router table tests: rule precedence, secret detection, policy validation, escalation, and
//! hostile prompts (1 MB, binary junk). The `tandem route` command is tested in cli.rs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tandem::config::{Preset, RouteMode, RouterConfig};
use tandem::router::{
    self, BudgetState, CloudPrice, Feature, Features, LocalState, Policy, PolicyError, ReasonCode,
    RouteInput, SecretKind, Target,
};

/// Features whose score is pinned far above or below any preset threshold.
fn scored(hard: bool) -> Features {
    let mut v = [0.0; Feature::COUNT];
    if hard {
        v[Feature::Code as usize] = 1.0;
        v[Feature::Math as usize] = 1.0;
        v[Feature::Steps as usize] = 1.0;
    } else {
        v[Feature::Trivial as usize] = 1.0;
    }
    Features::from_values(v, 10)
}

fn base(features: &Features) -> RouteInput<'_> {
    RouteInput {
        features,
        mode: RouteMode::Auto,
        force: false,
        private: false,
        cloud_online: true,
        local: LocalState::Ready,
        local_context_window: 8192,
        conversation_tokens: 10,
        turn_tokens: 530,
        budget: BudgetState::default(),
        sticky_cloud: false,
        cloud_price: Some(CloudPrice {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        }),
    }
}

#[test]
fn rules_apply_in_order() {
    let hard = scored(true);
    let easy = scored(false);
    let secret = router::features(
        "deploy with key sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        &[],
    );
    let capped = BudgetState {
        daily_spent_usd: 5.0,
        daily_cap_usd: 5.0,
        ..BudgetState::default()
    };
    type Case<'a> = (&'a str, RouteInput<'a>, Target, ReasonCode);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("hard prompt goes to the cloud", base(&hard), Target::Cloud, ReasonCode::ScoreAboveThreshold),
        ("easy prompt stays local", base(&easy), Target::Local, ReasonCode::ScoreBelowThreshold),
        ("pin local beats score", RouteInput { mode: RouteMode::Local, ..base(&hard) }, Target::Local, ReasonCode::Pinned),
        ("pin cloud beats score", RouteInput { mode: RouteMode::Cloud, ..base(&easy) }, Target::Cloud, ReasonCode::Pinned),
        ("privacy beats a cloud pin", RouteInput { mode: RouteMode::Cloud, private: true, ..base(&hard) }, Target::Local, ReasonCode::Private),
        ("secrets beat a cloud pin", RouteInput { mode: RouteMode::Cloud, ..base(&secret) }, Target::Local, ReasonCode::SecretsDetected),
        ("force with a pin beats privacy", RouteInput { mode: RouteMode::Cloud, private: true, force: true, ..base(&hard) }, Target::Cloud, ReasonCode::Forced),
        ("force without a cloud pin does not", RouteInput { private: true, force: true, ..base(&hard) }, Target::Local, ReasonCode::Private),
        ("secrets beat score", base(&secret), Target::Local, ReasonCode::SecretsDetected),
        ("privacy beats offline local", RouteInput { private: true, local: LocalState::Missing, ..base(&hard) }, Target::Local, ReasonCode::Private),
        ("offline beats score", RouteInput { cloud_online: false, ..base(&hard) }, Target::Local, ReasonCode::CloudOffline),
        ("offline beats a missing local model", RouteInput { cloud_online: false, local: LocalState::Missing, ..base(&hard) }, Target::Local, ReasonCode::CloudOffline),
        ("local missing goes to cloud", RouteInput { local: LocalState::Missing, ..base(&easy) }, Target::Cloud, ReasonCode::LocalUnavailable),
        ("local loading goes to cloud", RouteInput { local: LocalState::Loading, ..base(&easy) }, Target::Cloud, ReasonCode::LocalUnavailable),
        ("local failed goes to cloud", RouteInput { local: LocalState::Failed, ..base(&easy) }, Target::Cloud, ReasonCode::LocalUnavailable),
        ("long context goes to cloud", RouteInput { conversation_tokens: 9000, ..base(&easy) }, Target::Cloud, ReasonCode::ContextTooLong),
        ("long context beats budget", RouteInput { conversation_tokens: 9000, budget: capped, ..base(&easy) }, Target::Cloud, ReasonCode::ContextTooLong),
        ("a turn that alone overflows the local window goes to cloud", RouteInput { turn_tokens: 8193, ..base(&easy) }, Target::Cloud, ReasonCode::ContextTooLong),
        ("privacy keeps an overflowing turn here", RouteInput { turn_tokens: 9000, private: true, ..base(&hard) }, Target::Local, ReasonCode::Private),
        ("budget beats score", RouteInput { budget: capped, ..base(&hard) }, Target::Local, ReasonCode::BudgetCapReached),
        ("budget beats stickiness", RouteInput { budget: capped, sticky_cloud: true, ..base(&easy) }, Target::Local, ReasonCode::BudgetCapReached),
        ("sticky thread stays in the cloud", RouteInput { sticky_cloud: true, ..base(&easy) }, Target::Cloud, ReasonCode::StickyCloud),
        ("pin local beats stickiness", RouteInput { mode: RouteMode::Local, sticky_cloud: true, ..base(&easy) }, Target::Local, ReasonCode::Pinned),
    ];
    let policy = Policy::default();
    for (name, input, target, code) in cases {
        let d = router::route(&policy, &input);
        assert_eq!(d.target, target, "{name}: {:?}", d.reasons);
        assert_eq!(d.reasons[0].code, code, "{name}: {:?}", d.reasons);
        assert!(d.reasons.iter().all(|r| !r.message.is_empty()), "{name}");
        assert!((0.0..=1.0).contains(&d.score), "{name}");
        assert_eq!(d.contributions.len(), Feature::COUNT, "{name}");
    }
}

#[test]
fn a_turn_that_must_stay_local_but_overflows_says_it_cannot_be_answered() {
    let easy = scored(false);
    let policy = Policy::default();
    let too_long = |input: RouteInput| {
        let d = router::route(&policy, &input);
        assert_eq!(d.target, Target::Local, "{:?}", d.reasons);
        d.reasons.iter().any(|r| {
            r.code == ReasonCode::ContextTooLong && r.message.contains("cannot be answered here")
        })
    };
    assert!(too_long(RouteInput {
        turn_tokens: 9000,
        private: true,
        ..base(&easy)
    }));
    assert!(too_long(RouteInput {
        turn_tokens: 9000,
        mode: RouteMode::Local,
        ..base(&easy)
    }));
    assert!(too_long(RouteInput {
        turn_tokens: 9000,
        cloud_online: false,
        ..base(&easy)
    }));
    assert!(!too_long(RouteInput {
        turn_tokens: 8192,
        private: true,
        ..base(&easy)
    }));
}

#[test]
fn budget_caps_of_zero_mean_no_cap() {
    let b = BudgetState {
        daily_spent_usd: 100.0,
        monthly_spent_usd: 100.0,
        ..BudgetState::default()
    };
    assert_eq!(b.cap_reached(), None);
    let m = BudgetState {
        monthly_spent_usd: 20.0,
        monthly_cap_usd: 20.0,
        ..BudgetState::default()
    };
    assert_eq!(m.cap_reached(), Some("monthly"));
}

#[test]
fn cost_is_charged_to_cloud_and_saved_by_local() {
    let (hard, easy) = (scored(true), scored(false));
    let policy = Policy::default();
    let cloud = router::route(
        &policy,
        &RouteInput {
            conversation_tokens: 1_000,
            ..base(&hard)
        },
    );
    assert!(cloud.est_cost_usd > 0.0 && cloud.est_saved_usd == 0.0);
    let local = router::route(
        &policy,
        &RouteInput {
            conversation_tokens: 1_000,
            ..base(&easy)
        },
    );
    assert!(local.est_cost_usd == 0.0 && local.est_saved_usd > 0.0);
}

#[test]
fn secret_detection() {
    let hits: &[(&str, SecretKind)] = &[
        (
            "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
            SecretKind::ApiKey,
        ),
        (
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
            SecretKind::ApiKey,
        ),
        (
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            SecretKind::ApiKey,
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
            SecretKind::PrivateKey,
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            SecretKind::PrivateKey,
        ),
        ("password = hunter2hunter2", SecretKind::Password),
        ("DB_PASSWORD: 'S3cr3t!pass'", SecretKind::Password),
        (
            "connect to postgres://admin:s3cretpw@db.example.com/app",
            SecretKind::Password,
        ),
        ("card 4111 1111 1111 1111 exp 12/29", SecretKind::CardNumber),
        ("5500-0000-0000-0004", SecretKind::CardNumber),
    ];
    for (text, kind) in hits {
        assert!(
            router::features(text, &[]).secrets.contains(kind),
            "missed {kind:?} in {text:?}"
        );
    }
    let clean: &[&str] = &[
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it",
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "password = input(\"Password: \")",
        "api_key = os.environ[\"OPENAI_API_KEY\"]",
        "set password: ********",
        "the order number is 1234567890123 and the phone is 555-123-4567",
        "What is the best way to store a password safely?",
        "sk-learn is a typo for sklearn",
    ];
    for text in clean {
        assert!(
            router::features(text, &[]).secrets.is_empty(),
            "false positive in {text:?}"
        );
    }
}

#[test]
fn features_respond_to_their_signals() {
    let f = |p: &str| router::features(p, &[]);
    assert!(f("```rust\nfn main() { println!(\"hi\"); }\n```").get(Feature::Code) > 0.5);
    assert!(
        f("Solve x^2 + 3x - 4 = 0 and prove both roots are integers.").get(Feature::Math) > 0.5
    );
    assert_eq!(f("hello!").get(Feature::Trivial), 1.0);
    assert!(
        f("Write an essay in 2,000 words on the history of Rome").get(Feature::OutputLength) > 0.5
    );
    assert!(f("Объясни, почему небо голубое").get(Feature::NonEnglish) > 0.9);
    let history = vec![tandem::chat::Message::user("a"); 4];
    assert!(router::features("and then?", &history).get(Feature::ConversationDepth) > 0.0);
    assert!(f("").iter().all(|(_, v)| v.is_finite()));
    let policy = Policy::default();
    let score = |p: &str| policy.score(&f(p)).0;
    assert!(
        score("thanks!")
            < score(
                "Implement a function that finds the kth smallest element of two sorted arrays in O(log n)."
            )
    );
}

#[test]
fn policy_validates_config() {
    let cfg = |weights: &[(&str, f64)], threshold: Option<f64>| RouterConfig {
        preset: Preset::Balanced,
        threshold,
        escalate: true,
        weights: weights
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
    };
    let p = Policy::from_config(&cfg(&[("code", 0.4)], Some(0.7))).unwrap();
    assert_eq!(p.weight(Feature::Code), 0.4);
    assert_eq!(p.threshold(), 0.7);
    let err = Policy::from_config(&cfg(&[("codez", 1.0)], None)).unwrap_err();
    assert!(matches!(err, PolicyError::UnknownWeight { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("router.weights.codez") && msg.contains("open_ended") && !msg.contains('\n'),
        "{msg}"
    );
    assert!(matches!(
        Policy::from_config(&cfg(&[], Some(1.5))),
        Err(PolicyError::BadThreshold(_))
    ));
    assert!(matches!(
        Policy::from_config(&cfg(&[("math", f64::NAN)], None)),
        Err(PolicyError::BadWeight { .. })
    ));
    let t = |preset| {
        Policy::from_config(&RouterConfig {
            preset,
            ..cfg(&[], None)
        })
        .unwrap()
        .threshold()
    };
    assert!(t(Preset::Quality) < t(Preset::Balanced) && t(Preset::Balanced) < t(Preset::Frugal));
}

#[test]
fn escalation_only_for_close_local_calls() {
    let policy = Policy::default();
    let mut f = scored(false);
    let far = router::route(&policy, &base(&f));
    assert_eq!(
        router::should_escalate(true, &far, "I don't know.", None),
        None,
        "far below threshold"
    );
    f = Features::from_values([0.0; Feature::COUNT], 10);
    let close = router::route(
        &policy.clone().with_threshold(policy.score(&f).0 + 0.05),
        &base(&f),
    );
    assert_eq!(close.target, Target::Local);
    assert!(router::should_escalate(true, &close, "I'm not sure, maybe 7?", None).is_some());
    assert!(
        router::should_escalate(false, &close, "I'm not sure, maybe 7?", None).is_none(),
        "disabled"
    );
    assert!(
        router::should_escalate(true, &close, "It is 7, since 3 + 4 = 7.", Some(0.9)).is_none()
    );
    assert!(router::should_escalate(true, &close, "It is 7.", Some(0.1)).is_some());
}

#[test]
fn huge_and_junk_prompts_route_quickly() {
    let big = "lorem ipsum 42 { dolor } sit amet, ".repeat(1_000_000 / 34);
    let junk: String = (0..200_000u32)
        .map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('\u{FFFD}'))
        .collect();
    for text in [big.as_str(), junk.as_str(), "\0\0\0", "\u{FFFD}\u{FFFD}"] {
        let t = Instant::now();
        let f = router::features(text, &[]);
        let d = router::route(&Policy::default(), &base(&f));
        assert!(d.score.is_finite());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{:?} for {} bytes",
            t.elapsed(),
            text.len()
        );
    }
}
