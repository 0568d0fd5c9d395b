//! What a conversation carries beyond its text: a prompt's attachments (kept with the turn, so a
//! follow-up still sends them and `history show` lists them) and the conversation's role. Stored
//! as columns added by migration 3; rows from older databases read as none.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{ConversationId, SessionError, Store, TurnId};

/// One attachment as it was sent with a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    /// As the user gave it; `-` for stdin.
    pub path: String,
    /// The transcript's compact line: path, size, tokens.
    pub summary: String,
    /// The text the model was sent for it (each file fenced under its path).
    pub text: String,
}

/// The column's JSON; a row written by a newer tandem that this one cannot read shows none
/// rather than failing the whole conversation.
pub(super) fn parse(column: Option<String>) -> Vec<StoredAttachment> {
    column
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

impl Store {
    /// Saves a prompt, then its attachments on it (a crash between the two leaves the prompt
    /// without them, never attachments without a prompt).
    pub fn add_prompt(
        &mut self,
        conv: ConversationId,
        content: &str,
        attachments: &[StoredAttachment],
    ) -> Result<TurnId, SessionError> {
        let id = self.add_turn(
            conv,
            crate::chat::Role::User,
            content,
            &super::TurnMeta::default(),
            false,
        )?;
        if !attachments.is_empty() {
            let json = serde_json::to_string(attachments).unwrap_or_else(|_| "[]".into());
            self.write(|tx| {
                tx.execute(
                    "UPDATE turns SET attachments = ?2 WHERE id = ?1",
                    params![id, json],
                )
            })?;
        }
        Ok(id)
    }

    /// Sets (or clears) the role a conversation runs with.
    pub fn set_role(&mut self, id: ConversationId, role: Option<&str>) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE conversations SET role = ?2 WHERE id = ?1",
                params![id, role],
            )
        })?;
        Ok(())
    }
}
