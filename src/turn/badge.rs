//! How an answer is labelled wherever it is shown: the badge (tier, model, time to first
//! token, speed, cost) and the seam above an answer given again. The words live here once;
//! each front-end only decorates them.

use crate::router::Target;
use crate::sanitize::one_line;
use crate::session::Turn;

/// How an answer was produced: `local · smollm2-135m · 0.4s · 43 tok/s · $0.0000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub tier: Target,
    pub model: String,
    pub ttft_ms: u64,
    pub tokens_per_s: f64,
    pub cost_usd: f64,
    /// For a local answer: what the configured cloud model would have charged.
    pub saved_usd: f64,
}

impl Badge {
    /// A badge before anything is measured: the tier and the model expected to answer.
    pub fn routed(tier: Target, model: impl Into<String>) -> Badge {
        Badge {
            tier,
            model: model.into(),
            ttft_ms: 0,
            tokens_per_s: 0.0,
            cost_usd: 0.0,
            saved_usd: 0.0,
        }
    }

    /// The badge of a stored answer; `None` for a prompt or an answer never routed.
    pub fn of_turn(t: &Turn) -> Option<Badge> {
        let tier = match t.meta.target.as_deref()? {
            "local" => Target::Local,
            "cloud" => Target::Cloud,
            _ => return None,
        };
        let u = t.meta.usage.unwrap_or_default();
        Some(Badge {
            tier,
            model: t.meta.model.clone().unwrap_or_default(),
            ttft_ms: u.ttft_ms,
            tokens_per_s: u.tokens_per_s,
            cost_usd: t.meta.cost_usd,
            saved_usd: t.meta.saved_usd,
        })
    }

    /// The finished answer's label. Every tier shows the same four measures, so the two can be
    /// compared at a glance. The model name can come from a provider, so it is sanitized.
    pub fn label(&self) -> String {
        format!(
            "{} · {:.1}s · {:.0} tok/s · ${:.4}",
            self.streaming_label(),
            self.ttft_ms as f64 / 1000.0,
            self.tokens_per_s,
            self.cost_usd
        )
    }

    /// While an answer streams, timing and cost are not known yet.
    pub fn streaming_label(&self) -> String {
        match self.model.as_str() {
            "" => self.tier.as_str().to_string(),
            m => format!("{} · {}", self.tier.as_str(), one_line(m)),
        }
    }
}

/// Why the same prompt was answered again.
#[derive(Debug, Clone, PartialEq)]
pub enum Seam {
    /// `/retry` on the other tier.
    Retry(Target),
    /// The judge found the local answer weak; the cloud answered again. Holds the judge's words.
    Escalated(String),
    /// Above the first turn still sent: the earlier ones were left out to fit the window.
    Cut(String),
}

impl Seam {
    /// The seam's words, without decoration.
    pub fn words(&self) -> String {
        match self {
            Seam::Retry(tier) => format!("answered again on {}", tier.as_str()),
            Seam::Escalated(why) => format!("escalated to the cloud: {why}"),
            Seam::Cut(words) => words.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tiers_show_time_speed_and_cost() {
        let mut b = Badge::routed(Target::Local, "smollm2-135m");
        (b.ttft_ms, b.tokens_per_s) = (400, 43.2);
        assert_eq!(
            b.label(),
            "local · smollm2-135m · 0.4s · 43 tok/s · $0.0000"
        );
        let mut c = Badge::routed(Target::Cloud, "gpt\x1b[31m");
        (c.ttft_ms, c.tokens_per_s, c.cost_usd) = (620, 80.0, 0.00042);
        assert_eq!(c.label(), "cloud · gpt␛[31m · 0.6s · 80 tok/s · $0.0004");
        assert_eq!(Badge::routed(Target::Cloud, "").streaming_label(), "cloud");
    }
}
