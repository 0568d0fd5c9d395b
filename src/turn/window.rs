//! Which window a request must fit and how much of it stays free for the answer, per tier:
//! the local engine's (from its GGUF header, or the local server's `context_window`) with
//! `local.max_tokens` kept free, or the cloud model's `context_window` with the provider's
//! `max_tokens` kept free. The cut itself is `crate::context::fit`.

use crate::chat::Message;
use crate::config::Config;
use crate::context::{self, Fitted};
use crate::router::Target;
use crate::tiers::Tiers;

use super::Trim;

/// A cloud answer never keeps more than this share of its window to itself, so a provider's
/// large `max_tokens` on a small window still leaves room for the conversation; the cloud
/// tier lowers `max_tokens` to what the prompt leaves anyway.
const CLOUD_RESERVE_SHARE: usize = 2;

/// The window of the model that answers on `tier`, and the room its answer keeps.
pub(super) fn of(
    cfg: &Config,
    tiers: &Tiers,
    tier: Target,
    provider: &str,
    model: &str,
    max_tokens: Option<usize>,
) -> (usize, usize) {
    match tier {
        Target::Local => (
            tiers.local_context(),
            max_tokens.unwrap_or(cfg.local.max_tokens),
        ),
        Target::Cloud => {
            let p = cfg.provider(provider);
            let window = p
                .and_then(|p| p.models.iter().find(|m| m.name == model))
                .map_or(crate::config::DEFAULT_CONTEXT_WINDOW, |m| m.context_window);
            let asked = max_tokens.or(p.map(|p| p.max_tokens)).unwrap_or(window);
            (window, asked.min(window / CLOUD_RESERVE_SHARE))
        }
    }
}

/// Fits `messages` (the last one is the current prompt with its attachments) and says where
/// it cut, when it did.
pub(super) fn fit(
    messages: &[Message],
    window: usize,
    reserve: usize,
    model: &str,
) -> (Fitted, Option<Trim>) {
    let f = context::fit(messages, window, reserve, 1);
    let trim = (f.dropped_turns > 0).then(|| Trim {
        dropped_turns: f.dropped_turns,
        tokens: f.tokens,
        window,
        reserve,
        model: model.to_string(),
    });
    (f, trim)
}
