//! Who may call the server and what is written about each call: the bearer token check (in
//! constant time) and one log line per request on stderr (route, model, tokens, latency,
//! status), as text or JSON. Message contents are never in it; at debug level they go to the
//! log file only, like every other front-end's.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::secrets::Redacted;

/// Whether an `Authorization` header carries the token. Both sides are hashed first, so the
/// comparison takes the same time whatever the length or the first differing byte, and the
/// digests are compared without an early exit.
pub fn authorized(header: Option<&str>, token: &Redacted) -> bool {
    let given = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .unwrap_or("")
        .trim();
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.expose().as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // A missing header must fail even for an (impossible) empty token.
    std::hint::black_box(diff) == 0 && !given.is_empty()
}

/// One request, as logged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Entry {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The model the client asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub latency_ms: f64,
    pub stream: bool,
    /// The error's code, for a request that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    pub fn took(&mut self, d: Duration) {
        self.latency_ms = (d.as_secs_f64() * 1e5).round() / 100.0;
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    pub json: bool,
}

impl AccessLog {
    /// Writes the line in one call, so lines from concurrent requests never interleave.
    pub fn write(&self, e: &Entry) {
        let line = if self.json {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            // When, in Unix seconds, for machines; the text line leaves it to the collector.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
                .unwrap_or(0.0);
            v["ts"] = now.into();
            v.to_string()
        } else {
            let opt = |o: &Option<String>| crate::sanitize::one_line(o.as_deref().unwrap_or("-"));
            format!(
                "{} {} {} route={} model={} tokens={}+{} latency_ms={:.2} stream={}{}",
                e.method,
                e.path,
                e.status,
                e.route.unwrap_or("-"),
                opt(&e.model.clone().or(e.requested.clone())),
                e.prompt_tokens,
                e.completion_tokens,
                e.latency_ms,
                e.stream,
                e.error
                    .as_ref()
                    .map(|c| format!(" error={c}"))
                    .unwrap_or_default(),
            )
        };
        tracing::info!(target: "tandem::serve", "{line}");
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let t = Redacted::new("s3cret");
        assert!(authorized(Some("Bearer s3cret"), &t));
        assert!(!authorized(Some("Bearer s3cre"), &t));
        assert!(!authorized(Some("s3cret"), &t));
        assert!(!authorized(None, &t));
        assert!(!authorized(Some("Bearer "), &Redacted::new("")));
    }
}
