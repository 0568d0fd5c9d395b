//! What one-shot mode tells the user after the answer: the `--json` object on stdout, the
//! answer's badge on stderr, and pull progress while the local model downloads.

use std::io::Write;

use serde_json::json;

use crate::router::{Escalation, RouteDecision};
use crate::session::ConversationId;
use crate::turn::Answer;

/// What the turn's events said, gathered for the end.
#[derive(Default)]
pub(super) struct Report {
    pub decision: Option<RouteDecision>,
    pub conversation: Option<ConversationId>,
    /// The provider of the latest answer ("local" for the local tier).
    pub provider: String,
    /// One answer, or two when the first escalated.
    pub answers: Vec<crate::turn::Answer>,
    pub escalation: Option<Escalation>,
    /// Where the last request was cut to its window, if it was.
    pub trim: Option<crate::turn::Trim>,
    /// Each attachment's compact line (path, size, tokens).
    pub attachments: Vec<String>,
}

impl Report {
    /// The JSON object (with `--json`) and the badge (on a terminal), for the last answer.
    pub fn print(&self, json: bool, status: bool) {
        let Some(last) = self.answers.last() else {
            return;
        };
        if json {
            let _ = writeln!(std::io::stdout(), "{}", self.json(last));
        }
        if status {
            let cut = if last.interrupted {
                " · interrupted"
            } else {
                ""
            };
            eprintln!("{}{cut}", last.badge.label());
        }
    }

    fn json(&self, a: &Answer) -> serde_json::Value {
        let reasons = self.decision.as_ref().map(|d| &d.reasons);
        let mut v = json!({
            "answer": a.text,
            "route": {
                "target": a.badge.tier.as_str(),
                "provider": Some(&self.provider).filter(|p| !p.is_empty()),
                "model": Some(&a.badge.model).filter(|m| !m.is_empty()),
                "reasons": reasons,
            },
            "usage": {
                "prompt_tokens": a.usage.prompt_tokens,
                "completion_tokens": a.usage.completion_tokens,
                "ttft_ms": a.usage.ttft_ms,
                "tokens_per_s": a.usage.tokens_per_s,
            },
            "cost_usd": a.badge.cost_usd,
            "saved_usd": a.badge.saved_usd,
            "conversation_id": self.conversation,
            "interrupted": a.interrupted,
        });
        if !self.attachments.is_empty() {
            v["attachments"] = json!(self.attachments);
        }
        if let Some(t) = &self.trim {
            v["context"] = json!({
                "dropped_turns": t.dropped_turns,
                "tokens": t.tokens,
                "window": t.window,
                "reserve": t.reserve,
            });
        }
        if let (Some(esc), [local, _]) = (&self.escalation, &self.answers[..]) {
            v["escalation"] = json!({
                "reason": esc.reason,
                "message": esc.message,
                "local_answer": local.text,
            });
        }
        v
    }
}

pub(super) fn pull_reporter(
    status: bool,
) -> impl Fn(&crate::models::PullEvent) + Send + Sync + 'static {
    move |ev| {
        if !status {
            return;
        }
        use crate::models::PullEvent as P;
        match ev {
            P::Downloading(p) | P::Extracting(p) => {
                let pct = p
                    .total
                    .map(|t| format!(" {:.0}%", p.done as f64 * 100.0 / t.max(1) as f64))
                    .unwrap_or_default();
                eprint!(
                    "\rfetching the local model:{pct} {:.1} MB ({:.1} MB/s)   ",
                    p.done as f64 / 1e6,
                    p.bytes_per_sec / 1e6
                );
            }
            P::Installed { .. } => eprintln!("\rlocal model installed{:30}", ""),
            P::SourceFailed { source, reason } => eprintln!(
                "\r{} failed: {}",
                source.flag(),
                crate::sanitize::one_line(reason)
            ),
            _ => {}
        }
    }
}
