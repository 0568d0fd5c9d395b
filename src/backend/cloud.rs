//! The cloud tier: OpenAI-compatible providers behind one `ChatBackend`, with an ordered
//! fallback list of (provider, model) targets, retries before the first token, and a circuit
//! breaker per provider whose state the router reads through `CloudBackend::health`.
//! It knows nothing of the UI, makes no network call until asked to answer, and never lets a
//! key out of the Authorization header: every message it produces is scrubbed first.
//!
//! Layout: `attempt` (one request, SSE chunks -> events), `failover` (the loop over targets,
//! retries and the breaker), `retry` (what a failure means, how long to wait), `circuit` (the
//! breaker), `transport` (async-openai client, the one-request HTTP service, `check`).

mod attempt;
mod circuit;
mod failover;
mod retry;
mod transport;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use circuit::{CircuitState, OPEN_FOR};
pub use retry::{MAX_DELAY, MAX_RETRIES};
pub use transport::{CHECK_TIMEOUT, Reachability, check};

use super::{ChatBackend, ChatRequest, EventStream};
use crate::config::{Config, ModelSpec, Provider, Tier};
use crate::secrets::{self, KeySource, Redacted};
use circuit::Breaker;
use transport::OpenAi;

/// Cloud-tier providers and models, tried in order: providers in config order (which is by
/// name, as `[providers.NAME]` tables are read into a sorted map), each provider's models in
/// the order listed.
pub struct CloudBackend {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Vec<Slot>,
    targets: Vec<Target>,
    /// Every key held, for scrubbing: a server may echo back any of them.
    secrets: Arc<Vec<Redacted>>,
}

struct Slot {
    provider: Provider,
    source: KeySource,
    key: Option<Redacted>,
    /// Built on first use, so constructing the backend (at startup) stays free of TLS setup.
    client: OnceLock<Result<OpenAi, String>>,
    breaker: Mutex<Breaker>,
}

struct Target {
    slot: usize,
    model: ModelSpec,
}

impl Slot {
    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // The breaker is plain data; a panic elsewhere cannot leave it half-updated.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client(&self, secrets: &Arc<Vec<Redacted>>) -> Result<&OpenAi, String> {
        self.client
            .get_or_init(|| {
                transport::openai_client(&self.provider, self.key.as_ref(), secrets.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl CloudBackend {
    /// The configured `tier = "cloud"` providers, with the model `--model` picked (if any)
    /// tried first. Keys are looked up now (env, then keyring); nothing touches the network.
    pub fn new(cfg: &Config, env: &dyn Fn(&str) -> Option<String>) -> CloudBackend {
        let cloud: Vec<Provider> = cfg
            .providers
            .iter()
            .filter(|p| p.tier == Tier::Cloud)
            .cloned()
            .collect();
        let mut b = Self::from_providers(&cloud, env);
        if let Some(want) = &cfg.cloud_model
            && let Some(Inner { slots, targets, .. }) = Arc::get_mut(&mut b.inner)
        {
            // The rest stay behind it, in order, as fallbacks.
            targets.sort_by_key(|t| {
                !(slots[t.slot].provider.name == want.provider && t.model.name == want.model)
            });
        }
        b
    }

    /// Any list of providers, in the order given (e.g. the `tier = "local"` servers, which the
    /// router treats as local but which speak the same protocol).
    pub fn from_providers(
        providers: &[Provider],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> CloudBackend {
        let mut slots = Vec::new();
        let mut targets = Vec::new();
        for p in providers {
            let (source, key) = secrets::lookup(p, env);
            let slot = slots.len();
            targets.extend(p.models.iter().map(|m| Target {
                slot,
                model: m.clone(),
            }));
            if p.models.is_empty() {
                tracing::warn!(provider = %p.name, "provider lists no models; it is never used");
            }
            slots.push(Slot {
                provider: p.clone(),
                source,
                key,
                client: OnceLock::new(),
                breaker: Mutex::new(Breaker::new()),
            });
        }
        let secrets = Arc::new(slots.iter().filter_map(|s| s.key.clone()).collect());
        CloudBackend {
            inner: Arc::new(Inner {
                slots,
                targets,
                secrets,
            }),
        }
    }

    /// The breaker state of every provider, read without any network traffic.
    pub fn health(&self) -> CloudHealth {
        let now = Instant::now();
        CloudHealth {
            providers: self
                .inner
                .slots
                .iter()
                .map(|s| ProviderHealth {
                    name: s.provider.name.clone(),
                    tier: s.provider.tier,
                    has_key: s.source != KeySource::Missing,
                    circuit: s.breaker().state(now),
                })
                .collect(),
        }
    }

    /// (provider, model) in the order they are tried.
    pub fn targets(&self) -> Vec<(String, String)> {
        let i = &self.inner;
        i.targets
            .iter()
            .map(|t| (i.slots[t.slot].provider.name.clone(), t.model.name.clone()))
            .collect()
    }
}

/// Whether `wanted` names this (provider, model): the model's own name or `provider/model`.
/// The one reading of a cloud model name, shared by failover and the chat screen's `/model`.
pub fn names_model(provider: &str, model: &str, wanted: &str) -> bool {
    model == wanted
        || wanted
            .strip_prefix(provider)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(model)
}

/// What the router needs to know about the cloud tier, as of the moment it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudHealth {
    pub providers: Vec<ProviderHealth>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    pub name: String,
    pub tier: Tier,
    /// False when neither the env var nor the keyring has a key (and the server is not loopback).
    pub has_key: bool,
    pub circuit: CircuitState,
}

impl CloudHealth {
    /// True when no cloud-tier provider is usable: none configured, none with a key, or every
    /// one with an open circuit. A half-open provider counts as online: the next request is its
    /// probe.
    pub fn is_offline(&self) -> bool {
        !self
            .providers
            .iter()
            .filter(|p| p.tier == Tier::Cloud && p.has_key)
            .any(|p| !matches!(p.circuit, CircuitState::Open { .. }))
    }
}

impl ChatBackend for CloudBackend {
    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> EventStream {
        let inner = self.inner.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // The driver is polled as part of the returned stream rather than spawned: dropping
        // the stream drops the request with it, and nothing outlives the consumer.
        let driver = futures::stream::once(async move { inner.run(request, cancel, tx).await })
            .filter_map(|()| std::future::ready(None));
        futures::stream::select(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            driver,
        )
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendError, StreamEvent};
    use crate::chat::Message;

    fn provider(name: &str, tier: Tier, models: &[&str]) -> Provider {
        Provider {
            name: name.into(),
            base_url: "https://example.invalid/v1".parse().unwrap(),
            api_key_env: Some(format!("{}_KEY", name.to_uppercase())),
            models: models
                .iter()
                .map(|m| ModelSpec {
                    name: m.to_string(),
                    context_window: 8192,
                    input_price: 0.0,
                    output_price: 0.0,
                })
                .collect(),
            tier,
            timeout_secs: 5,
            trusted: false,
            max_tokens: 4096,
        }
    }

    #[test]
    fn the_model_picked_by_name_is_tried_first() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::models::tests::cfg_with(
            dir.path(),
            "[providers.a]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [{ name = \"m1\" }, { name = \"m2\" }]\n\
             [providers.b]\nbase_url = \"http://127.0.0.1:8/v1\"\nmodels = [{ name = \"m3\" }]\n",
        );
        let order = |cfg: &Config| -> Vec<String> {
            let b = CloudBackend::new(cfg, &|_| None);
            b.targets()
                .into_iter()
                .map(|(p, m)| format!("{p}/{m}"))
                .collect()
        };
        assert_eq!(order(&cfg), ["a/m1", "a/m2", "b/m3"]);
        let mut picked = cfg.clone();
        crate::models::choose("m3", &picked)
            .unwrap()
            .apply(&mut picked, false);
        assert_eq!(order(&picked), ["b/m3", "a/m1", "a/m2"]);
    }

    #[test]
    fn no_cloud_provider_means_offline() {
        let b = CloudBackend::from_providers(&[], &|_| None);
        assert!(b.health().is_offline());
        let local_only =
            CloudBackend::from_providers(&[provider("llama", Tier::Local, &["m"])], &|_| None);
        assert!(local_only.health().is_offline());
    }

    #[tokio::test(start_paused = true)]
    async fn offline_only_when_every_cloud_circuit_is_open() {
        let b = CloudBackend::from_providers(
            &[
                provider("a", Tier::Cloud, &["m1"]),
                provider("b", Tier::Cloud, &["m2"]),
            ],
            &|_| Some("sk-test".into()),
        );
        assert!(!b.health().is_offline());
        let now = Instant::now();
        for _ in 0..3 {
            b.inner.slots[0].breaker().on_failure(now);
        }
        assert!(!b.health().is_offline(), "b is still closed");
        for _ in 0..3 {
            b.inner.slots[1].breaker().on_failure(now);
        }
        assert!(b.health().is_offline());
        tokio::time::advance(OPEN_FOR).await;
        assert!(!b.health().is_offline(), "a probe is allowed again");
    }

    #[tokio::test]
    async fn a_missing_key_is_reported_without_any_request() {
        let b = CloudBackend::from_providers(&[provider("acme", Tier::Cloud, &["m"])], &|_| None);
        assert!(!b.health().providers[0].has_key);
        let events: Vec<_> = b
            .stream(
                ChatRequest::new(vec![Message::user("hi")]),
                CancellationToken::new(),
            )
            .collect()
            .await;
        assert_eq!(
            events,
            vec![Err(BackendError::NoKey {
                provider: "acme".into(),
                hint: "ACME_KEY".into()
            })]
        );
    }

    #[tokio::test]
    async fn an_unknown_model_is_refused_up_front() {
        let b = CloudBackend::from_providers(&[provider("acme", Tier::Cloud, &["m"])], &|_| {
            Some("k".into())
        });
        let mut req = ChatRequest::new(vec![Message::user("hi")]);
        req.model = Some("nope".into());
        let events: Vec<Result<StreamEvent, _>> =
            b.stream(req, CancellationToken::new()).collect().await;
        assert!(
            matches!(&events[..], [Err(BackendError::Unavailable(m))] if m.contains("nope")),
            "{events:?}"
        );
    }
}
