//! One-shot mode as a shell script uses it: exit codes, piping, --json, broken pipes, bad
//! stdin, --continue across processes, escalation of a looping answer (signals mid-answer:
//! print_interrupts.rs). Local answers come from the real model (TANDEM_MODELS_DIR, filled by
//! scripts/test).

use std::process::Stdio;

mod common;
use common::{Sandbox, json_of, spawn_until_output};
use tandem::session::Store;

#[test]
fn json_answer_has_the_documented_shape() {
    let sb = Sandbox::new();
    let out = sb
        .cmd_with_model()
        .args([
            "-p",
            "What color is the sky on a clear day?",
            "--route",
            "local",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert!(!v["answer"].as_str().unwrap().is_empty());
    assert_eq!(v["route"]["target"], "local");
    assert_eq!(v["route"]["provider"], "local");
    assert_eq!(v["route"]["model"], "smollm2-135m");
    assert_eq!(v["route"]["reasons"][0]["code"], "pinned");
    for k in ["prompt_tokens", "completion_tokens", "ttft_ms"] {
        assert!(v["usage"][k].as_u64().unwrap() > 0, "{k}: {v}");
    }
    assert!(v["usage"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["cost_usd"], 0.0);
    assert!(v["saved_usd"].is_number() && v["conversation_id"].is_i64());
    assert_eq!(v["interrupted"], false);
    // Status lines go to a terminal only: a pipe gets none.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn piped_stdin_is_the_prompt_and_the_answer_streams_to_stdout() {
    let sb = Sandbox::new();
    let out = sb
        .cmd_with_model()
        .args(["--route", "local"])
        .write_stdin("Say hello in one short sentence.\n")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().trim().len() > 2);
}

#[test]
fn bad_input_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["-p", ""]).output().unwrap();
    assert!(common::assert_usage_error(&out).contains("nothing to ask"));
    let out = sb
        .cmd()
        .write_stdin(vec![b'h', b'i', 0xff, 0xfe])
        .output()
        .unwrap();
    assert!(common::assert_usage_error(&out).contains("not UTF-8"));
    let out = sb
        .cmd()
        .env("TANDEM_PRINT__MAX_STDIN_BYTES", "10")
        .write_stdin("x".repeat(11))
        .output()
        .unwrap();
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("larger than print.max_stdin_bytes (10 bytes)"),
        "{err}"
    );
}

#[test]
fn no_tier_available_exits_3() {
    let sb = Sandbox::new();
    let empty = sb.path().join("no-models");
    let out = sb
        .cmd()
        .env("TANDEM_MODELS_DIR", &empty)
        .args(["--no-pull", "-p", "hello"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no tier can answer") && err.contains("tandem models pull"),
        "{err}"
    );
}

#[test]
fn a_failing_model_exits_1() {
    // A server that answers every request with 500: the cloud tier gives up after its retries.
    let port = common::serve(
        10,
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            .to_vec(),
    );
    let sb = Sandbox::new();
    sb.write_config(&format!("[providers.flaky]\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodels = [{{ name = \"m\" }}]\n"));
    let out = sb
        .cmd()
        .args(["--route", "cloud", "-p", "hello"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stderr).unwrap().contains("flaky"));
}

#[test]
fn broken_pipe_exits_quietly_with_0() {
    let sb = Sandbox::new();
    let mut c = sb.std_cmd_with_model();
    c.args([
        "-p",
        "Write a long story about a dragon.",
        "--route",
        "local",
    ]);
    let mut child = spawn_until_output(c, Stdio::piped(), 10);
    drop(child.stdout.take()); // like `| head -c 10`
    common::assert_quiet_exit(&mut child, "-p");
}

#[test]
fn continue_carries_the_conversation_across_processes() {
    let sb = Sandbox::new();
    let a = sb
        .cmd_with_model()
        .args([
            "-p",
            "My favorite fruit is mango.",
            "--route",
            "local",
            "--json",
        ])
        .output()
        .unwrap();
    let b = sb
        .cmd_with_model()
        .args([
            "-c",
            "-p",
            "What is my favorite fruit?",
            "--route",
            "local",
            "--json",
        ])
        .output()
        .unwrap();
    let (a, b) = (json_of(&a), json_of(&b));
    assert_eq!(a["conversation_id"], b["conversation_id"]);
    assert!(b["usage"]["prompt_tokens"].as_u64() > a["usage"]["prompt_tokens"].as_u64());
    let store = Store::open(&sb.history_db()).unwrap();
    let turns = store.turns(a["conversation_id"].as_i64().unwrap()).unwrap();
    assert_eq!(turns.len(), 4);
    // --conversation finds it by title too.
    let c = sb
        .cmd_with_model()
        .args([
            "--conversation",
            "My favorite",
            "-p",
            "Thanks!",
            "--route",
            "local",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(json_of(&c)["conversation_id"], a["conversation_id"]);
    let out = sb
        .cmd()
        .args(["--conversation", "no such chat", "-p", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_looping_local_answer_near_the_threshold_is_re_asked_in_the_cloud() {
    let sb = Sandbox::new();
    let port = common::canned_cloud("The capital of France is Paris.");
    let threshold = tandem::router::Policy::default()
        .score(&tandem::router::features(
            "What is the capital of France?",
            &[],
        ))
        .0
        + 0.05;
    // Greedy decoding without a repetition penalty makes this 135M model loop, and a threshold just above the prompt's score makes it a close call.
    sb.write_config(&format!(
        "[local]\ntemperature = 0.0\nrepeat_penalty = 1.0\nmax_tokens = 120\n\
         [router]\nthreshold = {threshold:.3}\n\
         [providers.fake]\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodels = [{{ name = \"m\", input_price = 1.0, output_price = 2.0 }}]\n"
    ));
    let mut c = sb.std_cmd_with_model();
    let out = c
        .args(["-p", "What is the capital of France?", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["route"]["target"], "cloud", "{v}");
    assert_eq!(v["answer"], "The capital of France is Paris.");
    assert_eq!(v["escalation"]["reason"], "repetition_loop", "{v}");
    // Whatever the loop says (it differs between Q4_1 and the Q8_0 copy), it is kept.
    let local = v["escalation"]["local_answer"].as_str().unwrap();
    assert!(local.len() > 40, "{local}");
    // Both answers are kept, the local one first.
    let store = Store::open(&sb.history_db()).unwrap();
    let turns = store.turns(v["conversation_id"].as_i64().unwrap()).unwrap();
    let targets: Vec<_> = turns.iter().map(|t| t.meta.target.clone()).collect();
    assert_eq!(
        targets,
        vec![None, Some("local".into()), Some("cloud".into())]
    );

    // With escalation off the local answer stands.
    let mut c = sb.std_cmd_with_model();
    let out = c
        .env("TANDEM_ROUTER__ESCALATE", "false")
        .args(["-p", "What is the capital of France?", "--json"])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["route"]["target"], "local");
    assert!(v.get("escalation").is_none());
}

#[test]
fn extract_prints_only_the_first_code_block() {
    // `$(tandem -x --role shell -p ...)`: the fences and the prose around them stay out, and the
    // block still passes the sanitizer.
    let block =
        "Run this:\\n```sh\\nls -la \\u001b[2J\\n```\\nor this:\\n```\\nrm -rf x\\n```\\nDone.";
    let sb = Sandbox::new();
    for (answer, flag, printed) in [
        (block, "-x", "ls -la ␛[2J\n"),
        // No block: the whole answer.
        ("ls -la", "--extract", "ls -la\n"),
    ] {
        let port = common::canned_cloud(answer);
        sb.write_config(&common::provider_toml("fake", port, "m"));
        let out = sb
            .cmd()
            .args(["--route", "cloud", flag, "-p", "list files"])
            .output()
            .unwrap();
        assert_eq!(common::stdout_ok(&out), printed);
    }
    common::assert_usage_error(
        &sb.cmd()
            .args(["-x", "--json", "-p", "hi"])
            .output()
            .unwrap(),
    );
}

#[test]
fn no_history_keeps_nothing_but_the_spend() {
    let port = common::canned_cloud("Paris.");
    let sb = Sandbox::new();
    sb.write_config(&common::provider_toml("fake", port, "m"));
    let out = sb
        .cmd()
        .args([
            "--route",
            "cloud",
            "--no-history",
            "-p",
            "capital of France?",
        ])
        .output()
        .unwrap();
    assert_eq!(common::stdout_ok(&out), "Paris.\n");
    let list = common::stdout_ok(&sb.cmd().args(["history", "list"]).output().unwrap());
    assert_eq!(list.trim(), "no conversations yet");
    // The budget still sees what it cost.
    let stats = json_of(&sb.cmd().args(["stats", "--json"]).output().unwrap());
    assert_eq!(stats["cloud"]["turns"], 1, "{stats}");
    assert!(stats["spent_usd"].as_f64().unwrap() > 0.0, "{stats}");
    // Nothing to continue from, and nothing of an old conversation to add to.
    common::assert_usage_error(
        &sb.cmd()
            .args(["-c", "--no-history", "-p", "x"])
            .output()
            .unwrap(),
    );
}
