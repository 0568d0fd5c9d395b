//! Conversation history in SQLite: WAL, a busy timeout, versioned migrations, file mode 0600,
//! FTS5 search. Every write is one short IMMEDIATE transaction, so two processes can write at
//! once without corrupting the file or losing turns. No UI types here.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::chat::{Message, Role, Usage};

mod attachments;
mod file;
mod ledger;
mod migrations;
mod reads;

pub use attachments::StoredAttachment;
pub use ledger::{DAY, Spend, SpendId, SpendRow, Totals, day_start, month_start};

use file::{BUSY_TIMEOUT, CHECKPOINT_WAIT, is_busy, restrict_mode};

pub type ConversationId = i64;
pub type TurnId = i64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("history database {path}: {reason}; move it aside to start a fresh history")]
    Open { path: String, reason: String },
    #[error("history database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no conversation {0:?}; see `tandem history list`")]
    NotFound(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub pin: Option<String>,
    pub private: bool,
    /// The role the conversation runs with (`--role`, `/role`); restored with it.
    pub role: Option<String>,
}

/// A conversation with what the sidebar and `history list` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub conversation: Conversation,
    pub turns: usize,
    pub local_answers: usize,
    pub cloud_answers: usize,
}

/// Where an answer ran and what it cost; empty for user turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TurnMeta {
    pub target: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The routing reasons as JSON text.
    pub reasons: Option<String>,
    pub usage: Option<Usage>,
    pub cost_usd: f64,
    pub saved_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    pub id: TurnId,
    pub role: Role,
    pub content: String,
    pub meta: TurnMeta,
    pub interrupted: bool,
    /// A prompt's attachments, as they were sent.
    pub attachments: Vec<StoredAttachment>,
    /// False while an answer is still streaming (or when its process died mid-stream).
    pub complete: bool,
    pub created_at: i64,
}

impl Turn {
    /// Not whole: cancelled, broken off, or never finished because its process died
    /// (`complete` stays 0 after a `kill -9`). Shown as interrupted everywhere.
    pub fn cut_off(&self) -> bool {
        self.interrupted || !self.complete
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub conversation_id: ConversationId,
    pub title: String,
    pub turn_id: TurnId,
    pub snippet: String,
}

pub struct Store {
    conn: Connection,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, SessionError> {
        let err = |reason: String| SessionError::Open {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        // Two processes opening a new file at once can meet while it is still in rollback mode,
        // where SQLite refuses a lock upgrade at once instead of calling the busy handler
        // (deadlock avoidance). Nothing is held between attempts, so starting over is safe.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut attempt = 0u32;
        loop {
            let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
            restrict_mode(path);
            match Self::init(conn) {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt.min(20))));
                }
                r => return r.map_err(|e| err(e.to_string())),
            }
        }
    }

    pub fn open_in_memory() -> Result<Store, SessionError> {
        Ok(Self::init(Connection::open_in_memory()?)?)
    }

    fn init(conn: Connection) -> rusqlite::Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL is durable across process crashes in WAL mode; only a power cut can lose the
        // last commits, never corrupt the file.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A deleted conversation's words are overwritten, not left in free pages of the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let mut store = Store { conn };
        migrations::apply(&mut store.conn)?;
        Ok(store)
    }

    fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, SessionError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub fn create_conversation(
        &mut self,
        title: &str,
        private: bool,
        pin: Option<&str>,
    ) -> Result<ConversationId, SessionError> {
        let t = now();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO conversations (title, created_at, updated_at, pin, private) VALUES (?1, ?2, ?2, ?3, ?4)",
                params![title, t, pin, private],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Conversation, SessionError> {
        self.conn
            .query_row(&format!("{CONV_SELECT} WHERE id = ?1"), [id], conv_row)
            .optional()?
            .ok_or_else(|| SessionError::NotFound(id.to_string()))
    }

    /// By numeric id, else by exact title (the newest such), else by title prefix.
    pub fn find(&self, key: &str) -> Result<Conversation, SessionError> {
        if let Ok(id) = key.parse::<i64>()
            && let Ok(c) = self.conversation(id)
        {
            return Ok(c);
        }
        for pattern in [key.to_string(), format!("{}%", key.replace('%', "\\%"))] {
            let sql = format!(
                "{CONV_SELECT} WHERE title LIKE ?1 ESCAPE '\\' ORDER BY updated_at DESC, id DESC LIMIT 1"
            );
            if let Some(c) = self.conn.query_row(&sql, [&pattern], conv_row).optional()? {
                return Ok(c);
            }
        }
        Err(SessionError::NotFound(key.to_string()))
    }

    pub fn last_conversation(&self) -> Result<Option<Conversation>, SessionError> {
        let sql = format!("{CONV_SELECT} ORDER BY updated_at DESC, id DESC LIMIT 1");
        Ok(self.conn.query_row(&sql, [], conv_row).optional()?)
    }

    pub fn rename(&mut self, id: ConversationId, title: &str) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE conversations SET title = ?2 WHERE id = ?1",
                params![id, title],
            )
        })?;
        Ok(())
    }

    pub fn set_pin(
        &mut self,
        id: ConversationId,
        pin: Option<&str>,
        private: bool,
    ) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE conversations SET pin = ?2, private = ?3 WHERE id = ?1",
                params![id, pin, private],
            )
        })?;
        Ok(())
    }

    /// Pins a conversation private (or unpins it), keeping its route pin.
    pub fn set_private(&mut self, id: ConversationId, private: bool) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE conversations SET private = ?2 WHERE id = ?1",
                params![id, private],
            )
        })?;
        Ok(())
    }

    pub fn delete(&mut self, id: ConversationId) -> Result<(), SessionError> {
        let n = self.write(|tx| tx.execute("DELETE FROM conversations WHERE id = ?1", [id]))?;
        if n == 0 {
            return Err(SessionError::NotFound(id.to_string()));
        }
        // Until a checkpoint the file keeps the old pages and the log the new ones beside
        // older copies: write the zeroed pages back and empty the log now. Best effort, and
        // brief: a chat screen open in another terminal can hold the log (its own close
        // finishes the job), and `/delete` must not wait on it for the full busy timeout.
        let _ = self.conn.busy_timeout(CHECKPOINT_WAIT);
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        Ok(())
    }

    /// Saves a finished turn (a user prompt, or a whole answer).
    pub fn add_turn(
        &mut self,
        conv: ConversationId,
        role: Role,
        content: &str,
        meta: &TurnMeta,
        interrupted: bool,
    ) -> Result<TurnId, SessionError> {
        self.insert_turn(conv, role, content, meta, interrupted, true)
    }

    /// Starts an answer that will be filled in while it streams.
    pub fn begin_answer(
        &mut self,
        conv: ConversationId,
        meta: &TurnMeta,
    ) -> Result<TurnId, SessionError> {
        self.insert_turn(conv, Role::Assistant, "", meta, false, false)
    }

    fn insert_turn(
        &mut self,
        conv: ConversationId,
        role: Role,
        content: &str,
        meta: &TurnMeta,
        interrupted: bool,
        complete: bool,
    ) -> Result<TurnId, SessionError> {
        let t = now();
        let reasons = meta.reasons.clone();
        let usage = meta.usage.unwrap_or_default();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO turns (conversation_id, role, content, target, provider, model, reasons,
                   prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, cost_usd, saved_usd,
                   interrupted, complete, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
                params![
                    conv, role.as_str(), content, meta.target, meta.provider, meta.model, reasons,
                    usage.prompt_tokens as i64, usage.completion_tokens as i64, usage.ttft_ms as i64,
                    usage.tokens_per_s, meta.cost_usd, meta.saved_usd, interrupted, complete, t
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute("UPDATE conversations SET updated_at = ?2 WHERE id = ?1", params![conv, t])?;
            Ok(id)
        })
    }

    /// Stores the text streamed so far; called about once a second while an answer streams.
    pub fn save_partial(&mut self, turn: TurnId, content: &str) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE turns SET content = ?2, updated_at = ?3 WHERE id = ?1",
                params![turn, content, now()],
            )
        })?;
        Ok(())
    }

    pub fn finish_answer(
        &mut self,
        turn: TurnId,
        content: &str,
        meta: &TurnMeta,
        interrupted: bool,
    ) -> Result<(), SessionError> {
        let u = meta.usage.unwrap_or_default();
        self.write(|tx| {
            tx.execute(
                "UPDATE turns SET content = ?2, target = ?3, provider = ?4, model = ?5, reasons = ?6,
                   prompt_tokens = ?7, completion_tokens = ?8, ttft_ms = ?9, tokens_per_s = ?10,
                   cost_usd = ?11, saved_usd = ?12, interrupted = ?13, complete = 1, updated_at = ?14
                 WHERE id = ?1",
                params![
                    turn, content, meta.target, meta.provider, meta.model, meta.reasons,
                    u.prompt_tokens as i64, u.completion_tokens as i64, u.ttft_ms as i64, u.tokens_per_s,
                    meta.cost_usd, meta.saved_usd, interrupted, now()
                ],
            )
        })?;
        Ok(())
    }

    /// The conversation as chat messages, for the next request.
    pub fn messages(&self, conv: ConversationId) -> Result<Vec<Message>, SessionError> {
        Ok(self
            .turns(conv)?
            .into_iter()
            .filter(|t| !t.content.is_empty())
            .map(|t| Message::new(t.role, t.content))
            .collect())
    }

    pub fn integrity_check(&self) -> Result<String, SessionError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

const CONV_SELECT: &str =
    "SELECT id, title, created_at, updated_at, pin, private, role FROM conversations";

/// Usage from four columns starting at `first`: prompt and completion tokens, TTFT, tok/s.
pub(crate) fn usage_at(r: &rusqlite::Row, first: usize) -> rusqlite::Result<Usage> {
    Ok(Usage {
        prompt_tokens: r.get::<_, i64>(first)? as usize,
        completion_tokens: r.get::<_, i64>(first + 1)? as usize,
        ttft_ms: r.get::<_, i64>(first + 2)? as u64,
        tokens_per_s: r.get(first + 3)?,
    })
}

pub(crate) fn conv_row(r: &rusqlite::Row) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        title: r.get(1)?,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
        pin: r.get(4)?,
        private: r.get(5)?,
        role: r.get(6)?,
    })
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
