//! Where tandem keeps things: XDG config, data, state and cache directories.
//! `TANDEM_MODELS_DIR` moves the (large) model store on its own, so a test run or a second
//! account can share one download.

use std::path::PathBuf;

/// Environment names that steer tandem itself rather than a config key; the `TANDEM_*` config
/// layer skips them.
pub const RESERVED_ENV: &[&str] = &[
    "TANDEM_LOG",
    "TANDEM_MODELS_DIR",
    "TANDEM_TEST_VENV",
    "TANDEM_RELEASE_TARGET",
    // The bearer token of `tandem serve`: a secret, never a config value.
    "TANDEM_SERVE_TOKEN",
];

#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub models_dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        let dirs = directories::ProjectDirs::from("", "", "tandem");
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let (config_dir, data_dir, cache_dir, state_dir) = match &dirs {
            Some(d) => (
                d.config_dir().to_path_buf(),
                d.data_dir().to_path_buf(),
                d.cache_dir().to_path_buf(),
                d.state_dir()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| d.data_local_dir().to_path_buf()),
            ),
            None => {
                let base = home.join(".tandem");
                (
                    base.clone(),
                    base.join("data"),
                    base.join("cache"),
                    base.join("state"),
                )
            }
        };
        let models_dir = std::env::var_os("TANDEM_MODELS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("models"));
        Paths {
            config_dir,
            data_dir,
            state_dir,
            cache_dir,
            models_dir,
        }
    }

    pub fn default_config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn themes_dir(&self) -> PathBuf {
        self.config_dir.join("themes")
    }

    /// The user's roles, `NAME.md` each (see `crate::roles`).
    pub fn roles_dir(&self) -> PathBuf {
        self.config_dir.join("roles")
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("tandem.log")
    }

    pub fn history_db(&self) -> PathBuf {
        self.data_dir.join("history.sqlite3")
    }
}
