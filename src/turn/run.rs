//! One turn from request to `Done`: load, judge privacy, route, guard, open the conversation,
//! answer, and escalate a weak local answer to the cloud (guarded again, since a chat can be
//! pinned private while its answer runs).

use tokio_util::sync::CancellationToken;

use super::answer::{self, Outcome};
use super::guard::{self, Privacy, Refusal, SpendNow};
use super::{
    Ask, Done, Emit, Failure, Finish, Inner, RouteRequest, Thread, TurnError, TurnEvent,
    TurnRequest, context,
};
use crate::backend::local::Confidence;
use crate::chat::Message;
use crate::config::RouteMode;
use crate::router::{Escalation, LocalState, ReasonCode, RouteDecision, Target};
use crate::session::{ConversationId, StoredAttachment};
use crate::tiers::RouteContext;

/// The conversation as the turn found it.
struct Loaded {
    conversation: Option<ConversationId>,
    title: Option<String>,
    /// What the model is sent for this turn: the attachments, then the prompt.
    prompt: String,
    /// The system prompt (if any), then the earlier turns.
    history: Vec<Message>,
    sticky_cloud: bool,
    pinned: bool,
}

pub(super) async fn turn(inner: &Inner, req: TurnRequest, cancel: &CancellationToken, emit: &Emit) {
    let finish = match go(inner, &req, cancel, emit).await {
        Ok(f) => f,
        Err(e) => {
            let kind = match e {
                TurnError::NoTier(_) => Failure::NoTier,
                _ => Failure::Model,
            };
            emit(TurnEvent::Failed(e));
            Finish::Failed(kind)
        }
    };
    let spend = SpendNow::read(&inner.store(), &inner.cfg);
    emit(TurnEvent::Done(Done { finish, spend }));
}

async fn go(
    inner: &Inner,
    req: &TurnRequest,
    cancel: &CancellationToken,
    emit: &Emit,
) -> Result<Finish, TurnError> {
    let l = load(inner, req)?;
    let privacy = Privacy::of(l.pinned, &l.prompt, &l.history);
    // A pinned or forced cloud route on a private conversation is refused, never re-routed:
    // the user asked for the cloud and must hear why not.
    if privacy.is_private() && guard::wants_cloud(&req.route) {
        emit(TurnEvent::Refused(Refusal::Private(privacy)));
        return Ok(Finish::Refused);
    }
    let spend = SpendNow::read(&inner.store(), &inner.cfg);
    let decision = decide(inner, &l, req.route, &privacy, &spend).await;
    emit(TurnEvent::Routed(decision.clone()));
    if decision.target == Target::Cloud
        && let Some(r) = guard::cloud_refusal(&privacy, &spend)
    {
        emit(TurnEvent::Refused(r));
        return Ok(Finish::Refused);
    }
    // A rule kept the turn here although it alone overflows the local window: refuse it
    // rather than send a prompt the model would see cut.
    if decision.target == Target::Local
        && let Some(r) = decision
            .reasons
            .iter()
            .find(|r| r.code == ReasonCode::ContextTooLong)
    {
        emit(TurnEvent::Refused(Refusal::TooLong(r.message.clone())));
        return Ok(Finish::Refused);
    }
    available(inner, &decision, req.route).await?;
    let (conversation, title) = open(inner, &l, req, emit);
    emit(TurnEvent::Opened {
        conversation,
        title,
        privacy: privacy.clone(),
    });

    let mut messages = l.history.clone();
    messages.push(Message::user(l.prompt.clone()));
    let confidence = (decision.target == Target::Local).then(Confidence::default);
    let ask = |tier, confidence| answer::Ask {
        decision: &decision,
        tier,
        messages: messages.clone(),
        conversation,
        cloud_model: req.cloud_model.clone(),
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        sampling: req.sampling.clone(),
        confidence,
    };
    let first = answer::answer(
        inner,
        ask(decision.target, confidence.clone()),
        cancel,
        emit,
    )
    .await;
    let esc = match req.escalate {
        true => escalation(inner, &l, &decision, &first, confidence, conversation).await,
        false => None,
    };
    let Some(esc) = esc else {
        return Ok(finish_of(&first));
    };
    if cancel.is_cancelled() {
        return Ok(Finish::Interrupted);
    }
    // The cloud sees the question, not the weak answer; both are kept in the history.
    emit(TurnEvent::Escalated(esc));
    let second = answer::answer(inner, ask(Target::Cloud, None), cancel, emit).await;
    Ok(finish_of(&second))
}

fn finish_of(o: &Outcome) -> Finish {
    match (o.cancelled, o.failure) {
        (true, _) => Finish::Interrupted,
        (false, Some(f)) => Finish::Failed(f),
        (false, None) => Finish::Answered,
    }
}

fn load(inner: &Inner, req: &TurnRequest) -> Result<Loaded, TurnError> {
    let nothing_again =
        || TurnError::Conversation("nothing to answer again yet: send a prompt first".into());
    let system: Vec<Message> = req.system.iter().cloned().map(Message::system).collect();
    let with_system = |history: Vec<Message>| [system.clone(), history].concat();
    let sent = |p: &str| crate::attach::render_all(&req.attachments, p);
    let fresh = |prompt: &str, history: Vec<Message>| Loaded {
        conversation: None,
        title: None,
        prompt: sent(prompt),
        history: with_system(history),
        sticky_cloud: false,
        pinned: req.private,
    };
    match (&req.thread, &req.ask) {
        (Thread::New, Ask::Prompt(p)) => Ok(fresh(p, vec![])),
        (Thread::Supplied(m), Ask::Prompt(p)) => Ok(fresh(p, m.clone())),
        (Thread::New | Thread::Supplied(_), Ask::Again) => Err(nothing_again()),
        (Thread::Stored(id), ask) => {
            let store = inner.store();
            let bad = |e: crate::session::SessionError| TurnError::Conversation(e.to_string());
            let c = store.conversation(*id).map_err(bad)?;
            let turns = store.turns(*id).map_err(bad)?;
            let (prompt, history) = match ask {
                Ask::Prompt(p) => (sent(p), context::messages(&turns)),
                Ask::Again => context::last_prompt(&turns).ok_or_else(nothing_again)?,
            };
            Ok(Loaded {
                conversation: Some(*id),
                title: Some(c.title),
                prompt,
                history: with_system(history),
                sticky_cloud: context::sticky_cloud(&turns),
                pinned: c.private || req.private,
            })
        }
    }
}

/// The router's decision over everything that would be sent. One-shot mode starts the local
/// model here, and only when the router would pick it if it were ready.
async fn decide(
    inner: &Inner,
    l: &Loaded,
    route: RouteRequest,
    privacy: &Privacy,
    spend: &SpendNow,
) -> RouteDecision {
    let (mode, force) = match route {
        RouteRequest::Mode(m) => (m, false),
        RouteRequest::Force(Target::Local) => (RouteMode::Local, true),
        RouteRequest::Force(Target::Cloud) => (RouteMode::Cloud, true),
    };
    // The router finds secrets in the prompt itself; the pin and earlier turns are ours to say.
    let earlier = matches!(privacy, Privacy::Secret { earlier: true, .. });
    let ctx = RouteContext {
        mode,
        force,
        private: *privacy == Privacy::Pinned || earlier,
        sticky_cloud: l.sticky_cloud,
        budget: spend.budget(),
    };
    let (mut d, started) = {
        let tiers = inner.tiers.read().await;
        let started = tiers.local_started();
        let d = match &inner.on_pull {
            Some(_) if !started => {
                tiers.decide_with(&l.prompt, &l.history, &ctx, LocalState::Ready)
            }
            _ => tiers.decide(&l.prompt, &l.history, &ctx),
        };
        (d, started)
    };
    if let Some(progress) = &inner.on_pull
        && d.target == Target::Local
        && !started
    {
        let progress = progress.clone();
        let mut tiers = inner.tiers.write().await;
        tiers.start_local(&inner.cfg, move |e| progress(e)).await;
        let tiers = tiers.downgrade();
        tiers.wait_local().await;
        d = tiers.decide(&l.prompt, &l.history, &ctx);
    }
    if earlier
        && let Some(r) = d.reasons.first_mut()
        && r.code == ReasonCode::Private
    {
        r.code = ReasonCode::SecretsDetected;
        r.message = format!("{}, so it stays on this machine", privacy.reason());
    }
    d
}

/// Whether the tier picked can answer at all.
async fn available(inner: &Inner, d: &RouteDecision, route: RouteRequest) -> Result<(), TurnError> {
    let tiers = inner.tiers.read().await;
    match d.target {
        Target::Local if tiers.local_state() != LocalState::Ready => {
            let why = tiers.local_problem().unwrap_or_else(|| match tiers.local_state() {
                LocalState::Pulling => "still downloading".into(),
                _ => "still loading".into(),
            });
            let cloud = if route == RouteRequest::Mode(RouteMode::Local) {
                "the route is pinned to local"
            } else {
                "no cloud provider is online"
            };
            Err(TurnError::NoTier(format!(
                "{cloud} and the local model is unavailable ({why})"
            )))
        }
        Target::Cloud if !tiers.cloud_online() => Err(TurnError::NoTier(
            "the prompt is pinned to the cloud, but no cloud provider is online; configure one, or route it locally (--route local, /local)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Creates the conversation (or saves the pin on it) and stores the prompt. A history that
/// cannot be written does not stop the answer; the user is told.
fn open(
    inner: &Inner,
    l: &Loaded,
    req: &TurnRequest,
    emit: &Emit,
) -> (Option<ConversationId>, String) {
    // Titled after the user's own words, not the attachments ahead of them.
    let own = match &req.ask {
        Ask::Prompt(p) if !p.trim().is_empty() => p.as_str(),
        _ => l.prompt.as_str(),
    };
    let title = l.title.clone().unwrap_or_else(|| context::title(own));
    if matches!(req.thread, Thread::Supplied(_)) {
        return (None, title);
    }
    let mut store = inner.store();
    let stored = (|| {
        let id = match l.conversation {
            Some(id) => {
                if req.private {
                    store.set_private(id, true)?;
                }
                id
            }
            None => store.create_conversation(&title, req.private, None)?,
        };
        if req.role.is_some() {
            store.set_role(id, req.role.as_deref())?;
        }
        if let Ask::Prompt(p) = &req.ask {
            let attachments: Vec<_> = req
                .attachments
                .iter()
                .map(|a| StoredAttachment {
                    path: a.path.display().to_string(),
                    summary: a.summary(),
                    text: a.render_for_prompt(),
                })
                .collect();
            store.add_prompt(id, p, &attachments)?;
        }
        Ok::<_, crate::session::SessionError>(id)
    })();
    match stored {
        Ok(id) => (Some(id), title),
        Err(e) => {
            emit(TurnEvent::Notice(format!("history not saved: {e}")));
            (l.conversation, title)
        }
    }
}

/// The judge's verdict on a whole local answer, if the cloud may answer again: the policy
/// allows it, the conversation is not private now (it may have been pinned meanwhile) and
/// the budget is not spent.
async fn escalation(
    inner: &Inner,
    l: &Loaded,
    decision: &RouteDecision,
    first: &Outcome,
    confidence: Option<Confidence>,
    conversation: Option<ConversationId>,
) -> Option<Escalation> {
    if first.cancelled || first.failure.is_some() || first.answer.interrupted {
        return None;
    }
    let mean = confidence.as_ref().and_then(Confidence::mean);
    let verdict = inner
        .tiers
        .read()
        .await
        .escalation(decision, &first.answer.text, mean)?;
    let (pinned_now, spend) = {
        let store = inner.store();
        let pinned = conversation
            .and_then(|c| store.conversation(c).ok())
            .is_some_and(|c| c.private);
        (pinned || l.pinned, SpendNow::read(&store, &inner.cfg))
    };
    let privacy = Privacy::of(pinned_now, &l.prompt, &l.history);
    guard::cloud_refusal(&privacy, &spend)
        .is_none()
        .then_some(verdict)
}
