//! Admission to the in-process engine: up to `slots` answers decode together, a bounded number
//! wait their turn in order, and the rest are told when to come back (`BackendError::Busy`).
//!
//! Why a bound on running answers: the engine decodes every running answer in one batch (the
//! carried mistral.rs attends each row over its own cache, so answers of different lengths
//! share a step), which reads the weights once for all of them; its scheduler holds at most
//! `MAX_SEQS` sequences. The bound on waiting keeps a burst of requests from piling up behind
//! one small CPU model (`serve.local_queue`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::backend::BackendError;

/// Until an answer has been timed, a Retry-After assumes this long per answer ahead.
const FIRST_GUESS_MS: u64 = 2_000;
/// Retry-After never says more than this: the queue may drain sooner than the mean suggests.
const MAX_RETRY_AFTER_SECS: u64 = 60;

/// How busy the engine is right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Answers being generated (at most the gate's slots).
    pub running: usize,
    /// Answers waiting for their turn.
    pub waiting: usize,
}

pub struct Gate {
    slot: Arc<Semaphore>,
    /// The semaphore's size (it does not report it back), for Retry-After.
    slots: usize,
    max_waiting: AtomicUsize,
    waiting: AtomicUsize,
    running: AtomicUsize,
    /// Moving mean of how long an answer holds the engine, in ms, for Retry-After.
    mean_ms: AtomicU64,
}

/// The right to generate; the next in line goes when it is dropped.
pub struct Pass {
    _permit: OwnedSemaphorePermit,
    gate: Arc<Gate>,
    since: Instant,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::SeqCst);
        let took = self.since.elapsed().as_millis() as u64;
        let old = self.gate.mean_ms.load(Ordering::Relaxed);
        // Weighted 3:1 towards the past, so one odd answer moves it only a little.
        self.gate
            .mean_ms
            .store((old * 3 + took) / 4, Ordering::Relaxed);
    }
}

/// A place in the queue, given back however the wait ends (admitted, cancelled, dropped).
struct Place<'a>(&'a Gate);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// A gate that lets `slots` answers run and `max_waiting` wait; `usize::MAX` never refuses.
    pub fn new(slots: usize, max_waiting: usize) -> Arc<Gate> {
        let slots = slots.max(1);
        Arc::new(Gate {
            slot: Arc::new(Semaphore::new(slots)),
            slots,
            max_waiting: AtomicUsize::new(max_waiting),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            mean_ms: AtomicU64::new(FIRST_GUESS_MS),
        })
    }

    pub fn set_max_waiting(&self, n: usize) {
        self.max_waiting.store(n, Ordering::SeqCst);
    }

    pub fn load(&self) -> Load {
        Load {
            running: self.running.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
        }
    }

    /// Waits for the engine. `Ok(None)` when `cancel` fired first; `Busy` when the queue is full.
    pub async fn enter(
        self: &Arc<Self>,
        cancel: &CancellationToken,
    ) -> Result<Option<Pass>, BackendError> {
        if let Ok(p) = self.slot.clone().try_acquire_owned() {
            return Ok(Some(self.pass(p)));
        }
        let max = self.max_waiting.load(Ordering::SeqCst);
        let reserved = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w < max).then_some(w + 1)
            });
        if reserved.is_err() {
            return Err(BackendError::Busy {
                waiting: max,
                retry_after_secs: self.retry_after(max),
            });
        }
        let _place = Place(self);
        // tokio's semaphore is fair: waiters are admitted in the order they came.
        let permit = tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            p = self.slot.clone().acquire_owned() => p,
        };
        let permit =
            permit.map_err(|_| BackendError::Engine("the engine's queue was closed".into()))?;
        Ok(Some(self.pass(permit)))
    }

    fn pass(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Pass {
        self.running.fetch_add(1, Ordering::SeqCst);
        Pass {
            _permit: permit,
            gate: self.clone(),
            since: Instant::now(),
        }
    }

    /// Seconds until a request sent now would likely start: the answers ahead and itself, at the
    /// mean answer time, `slots` at a time. The mean is measured while answers share the batch,
    /// so it already includes what batching costs each one.
    fn retry_after(&self, ahead: usize) -> u64 {
        let ms = self
            .mean_ms
            .load(Ordering::Relaxed)
            .saturating_mul((ahead as u64).saturating_add(1));
        ms.div_ceil(self.slots as u64 * 1000)
            .clamp(1, MAX_RETRY_AFTER_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_runs_a_bounded_number_wait_and_the_rest_are_told_when_to_return() {
        let gate = Gate::new(1, 1);
        let never = CancellationToken::new();
        let first = gate.enter(&never).await.unwrap().unwrap();
        assert_eq!(
            gate.load(),
            Load {
                running: 1,
                waiting: 0
            }
        );
        let g = gate.clone();
        let queued = tokio::spawn(async move {
            let c = CancellationToken::new();
            g.enter(&c).await.map(|p| p.is_some())
        });
        while gate.load().waiting == 0 {
            tokio::task::yield_now().await;
        }
        let busy = gate.enter(&never).await.err().unwrap();
        assert!(
            matches!(busy, BackendError::Busy { waiting: 1, retry_after_secs } if retry_after_secs >= 1),
            "{busy:?}"
        );
        drop(first);
        assert!(
            queued.await.unwrap().unwrap(),
            "the waiting answer got its turn"
        );
        assert_eq!(gate.load(), Load::default());
    }

    #[test]
    fn retry_after_counts_the_answers_ahead_slots_at_a_time() {
        // Before any answer is timed, each is guessed at FIRST_GUESS_MS (2 s).
        assert_eq!(
            Gate::new(1, 4).retry_after(4),
            10,
            "five answers, one at a time"
        );
        assert_eq!(
            Gate::new(4, 4).retry_after(4),
            3,
            "five answers, four at a time: 2.5 s"
        );
        assert_eq!(
            Gate::new(4, 100).retry_after(100),
            51,
            "101 answers: 50.5 s"
        );
        assert_eq!(Gate::new(4, 200).retry_after(200), MAX_RETRY_AFTER_SECS);
        assert_eq!(
            Gate::new(4, usize::MAX).retry_after(usize::MAX),
            MAX_RETRY_AFTER_SECS
        );
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_its_place_back() {
        let gate = Gate::new(1, 4);
        let never = CancellationToken::new();
        let _first = gate.enter(&never).await.unwrap().unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(gate.enter(&cancel).await.unwrap().is_none());
        assert_eq!(
            gate.load(),
            Load {
                running: 1,
                waiting: 0
            }
        );
    }

    #[tokio::test]
    async fn answers_up_to_the_slots_run_together() {
        let gate = Gate::new(3, 0);
        let never = CancellationToken::new();
        let mut passes = Vec::new();
        for _ in 0..3 {
            passes.push(gate.enter(&never).await.unwrap().unwrap());
        }
        assert_eq!(gate.load().running, 3);
        assert!(matches!(
            gate.enter(&never).await,
            Err(BackendError::Busy { .. })
        ));
        passes.pop();
        let fourth = gate.enter(&never).await.unwrap();
        assert!(fourth.is_some(), "a freed slot is taken at once");
        assert_eq!(gate.load().running, 3);
    }
}
