//! The history file itself: how long to wait for another process's lock, which errors mean
//! "try again", and who may read the file.

use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another process's lock before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the checkpoint after a delete waits for another process's hold on the log.
pub(super) const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// History can hold pasted secrets and private chats: only the owner may read it.
pub(super) fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [
            path.to_path_buf(),
            path.with_extension("sqlite3-wal"),
            path.with_extension("sqlite3-shm"),
        ] {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}
