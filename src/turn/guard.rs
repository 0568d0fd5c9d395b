//! The two promises checked before anything reaches the cloud, on every path (auto, a pinned
//! or forced route, `/retry`, escalation): a private conversation never leaves the machine, and
//! the spend caps hold. Also what was spent, read from the ledger, for the router's budget rule
//! and the status bar.

use std::fmt;

use crate::chat::Message;
use crate::config::Config;
use crate::router::secret_scan::{self, SecretKind};
use crate::router::{BudgetState, Target};
use crate::session::{self, Store};

/// Whether a conversation may leave this machine, and why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Privacy {
    Open,
    /// Pinned private by the user (`--private`, `/private`); the pin is saved.
    Pinned,
    /// Something that would be sent looks like a secret. `earlier` when it sits in an earlier
    /// turn rather than the prompt itself.
    Secret {
        kinds: Vec<SecretKind>,
        earlier: bool,
    },
}

impl Privacy {
    pub fn is_private(&self) -> bool {
        *self != Privacy::Open
    }

    /// Judges everything that would be sent: the earlier turns (each message on its own, so
    /// the scan never joins two turns into a false match) and the prompt. A secret outranks the
    /// pin in what is reported, since lifting the pin would not free it.
    pub fn of(pinned: bool, prompt: &str, history: &[Message]) -> Privacy {
        let mut kinds = Vec::new();
        for m in history {
            kinds.extend(secret_scan::detect(&m.content));
        }
        let earlier = !kinds.is_empty();
        kinds.extend(secret_scan::detect(prompt));
        kinds.sort();
        kinds.dedup();
        match (kinds.is_empty(), pinned) {
            (false, _) => Privacy::Secret { kinds, earlier },
            (true, true) => Privacy::Pinned,
            (true, false) => Privacy::Open,
        }
    }

    /// Why the conversation stays here, as a routing reason reads.
    pub fn reason(&self) -> String {
        match self {
            Privacy::Open => "the conversation may leave this machine".into(),
            Privacy::Pinned => "this conversation is pinned private".into(),
            Privacy::Secret { kinds, earlier } => {
                let what: Vec<_> = kinds.iter().map(|k| k.describe()).collect();
                let place = if *earlier {
                    "an earlier turn of this conversation"
                } else {
                    "the prompt"
                };
                format!("{place} appears to contain {}", what.join(" and "))
            }
        }
    }
}

/// Which cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Daily,
    Monthly,
}

/// Why a turn was not sent, and how to lift it: one line, shown as is.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Private(Privacy),
    Budget {
        cap: Cap,
        cap_usd: f64,
        spent_usd: f64,
    },
    /// The turn alone overflows the local window and a rule keeps it here (the router's
    /// reason, which names both sizes).
    TooLong(String),
    /// An attachment could not be read (the chat screen's `@path`; one-shot mode stops earlier).
    Attachment(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LOCALLY: &str = "route it locally (--route local or auto; /local or /auto)";
        match self {
            Refusal::Private(p @ Privacy::Pinned) => write!(
                f,
                "not sent to the cloud: {}; {LOCALLY}, or unpin it with /private in the chat screen",
                p.reason()
            ),
            Refusal::Private(p) => write!(
                f,
                "not sent to the cloud: {}, which must not leave this machine; {LOCALLY}, or start a new conversation without it",
                p.reason()
            ),
            Refusal::TooLong(why) => write!(
                f,
                "not sent: {why}; attach less or shorten the prompt, or pick a model with a larger window (--model, /model)"
            ),
            Refusal::Attachment(why) => write!(f, "not sent: {why}"),
            Refusal::Budget {
                cap,
                cap_usd,
                spent_usd,
            } => {
                let (which, when, key) = match cap {
                    Cap::Daily => ("daily", "today", "budget.daily_usd"),
                    Cap::Monthly => ("monthly", "this month", "budget.monthly_usd"),
                };
                write!(
                    f,
                    "not sent to the cloud: the {which} budget is spent (${spent_usd:.4} of ${cap_usd:.2} {when}); raise {key} in the config (0 = no cap), or {LOCALLY}"
                )
            }
        }
    }
}

/// What has been spent and saved today and this month (UTC), from the ledger, with the caps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpendNow {
    pub today_usd: f64,
    pub month_usd: f64,
    pub saved_month_usd: f64,
    pub daily_cap_usd: f64,
    pub monthly_cap_usd: f64,
}

impl SpendNow {
    pub fn read(store: &Store, cfg: &Config) -> SpendNow {
        let now = session::now();
        let today = store
            .totals_since(session::day_start(now))
            .unwrap_or_default();
        let month = store
            .totals_since(session::month_start(now))
            .unwrap_or_default();
        SpendNow {
            today_usd: today.cost_usd,
            month_usd: month.cost_usd,
            saved_month_usd: month.saved_usd,
            daily_cap_usd: cfg.budget.daily_usd,
            monthly_cap_usd: cfg.budget.monthly_usd,
        }
    }

    pub fn budget(&self) -> BudgetState {
        BudgetState {
            daily_spent_usd: self.today_usd,
            daily_cap_usd: self.daily_cap_usd,
            monthly_spent_usd: self.month_usd,
            monthly_cap_usd: self.monthly_cap_usd,
        }
    }

    /// The refusal a cloud answer would meet now, if a cap is reached.
    pub fn refusal(&self) -> Option<Refusal> {
        let b = self.budget();
        let (cap, cap_usd, spent_usd) = match b.cap_reached()? {
            "daily" => (Cap::Daily, b.daily_cap_usd, b.daily_spent_usd),
            _ => (Cap::Monthly, b.monthly_cap_usd, b.monthly_spent_usd),
        };
        Some(Refusal::Budget {
            cap,
            cap_usd,
            spent_usd,
        })
    }

    /// `today $0.02/$1.00 · month $0.40/$10.00 · saved $0.0012`, short enough for a status
    /// bar (a cap of 0 is not shown).
    pub fn label(&self) -> String {
        let part = |name: &str, spent: f64, cap: f64| {
            if cap > 0.0 {
                format!("{name} {}/${cap:.2}", usd(spent))
            } else {
                format!("{name} {}", usd(spent))
            }
        };
        format!(
            "{} · {} · saved {}",
            part("today", self.today_usd, self.daily_cap_usd),
            part("month", self.month_usd, self.monthly_cap_usd),
            usd(self.saved_month_usd)
        )
    }
}

/// Dollars, as short as they can be without hiding a small amount: `$0`, `$0.0004`, `$1.25`.
fn usd(x: f64) -> String {
    if x == 0.0 {
        "$0".into()
    } else if x < 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.2}")
    }
}

/// Checks a cloud answer against both promises. `None` lets it go.
pub fn cloud_refusal(privacy: &Privacy, spend: &SpendNow) -> Option<Refusal> {
    if privacy.is_private() {
        return Some(Refusal::Private(privacy.clone()));
    }
    spend.refusal()
}

/// Whether a route request asks for the cloud whatever the router would say.
pub fn wants_cloud(route: &super::RouteRequest) -> bool {
    matches!(
        route,
        super::RouteRequest::Mode(crate::config::RouteMode::Cloud)
            | super::RouteRequest::Force(Target::Cloud)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_an_earlier_turn_makes_the_conversation_private() {
        let history = vec![
            Message::user("my key is sk-proj-abcdefghijklmnopqrstuvwx"),
            Message::assistant("noted"),
        ];
        let p = Privacy::of(false, "now write a long essay", &history);
        assert_eq!(
            p,
            Privacy::Secret {
                kinds: vec![SecretKind::ApiKey],
                earlier: true
            }
        );
        assert!(p.reason().starts_with("an earlier turn"));
        assert_eq!(Privacy::of(true, "hi", &[]), Privacy::Pinned);
        assert_eq!(Privacy::of(false, "hi", &history[1..]), Privacy::Open);
    }

    #[test]
    fn refusals_name_the_way_out() {
        let spend = SpendNow {
            today_usd: 1.02,
            daily_cap_usd: 1.0,
            ..Default::default()
        };
        let r = cloud_refusal(&Privacy::Open, &spend).unwrap().to_string();
        assert!(
            r.contains("$1.0200 of $1.00 today") && r.contains("budget.daily_usd"),
            "{r}"
        );
        let r = cloud_refusal(&Privacy::Pinned, &SpendNow::default()).unwrap();
        assert!(r.to_string().contains("/private"), "{r}");
        assert_eq!(cloud_refusal(&Privacy::Open, &SpendNow::default()), None);
        let label = SpendNow {
            today_usd: 0.0004,
            month_usd: 1.5,
            monthly_cap_usd: 10.0,
            ..Default::default()
        }
        .label();
        assert_eq!(label, "today $0.0004 · month $1.50/$10.00 · saved $0");
    }
}
