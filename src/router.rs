//! Policy engine: pure routing of one prompt to the local or cloud tier, with reasons a user can
//! read. No IO, no clock, no network: callers gather the state into a `RouteInput`.

pub mod escalate;
pub mod features;
mod lexicon;
pub mod policy;
mod scan;
pub mod secret_scan;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use escalate::{Escalation, EscalationReason, should_escalate};
pub use features::{Feature, Features, features};
pub use policy::{Policy, PolicyError};
pub use secret_scan::SecretKind;

use crate::config::{Config, RouteMode, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Local,
    Cloud,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Cloud => "cloud",
        }
    }
}

/// Where the local model stands right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalState {
    Ready,
    Loading,
    Pulling,
    Missing,
    Failed,
}

/// Spend so far against the caps in `[budget]`; a cap of 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BudgetState {
    pub daily_spent_usd: f64,
    pub daily_cap_usd: f64,
    pub monthly_spent_usd: f64,
    pub monthly_cap_usd: f64,
}

impl BudgetState {
    /// "daily" or "monthly" when that cap has been reached.
    pub fn cap_reached(&self) -> Option<&'static str> {
        let hit = |spent: f64, cap: f64| cap > 0.0 && spent >= cap;
        if hit(self.daily_spent_usd, self.daily_cap_usd) {
            Some("daily")
        } else if hit(self.monthly_spent_usd, self.monthly_cap_usd) {
            Some("monthly")
        } else {
            None
        }
    }
}

/// US dollars per million tokens, as in `[providers]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CloudPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl CloudPrice {
    /// The cheapest cloud-tier model in config (by input plus output price), if any.
    pub fn cheapest(cfg: &Config) -> Option<CloudPrice> {
        cfg.providers
            .iter()
            .filter(|p| p.tier == Tier::Cloud)
            .flat_map(|p| &p.models)
            .map(|m| CloudPrice {
                input_per_mtok: m.input_price,
                output_per_mtok: m.output_price,
            })
            .min_by(|a, b| {
                (a.input_per_mtok + a.output_per_mtok)
                    .total_cmp(&(b.input_per_mtok + b.output_per_mtok))
            })
    }

    pub fn cost_usd(&self, input_tokens: usize, output_tokens: usize) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

/// Everything `route` needs beyond the policy. Callers fill it from live state.
#[derive(Debug, Clone)]
pub struct RouteInput<'a> {
    pub features: &'a Features,
    /// The user's pin: `--route`, `/local`, `/cloud` or the conversation's own.
    pub mode: RouteMode,
    /// An explicit force with a cloud pin: the only thing that sends a private prompt out.
    pub force: bool,
    pub private: bool,
    /// False when no cloud provider is usable (none configured, no key, every circuit open).
    pub cloud_online: bool,
    pub local: LocalState,
    pub local_context_window: usize,
    /// Tokens the request would carry: the earlier turns plus this prompt.
    pub conversation_tokens: usize,
    /// The window this turn needs on its own (`context::need`): the system prompt, this turn's
    /// attachments and prompt, and room for the local answer; the earlier turns can be dropped.
    pub turn_tokens: usize,
    pub budget: BudgetState,
    /// The thread has already gone to the cloud.
    pub sticky_cloud: bool,
    pub cloud_price: Option<CloudPrice>,
}

/// Why a decision came out as it did; serialized as its snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    Pinned,
    Forced,
    Private,
    SecretsDetected,
    CloudOffline,
    LocalUnavailable,
    ContextTooLong,
    BudgetCapReached,
    ScoreAboveThreshold,
    ScoreBelowThreshold,
    StickyCloud,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            message: message.into(),
        }
    }
}

/// The outcome. `reasons[0]` is the rule that decided; any others are notices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDecision {
    pub target: Target,
    /// 0..1; higher means the prompt needs the cloud more.
    pub score: f64,
    pub threshold: f64,
    pub reasons: Vec<Reason>,
    /// Each feature's share of the weighted sum behind the score.
    pub contributions: Vec<(Feature, f64)>,
    pub est_cost_usd: f64,
    /// What the cloud would have cost when the prompt stays local.
    pub est_saved_usd: f64,
}

impl RouteDecision {
    /// A local answer to a close call is worth watching for escalation.
    pub fn near_threshold(&self) -> bool {
        (self.score - self.threshold).abs() <= policy::ESCALATION_MARGIN
    }
}

/// Tokens of the earlier turns plus the prompt, with the same estimate the backends use.
pub fn conversation_tokens(prompt: &str, conversation: &[crate::chat::Message]) -> usize {
    conversation
        .iter()
        .map(|m| crate::chat::estimate_tokens(&m.content))
        .sum::<usize>()
        + crate::chat::estimate_tokens(prompt)
}

/// A guess at the answer's length, for the cost estimate only.
fn expected_output_tokens(f: &Features) -> usize {
    let long = f.get(Feature::OutputLength);
    let brief = f.get(Feature::Brevity);
    (400.0 + 1200.0 * long - 250.0 * brief).max(50.0) as usize
}

/// Applies the rules in order: pin, privacy, availability, capability, budget, score, stickiness.
pub fn route(policy: &Policy, input: &RouteInput) -> RouteDecision {
    use ReasonCode as C;
    let f = input.features;
    let (score, contributions) = policy.score(f);
    let threshold = policy.threshold();
    let private = input.private || f.has_secrets();
    let privacy_reason = || {
        if input.private {
            Reason::new(
                C::Private,
                "this conversation is marked private, so it stays on this machine",
            )
        } else {
            let kinds: Vec<_> = f.secrets.iter().map(|k| k.describe()).collect();
            Reason::new(
                C::SecretsDetected,
                format!(
                    "the prompt appears to contain {}, so it stays on this machine",
                    kinds.join(" and ")
                ),
            )
        }
    };
    let local_down = input.local != LocalState::Ready;
    let local_down_reason = || {
        Reason::new(
            C::LocalUnavailable,
            format!("the local model is {}", local_state_words(input.local)),
        )
    };
    let offline_reason = || {
        Reason::new(
            C::CloudOffline,
            "no cloud provider is reachable (none configured, no key, or every circuit open)",
        )
    };

    let mut reasons = Vec::new();
    let target = match input.mode {
        RouteMode::Local => {
            reasons.push(Reason::new(C::Pinned, "pinned to local"));
            if local_down {
                reasons.push(local_down_reason());
            }
            Target::Local
        }
        RouteMode::Cloud if private && !input.force => {
            reasons.push(privacy_reason());
            reasons.push(Reason::new(
                C::Pinned,
                "pinned to cloud, but privacy wins unless forced",
            ));
            Target::Local
        }
        RouteMode::Cloud => {
            if private {
                reasons.push(Reason::new(
                    C::Forced,
                    "forced to the cloud despite the privacy rule",
                ));
            } else {
                reasons.push(Reason::new(C::Pinned, "pinned to cloud"));
            }
            if !input.cloud_online {
                reasons.push(offline_reason());
            }
            Target::Cloud
        }
        RouteMode::Auto if private => {
            reasons.push(privacy_reason());
            if local_down {
                reasons.push(local_down_reason());
            }
            Target::Local
        }
        RouteMode::Auto if !input.cloud_online => {
            reasons.push(offline_reason());
            if local_down {
                reasons.push(local_down_reason());
            }
            Target::Local
        }
        RouteMode::Auto if local_down => {
            reasons.push(local_down_reason());
            Target::Cloud
        }
        RouteMode::Auto if input.turn_tokens > input.local_context_window => {
            reasons.push(turn_too_long(input, ""));
            Target::Cloud
        }
        RouteMode::Auto if input.conversation_tokens > input.local_context_window => {
            reasons.push(Reason::new(
                C::ContextTooLong,
                format!(
                    "the conversation is about {} tokens, more than the local window of {}",
                    input.conversation_tokens, input.local_context_window
                ),
            ));
            Target::Cloud
        }
        RouteMode::Auto => match input.budget.cap_reached() {
            Some(which) => {
                reasons.push(Reason::new(
                    C::BudgetCapReached,
                    format!("the {which} cloud budget is used up, so prompts stay local"),
                ));
                Target::Local
            }
            None if score >= threshold => Target::Cloud,
            None if input.sticky_cloud => {
                reasons.push(Reason::new(
                    C::StickyCloud,
                    "this thread already went to the cloud, so follow-ups stay there",
                ));
                Target::Cloud
            }
            None => Target::Local,
        },
    };
    // A rule that keeps the turn here does not make it fit: say so, and the caller refuses it.
    if target == Target::Local && input.turn_tokens > input.local_context_window {
        reasons.push(turn_too_long(input, ", so it cannot be answered here"));
    }
    // The score is always reported, so `/why` can say what auto mode would have done.
    let (code, cmp) = if score >= threshold {
        (C::ScoreAboveThreshold, ">=")
    } else {
        (C::ScoreBelowThreshold, "<")
    };
    let mut top: Vec<_> = contributions
        .iter()
        .filter(|(_, c)| c.abs() >= 0.05)
        .collect();
    top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let drivers: Vec<String> = top
        .iter()
        .take(3)
        .map(|(f, c)| format!("{f} {c:+.2}"))
        .collect();
    let drivers = if drivers.is_empty() {
        String::new()
    } else {
        format!(" (mostly {})", drivers.join(", "))
    };
    let score_reason = Reason::new(
        code,
        format!("complexity score {score:.2} {cmp} threshold {threshold:.2}{drivers}"),
    );
    if reasons.is_empty() {
        reasons.insert(0, score_reason);
    } else {
        reasons.push(score_reason);
    }

    let cloud_cost = input.cloud_price.map_or(0.0, |p| {
        p.cost_usd(input.conversation_tokens, expected_output_tokens(f))
    });
    let (est_cost_usd, est_saved_usd) = match target {
        Target::Cloud => (cloud_cost, 0.0),
        Target::Local => (0.0, cloud_cost),
    };
    RouteDecision {
        target,
        score,
        threshold,
        reasons,
        contributions,
        est_cost_usd,
        est_saved_usd,
    }
}

fn turn_too_long(input: &RouteInput, then: &str) -> Reason {
    Reason::new(
        ReasonCode::ContextTooLong,
        format!(
            "this turn alone needs about {} tokens with its answer, more than the local window of {}{then}",
            input.turn_tokens, input.local_context_window
        ),
    )
}

fn local_state_words(s: LocalState) -> &'static str {
    match s {
        LocalState::Ready => "ready",
        LocalState::Loading => "still loading",
        LocalState::Pulling => "still downloading",
        LocalState::Missing => "not installed",
        LocalState::Failed => "failed to load",
    }
}
