//! The loop behind `CloudBackend::stream`: walk the (provider, model) targets in order, retry
//! what may pass on a retry (only before the first token), feed every verdict to the provider's
//! breaker, and when nothing answers, return the one error that best tells the user what to do.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::attempt::{self, Attempt, Outcome, Tx};
use super::retry::{self, Failure, MAX_RETRIES};
use super::{Inner, Slot};
use crate::backend::{BackendError, ChatRequest, FinishReason, StreamEvent};
use crate::chat::estimate_tokens;
use crate::secrets::{KeySource, scrub};

/// The last failure seen per provider, in the order providers were tried.
#[derive(Default)]
struct Notes(Vec<(usize, BackendError)>);

impl Notes {
    fn add(&mut self, slot: usize, e: BackendError) {
        self.0.retain(|(s, _)| *s != slot);
        self.0.push((slot, e));
    }

    /// One provider's failure is shown as it is; several become one line naming each, except
    /// that "too long for every window" stays a `ContextLength` (the largest window tried).
    fn into_error(self) -> BackendError {
        let mut v = self.0;
        if v.len() == 1
            || (!v.is_empty()
                && v.iter()
                    .all(|(_, e)| matches!(e, BackendError::ContextLength { .. })))
        {
            return v.pop().expect("not empty").1;
        }
        if v.is_empty() {
            return BackendError::Unavailable(
                "none is configured; add one under [providers.NAME] in the config file".into(),
            );
        }
        BackendError::Unavailable(
            v.into_iter()
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

impl Inner {
    fn scrub(&self, text: &str) -> String {
        let refs: Vec<_> = self.secrets.iter().collect();
        scrub(text, &refs)
    }

    /// Target indices to try: the requested model first (by `model` or `provider/model`), then
    /// the rest as fallbacks.
    fn order(&self, wanted: Option<&str>) -> Result<Vec<usize>, BackendError> {
        let all: Vec<usize> = (0..self.targets.len()).collect();
        let Some(w) = wanted else { return Ok(all) };
        let is_wanted = |i: &usize| {
            let t = &self.targets[*i];
            super::names_model(&self.slots[t.slot].provider.name, &t.model.name, w)
        };
        let (mut first, rest): (Vec<usize>, Vec<usize>) = all.into_iter().partition(is_wanted);
        if first.is_empty() {
            return Err(BackendError::Unavailable(format!(
                "no provider lists the model {w}; add it to a [providers.NAME] models list"
            )));
        }
        first.extend(rest);
        Ok(first)
    }

    pub(super) async fn run(&self, request: ChatRequest, cancel: CancellationToken, tx: Tx) {
        let call_started = Instant::now();
        if let Err(e) = self.answer(&request, &cancel, &tx, call_started).await {
            let _ = tx.send(Err(e));
        }
    }

    async fn answer(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        tx: &Tx,
        call_started: Instant,
    ) -> Result<(), BackendError> {
        let prompt_estimate: usize = request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum();
        let mut notes = Notes::default();
        let mut skip = HashSet::new();
        // After a context-length error only a strictly larger window is worth a request.
        let mut needs_window_over = 0usize;
        for t in self.order(request.model.as_deref())? {
            let target = &self.targets[t];
            let slot = &self.slots[target.slot];
            let name = slot.provider.name.as_str();
            if skip.contains(&target.slot) || target.model.context_window <= needs_window_over {
                continue;
            }
            if slot.source == KeySource::Missing {
                let hint = slot
                    .provider
                    .api_key_env
                    .clone()
                    .unwrap_or_else(|| format!("api_key_env in [providers.{name}]"));
                notes.add(
                    target.slot,
                    BackendError::NoKey {
                        provider: name.into(),
                        hint,
                    },
                );
                skip.insert(target.slot);
                continue;
            }
            let client = match slot.client(&self.secrets) {
                Ok(c) => c,
                Err(e) => {
                    notes.add(
                        target.slot,
                        BackendError::Provider {
                            provider: name.into(),
                            message: e,
                        },
                    );
                    skip.insert(target.slot);
                    continue;
                }
            };
            let attempt = Attempt {
                client,
                provider: name,
                model: &target.model.name,
                timeout: Duration::from_secs(slot.provider.timeout_secs.max(1)),
                call_started,
            };
            let cap = attempt::answer_cap(
                request.max_tokens,
                slot.provider.max_tokens,
                target.model.context_window,
                prompt_estimate,
            );
            let mut retries = 0;
            loop {
                if !slot.breaker().allow(Instant::now()) {
                    let message =
                        "paused after repeated failures; tandem will try it again shortly".into();
                    notes.add(
                        target.slot,
                        BackendError::Provider {
                            provider: name.into(),
                            message,
                        },
                    );
                    skip.insert(target.slot);
                    break;
                }
                tracing::debug!(
                    provider = name,
                    model = attempt.model,
                    retries,
                    "cloud request"
                );
                let body = attempt::build_request(attempt.model, request, cap);
                let failure = match attempt::run(&attempt, body, prompt_estimate, cancel, tx).await
                {
                    Outcome::Answered(reason) => {
                        self.settle(slot, reason);
                        if !notes.0.is_empty() {
                            tracing::info!(
                                provider = name,
                                model = attempt.model,
                                "answered after failover"
                            );
                        }
                        return Ok(());
                    }
                    Outcome::Cancelled => {
                        slot.breaker().on_neutral();
                        let _ = tx.send(Ok(StreamEvent::Done(FinishReason::Cancelled)));
                        return Ok(());
                    }
                    Outcome::Failed(f) => f,
                };
                let window = target.model.context_window;
                let failure = match failure {
                    Failure::EmptyStream if prompt_estimate + cap > window => {
                        Failure::ContextLength {
                            detail: format!(
                                "the server sent no answer, and the conversation is about {prompt_estimate} tokens"
                            ),
                        }
                    }
                    f => f,
                };
                let message = self.scrub(&failure.message());
                tracing::warn!(provider = name, model = attempt.model, retries, error = %message, "cloud request failed");
                let provider = name.to_string();
                match failure {
                    Failure::KeyRejected => {
                        slot.breaker().on_neutral();
                        notes.add(target.slot, BackendError::KeyRejected { provider });
                        skip.insert(target.slot);
                    }
                    Failure::ContextLength { .. } => {
                        slot.breaker().on_neutral();
                        needs_window_over = needs_window_over.max(window);
                        let e = BackendError::ContextLength {
                            model: target.model.name.clone(),
                            window,
                            detail: message,
                        };
                        notes.add(target.slot, e);
                    }
                    Failure::EmptyStream
                    | Failure::Fatal {
                        provider_fault: true,
                        ..
                    } => {
                        slot.breaker().on_failure(Instant::now());
                        skip.insert(target.slot);
                        notes.add(target.slot, BackendError::Provider { provider, message });
                    }
                    Failure::Fatal {
                        provider_fault: false,
                        ..
                    } => {
                        slot.breaker().on_neutral();
                        notes.add(target.slot, BackendError::Provider { provider, message });
                    }
                    Failure::Retryable { retry_after, .. } => {
                        slot.breaker().on_failure(Instant::now());
                        let wait = if retries < MAX_RETRIES {
                            retry::delay(retries, retry_after)
                        } else {
                            None
                        };
                        if let Some(wait) = wait {
                            retries += 1;
                            tokio::select! {
                                biased;
                                _ = cancel.cancelled() => {
                                    let _ = tx.send(Ok(StreamEvent::Done(FinishReason::Cancelled)));
                                    return Ok(());
                                }
                                _ = tokio::time::sleep(wait) => continue,
                            }
                        }
                        let message = match retries {
                            0 => message,
                            n => format!("{message} (after {} tries)", n + 1),
                        };
                        notes.add(target.slot, BackendError::Provider { provider, message });
                        skip.insert(target.slot);
                    }
                }
                break;
            }
        }
        Err(notes.into_error())
    }

    /// An answer that reached the user is a success for the breaker, unless the connection
    /// broke under it.
    fn settle(&self, slot: &Slot, reason: FinishReason) {
        let now = Instant::now();
        match reason {
            FinishReason::Interrupted => slot.breaker().on_failure(now),
            FinishReason::Stop | FinishReason::Length | FinishReason::Cancelled => {
                slot.breaker().on_success(now)
            }
        }
    }
}
