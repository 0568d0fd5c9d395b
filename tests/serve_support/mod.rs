//! Helpers for tests/serve.rs: a plain HTTP/1.1 client that reads whole replies, the venv's
//! Python, llama-cpp-python's server on loopback, and `tandem serve` in a sandbox.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::common::{self, Sandbox};

pub const READY_WITHIN: Duration = Duration::from_secs(180);

pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("TANDEM_TEST_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tandem-venv")
        });
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A reply read whole over a fresh connection.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the OpenAI error shape and returns the error object.
    pub fn error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{self:?}");
        let e = self.json()["error"].clone();
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
        assert!(e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some());
        e
    }
}

pub fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
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

pub fn post(port: u16, body: &serde_json::Value) -> Reply {
    let b = body.to_string();
    request(
        port,
        "POST",
        "/v1/chat/completions",
        &["Content-Type: application/json"],
        b.as_bytes(),
    )
}

pub fn ask(model: &str, prompt: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": prompt }],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// llama-cpp-python's server on loopback, shared by the tests that need it. It queues
/// concurrent requests instead of interrupting the running one.
pub struct Llama {
    _p: Proc,
    pub port: u16,
}

pub fn llama() -> Arc<Llama> {
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
        .args([
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
            "--interrupt_requests",
            "False",
        ])
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
pub struct Tandem {
    pub p: Proc,
    pub port: u16,
    _sb: Sandbox,
    /// The cloud this server talks to, stopped after it (fields drop in order).
    cloud: Option<Arc<Llama>>,
}

impl Tandem {
    pub fn start(cloud: Option<&Llama>, env: &[(&str, &str)], args: &[&str]) -> Tandem {
        let sb = Sandbox::new();
        let mut cfg = String::new();
        if let Some(l) = cloud {
            cfg = format!(
                "[providers.llamacpp]\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodels = [{{ name = \"smollm2\", context_window = 2048, input_price = 0.15, output_price = 0.60 }}]\n",
                l.port
            );
        }
        sb.write_config(&cfg);
        let port = free_port();
        let mut c = sb.std_cmd_with_model();
        c.args(["serve", "--port", &port.to_string()])
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
            cloud: None,
        };
        t.wait_local_ready();
        t
    }

    pub fn health(&self) -> serde_json::Value {
        request(self.port, "GET", "/health", &[], b"").json()
    }

    pub fn wait_local_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let r = request(self.port, "GET", "/health", &[], b"");
            if r.status != 0 && r.json()["local"]["state"] == "ready" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tandem serve did not get ready: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The shared server most tests talk to.
pub fn tandem() -> Arc<Tandem> {
    static SHARED: Mutex<Weak<Tandem>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = slot.upgrade() {
        return t;
    }
    let l = llama();
    let mut t = Tandem::start(Some(&l), &[("TANDEM_SERVE__MAX_BODY_BYTES", "65536")], &[]);
    // llama lives as long as the server that uses it, and no longer: a forgotten handle left
    // its process running after the tests.
    t.cloud = Some(l);
    let t = Arc::new(t);
    *slot = Arc::downgrade(&t);
    t
}
