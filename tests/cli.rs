//! The command line as a user meets it: help, version, auth status, completions, and `route`
//! (its text, --json, --batch and --stats output, and a bad weight's one-line error).

mod common;
use common::Sandbox;

#[test]
fn help_and_version() {
    let sb = Sandbox::new();
    let out = sb.cmd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "config", "auth", "models", "route", "--route", "--print", "--json",
    ] {
        assert!(help.contains(word), "help lacks {word}");
    }
    assert!(!help.contains("completions"), "completions is hidden");
    let out = sb.cmd().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn auth_status_says_where_keys_come_from_and_never_prints_them() {
    let sb = Sandbox::new();
    sb.write_config(
        "[providers.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n\
         [providers.other]\nbase_url = \"https://other.example/v1\"\napi_key_env = \"OTHER_KEY\"\n",
    );
    let out = sb
        .cmd()
        .env("OPENAI_API_KEY", "sk-secret-abcdef123456")
        .env_remove("OTHER_KEY")
        .args(["auth", "status"])
        .output()
        .unwrap();
    let text = common::stdout_ok(&out);
    assert!(
        text.contains("openai") && text.contains("env var OPENAI_API_KEY"),
        "{text}"
    );
    assert!(
        text.contains("other")
            && text.contains("missing")
            && text.contains("tandem auth set other"),
        "{text}"
    );
    assert!(text.starts_with("keyring: "), "{text}");
    assert!(!text.contains("sk-secret-abcdef123456"));
}

#[test]
fn auth_for_an_unknown_provider_is_a_clear_error() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["auth", "status", "nope"]).output().unwrap();
    let err = common::assert_usage_error(&out);
    assert!(
        err.contains("unknown provider \"nope\"") && err.contains("no providers are configured"),
        "{err}"
    );
}

#[test]
fn auth_set_without_a_keyring_says_so_and_stores_nothing() {
    let sb = Sandbox::new();
    sb.write_config("[providers.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n");
    // The sandbox has no D-Bus session, so no Secret Service: the error must say what to do.
    let out = sb
        .cmd()
        .args(["auth", "set", "openai"])
        .write_stdin("sk-from-stdin-999\n")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    if out.status.success() {
        assert!(err.contains("stored the key for openai"), "{err}");
    } else {
        assert!(
            err.contains("no keyring service") && err.contains("api_key_env"),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    assert!(!err.contains("sk-from-stdin-999"));
}

#[test]
fn completions_print_for_every_shell() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = sb.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("tandem") && text.contains("models"),
            "{shell}"
        );
    }
}

#[test]
fn checked_in_completions_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in tandem::commands::completions::FILES {
        let path = root.join("completions").join(file);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == tandem::commands::completions::generate(*shell),
            "completions/{file} is stale or missing: run `scripts/gen-completions` and commit the result"
        );
    }
}

#[test]
fn route_stats_shows_what_each_preset_keeps_local() {
    let sb = Sandbox::new();
    let file = sb.path().join("prompts.txt");
    std::fs::write(
        &file,
        "hi\nWhat is the capital of France?\nImplement quicksort in Rust and explain its worst case.\n",
    )
    .unwrap();
    let out = sb
        .cmd()
        .args(["route", "--stats"])
        .arg(&file)
        .output()
        .unwrap();
    let text = common::stdout_ok(&out);
    assert!(
        text.starts_with("3 prompts (plain lines)")
            && [
                "frugal",
                "balanced",
                "quality",
                "your preset (balanced)",
                "median"
            ]
            .iter()
            .all(|w| text.contains(w)),
        "{text}"
    );
    let out = sb
        .cmd()
        .args(["route", "--stats", "-", "--json"])
        .write_stdin("{\"id\":1,\"prompt\":\"hi\"}\n")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["prompts"].as_u64(), v["configured"]["local"].as_u64()),
        (Some(1), Some(1))
    );
    let out = sb
        .cmd()
        .args(["route", "--stats", "-", "--batch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--stats and --batch conflict");
}

#[test]
fn batch_json_shape() {
    let sb = Sandbox::new();
    let mut input = String::new();
    input.push_str("{\"id\":\"a\",\"prompt\":\"hello\"}\n");
    input.push_str("{\"id\":7,\"prompt\":\"Implement quicksort in Rust and prove its O(n log n) average complexity.\"}\n");
    input.push('\n');
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"{\"id\":\"junk\",\"prompt\":\"\xff\xfe\\u0000bin\"}\n");
    let out = sb
        .cmd()
        .args(["route", "--batch"])
        .write_stdin(bytes)
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = common::stdout_ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[1]["id"], 7);
    for l in &lines {
        let obj = l.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "reasons", "score", "target"]);
        assert!(matches!(l["target"].as_str(), Some("local" | "cloud")));
        assert!((0.0..=1.0).contains(&l["score"].as_f64().unwrap()));
        let reasons = l["reasons"].as_array().unwrap();
        assert!(
            !reasons.is_empty()
                && reasons
                    .iter()
                    .all(|r| r["code"].is_string() && r["message"].is_string())
        );
    }
    assert!(
        lines[1]["score"].as_f64() > lines[0]["score"].as_f64(),
        "code outranks a greeting"
    );
}

#[test]
fn route_explains_in_text_and_json() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["route", "Write a Python function to merge two sorted lists"])
        .output()
        .unwrap();
    let text = common::stdout_ok(&out);
    assert!(
        text.starts_with("route: ") && text.contains("why:") && text.contains("open_ended"),
        "{text}"
    );
    let out = sb.cmd().args(["route", "--json", "hi"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["features"].as_array().unwrap().len(),
        tandem::router::Feature::COUNT
    );
    assert!(v["reasons"][0]["code"].is_string());
}

#[test]
fn unknown_weight_is_a_one_line_error() {
    let sb = Sandbox::new();
    sb.write_config("[router.weights]\ncodez = 1.0\n");
    // The same refusal, with the same status, from `route`, `-p` and a bare `tandem` (the chat
    // screen's entry; with stdin not a terminal it reads the pipe, but the check comes first).
    for args in [&["route", "hi"][..], &["-p", "hi"], &[]] {
        let out = sb.cmd().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("router.weights.codez")
                && err.contains("config.toml")
                && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_reader_that_quits_early_ends_a_command_quietly() {
    use std::process::Stdio;
    // `tandem models list | grep -q smollm2`: the reader may be gone before tandem writes. Here
    // it is gone before the start, so every write meets a closed pipe.
    let sb = Sandbox::new();
    let batch = sb.path().join("batch.jsonl");
    let lines: String = (0..2000)
        .map(|i| format!("{{\"id\":{i},\"prompt\":\"hello {i}\"}}\n"))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    for args in [
        &["models", "list"][..],
        &["roles", "list"],
        &["auth", "status"],
        &["config", "path"],
        &["route", "--batch"],
        &["route", "--batch", "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = sb
            .std_cmd()
            .args(args)
            .stdin(std::fs::File::open(&batch).unwrap())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        common::assert_quiet_exit(&mut child, &format!("{args:?}"));
    }
}

#[test]
fn a_group_alone_does_its_listing() {
    // `tandem models` is `tandem models list`, as `llm models` is; each bare group used to be a
    // usage error (exit 2) that printed the group's help on one line.
    let sb = Sandbox::new();
    for (bare, full) in [
        (&["models"][..], &["models", "list"][..]),
        (&["roles"], &["roles", "list"]),
        (&["history"], &["history", "list"]),
        (&["config"], &["config", "show"]),
        (&["auth"], &["auth", "status"]),
    ] {
        let a = sb.cmd().args(bare).output().unwrap();
        let b = sb.cmd().args(full).output().unwrap();
        assert_eq!(a.status.code(), Some(0), "{bare:?}");
        assert_eq!(a.stdout, b.stdout, "{bare:?}");
    }
    let text = common::stdout_ok(&sb.cmd().arg("models").output().unwrap());
    assert!(text.contains("smollm2-135m"), "{text}");
}

#[test]
fn a_name_that_matches_nothing_is_a_usage_error() {
    // As `--conversation 99` and `--model nope` are: one line, exit 2.
    let sb = Sandbox::new();
    for (args, says) in [
        (&["history", "show", "99"][..], "no conversation \"99\""),
        (&["history", "export", "99"], "no conversation \"99\""),
        (&["models", "pull", "nope"], "unknown model \"nope\""),
        (&["models", "path", "nope"], "unknown model \"nope\""),
        (
            &["models", "verify", "/nonexistent/x.gguf"],
            "does not exist",
        ),
        (
            &["route", "--stats", "/nonexistent/p.txt"],
            "/nonexistent/p.txt: cannot read it: no such file or directory",
        ),
        (
            &["route", "--stats", "/"],
            "/: cannot read it: is a directory",
        ),
    ] {
        let out = sb.cmd().args(args).output().unwrap();
        let err = common::assert_usage_error(&out);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
