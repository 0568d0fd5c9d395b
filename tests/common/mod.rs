//! Shared test helpers: a `tandem` command in an isolated home, so no test reads or writes the
//! developer's own config, history or keyring.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

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

    /// `tandem` with XDG dirs inside the sandbox and no inherited TANDEM_* settings.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("tandem").unwrap();
        for (k, _) in std::env::vars() {
            if k.starts_with("TANDEM_") && k != "TANDEM_MODELS_DIR" {
                c.env_remove(k);
            }
        }
        c.env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("HOME", self.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .timeout(std::time::Duration::from_secs(60));
        c
    }
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

/// The real model file that `scripts/test` installs (through tandem's own PyPI source).
pub fn local_model() -> PathBuf {
    let dir = std::env::var_os("TANDEM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tandem-models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (it pulls the model) first",
        p.display()
    );
    p
}
