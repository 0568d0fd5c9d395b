//! `tandem serve` as a real process on 127.0.0.1, driven by clients no one here wrote: the
//! official `openai` Python package (from the venv in `TANDEM_TEST_VENV`, installed by
//! scripts/setup-venv) streams and non-streams through tandem/auto, tandem/local and
//! tandem/cloud, the cloud being llama-cpp-python's server on loopback. A plain HTTP client
//! checks the headers, the error statuses and shapes, privacy, the local queue, a client
//! hanging up mid-stream, and SIGTERM. A missing venv or model fails the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
mod serve_support;
use common::Sandbox;
use serve_support::{Proc, Tandem, ask, free_port, post, request, tandem, venv_python};

const SDK_SCRIPT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="unused", max_retries=0, timeout=120)
msgs = [{"role": "system", "content": "Answer in a few words."}, {"role": "user", "content": "Say hello."}]
out = {}
for model in ["tandem/auto", "tandem/local", "tandem/cloud"]:
    raw = c.chat.completions.with_raw_response.create(model=model, messages=msgs, max_tokens=12, temperature=0)
    r = raw.parse()
    out[model] = {"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
                  "usage": r.usage.total_tokens, "tandem": (r.model_extra or {}).get("tandem"),
                  "route": raw.headers.get("x-tandem-route")}
    text, usage, tandem, finish = "", None, None, None
    for ch in c.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0,
                                        stream=True, stream_options={"include_usage": True}):
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            finish = ch.choices[0].finish_reason or finish
        if ch.usage:
            usage = ch.usage.total_tokens
        tandem = (ch.model_extra or {}).get("tandem") or tandem
    out[model + "+stream"] = {"text": text, "finish": finish, "usage": usage, "tandem": tandem}
try:
    c.chat.completions.create(model="no-such-model", messages=msgs)
except openai.NotFoundError as e:
    out["unknown"] = {"status": e.status_code, "code": e.code}
print(json.dumps(out))
"#;

#[test]
fn the_openai_sdk_streams_and_non_streams_through_every_route() {
    let t = tandem();
    let out = Command::new(venv_python())
        .args(["-c", SDK_SCRIPT, &t.port.to_string()])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&common::stdout_ok(&out)).unwrap();
    for (model, tier) in [
        ("tandem/auto", None),
        ("tandem/local", Some("local")),
        ("tandem/cloud", Some("cloud")),
    ] {
        for key in [model.to_string(), format!("{model}+stream")] {
            let r = &v[&key];
            assert!(
                r["text"].as_str().is_some_and(|s| !s.is_empty()),
                "{key}: {r}"
            );
            assert!(
                matches!(r["finish"].as_str(), Some("stop" | "length")),
                "{key}: {r}"
            );
            assert!(r["usage"].as_u64().is_some_and(|u| u > 0), "{key}: {r}");
            let target = r["tandem"]["target"]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {r}"));
            if let Some(tier) = tier {
                assert_eq!(target, tier, "{key}: {r}");
            }
            assert!(r["tandem"]["reasons"][0]["code"].is_string(), "{key}: {r}");
        }
        assert_eq!(v[model]["route"], v[model]["tandem"]["target"], "{v}");
    }
    assert_eq!(v["tandem/cloud"]["tandem"]["provider"], "llamacpp");
    assert!(
        v["tandem/cloud"]["tandem"]["cost_usd"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert_eq!(v["tandem/local"]["tandem"]["cost_usd"], 0.0);
    assert_eq!(v["unknown"]["status"], 404, "{v}");
}

#[test]
fn route_headers_and_openai_shaped_errors() {
    let t = tandem();
    let ok = post(t.port, &ask("tandem/cloud", "Name a colour.", 8));
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-tandem-route").as_deref(), Some("cloud"));
    // The rule that decided comes first; the others are notices.
    assert!(
        ok.header("x-tandem-reasons").unwrap().starts_with("pinned"),
        "{ok:?}"
    );
    assert!(
        ok.header("x-tandem-cost-usd")
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert_eq!(ok.json()["model"], "smollm2");

    let e = post(t.port, &ask("gpt-17", "hi", 4)).error(404);
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str()),
        (Some("model_not_found"), Some("model"))
    );
    let bad = request(t.port, "POST", "/v1/chat/completions", &[], b"{\"model\": ");
    assert_eq!(bad.error(400)["type"], "invalid_request_error");
    let big = format!(
        r#"{{"model":"tandem","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    let r = request(t.port, "POST", "/v1/chat/completions", &[], big.as_bytes());
    assert_eq!(r.error(413)["code"], "request_too_large");
    let mut tools = ask("tandem", "hi", 4);
    tools["tools"] = serde_json::json!([{ "type": "function", "function": { "name": "f" } }]);
    assert_eq!(post(t.port, &tools).error(400)["param"], "tools");
    let mut n = ask("tandem", "hi", 4);
    n["n"] = 2.into();
    assert_eq!(post(t.port, &n).error(400)["param"], "n");
    request(t.port, "GET", "/v1/nothing", &[], b"").error(404);

    let models = request(t.port, "GET", "/v1/models", &[], b"").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in [
        "tandem",
        "tandem/local",
        "tandem/cloud",
        "smollm2-135m",
        "llamacpp/smollm2",
    ] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    let h = t.health();
    assert_eq!(
        (h["local"]["state"].as_str(), h["cloud"]["state"].as_str()),
        (Some("ready"), Some("ready")),
        "{h}"
    );
}

#[test]
fn a_secret_stays_local_and_the_cloud_is_refused_for_it() {
    let t = tandem();
    let secret = "my key is sk-proj-abcdefghijklmnopqrstuvwx, what kind of key is it?";
    let r = post(t.port, &ask("tandem", secret, 8));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-tandem-route").as_deref(), Some("local"));
    assert_eq!(r.json()["tandem"]["reasons"][0]["code"], "secrets_detected");
    // In an earlier message too, as the chat screen judges a conversation.
    let mut earlier = ask("tandem/cloud", "and what now?", 8);
    earlier["messages"] = serde_json::json!([
        { "role": "user", "content": secret },
        { "role": "assistant", "content": "an API key" },
        { "role": "user", "content": "and what now?" },
    ]);
    let e = post(t.port, &earlier).error(400);
    assert_eq!(e["code"], "tandem_refused");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("not sent to the cloud") && m.contains("API key"),
        "{m}"
    );
}

#[test]
fn the_door_needs_a_token_off_loopback() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args([
            "--no-pull",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            &free_port().to_string(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("TANDEM_SERVE_TOKEN"), "{err}");

    let port = free_port();
    let p = Proc(
        sb.std_cmd()
            .args([
                "--no-pull",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                &port.to_string(),
            ])
            .env("TANDEM_SERVE_TOKEN", "s3cret-token")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(port, "GET", "/health", &[], b"").status == 0 {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = request(port, "GET", "/v1/models", &[], b"").error(401);
    assert_eq!(e["code"], "invalid_api_key");
    request(
        port,
        "GET",
        "/v1/models",
        &["Authorization: Bearer wrong"],
        b"",
    )
    .error(401);
    let ok = request(
        port,
        "GET",
        "/v1/models",
        &["Authorization: Bearer s3cret-token"],
        b"",
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    drop(p);
}

const LONG: &str = "Write a very long story about a dragon and a lighthouse, with many chapters.";

/// Opens a streamed local answer and returns the connection once its first word has come.
fn first_word(port: u16) -> (TcpStream, String) {
    let mut body = ask("tandem/local", LONG, 400);
    body["stream"] = true.into();
    body["temperature"] = 0.7.into();
    let b = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\"content\":") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before its first word: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    (s, seen)
}

#[test]
fn hang_ups_full_queues_and_sigterm_end_cleanly() {
    // No waiting room: with every slot of the engine's batch answering, one more local answer
    // is told when to come back.
    let t = Tandem::start(
        None,
        &[
            ("TANDEM_SERVE__LOCAL_QUEUE", "0"),
            ("TANDEM_SERVE__GRACE_SECS", "1"),
        ],
        &["--json"],
    );
    let slots = t.health()["local"]["slots"].as_u64().unwrap();
    assert!(slots >= 2, "{}", t.health());
    let running: Vec<_> = (0..slots).map(|_| first_word(t.port).0).collect();
    assert_eq!(t.health()["local"]["running"], slots);
    let busy = post(t.port, &ask("tandem/local", "hi", 4));
    assert_eq!(busy.error(429)["code"], "local_queue_full");
    assert!(busy.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);

    // Hanging up mid-stream stops the generation: the engine is idle within a second.
    drop(running);
    let gone = Instant::now();
    while t.health()["local"]["running"] != 0 {
        assert!(gone.elapsed() < Duration::from_secs(1), "{}", t.health());
        std::thread::sleep(Duration::from_millis(20));
    }

    // The same for an answer that is not streamed: hyper drops the request, which cancels it.
    let mut quiet = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    let b = ask("tandem/local", LONG, 400).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    quiet.write_all(head.as_bytes()).unwrap();
    let asked = Instant::now();
    while t.health()["local"]["running"] != 1 {
        assert!(asked.elapsed() < Duration::from_secs(30), "{}", t.health());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(quiet);
    let gone = Instant::now();
    while t.health()["local"]["running"] != 0 {
        assert!(gone.elapsed() < Duration::from_secs(1), "{}", t.health());
        std::thread::sleep(Duration::from_millis(20));
    }

    // SIGTERM mid-stream: the stream ends with a final event and [DONE], the process with 0.
    let (mut s, mut seen) = first_word(t.port);
    let pid = t.p.0.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let _ = s.read_to_string(&mut seen);
    assert!(
        seen.contains("\"finish_reason\":\"") && seen.contains("data: [DONE]"),
        "{seen}"
    );
    let mut t = t;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = t.p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tandem serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn doctor_checks_a_running_server() {
    let t = tandem();
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["--no-pull", "doctor", "--json"])
        .env("TANDEM_SERVE__PORT", t.port.to_string())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&common::stdout_ok(&out)).unwrap();
    assert_eq!(v["server"]["running"], true, "{v}");
    assert_eq!(v["server"]["local_state"], "ready", "{v}");
    // Nothing listens on a fresh port: doctor says so.
    let out = sb
        .cmd()
        .args(["--no-pull", "doctor"])
        .env("TANDEM_SERVE__PORT", free_port().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not running"), "{text}");
}
