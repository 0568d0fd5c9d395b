//! The spend ledger: one row per answer, local or cloud, with its tokens, speed, cost and what
//! it saved. It lives beside the history but apart from it (no foreign key), so deleting a
//! conversation never refunds the month. A row is opened when an answer starts and kept up to
//! date while it streams, so an answer cut by `kill -9` is still counted, with estimated usage.
//! Also the calendar arithmetic (UTC days and months) that budgets and `tandem stats` share.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{ConversationId, SessionError, Store, TurnId, now};
use crate::chat::Usage;

pub type SpendId = i64;

/// One answer's entry in the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spend {
    pub conversation: Option<ConversationId>,
    pub turn: Option<TurnId>,
    /// "local" or "cloud", as in `TurnMeta::target`.
    pub tier: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Usage,
    pub cost_usd: f64,
    /// What the configured cloud model would have charged for a local answer.
    pub saved_usd: f64,
    /// True while the numbers are tandem's own estimate (streaming, cut off, or a provider
    /// that reported no usage).
    pub estimated: bool,
}

/// A ledger row with the time it was opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRow {
    pub at: i64,
    #[serde(flatten)]
    pub spend: Spend,
}

/// Sums over a span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub cost_usd: f64,
    pub saved_usd: f64,
}

impl Store {
    /// Opens a ledger row for an answer that is starting.
    pub fn add_spend(&mut self, s: &Spend) -> Result<SpendId, SessionError> {
        let t = now();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO spend (at, conversation_id, turn_id, tier, provider, model,
                   prompt_tokens, completion_tokens, ttft_ms, tokens_per_s, cost_usd, saved_usd, estimated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    t, s.conversation, s.turn, s.tier, s.provider, s.model,
                    s.usage.prompt_tokens as i64, s.usage.completion_tokens as i64,
                    s.usage.ttft_ms as i64, s.usage.tokens_per_s, s.cost_usd, s.saved_usd, s.estimated
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Replaces a row's numbers (its time stays: the spend belongs to when the answer began).
    pub fn update_spend(&mut self, id: SpendId, s: &Spend) -> Result<(), SessionError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE spend SET conversation_id = ?2, turn_id = ?3, tier = ?4, provider = ?5,
                   model = ?6, prompt_tokens = ?7, completion_tokens = ?8, ttft_ms = ?9,
                   tokens_per_s = ?10, cost_usd = ?11, saved_usd = ?12, estimated = ?13
                 WHERE id = ?1",
                params![
                    id,
                    s.conversation,
                    s.turn,
                    s.tier,
                    s.provider,
                    s.model,
                    s.usage.prompt_tokens as i64,
                    s.usage.completion_tokens as i64,
                    s.usage.ttft_ms as i64,
                    s.usage.tokens_per_s,
                    s.cost_usd,
                    s.saved_usd,
                    s.estimated
                ],
            )
        })?;
        Ok(())
    }

    /// Spent and saved since a Unix time.
    pub fn totals_since(&self, since: i64) -> Result<Totals, SessionError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0) FROM spend WHERE at >= ?1",
            [since],
            |r| {
                Ok(Totals {
                    cost_usd: r.get(0)?,
                    saved_usd: r.get(1)?,
                })
            },
        )?)
    }

    /// Cloud spend since a Unix time, for the budget rule.
    pub fn spent_since(&self, since: i64) -> Result<f64, SessionError> {
        Ok(self.totals_since(since)?.cost_usd)
    }

    /// Every row opened in `[since, until)`, oldest first.
    pub fn spend_rows(&self, since: i64, until: i64) -> Result<Vec<SpendRow>, SessionError> {
        let mut st = self.conn.prepare(
            "SELECT at, conversation_id, turn_id, tier, provider, model, prompt_tokens,
                    completion_tokens, ttft_ms, tokens_per_s, cost_usd, saved_usd, estimated
             FROM spend WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
        )?;
        let rows = st.query_map([since, until], |r| {
            Ok(SpendRow {
                at: r.get(0)?,
                spend: Spend {
                    conversation: r.get(1)?,
                    turn: r.get(2)?,
                    tier: r.get(3)?,
                    provider: r.get(4)?,
                    model: r.get(5)?,
                    usage: super::usage_at(r, 6)?,
                    cost_usd: r.get(10)?,
                    saved_usd: r.get(11)?,
                    estimated: r.get(12)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ledger row of a turn, if it has one.
    pub fn spend_of_turn(&self, turn: TurnId) -> Result<Option<SpendRow>, SessionError> {
        let at: Option<i64> = self
            .conn
            .query_row("SELECT at FROM spend WHERE turn_id = ?1", [turn], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match at {
            Some(at) => self
                .spend_rows(at, at + 1)?
                .into_iter()
                .find(|r| r.spend.turn == Some(turn)),
            None => None,
        })
    }
}

pub const DAY: i64 = 86_400;

/// The Unix time at which the UTC day of `t` began.
pub fn day_start(t: i64) -> i64 {
    t - t.rem_euclid(DAY)
}

/// The Unix time at which the UTC month of `t` began (civil-from-days, Howard Hinnant).
pub fn month_start(t: i64) -> i64 {
    let days = t.div_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5; // 0-based
    (days - day_of_month) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Role;
    use crate::session::TurnMeta;

    #[test]
    fn month_start_is_the_first_of_the_month_utc() {
        // 2026-11-22 12:00:00 UTC -> 2026-11-01 00:00:00 UTC
        assert_eq!(month_start(1_795_348_800), 1_793_491_200);
        assert_eq!(month_start(1_793_491_200), 1_793_491_200);
        assert_eq!(day_start(1_795_348_800), 1_795_348_800 - 12 * 3600);
    }

    #[test]
    fn deleting_a_conversation_keeps_its_spend() {
        let mut s = Store::open_in_memory().unwrap();
        let c = s.create_conversation("t", false, None).unwrap();
        let t = s.begin_answer(c, &TurnMeta::default()).unwrap();
        let mut spend = Spend {
            conversation: Some(c),
            turn: Some(t),
            tier: "cloud".into(),
            cost_usd: 0.25,
            estimated: true,
            ..Default::default()
        };
        let id = s.add_spend(&spend).unwrap();
        spend.cost_usd = 0.5;
        spend.estimated = false;
        s.update_spend(id, &spend).unwrap();
        s.add_turn(c, Role::User, "x", &TurnMeta::default(), false)
            .unwrap();
        assert_eq!(s.spend_of_turn(t).unwrap().unwrap().spend, spend);
        s.delete(c).unwrap();
        assert!((s.spent_since(0).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(s.spend_rows(0, i64::MAX).unwrap().len(), 1);
    }
}
