//! Shared test helpers: a `tandem` command in an isolated home, so no test reads or writes the
//! developer's own config, history, models or keyring.
#![allow(dead_code)]

pub mod tmux;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/tandem/config.toml")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let f = self.config_file();
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
        f
    }

    pub fn history_db(&self) -> PathBuf {
        self.path().join("data/tandem/history.sqlite3")
    }

    /// A plain `std::process::Command` for `tandem` with XDG dirs inside the sandbox and no
    /// inherited TANDEM_* settings (so not the shared model store either) or NO_COLOR.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("tandem"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TANDEM_") {
                c.env_remove(k);
            }
        }
        c.env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("HOME", self.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("NO_COLOR");
        c
    }

    /// The same, as an assert_cmd command with a time limit.
    pub fn cmd(&self) -> assert_cmd::Command {
        limited(self.std_cmd())
    }

    /// `std_cmd` that may use the shared real model (which must be installed).
    pub fn std_cmd_with_model(&self) -> std::process::Command {
        local_model();
        let mut c = self.std_cmd();
        c.env("TANDEM_MODELS_DIR", models_dir());
        c
    }

    /// `cmd` that may use the shared real model.
    pub fn cmd_with_model(&self) -> assert_cmd::Command {
        limited(self.std_cmd_with_model())
    }
}

fn limited(c: std::process::Command) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::from_std(c);
    c.timeout(std::time::Duration::from_secs(120));
    c
}

/// A command's stdout as JSON, or a panic that shows what it printed instead.
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Asserts the one-line error contract: exit 2, a single stderr line, no panic or backtrace.
pub fn assert_usage_error(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

/// Where `scripts/test` keeps the real model.
pub fn models_dir() -> PathBuf {
    std::env::var_os("TANDEM_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tandem-models")
        })
}

/// The real model file that `scripts/test` installs (through tandem's own PyPI source).
pub fn local_model() -> PathBuf {
    let p = models_dir().join("smollm2-135m.gguf");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (it pulls the model) first",
        p.display()
    );
    p
}

/// A loopback HTTP server that answers up to `requests` requests with the same bytes.
pub fn serve(requests: usize, response: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten().take(requests) {
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&response);
        }
    });
    port
}

/// A cloud provider `name` at a local stand-in on `port`, serving `model` at $1/$2 per million
/// tokens: a config section to write.
pub fn provider_toml(name: &str, port: u16, model: &str) -> String {
    format!(
        "[providers.{name}]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
         models = [{{ name = \"{model}\", input_price = 1.0, output_price = 2.0 }}]\n"
    )
}

/// A one-answer OpenAI-compatible stream, for when the cloud's words don't matter.
pub fn canned_cloud(answer: &str) -> u16 {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let body = chunk(
        &format!("{{\"role\":\"assistant\",\"content\":\"{answer}\"}}"),
        "null",
    ) + &chunk("{}", "\"stop\"")
        + "data: [DONE]\n\n";
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    serve(5, format!("{head}{body}").into_bytes())
}

/// A loopback OpenAI-compatible server that counts the requests it gets, so a test can show
/// that nothing left the machine.
pub struct Cloud {
    pub port: u16,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Cloud {
    /// Streams `answer` (any text, escape sequences included) to every request, with usage.
    pub fn answering(answer: &str) -> Cloud {
        let content = serde_json::to_string(answer).unwrap();
        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let usage = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":1000,\"total_tokens\":2000}}\n\n";
        let body = chunk(
            &format!("{{\"role\":\"assistant\",\"content\":{content}}}"),
            "null",
        ) + &chunk("{}", "\"stop\"")
            + usage
            + "data: [DONE]\n\n";
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        Cloud::replying(format!("{head}{body}").into_bytes())
    }

    /// Sends these bytes to every request.
    pub fn replying(response: Vec<u8>) -> Cloud {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = hits.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&response);
            }
        });
        Cloud { port, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A `[providers.fake]` table for this server; prices in dollars per million tokens.
    pub fn config(&self, input_price: f64, output_price: f64) -> String {
        format!(
            "[providers.fake]\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodels = [{{ name = \"m\", input_price = {input_price}, output_price = {output_price} }}]\n",
            self.port
        )
    }
}

/// Bytes a terminal would act on: C0 controls but newline and tab, DEL, and C1 controls.
pub fn terminal_controls(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| {
            (c < ' ' && c != '\n' && c != '\t') || c == '\x7f' || ('\u{80}'..='\u{9f}').contains(&c)
        })
        .collect()
}

/// A loopback OpenAI-compatible server that keeps every request body it gets, so a test can
/// assert on what was sent (attachments, system prompts) or that nothing was.
pub struct Recorder {
    pub port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    /// Streams `answer` to every request.
    pub fn answering(answer: &str) -> Recorder {
        let content = serde_json::to_string(answer).unwrap();
        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let body = chunk(
            &format!("{{\"role\":\"assistant\",\"content\":{content}}}"),
            "null",
        ) + &chunk("{}", "\"stop\"")
            + "data: [DONE]\n\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let body = read_request(&mut s);
                seen.lock().unwrap().push(body);
                let _ = s.write_all(response.as_bytes());
            }
        });
        Recorder { port, bodies }
    }

    /// The JSON bodies received, in order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or(serde_json::Value::String(b.clone())))
            .collect()
    }

    pub fn hits(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// A `[providers.NAME]` table for this server (`tier = "local"` with `local`).
    pub fn provider(&self, name: &str, model: &str, extra: &str) -> String {
        format!(
            "[providers.{name}]\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodels = [{{ name = \"{model}\"{extra} }}]\n",
            self.port
        )
    }
}

/// One HTTP request's body: headers up to the blank line, then Content-Length bytes.
fn read_request(s: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return String::new(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf[head_end..]).to_string()
}

/// Waits for `child` to exit, killing it and failing the test after `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `child`, whose stdout reader has gone (`| head`), exits with 0 and says nothing
/// on its (piped) stderr.
pub fn assert_quiet_exit(child: &mut Child, what: &str) {
    let status = wait_bounded(child, Duration::from_secs(60));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{what}: {err}");
    assert!(err.is_empty(), "{what}: {err}");
}

/// Spawns `c` and returns once `n` bytes of the answer have reached its stdout.
pub fn spawn_until_output(mut c: Command, stderr: Stdio, n: usize) -> Child {
    let mut child = c.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let mut first = vec![0u8; n];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    child
}

/// Asserts that a command succeeded (showing its stderr if not) and returns its stdout.
pub fn stdout_ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}
