//! The history's cross-conversation reads: the list for the sidebar and `history list`,
//! full-text search.

use rusqlite::params;

use super::{SearchHit, SessionError, Store, Summary, conv_row};

impl Store {
    pub fn list(&self, limit: usize) -> Result<Vec<Summary>, SessionError> {
        let sql = format!(
            "SELECT c.id, c.title, c.created_at, c.updated_at, c.pin, c.private,
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id),
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id AND t.target = 'local'),
                    (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id AND t.target = 'cloud')
             FROM conversations c ORDER BY c.updated_at DESC, c.id DESC LIMIT {limit}"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], |r| {
            Ok(Summary {
                conversation: conv_row(r)?,
                turns: r.get::<_, i64>(6)? as usize,
                local_answers: r.get::<_, i64>(7)? as usize,
                cloud_answers: r.get::<_, i64>(8)? as usize,
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
