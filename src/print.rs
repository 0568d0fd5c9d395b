//! One-shot mode: a prompt from `-p` and/or stdin, routed, answered once on stdout as it
//! streams, with route and usage on stderr (only on a terminal, and not with -q) and the turn
//! saved to history. Exit statuses are part of the interface (see the README).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend::local::Confidence;
use crate::backend::{BackendError, ChatRequest, FinishReason, StreamEvent};
use crate::chat::{Message, Role, Usage};
use crate::config::Config;
use crate::router::{LocalState, RouteDecision, Target};
use crate::session::{self, Store, TurnMeta};
use crate::tiers::{RouteContext, Tiers};

mod input;
mod report;
pub use input::{InputError, read_input};
use report::{pull_reporter, report, title};

/// Exit statuses of one-shot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    ModelFailed = 1,
    Usage = 2,
    NoTier = 3,
    Interrupted = 130,
}

#[derive(Debug, Clone, Default)]
pub struct PrintOptions {
    pub prompt: Option<String>,
    pub json: bool,
    pub continue_last: bool,
    pub conversation: Option<String>,
    pub private: bool,
    pub quiet: bool,
}

fn fail(code: Exit, msg: impl std::fmt::Display) -> Exit {
    eprintln!("tandem: {msg}");
    code
}

pub async fn run(cfg: &Config, opts: PrintOptions) -> Exit {
    let stdin = std::io::stdin();
    let piped = !stdin.is_terminal();
    let prompt = match read_input(
        opts.prompt.as_deref(),
        piped.then_some(stdin.lock()),
        cfg.print.max_stdin_bytes,
    ) {
        Ok(p) => p,
        Err(e) => return fail(Exit::Usage, e),
    };
    let status = std::io::stderr().is_terminal() && !opts.quiet;

    let mut store = match Store::open(&cfg.paths.history_db()) {
        Ok(s) => s,
        Err(e) => return fail(Exit::ModelFailed, e),
    };
    let conv = if opts.continue_last {
        match store.last_conversation() {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                return fail(
                    Exit::Usage,
                    "no earlier conversation to continue; drop -c to start one",
                );
            }
            Err(e) => return fail(Exit::ModelFailed, e),
        }
    } else if let Some(key) = &opts.conversation {
        match store.find(key) {
            Ok(c) => Some(c),
            Err(e) => return fail(Exit::Usage, e),
        }
    } else {
        None
    };
    let (history, sticky_cloud) = match &conv {
        Some(c) => {
            let turns = store.turns(c.id).unwrap_or_default();
            let sticky = turns
                .iter()
                .rev()
                .find(|t| t.role == Role::Assistant)
                .is_some_and(|t| t.meta.target.as_deref() == Some("cloud"));
            (store.messages(c.id).unwrap_or_default(), sticky)
        }
        None => (vec![], false),
    };

    let mut tiers = match Tiers::new(cfg) {
        Ok(t) => t,
        Err(e) => return fail(Exit::Usage, e),
    };
    let ctx = RouteContext {
        mode: cfg.route,
        force: false,
        private: opts.private || conv.as_ref().is_some_and(|c| c.private),
        sticky_cloud,
        budget: budget(&store, cfg),
    };
    // Ask first as if the local model were ready: loading it only pays when it may answer.
    let mut decision = tiers.decide_with(&prompt, &history, &ctx, LocalState::Ready);
    if decision.target == Target::Local {
        tiers.start_local(cfg, pull_reporter(status)).await;
        tiers.wait_local().await;
        decision = tiers.decide(&prompt, &history, &ctx);
    }
    if decision.target == Target::Local && tiers.local_state() != LocalState::Ready {
        let why = tiers.local_problem().unwrap_or_default();
        return fail(
            Exit::NoTier,
            format!(
                "no tier can answer: no cloud provider is online and the local model is unavailable ({why})"
            ),
        );
    }
    if decision.target == Target::Cloud && !tiers.cloud_online() {
        return fail(
            Exit::NoTier,
            "no tier can answer: the prompt is pinned to the cloud, but no cloud provider is online; configure one or use --route local",
        );
    }

    let conv_id = match &conv {
        Some(c) => c.id,
        None => match store.create_conversation(&title(&prompt), opts.private, None) {
            Ok(id) => id,
            Err(e) => return fail(Exit::ModelFailed, e),
        },
    };
    if let Err(e) = store.add_turn(conv_id, Role::User, &prompt, &TurnMeta::default(), false) {
        return fail(Exit::ModelFailed, e);
    }
    if status {
        eprintln!(
            "→ {} ({})",
            decision.target.as_str(),
            decision
                .reasons
                .first()
                .map(|r| r.message.as_str())
                .unwrap_or("")
        );
    }

    let mut messages = history;
    messages.push(Message::user(prompt));
    let confidence = Confidence::default();
    let echo = !opts.json;
    let outcome = answer(
        cfg,
        &tiers,
        &decision,
        messages.clone(),
        &mut store,
        conv_id,
        echo,
        Some(confidence.clone()),
    )
    .await;
    let escalation = (outcome.exit == Exit::Ok && !outcome.interrupted)
        .then(|| tiers.escalation(&decision, &outcome.text, confidence.mean()))
        .flatten();
    let Some(esc) = escalation else {
        report(&opts, status, &decision, &outcome, None, conv_id, &tiers);
        return outcome.exit;
    };
    // The weak local answer stays in history and on screen; the seam says why the cloud
    // answers again, and the cloud sees the question, not the weak answer.
    if echo {
        println!("\n--- escalated to the cloud: {} ---", esc.message);
    }
    let mut cloud = decision.clone();
    cloud.target = Target::Cloud;
    let second = answer(
        cfg, &tiers, &cloud, messages, &mut store, conv_id, echo, None,
    )
    .await;
    report(
        &opts,
        status,
        &cloud,
        &second,
        Some((&esc, &outcome.text)),
        conv_id,
        &tiers,
    );
    second.exit
}

pub(super) struct Outcome {
    text: String,
    provider: String,
    model: String,
    usage: Usage,
    cost_usd: f64,
    saved_usd: f64,
    interrupted: bool,
    exit: Exit,
}

/// Streams the answer to stdout (unless `--json`), saving it at least once a second.
#[allow(clippy::too_many_arguments)]
async fn answer(
    cfg: &Config,
    tiers: &Tiers,
    decision: &RouteDecision,
    messages: Vec<Message>,
    store: &mut Store,
    conv: session::ConversationId,
    echo: bool,
    confidence: Option<Confidence>,
) -> Outcome {
    let mut meta = TurnMeta {
        target: Some(decision.target.as_str().into()),
        reasons: serde_json::to_string(&decision.reasons).ok(),
        ..Default::default()
    };
    let turn = store.begin_answer(conv, &meta).ok();
    let cancel = CancellationToken::new();
    let mut stream = tiers.stream_watched(
        decision.target,
        ChatRequest::new(messages),
        cancel.clone(),
        confidence,
    );
    let mut o = Outcome {
        text: String::new(),
        provider: String::new(),
        model: String::new(),
        usage: Usage::default(),
        cost_usd: 0.0,
        saved_usd: 0.0,
        interrupted: false,
        exit: Exit::Ok,
    };
    let mut out = std::io::stdout().lock();
    let mut last_save = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut finish = None;
    loop {
        let ev = tokio::select! {
            _ = &mut ctrl_c, if o.exit != Exit::Interrupted => { cancel.cancel(); o.exit = Exit::Interrupted; continue; }
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { break };
        match ev {
            Ok(StreamEvent::Started { provider, model }) => {
                (o.provider, o.model) = (provider, model)
            }
            Ok(StreamEvent::Delta(d)) => {
                o.text.push_str(&d);
                if echo && (out.write_all(d.as_bytes()).is_err() || out.flush().is_err()) {
                    // The reader went away (`| head`): stop generating and leave quietly.
                    cancel.cancel();
                    o.exit = Exit::Ok;
                    finish = Some(FinishReason::Cancelled);
                    break;
                }
                if last_save.elapsed() >= Duration::from_secs(1) {
                    if let Some(t) = turn {
                        let _ = store.save_partial(t, &o.text);
                    }
                    last_save = Instant::now();
                }
            }
            Ok(StreamEvent::Usage(u)) => o.usage = u,
            Ok(StreamEvent::Done(f)) => finish = Some(f),
            Err(e) => {
                eprintln!(
                    "{}tandem: {e}",
                    if o.text.is_empty() || !echo { "" } else { "\n" }
                );
                o.exit = match e {
                    BackendError::NotReady(_) | BackendError::Unavailable(_)
                        if o.text.is_empty() =>
                    {
                        Exit::NoTier
                    }
                    _ => Exit::ModelFailed,
                };
                finish = Some(FinishReason::Interrupted);
            }
        }
    }
    if echo && !o.text.is_empty() && !o.text.ends_with('\n') {
        let _ = writeln!(out);
    }
    // Anything but the model's own end (or its token cap) leaves a partial answer.
    o.interrupted = !matches!(finish, Some(FinishReason::Stop | FinishReason::Length));
    if o.usage.completion_tokens == 0 {
        o.usage.completion_tokens = crate::chat::estimate_tokens(&o.text);
    }
    match decision.target {
        Target::Cloud => o.cost_usd = cloud_cost(cfg, &o),
        Target::Local => {
            o.saved_usd = tiers
                .price()
                .map(|p| p.cost_usd(o.usage.prompt_tokens, o.usage.completion_tokens))
                .unwrap_or(0.0)
        }
    }
    meta.provider = Some(o.provider.clone()).filter(|s| !s.is_empty());
    meta.model = Some(o.model.clone()).filter(|s| !s.is_empty());
    meta.usage = Some(o.usage);
    meta.cost_usd = o.cost_usd;
    meta.saved_usd = o.saved_usd;
    if let Some(t) = turn
        && let Err(e) = store.finish_answer(t, &o.text, &meta, o.interrupted)
    {
        tracing::error!("could not save the answer: {e}");
    }
    o
}

/// The price of the model that actually answered, after any failover.
fn cloud_cost(cfg: &Config, o: &Outcome) -> f64 {
    let spec = cfg
        .provider(&o.provider)
        .and_then(|p| p.models.iter().find(|m| m.name == o.model));
    spec.map(|m| {
        (o.usage.prompt_tokens as f64 * m.input_price
            + o.usage.completion_tokens as f64 * m.output_price)
            / 1e6
    })
    .unwrap_or(0.0)
}

/// Spend today and this month (UTC), from the history's recorded costs.
fn budget(store: &Store, cfg: &Config) -> crate::router::BudgetState {
    let now = session::now();
    let day_start = now - now.rem_euclid(86_400);
    let month_start = input::month_start(now);
    crate::router::BudgetState {
        daily_spent_usd: store.spent_since(day_start).unwrap_or(0.0),
        daily_cap_usd: cfg.budget.daily_usd,
        monthly_spent_usd: store.spent_since(month_start).unwrap_or(0.0),
        monthly_cap_usd: cfg.budget.monthly_usd,
    }
}
