//! `tandem serve` as a real process on 127.0.0.1, driven by clients no one here wrote: the
//! official `openai` Python package (from the venv in `TANDEM_TEST_VENV`, installed by
//! scripts/setup-venv) streams and non-streams through tandem/auto, tandem/local and
//! tandem/cloud, the cloud being llama-cpp-python's server on loopback. A plain HTTP client
//! checks the headers, the error statuses and shapes, privacy, the local queue, a client
//! hanging up mid-stream, and SIGTERM. A missing venv or model fails the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

mod common;
use common::Sandbox;

const READY_WITHIN: Duration = Duration::from_secs(180);

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("TANDEM_TEST_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tandem-venv"));
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import llama_cpp.server, openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the venv {} lacks llama-cpp-python[server] or openai: run scripts/setup-venv",
        venv.display()
    );
    py
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A reply read whole over a fresh connection.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the OpenAI error shape and returns the error object.
    fn error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{self:?}");
        let e = self.json()["error"].clone();
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
        assert!(e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some());
        e
    }
}

fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
    // Status 0: nothing listens there (yet).
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Reply {
            status: 0,
            head: String::new(),
            body: String::new(),
        };
    };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before the whole body is sent and close; that is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn post(port: u16, body: &serde_json::Value) -> Reply {
    let b = body.to_string();
    request(port, "POST", "/v1/chat/completions", &["Content-Type: application/json"], b.as_bytes())
}

fn ask(model: &str, prompt: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": prompt }],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// llama-cpp-python's server on loopback, shared by the tests that need it. It queues
/// concurrent requests instead of interrupting the running one.
struct Llama {
    _p: Proc,
    port: u16,
}

fn llama() -> Arc<Llama> {
    static SHARED: Mutex<Weak<Llama>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = slot.upgrade() {
        return l;
    }
    let model = common::local_model();
    let port = free_port();
    let child = Command::new(venv_python())
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--n_threads", "1", "--n_ctx", "2048", "--interrupt_requests", "False"])
        .args(["--model_alias", "smollm2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama_cpp.server");
    let l = Arc::new(Llama {
        _p: Proc(child),
        port,
    });
    let deadline = Instant::now() + READY_WITHIN;
    while request(port, "GET", "/v1/models", &[], b"").status != 200 {
        assert!(Instant::now() < deadline, "llama_cpp.server did not start");
        std::thread::sleep(Duration::from_millis(250));
    }
    *slot = Arc::downgrade(&l);
    l
}

/// `tandem serve` in a sandbox, with the real local model and, when given, llama.cpp as its
/// cloud provider (priced, so costs show).
struct Tandem {
    p: Proc,
    port: u16,
    _sb: Sandbox,
}

impl Tandem {
    fn start(cloud: Option<&Llama>, env: &[(&str, &str)], args: &[&str]) -> Tandem {
        let sb = Sandbox::new();
        let mut cfg = String::new();
        if let Some(l) = cloud {
            cfg = format!(
                "[providers.llamacpp]\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodels = [{{ name = \"smollm2\", context_window = 2048, input_price = 0.15, output_price = 0.60 }}]\n",
                l.port
            );
        }
        sb.write_config(&cfg);
        common::local_model();
        let port = free_port();
        let mut c = sb.std_cmd();
        c.env("TANDEM_MODELS_DIR", common::models_dir())
            .args(["serve", "--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let t = Tandem {
            p: Proc(c.spawn().unwrap()),
            port,
            _sb: sb,
        };
        t.wait_local_ready();
        t
    }

    fn health(&self) -> serde_json::Value {
        request(self.port, "GET", "/health", &[], b"").json()
    }

    fn wait_local_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let r = request(self.port, "GET", "/health", &[], b"");
            if r.status != 0 && r.json()["local"]["state"] == "ready" {
                return;
            }
            assert!(Instant::now() < deadline, "tandem serve did not get ready: {r:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The shared server most tests talk to.
fn tandem() -> Arc<Tandem> {
    static SHARED: Mutex<Weak<Tandem>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = slot.upgrade() {
        return t;
    }
    let l = llama();
    let t = Arc::new(Tandem::start(
        Some(&l),
        &[("TANDEM_SERVE__MAX_BODY_BYTES", "65536")],
        &[],
    ));
    // Keep llama alive as long as the server that uses it.
    std::mem::forget(l);
    *slot = Arc::downgrade(&t);
    t
}

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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (model, tier) in [("tandem/auto", None), ("tandem/local", Some("local")), ("tandem/cloud", Some("cloud"))] {
        for key in [model.to_string(), format!("{model}+stream")] {
            let r = &v[&key];
            assert!(r["text"].as_str().is_some_and(|s| !s.is_empty()), "{key}: {r}");
            assert!(matches!(r["finish"].as_str(), Some("stop" | "length")), "{key}: {r}");
            assert!(r["usage"].as_u64().is_some_and(|u| u > 0), "{key}: {r}");
            let target = r["tandem"]["target"].as_str().unwrap_or_else(|| panic!("{key}: {r}"));
            if let Some(tier) = tier {
                assert_eq!(target, tier, "{key}: {r}");
            }
            assert!(r["tandem"]["reasons"][0]["code"].is_string(), "{key}: {r}");
        }
        assert_eq!(v[model]["route"], v[model]["tandem"]["target"], "{v}");
    }
    assert_eq!(v["tandem/cloud"]["tandem"]["provider"], "llamacpp");
    assert!(v["tandem/cloud"]["tandem"]["cost_usd"].as_f64().unwrap() > 0.0, "{v}");
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
    assert!(ok.header("x-tandem-reasons").unwrap().starts_with("pinned"), "{ok:?}");
    assert!(ok.header("x-tandem-cost-usd").unwrap().parse::<f64>().unwrap() > 0.0);
    assert_eq!(ok.json()["model"], "smollm2");

    let e = post(t.port, &ask("gpt-17", "hi", 4)).error(404);
    assert_eq!((e["code"].as_str(), e["param"].as_str()), (Some("model_not_found"), Some("model")));
    let bad = request(t.port, "POST", "/v1/chat/completions", &[], b"{\"model\": ");
    assert_eq!(bad.error(400)["type"], "invalid_request_error");
    let big = format!(r#"{{"model":"tandem","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(70_000));
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
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["tandem", "tandem/local", "tandem/cloud", "smollm2-135m", "llamacpp/smollm2"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    let h = t.health();
    assert_eq!((h["local"]["state"].as_str(), h["cloud"]["state"].as_str()), (Some("ready"), Some("ready")), "{h}");
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
    assert!(m.contains("not sent to the cloud") && m.contains("API key"), "{m}");
}

#[test]
fn the_door_needs_a_token_off_loopback() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["--no-pull", "serve", "--host", "0.0.0.0", "--port", &free_port().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("TANDEM_SERVE_TOKEN"), "{err}");

    let port = free_port();
    let p = Proc(
        sb.std_cmd()
            .args(["--no-pull", "serve", "--host", "0.0.0.0", "--port", &port.to_string()])
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
    request(port, "GET", "/v1/models", &["Authorization: Bearer wrong"], b"").error(401);
    let ok = request(port, "GET", "/v1/models", &["Authorization: Bearer s3cret-token"], b"");
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
    // No waiting room: a second local answer while one runs is told when to come back.
    let t = Tandem::start(
        None,
        &[("TANDEM_SERVE__LOCAL_QUEUE", "0"), ("TANDEM_SERVE__GRACE_SECS", "1")],
        &["--json"],
    );
    let (first, _) = first_word(t.port);
    let busy = post(t.port, &ask("tandem/local", "hi", 4));
    assert_eq!(busy.error(429)["code"], "local_queue_full");
    assert!(busy.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);

    // Hanging up mid-stream stops the generation: the engine is idle within a second.
    drop(first);
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
    assert!(seen.contains("\"finish_reason\":\"") && seen.contains("data: [DONE]"), "{seen}");
    let mut t = t;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = t.p.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tandem serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
