//! The history's reads: a conversation's turns, the list for the sidebar and `history list`,
//! full-text search.

use rusqlite::params;

use super::{
    ConversationId, SearchHit, SessionError, Store, Summary, Turn, TurnMeta, attachments, conv_row,
    usage_at,
};
use crate::chat::Role;

impl Store {
    pub fn turns(&self, conv: ConversationId) -> Result<Vec<Turn>, SessionError> {
        let mut st = self.conn.prepare(
            "SELECT id, role, content, target, provider, model, reasons, prompt_tokens, completion_tokens,
                    ttft_ms, tokens_per_s, cost_usd, saved_usd, interrupted, complete, created_at,
                    attachments
             FROM turns WHERE conversation_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([conv], |r| {
            let role = match r.get::<_, String>(1)?.as_str() {
                "user" => Role::User,
                "system" => Role::System,
                _ => Role::Assistant,
            };
            let usage = usage_at(r, 7)?;
            Ok(Turn {
                id: r.get(0)?,
                role,
                content: r.get(2)?,
                meta: TurnMeta {
                    target: r.get(3)?,
                    provider: r.get(4)?,
                    model: r.get(5)?,
                    reasons: r.get(6)?,
                    usage: (role == Role::Assistant).then_some(usage),
                    cost_usd: r.get(11)?,
                    saved_usd: r.get(12)?,
                },
                interrupted: r.get(13)?,
                complete: r.get(14)?,
                created_at: r.get(15)?,
                attachments: attachments::parse(r.get(16)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn list(&self, limit: usize) -> Result<Vec<Summary>, SessionError> {
        let sql = format!(
            "SELECT c.id, c.title, c.created_at, c.updated_at, c.pin, c.private, c.role,
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id),
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id AND t.target = 'local'),
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id AND t.target = 'cloud')
             FROM conversations c ORDER BY c.updated_at DESC, c.id DESC LIMIT {limit}"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], |r| {
            Ok(Summary {
                conversation: conv_row(r)?,
                turns: r.get::<_, i64>(7)? as usize,
                local_answers: r.get::<_, i64>(8)? as usize,
                cloud_answers: r.get::<_, i64>(9)? as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Full-text search over every turn (FTS5); the query is matched as plain words.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<SearchHit>, SessionError> {
        let query: String = text
            .split_whitespace()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ");
        if query.is_empty() {
            return Ok(vec![]);
        }
        let mut st = self.conn.prepare(
            "SELECT t.conversation_id, c.title, t.id, snippet(turns_fts, 0, '[', ']', '…', 12)
             FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid JOIN conversations c ON c.id = t.conversation_id
             WHERE turns_fts MATCH ?1 ORDER BY rank LIMIT ?2",
        )?;
        let rows = st.query_map(params![query, limit as i64], |r| {
            Ok(SearchHit {
                conversation_id: r.get(0)?,
                title: r.get(1)?,
                turn_id: r.get(2)?,
                snippet: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
