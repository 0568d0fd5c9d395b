//! The two tiers behind one decision: starts the local engine (pulling its model when allowed),
//! builds the cloud backend, reads both tiers' live state for the router, and streams from the
//! tier a decision picked. Driven by the turn pipeline (src/turn); no UI here.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend::cloud::CloudBackend;
use crate::backend::local::{Confidence, EngineState, LocalEngine, LocalOptions};
use crate::backend::{ChatBackend, ChatRequest, EventStream};
use crate::chat::Message;
use crate::config::{Config, Engine, LocalQuant, RouteMode};
use crate::models::{self, ModelError, PullEvent};
use crate::router::{
    self, BudgetState, CloudPrice, LocalState, Policy, RouteDecision, RouteInput, Target,
};

/// What the user and the conversation say about this prompt, beyond its text.
#[derive(Debug, Clone, Default)]
pub struct RouteContext {
    pub mode: RouteMode,
    pub force: bool,
    pub private: bool,
    pub sticky_cloud: bool,
    pub budget: BudgetState,
}

enum Local {
    NotStarted,
    Pulling,
    Unavailable {
        state: LocalState,
        why: String,
    },
    Engine(LocalEngine),
    /// A `tier = "local"` server answers local turns (`local.engine`); never leaves the machine
    /// (or a host the user vouched for) and costs nothing.
    Server(CloudBackend),
}

/// The Q8_0 copy of 4-bit weights (made on first use, in about a second), or the file itself
/// when it is not 4-bit or the copy cannot be made.
async fn q8_copy(ready: &models::Ready, cache_dir: &std::path::Path) -> std::path::PathBuf {
    use crate::models::gguf::GgmlType;
    let four_bit = matches!(
        ready.info.main_type(),
        Some(GgmlType::Q4_0 | GgmlType::Q4_1)
    );
    if !four_bit {
        return ready.path.clone();
    }
    let (src, dst) = (
        ready.path.clone(),
        models::transcode::q8_path(cache_dir, &ready.path),
    );
    if dst.is_file() {
        return dst;
    }
    let made = tokio::task::spawn_blocking({
        let (src, dst) = (src.clone(), dst.clone());
        move || models::transcode::to_q8(&src, &dst)
    })
    .await;
    match made {
        Ok(Ok(())) => dst,
        Ok(Err(e)) => {
            tracing::warn!("running the original weights: {e}");
            src
        }
        Err(e) => {
            tracing::warn!("running the original weights: {e}");
            src
        }
    }
}

pub struct Tiers {
    pub policy: Policy,
    pub cloud: CloudBackend,
    local: Local,
    /// The configured local model's name, for badges and reports.
    pub local_name: String,
    local_context: usize,
    /// Room a local answer keeps in the window (`local.max_tokens`).
    local_reserve: usize,
    price: Option<CloudPrice>,
}

/// Used when a model's header does not say: SmolLM2's own window.
const FALLBACK_CONTEXT: usize = 8192;

impl Tiers {
    pub fn new(cfg: &Config) -> Result<Tiers, router::PolicyError> {
        let env = |k: &str| std::env::var(k).ok();
        Ok(Tiers {
            policy: Policy::from_config(&cfg.router)?,
            cloud: CloudBackend::new(cfg, &env),
            local: Local::NotStarted,
            local_name: match &cfg.engine {
                Engine::InProcess => cfg.local.model.clone(),
                Engine::Server(m) => m.to_string(),
            },
            // A local server's window is in the config, known before anything starts; the
            // in-process model's is read from its header when it starts.
            local_context: server_window(cfg).unwrap_or(FALLBACK_CONTEXT),
            local_reserve: cfg.local.max_tokens,
            price: CloudPrice::cheapest(cfg),
        })
    }

    /// Makes the local model available: resolves it, pulls it when missing (if allowed), checks
    /// its header, then starts loading it in the background. Errors leave the local tier marked
    /// missing or failed, so routing can still use the cloud.
    pub async fn start_local<P>(&mut self, cfg: &Config, progress: P)
    where
        P: Fn(&PullEvent) + Send + Sync + 'static,
    {
        if let Some((server, window)) = local_server(cfg) {
            self.local = Local::Server(server);
            self.local_context = window;
            return;
        }
        self.local = Local::Pulling;
        let result = async {
            let model = models::resolve(&cfg.local.model, cfg)?;
            let ready = models::ensure(&model, cfg, progress).await?;
            Ok::<_, ModelError>((model, ready))
        }
        .await;
        match result {
            Ok((model, mut ready)) => {
                if cfg.local.quant == LocalQuant::Q8_0 {
                    ready.path = q8_copy(&ready, &cfg.paths.cache_dir).await;
                }
                self.local_name = model.name.clone();
                self.local_context = ready
                    .info
                    .context_length
                    .map(|c| c as usize)
                    .unwrap_or(FALLBACK_CONTEXT);
                self.local = Local::Engine(LocalEngine::start(LocalOptions {
                    path: ready.path,
                    name: model.name,
                    max_tokens: cfg.local.max_tokens,
                    temperature: cfg.local.temperature,
                    top_p: cfg.local.top_p,
                    repeat_penalty: cfg.local.repeat_penalty,
                    context_window: self.local_context,
                    dtype: cfg.local.dtype,
                    prefix_cache: crate::backend::local::PREFIX_CACHE_SEQS,
                }));
            }
            Err(e) => {
                let state = match e {
                    ModelError::NotInstalled { .. } | ModelError::FileNotFound { .. } => {
                        LocalState::Missing
                    }
                    _ => LocalState::Failed,
                };
                tracing::warn!("local tier unavailable: {e}");
                self.local = Local::Unavailable {
                    state,
                    why: e.to_string(),
                };
            }
        }
    }

    /// Drops the running engine ahead of loading `next` in its place, so only one model is in
    /// memory; until the new one is adopted the local tier reads as downloading.
    pub fn stop_local(&mut self, next: &str) {
        self.local = Local::Pulling;
        self.local_name = next.to_string();
    }

    /// Takes the local tier `other` started, keeping this one's cloud state (breakers and all).
    pub fn adopt_local(&mut self, other: Tiers) {
        self.local = other.local;
        self.local_name = other.local_name;
        self.local_context = other.local_context;
    }

    /// Whether anyone has started the local tier yet (one-shot mode starts it only on need).
    pub fn local_started(&self) -> bool {
        !matches!(self.local, Local::NotStarted)
    }

    pub fn local_engine(&self) -> Option<&LocalEngine> {
        match &self.local {
            Local::Engine(e) => Some(e),
            _ => None,
        }
    }

    /// Waits for a started engine to finish loading.
    pub async fn wait_local(&self) {
        if let Some(e) = self.local_engine() {
            let _ = e.ready().await;
        }
    }

    pub fn local_state(&self) -> LocalState {
        match &self.local {
            Local::NotStarted => LocalState::Missing,
            Local::Pulling => LocalState::Pulling,
            Local::Unavailable { state, .. } => *state,
            Local::Engine(e) => match e.state() {
                EngineState::Loading => LocalState::Loading,
                EngineState::Ready => LocalState::Ready,
                EngineState::Failed(_) => LocalState::Failed,
            },
            Local::Server(s) if server_down(s) => LocalState::Failed,
            Local::Server(_) => LocalState::Ready,
        }
    }

    /// Which engine answers local turns, once started: the in-process model or a server.
    pub fn local_is_server(&self) -> bool {
        matches!(self.local, Local::Server(_))
    }

    /// The local model's context window (from its GGUF header, or the server's config).
    pub fn local_context(&self) -> usize {
        self.local_context
    }

    /// Why the local tier cannot answer, when it cannot.
    pub fn local_problem(&self) -> Option<String> {
        match &self.local {
            Local::Unavailable { why, .. } => Some(why.clone()),
            Local::Engine(e) => match e.state() {
                EngineState::Failed(why) => Some(why),
                _ => None,
            },
            Local::NotStarted => Some("the local model was not started".into()),
            Local::Pulling => None,
            Local::Server(s) if server_down(s) => Some(format!(
                "{} is paused after repeated failures; tandem will try it again shortly",
                self.local_name
            )),
            Local::Server(_) => None,
        }
    }

    /// A cloud provider is usable: configured, with a key (or a loopback server), circuit not open.
    pub fn cloud_online(&self) -> bool {
        !self.cloud.health().is_offline()
    }

    /// The router's decision for `prompt`, given the live state of both tiers.
    pub fn decide(&self, prompt: &str, history: &[Message], ctx: &RouteContext) -> RouteDecision {
        self.decide_with(prompt, history, ctx, self.local_state())
    }

    /// As `decide`, but with the local tier's state given (one-shot mode asks "if it were ready").
    pub fn decide_with(
        &self,
        prompt: &str,
        history: &[Message],
        ctx: &RouteContext,
        local: LocalState,
    ) -> RouteDecision {
        let features = router::features(prompt, history);
        let input = RouteInput {
            features: &features,
            mode: ctx.mode,
            force: ctx.force,
            private: ctx.private,
            cloud_online: self.cloud_online(),
            local,
            local_context_window: self.local_context,
            conversation_tokens: router::conversation_tokens(prompt, history),
            // The system prompt is never dropped, so it counts with the turn.
            turn_tokens: crate::context::need(
                crate::chat::estimate_tokens(prompt)
                    + crate::context::MESSAGE_OVERHEAD
                    + history
                        .iter()
                        .filter(|m| m.role == crate::chat::Role::System)
                        .map(crate::context::message_tokens)
                        .sum::<usize>(),
                self.local_reserve,
            ),
            budget: ctx.budget,
            sticky_cloud: ctx.sticky_cloud,
            cloud_price: self.price,
        };
        router::route(&self.policy, &input)
    }

    /// Whether a finished local answer should be re-asked in the cloud: only when the score
    /// decided (never against a privacy, budget or pin rule), it was a close call, and the
    /// answer looks weak.
    pub fn escalation(
        &self,
        d: &RouteDecision,
        answer: &str,
        confidence: Option<f64>,
    ) -> Option<router::Escalation> {
        let by_score = d
            .reasons
            .first()
            .is_some_and(|r| r.code == router::ReasonCode::ScoreBelowThreshold);
        if !by_score || !self.cloud_online() {
            return None;
        }
        router::should_escalate(self.policy.escalate(), d, answer, confidence)
    }

    pub fn price(&self) -> Option<CloudPrice> {
        self.price
    }

    /// Streams from the chosen tier; a local target with no engine yields one error event.
    pub fn stream(
        &self,
        target: Target,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> EventStream {
        self.stream_watched(target, request, cancel, None)
    }

    /// As `stream`, also measuring a local answer's token confidence for escalation.
    pub fn stream_watched(
        &self,
        target: Target,
        request: ChatRequest,
        cancel: CancellationToken,
        confidence: Option<Confidence>,
    ) -> EventStream {
        match (target, &self.local) {
            (Target::Cloud, _) => self.cloud.stream(request, cancel),
            (Target::Local, Local::Engine(e)) => {
                e.stream_with_confidence(request, cancel, confidence)
            }
            (Target::Local, Local::Server(s)) => {
                // The server's own model answers, whatever cloud model the request named.
                let mut request = request;
                request.model = None;
                s.stream(request, cancel)
            }
            (Target::Local, _) => {
                let why = self
                    .local_problem()
                    .unwrap_or_else(|| "still downloading".into());
                futures::stream::once(
                    async move { Err(crate::backend::BackendError::NotReady(why)) },
                )
                .boxed()
            }
        }
    }
}

/// The `local.engine` server as a backend of its own, and its model's window; `None` for the
/// in-process engine. The chosen model is tried first, then the provider's others.
fn local_server(cfg: &Config) -> Option<(CloudBackend, usize)> {
    let Engine::Server(m) = &cfg.engine else {
        return None;
    };
    // `local.engine` was checked against the providers at load.
    let mut p = cfg.provider(&m.provider)?.clone();
    p.models.sort_by_key(|s| s.name != m.model);
    let window = p.models.first()?.context_window;
    let env = |k: &str| std::env::var(k).ok();
    Some((CloudBackend::from_providers(&[p], &env), window))
}

/// The `local.engine` server's window: its chosen model's, else its first model's.
fn server_window(cfg: &Config) -> Option<usize> {
    let Engine::Server(m) = &cfg.engine else {
        return None;
    };
    let p = cfg.provider(&m.provider)?;
    let chosen = p.models.iter().find(|s| s.name == m.model);
    chosen.or(p.models.first()).map(|s| s.context_window)
}

fn server_down(s: &CloudBackend) -> bool {
    s.health()
        .providers
        .iter()
        .all(|p| matches!(p.circuit, crate::backend::cloud::CircuitState::Open { .. }))
}

#[cfg(test)]
#[path = "tiers_tests.rs"]
mod tests;
