//! Logging to a file under the XDG state dir: never to the terminal the TUI draws on.
//! The level comes from `--log-level`, then `TANDEM_LOG`, then "info".

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "bad log level {0:?}: use error, warn, info, debug or trace (or a tracing filter such as tandem=debug)"
    )]
    Level(String),
}

/// Checks a level string without installing anything, so a bad `--log-level` is a usage error
/// even when the log file cannot be opened.
pub fn parse_filter(level: &str) -> Result<EnvFilter, LogError> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    // A bare word that is no level would silently become a target filter that logs nothing.
    let plain_ok =
        level.contains('=') || LEVELS.contains(&level.trim().to_ascii_lowercase().as_str());
    if !plain_ok {
        return Err(LogError::Level(level.to_string()));
    }
    EnvFilter::try_new(level).map_err(|_| LogError::Level(level.to_string()))
}

const LOG_FILE: &str = "tandem.log";

/// The log can quote prompts and provider errors: like the history, only the owner may read
/// it. The file is made 0600 before the appender opens it (appending keeps the mode), and an
/// older, looser file is tightened.
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path);
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Starts file logging; the guard flushes on drop. An unwritable log directory disables
/// logging rather than failing the command.
pub fn init(dir: &Path, level: &str) -> Result<Option<WorkerGuard>, LogError> {
    let filter = parse_filter(level)?;
    if std::fs::create_dir_all(dir).is_err() {
        return Ok(None);
    }
    restrict(&dir.join(LOG_FILE));
    let appender = tracing_appender::rolling::never(dir, LOG_FILE);
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let ok = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .is_ok();
    Ok(ok.then_some(guard))
}
