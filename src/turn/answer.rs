//! One answer from one tier: stream it, pass each event on, and record it as it goes. The
//! history turn and its ledger row are opened before the first token and updated on the first
//! token and then at least once a second, so a crash (`kill -9`) loses at most a second of
//! text, and the ledger always holds an estimate of what the answer used and cost.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Emit, Failure, Inner, TurnError, TurnEvent};
use crate::backend::local::Confidence;
use crate::backend::{BackendError, ChatRequest, FinishReason, StreamEvent};
use crate::chat::{Message, Usage, estimate_tokens};
use crate::config::Config;
use crate::router::{CloudPrice, RouteDecision, Target};
use crate::session::{ConversationId, Spend, SpendId, TurnId, TurnMeta};
use crate::turn::{Answer, Badge};

/// How often a streaming answer is saved.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What to answer and where.
pub(super) struct Ask<'a> {
    pub decision: &'a RouteDecision,
    pub tier: Target,
    pub messages: Vec<Message>,
    pub conversation: Option<ConversationId>,
    /// The chat's cloud model pick, tried first in the cloud.
    pub cloud_model: Option<String>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub sampling: crate::backend::Sampling,
    /// Measures a local answer's token confidence, for the escalation judge.
    pub confidence: Option<Confidence>,
}

/// How the answer ended, beyond what the `Answered` event says.
pub(super) struct Outcome {
    pub answer: Answer,
    pub failure: Option<Failure>,
    pub cancelled: bool,
}

/// The history turn and the ledger row of one answer, kept in step.
struct Record<'a> {
    inner: &'a Inner,
    turn: Option<TurnId>,
    spend_id: Option<SpendId>,
    spend: Spend,
    price: Option<CloudPrice>,
    last_save: Option<Instant>,
}

impl Record<'_> {
    /// Re-estimates usage and cost from the text so far and saves both, about once a second.
    fn progress(&mut self, text: &str, force: bool) {
        if !force && self.last_save.is_some_and(|t| t.elapsed() < SAVE_EVERY) {
            return;
        }
        self.last_save = Some(Instant::now());
        self.spend.usage.completion_tokens = estimate_tokens(text);
        self.price_it();
        let mut store = self.inner.store();
        if let Some(t) = self.turn {
            let _ = store.save_partial(t, text);
        }
        if let Some(id) = self.spend_id {
            let _ = store.update_spend(id, &self.spend);
        }
    }

    fn price_it(&mut self) {
        let u = self.spend.usage;
        let at = |p: Option<CloudPrice>| {
            p.map_or(0.0, |p| p.cost_usd(u.prompt_tokens, u.completion_tokens))
        };
        if self.spend.tier == Target::Cloud.as_str() {
            self.spend.cost_usd = at(self.price);
        } else {
            self.spend.saved_usd = at(self.price);
        }
    }
}

/// The price of a cloud model as configured (dollars per million tokens).
fn price_of(cfg: &Config, provider: &str, model: &str) -> Option<CloudPrice> {
    let m = cfg
        .provider(provider)?
        .models
        .iter()
        .find(|m| m.name == model)?;
    Some(CloudPrice {
        input_per_mtok: m.input_price,
        output_per_mtok: m.output_price,
    })
}

pub(super) async fn answer(
    inner: &Inner,
    ask: Ask<'_>,
    cancel: &CancellationToken,
    emit: &Emit,
) -> Outcome {
    let tiers = inner.tiers.read().await;
    let tier = ask.tier;
    // Until the provider says who answers, the ledger assumes the first model it would try.
    let (provider, model) = match tier {
        Target::Local => ("local".to_string(), tiers.local_name.clone()),
        Target::Cloud => planned(&tiers.cloud.targets(), ask.cloud_model.as_deref()),
    };
    // Fitted to the window of the model planned; a failover to a smaller window is the cloud
    // tier's own context-length handling.
    let (window, reserve) =
        super::window::of(&inner.cfg, &tiers, tier, &provider, &model, ask.max_tokens);
    let (fitted, trim) = super::window::fit(&ask.messages, window, reserve, &model);
    if let Some(t) = trim {
        emit(TurnEvent::Trimmed(t));
    }
    let messages = fitted.messages;
    let prompt_estimate = messages.iter().map(|m| estimate_tokens(&m.content)).sum();
    let mut meta = TurnMeta {
        target: Some(tier.as_str().into()),
        reasons: serde_json::to_string(&ask.decision.reasons).ok(),
        ..Default::default()
    };
    let (turn, spend_id, spend) = {
        let mut store = inner.store();
        let turn = ask
            .conversation
            .and_then(|c| store.begin_answer(c, &meta).ok());
        let spend = Spend {
            conversation: ask.conversation,
            turn,
            tier: tier.as_str().into(),
            provider: Some(provider.clone()),
            model: Some(model.clone()),
            usage: Usage {
                prompt_tokens: prompt_estimate,
                ..Usage::default()
            },
            estimated: true,
            ..Spend::default()
        };
        (turn, store.add_spend(&spend).ok(), spend)
    };
    let price = match tier {
        Target::Cloud => price_of(&inner.cfg, &provider, &model),
        Target::Local => tiers.price(),
    };
    let mut rec = Record {
        inner,
        turn,
        spend_id,
        spend,
        price,
        last_save: None,
    };
    rec.progress("", true);

    let mut request = ChatRequest::new(messages);
    request.max_tokens = ask.max_tokens;
    request.temperature = ask.temperature;
    request.sampling = ask.sampling;
    if tier == Target::Cloud {
        request.model = ask.cloud_model;
    }
    let mut stream = tiers.stream_watched(tier, request, cancel.clone(), ask.confidence);
    drop(tiers);

    let (mut text, mut usage, mut finish, mut failure) = (String::new(), None::<Usage>, None, None);
    let mut badge = Badge::routed(tier, model);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(StreamEvent::Started { provider, model }) => {
                if tier == Target::Cloud {
                    rec.price = price_of(&inner.cfg, &provider, &model);
                }
                (rec.spend.provider, rec.spend.model) =
                    (Some(provider.clone()), Some(model.clone()));
                badge.model = model.clone();
                emit(TurnEvent::Started {
                    tier,
                    provider,
                    model,
                });
            }
            Ok(StreamEvent::Delta(d)) => {
                let first = text.is_empty();
                text.push_str(&d);
                // The first token is on disk before it is shown; later ones once a second.
                rec.progress(&text, first);
                emit(TurnEvent::Delta(d));
            }
            Ok(StreamEvent::Usage(u)) => usage = Some(u),
            Ok(StreamEvent::Done(f)) => finish = Some(f),
            Err(e) => {
                failure = Some(match e {
                    BackendError::NotReady(_)
                    | BackendError::Unavailable(_)
                    | BackendError::Busy { .. }
                        if text.is_empty() =>
                    {
                        Failure::NoTier
                    }
                    _ => Failure::Model,
                });
                emit(TurnEvent::Failed(TurnError::Backend(e)));
                finish = Some(FinishReason::Interrupted);
            }
        }
    }
    let cancelled = cancel.is_cancelled();
    // Only the model's own end (or its token cap) makes an answer whole.
    let whole = !cancelled && matches!(finish, Some(FinishReason::Stop | FinishReason::Length));
    let measured = usage.is_some_and(|u| u.completion_tokens > 0);
    let mut u = usage.unwrap_or_default();
    if u.prompt_tokens == 0 {
        u.prompt_tokens = prompt_estimate;
    }
    if u.completion_tokens == 0 {
        u.completion_tokens = estimate_tokens(&text);
    }
    rec.spend.usage = u;
    rec.spend.estimated = !measured;
    rec.price_it();
    (badge.ttft_ms, badge.tokens_per_s) = (u.ttft_ms, u.tokens_per_s);
    (badge.cost_usd, badge.saved_usd) = (rec.spend.cost_usd, rec.spend.saved_usd);
    meta.provider = rec.spend.provider.clone();
    meta.model = rec.spend.model.clone();
    meta.usage = Some(u);
    meta.cost_usd = badge.cost_usd;
    meta.saved_usd = badge.saved_usd;
    {
        let mut store = inner.store();
        if let Some(t) = rec.turn
            && let Err(e) = store.finish_answer(t, &text, &meta, !whole)
        {
            emit(TurnEvent::Notice(format!("the answer was not saved: {e}")));
        }
        if let Some(id) = rec.spend_id {
            let _ = store.update_spend(id, &rec.spend);
        }
    }
    let answer = Answer {
        text,
        badge,
        usage: u,
        interrupted: !whole,
    };
    emit(TurnEvent::Answered(answer.clone()));
    Outcome {
        answer,
        failure,
        cancelled,
    }
}

/// The (provider, model) the cloud tier will try first: the chat's pick, else its first target.
fn planned(targets: &[(String, String)], pick: Option<&str>) -> (String, String) {
    let named = pick.and_then(|want| {
        targets
            .iter()
            .find(|(p, m)| crate::backend::cloud::names_model(p, m, want))
    });
    named.or(targets.first()).cloned().unwrap_or_default()
}
