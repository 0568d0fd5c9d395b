//! Context in, end to end through one-shot mode against loopback stand-ins that record what
//! they are sent: attachments (`-f`), their refusals (nothing sent), their secrets (kept
//! local, conversation private), roles and `--system`, and a turn too long for the local
//! window. No model is loaded: the local tier is a `tier = "local"` stand-in.

mod common;
use common::{Recorder, Sandbox, assert_usage_error};

fn ok_json(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The last user message of a request body.
fn user_text(body: &serde_json::Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A cloud stand-in `lab` only.
fn cloud_only(sb: &Sandbox, cloud: &Recorder, attach: &str) {
    sb.write_config(&format!("{attach}{}", cloud.provider("lab", "tiny", "")));
}

/// A local-tier stand-in `box` (window `window`) as the local engine, and a cloud `lab`.
fn local_and_cloud(sb: &Sandbox, local: &Recorder, cloud: &Recorder, window: usize) {
    sb.write_config(&format!(
        "[local]\nengine = \"box\"\n{}tier = \"local\"\n{}",
        local.provider("box", "smol", &format!(", context_window = {window}")),
        cloud.provider("lab", "tiny", "")
    ));
}

#[test]
fn an_attached_file_is_sent_with_its_path_and_listed() {
    let sb = Sandbox::new();
    let cloud = Recorder::answering("it frobnicates");
    cloud_only(&sb, &cloud, "");
    let file = sb.path().join("lib.rs");
    std::fs::write(&file, "pub fn frobnicate() -> u32 { 42 }\n").unwrap();
    let out = sb
        .cmd()
        .args(["-f", file.to_str().unwrap(), "-p", "what does this file do"])
        .args(["--route", "cloud", "--json"])
        .output()
        .unwrap();
    let v = ok_json(&out);
    assert_eq!(v["answer"], "it frobnicates");
    let sent = user_text(&cloud.bodies()[0]);
    assert!(sent.contains("pub fn frobnicate() -> u32 { 42 }"), "{sent}");
    assert!(sent.contains("lib.rs`:"), "the path heads the file: {sent}");
    assert!(sent.ends_with("what does this file do"), "{sent}");
    let line = v["attachments"][0].as_str().unwrap();
    assert!(line.contains("lib.rs") && line.contains("tokens"), "{line}");
    // Stored with the turn: `history show` lists it; the prompt shows as typed.
    let shown = sb.cmd().args(["history", "show", "1"]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("+ ") && shown.contains("lib.rs"), "{shown}");
    assert!(!shown.contains("frobnicate() -> u32"), "{shown}");
}

#[test]
fn a_directory_skips_what_gitignore_skips_and_stdin_attaches_too() {
    let sb = Sandbox::new();
    let cloud = Recorder::answering("ok");
    cloud_only(&sb, &cloud, "");
    let tree = sb.path().join("repo");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&tree)
        .status();
    assert!(git.is_ok_and(|s| s.success()), "git init failed");
    std::fs::write(tree.join(".gitignore"), "*.log\ntarget/\n").unwrap();
    std::fs::write(tree.join("src/main.rs"), "fn main() { kept() }\n").unwrap();
    std::fs::write(tree.join("debug.log"), "IGNORED-LOG-LINE\n").unwrap();
    std::fs::create_dir_all(tree.join("target")).unwrap();
    std::fs::write(tree.join("target/out.txt"), "IGNORED-BUILD\n").unwrap();
    let out = sb
        .cmd()
        .current_dir(&tree)
        .args([
            "-f", ".", "-f", "-", "-p", "review", "--route", "cloud", "--json",
        ])
        .write_stdin("FROM-STDIN\n")
        .output()
        .unwrap();
    ok_json(&out);
    let sent = user_text(&cloud.bodies()[0]);
    assert!(sent.contains("fn main() { kept() }"), "{sent}");
    assert!(sent.contains("FROM-STDIN"), "{sent}");
    assert!(
        !sent.contains("IGNORED-LOG-LINE") && !sent.contains("IGNORED-BUILD"),
        "{sent}"
    );
}

#[test]
fn binary_missing_and_over_cap_attachments_stop_before_anything_is_sent() {
    let sb = Sandbox::new();
    let cloud = Recorder::answering("never");
    cloud_only(&sb, &cloud, "[attach]\nmax_bytes = 1000\n");
    let bin = sb.path().join("blob.bin");
    std::fs::write(&bin, b"PK\x03\x04\x00\x00binary").unwrap();
    let big = sb.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("a.txt"), "x".repeat(800)).unwrap();
    std::fs::write(big.join("b.txt"), "y".repeat(800)).unwrap();
    let missing = sb.path().join("nope.txt");
    for (path, says) in [
        (&bin, "binary"),
        (&missing, "no such file"),
        (&big, "1000 B"),
    ] {
        let out = sb
            .cmd()
            .args([
                "-f",
                path.to_str().unwrap(),
                "-p",
                "look",
                "--route",
                "cloud",
            ])
            .output()
            .unwrap();
        let err = assert_usage_error(&out);
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains(path.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
    assert_eq!(cloud.hits(), 0, "nothing may be sent");
    assert!(!sb.history_db().exists() || history_is_empty(&sb));
}

fn history_is_empty(sb: &Sandbox) -> bool {
    let store = tandem::session::Store::open(&sb.history_db()).unwrap();
    store.list(10).unwrap().is_empty()
}

#[test]
fn a_secret_in_an_attached_file_stays_local_and_keeps_the_conversation_private() {
    let sb = Sandbox::new();
    let (local, cloud) = (Recorder::answering("local"), Recorder::answering("cloud"));
    local_and_cloud(&sb, &local, &cloud, 8192);
    let env = sb.path().join("deploy.env");
    std::fs::write(
        &env,
        "REGION=eu-west-1\nOPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx0123\n",
    )
    .unwrap();
    // A long, hard prompt the router would send to the cloud but for the secret.
    let ask = "Explain step by step, in detail, how to design a multi-region deployment \
               pipeline with canary releases, rollbacks and secret rotation for this config.";
    let out = sb
        .cmd()
        .args(["-f", env.to_str().unwrap(), "-p", ask, "--json"])
        .output()
        .unwrap();
    let v = ok_json(&out);
    assert_eq!(v["route"]["target"], "local", "{v}");
    assert_eq!(v["route"]["reasons"][0]["code"], "secrets_detected", "{v}");
    assert!(user_text(&local.bodies()[0]).contains("OPENAI_API_KEY=sk-proj-"));
    // The follow-up carries the file again, so the conversation stays private.
    let out = sb
        .cmd()
        .args(["-c", "-p", "and now?", "--route", "cloud"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("not sent to the cloud"), "{err}");
    assert_eq!(cloud.hits(), 0);
}

#[test]
fn a_turn_too_long_for_the_local_window_goes_to_the_cloud_or_is_refused_when_private() {
    let sb = Sandbox::new();
    let (local, cloud) = (Recorder::answering("local"), Recorder::answering("cloud"));
    local_and_cloud(&sb, &local, &cloud, 1000);
    let notes = sb.path().join("notes.md");
    std::fs::write(&notes, "lorem ipsum dolor sit amet ".repeat(400)).unwrap();
    let f = notes.to_str().unwrap();
    let v = ok_json(
        &sb.cmd()
            .args(["-f", f, "-p", "hi", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["route"]["target"], "cloud", "{v}");
    assert_eq!(v["route"]["reasons"][0]["code"], "context_too_long", "{v}");
    let out = sb
        .cmd()
        .args(["-f", f, "-p", "hi", "--private"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("local window of 1000"), "{err}");
    assert_eq!(local.hits(), 0, "the local server got nothing");
    assert_eq!(cloud.hits(), 1, "only the first run reached the cloud");
}

#[test]
fn a_role_sends_its_system_prompt_and_comes_back_with_the_conversation() {
    let sb = Sandbox::new();
    let cloud = Recorder::answering("ls -S");
    cloud_only(&sb, &cloud, "");
    let out = sb
        .cmd()
        .args([
            "--role",
            "shell",
            "-p",
            "list files by size",
            "--route",
            "cloud",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ls -S");
    let out = sb
        .cmd()
        .args([
            "-c",
            "-p",
            "newest first",
            "--route",
            "cloud",
            "--system",
            "Be brief.",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies = cloud.bodies();
    for b in &bodies {
        let first = &b["messages"][0];
        assert_eq!(first["role"], "system", "{b}");
        assert!(
            first["content"]
                .as_str()
                .unwrap()
                .starts_with("You turn a request into one shell command."),
            "{b}"
        );
        // The role's front matter: temperature 0.2, at most 200 tokens.
        assert_eq!(b["temperature"], 0.2, "{b}");
        assert_eq!(b["max_tokens"], 200, "{b}");
    }
    assert!(
        bodies[1]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .ends_with("Be brief.")
    );
}

#[test]
fn a_broken_role_file_names_its_line_and_nothing_is_sent() {
    let sb = Sandbox::new();
    let cloud = Recorder::answering("never");
    cloud_only(&sb, &cloud, "");
    let dir = sb.path().join("config/tandem/roles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.md"),
        "+++\nroute = \"cloud\"\ntemperature = \"hot\"\n+++\nBe bad.\n",
    )
    .unwrap();
    let out = sb
        .cmd()
        .args(["--role", "bad", "-p", "hi"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("bad.md:3"), "{err}");
    assert_eq!(cloud.hits(), 0);
}

/// Reading, rendering and routing a prompt with a 100 KB attachment, timed (issue #17 asks
/// for the figure). Run in the test profile, where tandem's own code is unoptimised, so this
/// is an upper bound; `cargo bench --bench router` has the optimised figure.
#[test]
fn routing_with_a_100_kb_attachment_is_timed() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.rs");
    let line = "fn step(x: u64) -> u64 { x.wrapping_mul(6364136223846793005) + 1 } // next\n";
    std::fs::write(&file, line.repeat(100_000 / line.len())).unwrap();
    let caps = tandem::attach::Caps {
        max_bytes: 1 << 20,
        max_files: 10,
    };
    let policy = tandem::router::Policy::from_config(&Default::default()).unwrap();
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let a = tandem::attach::load_with(std::slice::from_ref(&file), caps, &mut std::io::empty())
            .unwrap();
        let loaded = t.elapsed();
        let text = tandem::attach::render_all(&a, "what does this do?");
        let f = tandem::router::features(&text, &[]);
        let input = tandem::router::RouteInput {
            features: &f,
            mode: tandem::config::RouteMode::Auto,
            force: false,
            private: false,
            cloud_online: true,
            local: tandem::router::LocalState::Ready,
            local_context_window: 8192,
            conversation_tokens: f.prompt_tokens,
            turn_tokens: tandem::context::need(f.prompt_tokens, 512),
            budget: Default::default(),
            sticky_cloud: false,
            cloud_price: None,
        };
        let d = tandem::router::route(&policy, &input);
        assert_eq!(
            d.target,
            tandem::router::Target::Cloud,
            "too long for local"
        );
        times.push((loaded, t.elapsed() - loaded));
    }
    times.sort();
    let (load, route) = times[times.len() / 2];
    eprintln!(
        "100 KB attachment: read {load:?}, render + features + route {route:?} (median of 7, test profile)"
    );
    assert!(route.as_millis() < 2000, "{route:?}");
}
