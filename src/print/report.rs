//! What one-shot mode tells the user after the answer: the `--json` object on stdout, the
//! route badge on stderr, and pull progress while the local model downloads.

use std::io::Write;

use serde_json::json;

use super::{Outcome, PrintOptions};
use crate::router::{Escalation, RouteDecision, Target};
use crate::session;
use crate::tiers::Tiers;

pub(super) fn report(
    opts: &PrintOptions,
    status: bool,
    d: &RouteDecision,
    o: &Outcome,
    escalated: Option<(&Escalation, &str)>,
    conv: session::ConversationId,
    tiers: &Tiers,
) {
    if opts.json {
        let v = json!({
            "answer": o.text,
            "route": {
                "target": d.target.as_str(),
                "provider": if o.provider.is_empty() { None } else { Some(&o.provider) },
                "model": if o.model.is_empty() { None } else { Some(&o.model) },
                "reasons": d.reasons,
            },
            "usage": {
                "prompt_tokens": o.usage.prompt_tokens,
                "completion_tokens": o.usage.completion_tokens,
                "ttft_ms": o.usage.ttft_ms,
                "tokens_per_s": o.usage.tokens_per_s,
            },
            "cost_usd": o.cost_usd,
            "saved_usd": o.saved_usd,
            "conversation_id": conv,
            "interrupted": o.interrupted,
        });
        let mut v = v;
        if let Some((esc, local_answer)) = escalated {
            v["escalation"] = json!({ "reason": esc.reason, "message": esc.message, "local_answer": local_answer });
        }
        let _ = writeln!(std::io::stdout(), "{v}");
    }
    if status {
        let badge = match d.target {
            Target::Local => format!(
                "local · {} · {:.1}s · {:.0} tok/s",
                tiers.local_name,
                o.usage.ttft_ms as f64 / 1000.0,
                o.usage.tokens_per_s
            ),
            Target::Cloud => format!("cloud · {} · ${:.4}", o.model, o.cost_usd),
        };
        eprintln!(
            "{badge}{}",
            if o.interrupted { " · interrupted" } else { "" }
        );
    }
}

pub(super) fn title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("untitled")
        .trim();
    let mut t: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        t.push('…');
    }
    t
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
            P::SourceFailed { source, reason } => eprintln!("\r{} failed: {reason}", source.flag()),
            _ => {}
        }
    }
}
