//! The turn pipeline's promises through the real binary, against a loopback OpenAI-compatible
//! server that counts its requests: privacy (nothing is sent, whatever the route), the spend
//! ledger and caps, `tandem stats`, the sanitizer on every text path, and the bad values that
//! used to panic. Tests marked "model" also use the real local model (scripts/test installs it).

use std::process::Output;

mod common;
use common::{Cloud, Sandbox, terminal_controls};
use tandem::chat::Role;
use tandem::session::{Store, TurnMeta};

const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwx0123";
/// OSC 52 (clipboard), a title change, an OSC 8 link, a screen clear, 8-bit CSI, a bell.
const NASTY: &str = "Sure.\x1b]52;c;aGVsbG8=\x07 \x1b]0;pwned\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\u{9b}31m red\x07 done";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A sandbox whose config has the loopback cloud, plus `extra` TOML, and no local model.
fn sandbox(cloud: &Cloud, extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&format!("{extra}\n{}", cloud.config(1000.0, 1000.0)));
    sb
}

fn tandem(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd()
        .env("TANDEM_MODELS_DIR", sb.path().join("no-models"))
        .arg("--no-pull")
        .args(args)
        .output()
        .unwrap()
}

fn with_model(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd_with_model().args(args).output().unwrap()
}

/// A stored conversation with one exchange; the first turn says `first`.
fn seed(sb: &Sandbox, first: &str, private: bool) -> i64 {
    let mut s = Store::open(&sb.history_db()).unwrap();
    let c = s.create_conversation("seeded", private, None).unwrap();
    s.add_turn(c, Role::User, first, &TurnMeta::default(), false)
        .unwrap();
    let meta = TurnMeta {
        target: Some("local".into()),
        ..Default::default()
    };
    s.add_turn(c, Role::Assistant, "Noted.", &meta, false)
        .unwrap();
    c
}

#[test]
fn a_forced_cloud_route_on_a_private_chat_is_refused_and_nothing_is_sent() {
    let cloud = Cloud::answering("fine");
    let sb = sandbox(&cloud, "");
    // Pinned with --private, a secret in the prompt, a secret in an earlier turn, and a pin
    // saved on the conversation: each refused with the way out, exit 2, nothing sent.
    let out = tandem(&sb, &["--private", "--route", "cloud", "-p", "hello"]);
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("pinned private") && err.contains("--route local"),
        "{err}"
    );
    let out = tandem(&sb, &["--route", "cloud", "-p", &format!("use {KEY}")]);
    assert!(common::assert_usage_error(&out).contains("the prompt appears to contain an API key"));
    seed(&sb, &format!("my key is {KEY}"), false);
    let out = tandem(&sb, &["-c", "--route", "cloud", "-p", "go on"]);
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("an earlier turn of this conversation appears to contain an API key"),
        "{err}"
    );
    let pinned = seed(&sb, "nothing secret here", true);
    let out = tandem(
        &sb,
        &[
            "--conversation",
            &pinned.to_string(),
            "--route",
            "cloud",
            "-p",
            "x",
        ],
    );
    assert!(common::assert_usage_error(&out).contains("pinned private"));
    // Auto routing keeps it local (no local model here, so no tier at all), still sending nothing.
    let out = tandem(
        &sb,
        &[
            "--conversation",
            &pinned.to_string(),
            "-p",
            "prove that sqrt 2 is irrational, at length",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(cloud.hits(), 0, "nothing may leave the machine");
    // Refused prompts are not stored.
    let s = Store::open(&sb.history_db()).unwrap();
    assert_eq!(s.turns(pinned).unwrap().len(), 2);
}

#[test]
fn model_a_secret_in_an_earlier_turn_keeps_the_next_prompt_local() {
    let cloud = Cloud::answering("from the cloud");
    let sb = sandbox(&cloud, "");
    let c = seed(&sb, &format!("my key is {KEY}"), false);
    // A prompt the router would send to the cloud on its own.
    let prompt = "Write a detailed essay that compares three sorting algorithms, with proofs of their complexity and code in Rust.";
    let out = with_model(&sb, &["-c", "--json", "-p", prompt]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["route"]["target"], "local", "{v}");
    assert_eq!(v["route"]["reasons"][0]["code"], "secrets_detected", "{v}");
    assert!(
        v["route"]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("earlier turn")
    );
    assert_eq!(v["conversation_id"], c);
    assert_eq!(cloud.hits(), 0);
}

#[test]
fn the_ledger_outlives_history_rm_and_caps_refuse_forced_cloud_routes() {
    let cloud = Cloud::answering("an expensive answer");
    let sb = sandbox(&cloud, "[budget]\ndaily_usd = 1.0\n");
    // 1,000 + 1,000 tokens at $1,000 per million each: $2.
    let out = tandem(&sb, &["--route", "cloud", "--json", "-p", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["cost_usd"], 2.0);
    let out = tandem(&sb, &["--route", "cloud", "-p", "again"]);
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("daily budget is spent ($2.0000 of $1.00 today)")
            && err.contains("budget.daily_usd"),
        "{err}"
    );
    assert_eq!(cloud.hits(), 1, "the refused prompt was not sent");
    let stats = |sb: &Sandbox, period: &str| json(&tandem(sb, &["stats", period, "--json"]));
    assert_eq!(stats(&sb, "--month")["spent_usd"], 2.0);
    assert!(tandem(&sb, &["history", "rm", "1"]).status.success());
    assert!(tandem(&sb, &["history", "show", "1"]).status.code() != Some(0));
    // Deleting the chat refunds nothing: the month and the cap still see $2.
    let month = stats(&sb, "--month");
    assert_eq!(
        (month["spent_usd"].clone(), month["cloud"]["turns"].clone()),
        (2.0.into(), 1.into())
    );
    let out = tandem(&sb, &["--route", "cloud", "-p", "and again"]);
    assert!(common::assert_usage_error(&out).contains("daily budget is spent"));
    assert_eq!(cloud.hits(), 1);
}

#[test]
fn model_stats_shows_a_day_with_both_tiers() {
    let cloud = Cloud::answering("The sky is blue.");
    let sb = sandbox(&cloud, "");
    assert!(
        with_model(&sb, &["--route", "local", "-p", "Say hi."])
            .status
            .success()
    );
    assert!(
        tandem(&sb, &["--route", "cloud", "-p", "Why is the sky blue?"])
            .status
            .success()
    );
    let v = json(&tandem(&sb, &["stats", "--json"]));
    assert_eq!(v["period"], "today");
    for tier in ["local", "cloud"] {
        assert_eq!(v[tier]["turns"], 1, "{v}");
        assert!(v[tier]["median_ttft_ms"].as_u64().is_some(), "{tier}: {v}");
    }
    assert_eq!(v["cloud"]["spent_usd"], 2.0);
    assert!(v["local"]["saved_usd"].as_f64().unwrap() > 0.0, "{v}");
    let text = String::from_utf8(tandem(&sb, &["stats"]).stdout).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("local") || l.starts_with("cloud"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[1].contains("$2.000000"), "{text}");
}

#[test]
fn escape_sequences_from_a_model_never_reach_the_terminal_and_json_keeps_them() {
    let cloud = Cloud::answering(NASTY);
    let sb = sandbox(&cloud, "");
    let prompt = "tell me \x1b]0;title\x07 something";
    let out = tandem(&sb, &["--route", "cloud", "-p", prompt]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        terminal_controls(&out.stdout),
        Vec::<char>::new(),
        "one-shot output"
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("Sure.␛]52;c;aGVsbG8=␇"), "{shown}");
    let out = tandem(&sb, &["--route", "cloud", "--json", "-p", prompt]);
    assert_eq!(json(&out)["answer"], NASTY, "--json keeps the exact text");
    assert!(!out.stdout.contains(&0x1b), "escaped as \\u001b");
    for args in [
        &["history", "show", "1"][..],
        &["history", "export", "1", "--format", "md"],
        &["history", "list"],
        &["history", "search", "Sure"],
    ] {
        let out = tandem(&sb, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(
            terminal_controls(&out.stdout),
            Vec::<char>::new(),
            "{args:?}"
        );
    }
    let out = tandem(&sb, &["history", "export", "1", "--format", "json"]);
    let v = json(&out);
    assert_eq!(v["turns"][1]["content"], NASTY);
}

#[test]
fn escape_sequences_in_a_provider_error_never_reach_stderr() {
    let body =
        serde_json::json!({"error": {"message": format!("bad request {NASTY}")}}).to_string();
    let cloud = Cloud::replying(
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let sb = sandbox(&cloud, "");
    let out = tandem(&sb, &["--route", "cloud", "-p", "hi"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        terminal_controls(&out.stderr),
        Vec::<char>::new(),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("bad request"), "{}", stderr(&out));
}

#[test]
fn a_retry_after_too_large_for_a_duration_gives_up_without_a_panic() {
    let cloud = Cloud::replying(
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 99999999999999999999\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_vec(),
    );
    let sb = sandbox(&cloud, "");
    let out = tandem(&sb, &["--route", "cloud", "-p", "hi"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    assert_eq!(cloud.hits(), 1, "declined to wait that long, so no retry");
}

#[test]
fn out_of_range_numbers_are_refused_or_handled_not_panicked_on() {
    let cloud = Cloud::answering("ok");
    // A timeout that would overflow the clock: one line naming the key.
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "{}timeout_secs = 9223372036854775807\n",
        cloud.config(0.0, 0.0)
    ));
    let out = sb
        .cmd()
        .args(["--route", "cloud", "-p", "hi"])
        .output()
        .unwrap();
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("providers.fake.timeout_secs") && err.contains("86400"),
        "{err}"
    );
    // No stdin cap in effect: reading must not overflow `cap + 1`.
    let sb = sandbox(&cloud, "");
    let out = sb
        .cmd()
        .env("TANDEM_PRINT__MAX_STDIN_BYTES", u64::MAX.to_string())
        .args(["--route", "cloud"])
        .write_stdin("hello")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "ok\n");
    // `tandem route` holds stdin to the same cap as one-shot mode.
    let out = sb
        .cmd()
        .env("TANDEM_PRINT__MAX_STDIN_BYTES", "10")
        .arg("route")
        .write_stdin("x".repeat(11))
        .output()
        .unwrap();
    assert!(
        common::assert_usage_error(&out).contains("larger than print.max_stdin_bytes (10 bytes)")
    );
    let out = sb
        .cmd()
        .env("TANDEM_PRINT__MAX_STDIN_BYTES", "10")
        .args(["route", "--batch"])
        .write_stdin(format!("{{\"prompt\":\"{}\"}}\n", "x".repeat(20)))
        .output()
        .unwrap();
    assert!(common::assert_usage_error(&out).contains("stdin line 1"));
}

#[test]
fn the_log_file_is_private() {
    let sb = Sandbox::new();
    assert!(
        sb.cmd()
            .args(["route", "hi"])
            .output()
            .unwrap()
            .status
            .success()
    );
    use std::os::unix::fs::PermissionsExt;
    let log = sb.path().join("state/tandem/tandem.log");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
