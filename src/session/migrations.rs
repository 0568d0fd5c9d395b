//! Schema versions, applied in order inside one transaction each; `PRAGMA user_version` records
//! how far a database has come. Append new steps; never edit a shipped one.

use rusqlite::{Connection, TransactionBehavior};

const STEPS: &[&str] = &[
    // 1: conversations, turns, and an FTS5 index kept in step by triggers.
    "CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        pin TEXT,
        private INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        target TEXT, provider TEXT, model TEXT, reasons TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        ttft_ms INTEGER NOT NULL DEFAULT 0,
        tokens_per_s REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        saved_usd REAL NOT NULL DEFAULT 0,
        interrupted INTEGER NOT NULL DEFAULT 0,
        complete INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE INDEX turns_by_conversation ON turns(conversation_id, id);
     CREATE INDEX turns_by_time ON turns(created_at);
     CREATE VIRTUAL TABLE turns_fts USING fts5(content, content='turns', content_rowid='id');
     CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts(rowid, content) VALUES (new.id, new.content);
     END;
     CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, content) VALUES ('delete', old.id, old.content);
     END;
     CREATE TRIGGER turns_au AFTER UPDATE OF content ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO turns_fts(rowid, content) VALUES (new.id, new.content);
     END;",
    // 2: the spend ledger, apart from the history: no foreign key, so deleting a conversation
    // never refunds what its answers cost. Earlier answers are carried over from `turns`.
    "CREATE TABLE spend (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        conversation_id INTEGER,
        turn_id INTEGER,
        tier TEXT NOT NULL,
        provider TEXT, model TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        ttft_ms INTEGER NOT NULL DEFAULT 0,
        tokens_per_s REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        saved_usd REAL NOT NULL DEFAULT 0,
        estimated INTEGER NOT NULL DEFAULT 1
     );
     CREATE INDEX spend_by_time ON spend(at);
     INSERT INTO spend (at, conversation_id, turn_id, tier, provider, model, prompt_tokens,
        completion_tokens, ttft_ms, tokens_per_s, cost_usd, saved_usd, estimated)
     SELECT created_at, conversation_id, id, target, provider, model, prompt_tokens,
        completion_tokens, ttft_ms, tokens_per_s, cost_usd, saved_usd, complete = 0
     FROM turns WHERE role = 'assistant' AND target IS NOT NULL;",
    // 3: a prompt's attachments (JSON: path, summary line, the text the model was sent) and a
    // conversation's role, which comes back with it. NULL in older rows: none.
    "ALTER TABLE turns ADD COLUMN attachments TEXT;
     ALTER TABLE conversations ADD COLUMN role TEXT;",
    // 4: the search index forgets a deleted turn's words at once (FTS5 secure-delete, SQLite
    // 3.42+) instead of keeping them in old segments behind a delete marker until a merge; with
    // PRAGMA secure_delete the freed space is zeroed, so `history rm` leaves no words in the file.
    // One merge drops what earlier deletes left in the index.
    "INSERT INTO turns_fts(turns_fts, rank) VALUES ('secure-delete', 1);
     INSERT INTO turns_fts(turns_fts) VALUES ('optimize');",
];

pub fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        // Re-read inside an IMMEDIATE transaction so two processes opening a new file at once
        // do not both run the same step.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: usize =
            tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
        let Some(step) = STEPS.get(version) else {
            return tx.commit();
        };
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}

#[cfg(test)]
pub fn latest() -> usize {
    STEPS.len()
}
