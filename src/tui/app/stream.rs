//! The life of one answer in the app: routed, deltas, usage, errors, cancel, end; its badge,
//! cost and the effects that persist it; and the cloud's second answer when the judge escalates.
//! Pure, like the rest of `app`.

use crate::backend::{FinishReason, StreamEvent};
use crate::chat::Role;
use crate::router::{Escalation, RouteDecision, Target};
use crate::session::{ConversationId, TurnId, TurnMeta};
use crate::tui::msg::{Effect, ReqId};

use super::{App, Seam, commands};

/// How an answer was produced: `local · smollm2 · 0.4s · 33 tok/s` or `cloud · gpt-4o-mini · $0.0004`.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub target: Target,
    pub model: String,
    pub ttft_ms: u64,
    pub tokens_per_s: f64,
    pub cost_usd: f64,
}

impl Badge {
    pub fn label(&self) -> String {
        match self.target {
            Target::Local => format!(
                "local · {} · {:.1}s · {:.0} tok/s",
                self.model,
                self.ttft_ms as f64 / 1000.0,
                self.tokens_per_s
            ),
            Target::Cloud => format!("cloud · {} · ${:.4}", self.model, self.cost_usd),
        }
    }
}

/// Saves the partial answer about once a second, so a crash loses at most a second.
const SAVE_EVERY_MS: i64 = 1000;

pub(super) fn tick(app: &mut App, now: i64) -> Vec<Effect> {
    app.now_ms = now;
    app.spinner = app.spinner.wrapping_add(1);
    let Some(r) = &mut app.running else {
        return vec![];
    };
    let text = app.entries.last().map(|e| e.text.as_str()).unwrap_or("");
    match r.turn {
        Some(turn) if now - r.last_save_ms >= SAVE_EVERY_MS && text.len() != r.saved_len => {
            r.last_save_ms = now;
            r.saved_len = text.len();
            vec![Effect::SavePartial {
                turn,
                text: text.to_string(),
            }]
        }
        _ => vec![],
    }
}

fn current(app: &mut App, req: ReqId) -> bool {
    app.running.as_ref().is_some_and(|r| r.req == req)
}

pub(super) fn routed(
    app: &mut App,
    req: ReqId,
    conv: ConversationId,
    title: String,
    turn: Option<TurnId>,
    decision: RouteDecision,
    local_name: String,
) -> Vec<Effect> {
    if !current(app, req) {
        return vec![];
    }
    let new = app.current != Some(conv);
    app.current = Some(conv);
    app.title = title;
    app.local_name = local_name;
    if let Some(e) = app.entries.last_mut() {
        e.badge = Some(Badge {
            target: decision.target,
            // The chat's pick shows at once; `Started` then names the model that really answers.
            model: match decision.target {
                Target::Local => app.local_name.clone(),
                Target::Cloud => app
                    .cloud_model
                    .as_ref()
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default(),
            },
            ttft_ms: 0,
            tokens_per_s: 0.0,
            cost_usd: 0.0,
        });
    }
    app.last_decision = Some(decision.clone());
    if let Some(r) = &mut app.running {
        r.turn = turn;
        r.decision = Some(decision);
        r.last_save_ms = app.now_ms;
    }
    if new {
        vec![Effect::RefreshConversations]
    } else {
        vec![]
    }
}

pub(super) fn event(app: &mut App, req: ReqId, ev: StreamEvent) -> Vec<Effect> {
    if !current(app, req) {
        return vec![];
    }
    let dark = app.dark;
    let (Some(r), Some(e)) = (app.running.as_mut(), app.entries.last_mut()) else {
        return vec![];
    };
    match ev {
        StreamEvent::Started { provider, model } => {
            if let Some(b) = &mut e.badge
                && b.target == Target::Cloud
            {
                b.model = model.clone();
            }
            (r.provider, r.model) = (provider, model);
        }
        StreamEvent::Delta(d) => e.push_stream(&d, dark),
        StreamEvent::Usage(u) => r.usage = u,
        StreamEvent::Done(f) => r.finish = Some(f),
    }
    vec![]
}

pub(super) fn error(app: &mut App, req: ReqId, error: String) -> Vec<Effect> {
    if current(app, req) {
        if let Some(e) = app.entries.last_mut() {
            e.error = Some(error);
        }
        if let Some(r) = &mut app.running {
            r.finish = Some(FinishReason::Interrupted);
        }
    }
    vec![]
}

pub(super) fn cancel(app: &mut App) -> Vec<Effect> {
    if app.overlay.take().is_some() {
        return vec![];
    }
    match &mut app.running {
        Some(r) if !r.cancelled => {
            r.cancelled = true;
            app.notice = Some("stopping…".into());
            vec![Effect::Cancel]
        }
        _ => vec![],
    }
}

pub(super) fn ended(app: &mut App, req: ReqId) -> Vec<Effect> {
    if !current(app, req) {
        return vec![];
    }
    let Some(r) = app.running.take() else {
        return vec![];
    };
    let mut effects = vec![];
    let dark = app.dark;
    let Some(e) = app.entries.last_mut().filter(|e| e.role == Role::Assistant) else {
        return effects;
    };
    let finish = if r.cancelled {
        Some(FinishReason::Cancelled)
    } else {
        r.finish
    };
    // Only the model's own end (or its token cap) makes an answer whole.
    let whole = matches!(finish, Some(FinishReason::Stop | FinishReason::Length));
    // A failure before any text is an error, not an interrupted answer.
    let failed_empty = e.text.is_empty() && e.error.is_some();
    e.interrupted = !whole && !failed_empty;
    let mut usage = r.usage;
    if usage.completion_tokens == 0 {
        usage.completion_tokens = crate::chat::estimate_tokens(&e.text);
    }
    let target = r.decision.as_ref().map(|d| d.target);
    let (mut cost, mut saved) = (0.0, 0.0);
    match target {
        Some(Target::Cloud) => {
            cost = app
                .prices
                .cloud
                .iter()
                .find(|(p, m, ..)| *p == r.provider && *m == r.model)
                .map(|(_, _, i, o)| {
                    (usage.prompt_tokens as f64 * i + usage.completion_tokens as f64 * o) / 1e6
                })
                .unwrap_or(0.0)
        }
        Some(Target::Local) => {
            saved = app
                .prices
                .local_saving
                .map(|p| p.cost_usd(usage.prompt_tokens, usage.completion_tokens))
                .unwrap_or(0.0)
        }
        None => {}
    }
    app.spent_usd += cost;
    app.saved_usd += saved;
    if let Some(b) = &mut e.badge {
        b.ttft_ms = usage.ttft_ms;
        b.tokens_per_s = usage.tokens_per_s;
        b.cost_usd = cost;
        if !r.model.is_empty() && b.target == Target::Cloud {
            b.model = r.model.clone();
        }
    }
    e.finish(dark);
    let may_escalate = whole && e.error.is_none();
    if let Some(turn) = r.turn {
        let meta = TurnMeta {
            target: target.map(|t| t.as_str().to_string()),
            provider: Some(r.provider.clone()).filter(|s| !s.is_empty()),
            model: Some(r.model.clone()).filter(|s| !s.is_empty()),
            reasons: r
                .decision
                .as_ref()
                .and_then(|d| serde_json::to_string(&d.reasons).ok()),
            usage: Some(usage),
            cost_usd: cost,
            saved_usd: saved,
        };
        effects.push(Effect::FinishAnswer {
            turn,
            text: e.text.clone(),
            meta,
            interrupted: e.interrupted,
        });
    }
    effects.push(Effect::RefreshConversations);
    app.last_finished = may_escalate.then_some(req);
    app.notice = None;
    if app.quitting {
        effects.push(Effect::Quit);
    }
    effects
}

/// The judge's verdict on the local answer to `req`: the cloud answers the same prompt again
/// below a seam that says why, unless something has happened since (a new prompt, a cancel,
/// a quit, another chat), in which case the verdict is stale and dropped. A chat made private
/// meanwhile is never sent out: the forced route would override privacy.
pub(super) fn escalate(app: &mut App, req: ReqId, reason: Escalation) -> Vec<Effect> {
    if app.running.is_some() || app.quitting || app.private || app.last_finished != Some(req) {
        return vec![];
    }
    app.notice = Some(format!("escalated to the cloud: {}", reason.message));
    commands::again(app, Target::Cloud, Seam::Escalated(reason.message))
}
