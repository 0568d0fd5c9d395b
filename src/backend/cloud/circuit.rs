//! The per-provider circuit breaker: plain state plus the clock readings it is given. It owns
//! the open/closed decision only; it never sleeps, spawns or touches the network, so the router
//! can read it for free and tests can drive it with a paused tokio clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failures that open the circuit.
const CONSECUTIVE_FAILURES: u32 = 3;
/// The window over which the failure rate is judged.
const WINDOW: Duration = Duration::from_secs(60);
/// A rate needs a few samples: without this, the very first failure (1 of 1) would be "100%".
const MIN_SAMPLES: usize = 4;
/// How long an open circuit refuses requests before letting one probe through.
pub const OPEN_FOR: Duration = Duration::from_secs(30);

/// What the breaker currently allows, as the router and `tandem doctor` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// Refusing requests; a probe is allowed once `retry_in` has passed.
    Open {
        retry_in: Duration,
    },
    /// One probe may go (or is in flight); its result closes or re-opens the circuit.
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    consecutive: u32,
    /// (when, failed) for requests finished in the last `WINDOW`, oldest first.
    recent: VecDeque<(Instant, bool)>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed,
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }
}

impl Breaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a request may go now. Past the open period the first caller becomes the probe
    /// and everyone else is refused until the probe reports back.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing: true } => false,
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                true
            }
        }
    }

    pub fn on_success(&mut self, now: Instant) {
        match self.state {
            State::HalfOpen { .. } => self.reset(),
            State::Closed => {
                self.consecutive = 0;
                self.push(now, false);
            }
            // A request that began before the circuit opened proves little; the probe decides.
            State::Open { .. } => {}
        }
    }

    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            State::HalfOpen { .. } => self.open(now),
            State::Closed => {
                self.consecutive += 1;
                self.push(now, true);
                let failed = self.recent.iter().filter(|(_, f)| *f).count();
                let rate_tripped =
                    self.recent.len() >= MIN_SAMPLES && failed * 2 > self.recent.len();
                if self.consecutive >= CONSECUTIVE_FAILURES || rate_tripped {
                    self.open(now);
                }
            }
            State::Open { .. } => {}
        }
    }

    /// A request that ended without a verdict on the provider's health (cancelled by the user,
    /// a rejected key, a too-long prompt). A probe slot it held is given back.
    pub fn on_neutral(&mut self) {
        if let State::HalfOpen { probing: true } = self.state {
            self.state = State::HalfOpen { probing: false };
        }
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { until } if now >= until => CircuitState::HalfOpen,
            State::Open { until } => CircuitState::Open {
                retry_in: until - now,
            },
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + OPEN_FOR,
        };
    }

    fn reset(&mut self) {
        *self = Breaker::default();
    }

    fn push(&mut self, now: Instant, failed: bool) {
        self.recent.push_back((now, failed));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn open_for(b: &Breaker) -> bool {
        matches!(b.state(Instant::now()), CircuitState::Open { .. })
    }

    #[tokio::test(start_paused = true)]
    async fn three_consecutive_failures_open_it() {
        let mut b = Breaker::new();
        for _ in 0..2 {
            assert!(b.allow(Instant::now()));
            b.on_failure(Instant::now());
        }
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
        b.on_failure(Instant::now());
        assert!(open_for(&b));
        assert!(!b.allow(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_consecutive_count() {
        let mut b = Breaker::new();
        // F F S S S S F F: never three in a row, and 4 of 8 is not more than half.
        for failed in [true, true, false, false, false, false, true, true] {
            if failed {
                b.on_failure(Instant::now());
            } else {
                b.on_success(Instant::now());
            }
        }
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_rule_needs_more_than_half_failing_in_the_window() {
        let mut b = Breaker::new();
        // fail, ok, fail, ok: exactly half, stays closed.
        for i in 0..4 {
            if i % 2 == 0 {
                b.on_failure(Instant::now());
            } else {
                b.on_success(Instant::now());
            }
            advance(Duration::from_secs(1)).await;
        }
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
        b.on_failure(Instant::now());
        assert!(open_for(&b), "3 of 5 failed within 60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_older_than_the_window_are_forgotten() {
        let mut b = Breaker::new();
        b.on_failure(Instant::now());
        b.on_success(Instant::now());
        b.on_failure(Instant::now());
        advance(Duration::from_secs(61)).await;
        b.on_success(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn open_for_30_seconds_then_exactly_one_probe() {
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        advance(Duration::from_secs(29)).await;
        assert_eq!(
            b.state(Instant::now()),
            CircuitState::Open {
                retry_in: Duration::from_secs(1)
            }
        );
        assert!(!b.allow(Instant::now()));
        advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(Instant::now()), CircuitState::HalfOpen);
        assert!(b.allow(Instant::now()), "the probe");
        assert!(!b.allow(Instant::now()), "only one probe at a time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_probe_closes_it() {
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        advance(OPEN_FOR).await;
        assert!(b.allow(Instant::now()));
        b.on_success(Instant::now());
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
        // The history is cleared: two new failures do not re-open it.
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.state(Instant::now()), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_probe_reopens_it_for_another_30_seconds() {
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        advance(OPEN_FOR).await;
        assert!(b.allow(Instant::now()));
        b.on_failure(Instant::now());
        assert_eq!(
            b.state(Instant::now()),
            CircuitState::Open { retry_in: OPEN_FOR }
        );
        advance(OPEN_FOR).await;
        assert!(b.allow(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_without_verdict_frees_the_slot() {
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        advance(OPEN_FOR).await;
        assert!(b.allow(Instant::now()));
        b.on_neutral();
        assert!(b.allow(Instant::now()), "the next caller may probe");
    }
}
