//! What a failed attempt means for the next one: the classification of HTTP statuses, transport
//! errors and broken streams, and how long to wait before retrying. Pure functions only: the
//! failover loop does the waiting and the breaker does the bookkeeping.

use std::time::Duration;

use async_openai::error::OpenAIError;
use reqwest::header::HeaderMap;

/// Retries after the first attempt, and only before the first token has been shown.
pub const MAX_RETRIES: u32 = 2;
const BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest we wait before a retry, whether we chose the delay or the server did. A server
/// that asks for longer is better answered by the next provider than by a frozen prompt.
pub const MAX_DELAY: Duration = Duration::from_secs(8);

/// Why one attempt failed, sorted by what to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 401/403: retrying with the same key cannot help.
    KeyRejected,
    /// The prompt does not fit: only a model with a larger window can help.
    ContextLength { detail: String },
    /// 408, 409, 429, 5xx, connection errors, timeouts: may pass on a retry.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again the same way. `provider_fault` says whether it counts against the
    /// provider's health (a malformed stream does; a 404 for one model does not).
    Fatal {
        message: String,
        provider_fault: bool,
    },
    /// A 200 with no answer at all. Usually a broken server, but llama-cpp-python, for one,
    /// reports an over-long prompt this way when streaming, so the caller weighs the size.
    EmptyStream,
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::KeyRejected => "key rejected".into(),
            Failure::ContextLength { detail } => detail.clone(),
            Failure::Retryable { message, .. } | Failure::Fatal { message, .. } => message.clone(),
            Failure::EmptyStream => "the server ended the stream without an answer".into(),
        }
    }
}

/// An HTTP error response as the transport read it, already scrubbed of keys. It travels
/// through async-openai inside `OpenAIError::Boxed` so the status and headers survive.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status}: {message}")]
pub struct HttpFailure {
    pub status: u16,
    pub message: String,
    pub code: Option<String>,
    pub retry_after: Option<Duration>,
}

pub fn classify_status(f: &HttpFailure) -> Failure {
    match f.status {
        401 | 403 => Failure::KeyRejected,
        _ if is_context_length(f.code.as_deref(), &f.message) => Failure::ContextLength {
            detail: f.message.clone(),
        },
        408 | 409 | 429 | 500..=599 => Failure::Retryable {
            message: f.to_string(),
            retry_after: f.retry_after,
        },
        _ => Failure::Fatal {
            message: f.to_string(),
            provider_fault: false,
        },
    }
}

/// Servers word this differently: OpenAI sends a code, llama.cpp and vLLM only a message.
pub fn is_context_length(code: Option<&str>, message: &str) -> bool {
    if code == Some("context_length_exceeded") {
        return true;
    }
    let m = message.to_ascii_lowercase();
    [
        "context length",
        "context window",
        "context_length",
        "maximum context",
        "prompt is too long",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Classifies an error from async-openai's `create_stream` or from its chunk stream.
pub fn classify(e: &OpenAIError) -> Failure {
    match e {
        OpenAIError::Boxed(b) => match b.downcast_ref::<HttpFailure>() {
            Some(f) => classify_status(f),
            None => match b.downcast_ref::<reqwest::Error>() {
                Some(r) => Failure::Retryable {
                    message: describe_reqwest(r),
                    retry_after: None,
                },
                None => Failure::Retryable {
                    message: b.to_string(),
                    retry_after: None,
                },
            },
        },
        OpenAIError::Reqwest(r) => Failure::Retryable {
            message: describe_reqwest(r),
            retry_after: None,
        },
        OpenAIError::ApiError(a) => classify_status(&HttpFailure {
            status: a.status_code.as_u16(),
            message: a.api_error.message.clone(),
            code: a.api_error.code.clone(),
            retry_after: None,
        }),
        OpenAIError::StreamError(s) => Failure::Retryable {
            message: format!("the connection broke: {s}"),
            retry_after: None,
        },
        OpenAIError::JSONDeserialize(err, _) => Failure::Fatal {
            // The raw content is left out: it is the server's text, possibly very long.
            message: format!("the server sent a malformed stream chunk ({err})"),
            provider_fault: true,
        },
        other => Failure::Fatal {
            message: other.to_string(),
            provider_fault: false,
        },
    }
}

/// One line a user can act on; reqwest's own Display names the URL but hides the cause.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke"
    } else {
        "the request failed"
    };
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let root = root.to_string();
    if root == e.to_string() {
        what.to_string()
    } else {
        format!("{what}: {root}")
    }
}

/// `retry-after-ms` (OpenAI's, fractional) wins over `Retry-After` (seconds). The HTTP-date form
/// of `Retry-After` is ignored: the backoff schedule is a fine stand-in for it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let secs = num("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| num("retry-after"))?;
    // A value too large for a Duration (`Retry-After: 99999999999999999999`) is a very long
    // wait, which `delay` then declines; `from_secs_f64` would panic on it.
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// The wait before retry number `retry` (0 for the first retry), or `None` when the server
/// asked for longer than we are willing to keep the user waiting.
pub fn delay(retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
    match retry_after {
        Some(d) if d > MAX_DELAY => None,
        Some(d) => Some(d),
        None => Some(backoff(retry, fastrand::f64())),
    }
}

/// 0.5 s doubling up to 8 s, spread by ±20% so that many clients cut off by one outage do not
/// come back in lockstep. `unit` is a random number in [0, 1).
pub fn backoff(retry: u32, unit: f64) -> Duration {
    let base = BASE_DELAY
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(MAX_DELAY);
    base.mul_f64(0.8 + 0.4 * unit).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, message: &str) -> HttpFailure {
        HttpFailure {
            status,
            message: message.into(),
            code: None,
            retry_after: None,
        }
    }

    #[test]
    fn statuses_sort_into_what_to_do_next() {
        assert_eq!(classify_status(&http(401, "bad key")), Failure::KeyRejected);
        assert_eq!(classify_status(&http(403, "nope")), Failure::KeyRejected);
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(&http(s, "x")), Failure::Retryable { .. }),
                "{s}"
            );
        }
        for s in [400, 404, 422] {
            assert!(
                matches!(
                    classify_status(&http(s, "x")),
                    Failure::Fatal {
                        provider_fault: false,
                        ..
                    }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn context_length_is_found_by_code_or_wording() {
        let by_code = HttpFailure {
            code: Some("context_length_exceeded".into()),
            ..http(400, "too big")
        };
        assert!(matches!(
            classify_status(&by_code),
            Failure::ContextLength { .. }
        ));
        let llama = http(400, "Requested tokens (5000) exceed context window of 2048");
        assert!(matches!(
            classify_status(&llama),
            Failure::ContextLength { .. }
        ));
        let openai = http(400, "This model's maximum context length is 8192 tokens.");
        assert!(matches!(
            classify_status(&openai),
            Failure::ContextLength { .. }
        ));
    }

    #[test]
    fn retry_after_headers_are_read_ms_first() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&d), None);
        // Larger than any Duration: a long wait, declined by `delay`, never a panic.
        let mut huge = HeaderMap::new();
        huge.insert("retry-after", "99999999999999999999".parse().unwrap());
        assert_eq!(retry_after(&huge), Some(Duration::MAX));
        assert_eq!(delay(0, retry_after(&huge)), None);
        huge.insert("retry-after-ms", "1e300".parse().unwrap());
        assert_eq!(retry_after(&huge), Some(Duration::MAX));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_and_caps_at_eight() {
        assert_eq!(backoff(0, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(10, 0.999), MAX_DELAY);
        assert_eq!(backoff(0, 0.0), Duration::from_millis(400));
        assert!(backoff(0, 0.999) < Duration::from_millis(600));
    }

    #[test]
    fn a_long_retry_after_means_move_on() {
        assert_eq!(
            delay(0, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(delay(0, Some(Duration::from_secs(120))), None);
        assert!(delay(1, None).is_some());
    }
}
