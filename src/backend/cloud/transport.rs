//! HTTP for the cloud tier: the async-openai client per provider, the tower service it sends
//! through, and the cheap reachability check `tandem doctor` uses. No retry happens here.
//!
//! Why a custom service: async-openai 0.43's default executor wraps every request in its own
//! `OpenAIRetryLayer` (up to 3 hidden retries on 429, 5xx and connect errors, with its own
//! backoff). Stacked under our retries that would be up to 12 requests per provider, and it
//! hides `Retry-After`. Installing this service (the `middleware` feature) replaces that
//! executor, so each call is exactly one request, and error responses are read here, where the
//! status and headers are still at hand, and scrubbed of keys before anything can log them
//! (async-openai's own error path logs 5xx bodies verbatim).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap};

use super::retry::{HttpFailure, describe_reqwest, retry_after};
use crate::config::Provider;
use crate::secrets::{Redacted, scrub};

/// Enough of an error body for its message; a misbehaving server cannot make us buffer more.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// `tandem doctor` waits this long per provider.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub type OpenAi = Client<OpenAIConfig>;

/// The URL async-openai appends `/chat/completions` to: `Url` keeps a trailing slash on a bare
/// host, which would make `//chat/completions`.
pub fn api_base(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

fn http_client(connect: Duration, total: Option<Duration>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect)
        // A redirect could carry the Authorization header somewhere the user never configured.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(t) = total {
        b = b.timeout(t);
    }
    b.build()
        .map_err(|e| format!("cannot build an HTTP client: {}", describe_reqwest(&e)))
}

/// The client for one provider. `secrets` are every key the backend holds, scrubbed from error
/// bodies (a server may echo the key it rejected).
pub fn openai_client(
    p: &Provider,
    key: Option<&Redacted>,
    secrets: Arc<Vec<Redacted>>,
) -> Result<OpenAi, String> {
    // No overall timeout: an answer may stream for minutes. The failover loop bounds the wait
    // for the first token and for each later chunk instead.
    let http = http_client(Duration::from_secs(p.timeout_secs.clamp(1, 10)), None)?;
    // Always set the key, even to "": OpenAIConfig's default reads OPENAI_API_KEY from the
    // environment, which must never reach a provider the user did not give it to.
    let config = OpenAIConfig::new()
        .with_api_base(api_base(&p.base_url))
        .with_api_key(key.map(Redacted::expose).unwrap_or_default());
    Ok(Client::build(http.clone(), config).with_http_service(Transport { http, secrets }))
}

/// One request per call, nothing more. See the module comment.
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    secrets: Arc<Vec<Redacted>>,
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(factory).await })
    }
}

impl Transport {
    async fn send(&self, factory: HttpRequestFactory) -> Result<reqwest::Response, OpenAIError> {
        let mut request = factory.build().await?;
        harden(request.headers_mut());
        let response = self.http.execute(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let failure = read_failure(response, &self.secrets).await;
        Err(OpenAIError::Boxed(Box::new(failure)))
    }
}

/// A loopback server without a key gets no Authorization header at all rather than "Bearer ";
/// a real key is marked sensitive so no Debug print of the request shows it.
fn harden(headers: &mut HeaderMap) {
    let empty = headers
        .get(AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"Bearer");
    if empty {
        headers.remove(AUTHORIZATION);
    } else if let Some(v) = headers.get_mut(AUTHORIZATION) {
        v.set_sensitive(true);
    }
}

async fn read_failure(response: reqwest::Response, secrets: &[Redacted]) -> HttpFailure {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let (message, code) = error_message(&body);
    let message = match message {
        Some(m) => m,
        None => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let refs: Vec<&Redacted> = secrets.iter().collect();
    HttpFailure {
        status: status.as_u16(),
        message: scrub(&message, &refs),
        code,
        retry_after,
    }
}

/// The message and code from the shapes servers use: OpenAI's `{"error":{"message","code"}}`,
/// `{"error":"..."}`, FastAPI's `{"detail":"..."}`, or plain text (first line, shortened).
fn error_message(body: &[u8]) -> (Option<String>, Option<String>) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let err = &v["error"];
        let code = match &err["code"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let message = [&err["message"], err, &v["message"], &v["detail"]]
            .into_iter()
            .find_map(|m| m.as_str().map(str::to_string));
        if message.is_some() {
            return (message.map(|m| one_line(&m)), code);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = one_line(&text);
    ((!text.is_empty()).then_some(text), None)
}

fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// The result of `check`: whether `GET {base_url}/models` answered 2xx, and how fast.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reachability {
    pub ok: bool,
    pub latency_ms: u64,
    /// The HTTP status, when the server answered at all.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// A cheap connectivity check for `tandem doctor`. It uses plain reqwest rather than
/// async-openai's `models().list()` so that a server whose model list does not match
/// async-openai's types still counts as reachable, and so the status is kept.
pub async fn check(provider: &Provider, key: Option<&Redacted>) -> Reachability {
    let started = Instant::now();
    let fail = |status: Option<u16>, msg: String| Reachability {
        ok: false,
        latency_ms: started.elapsed().as_millis() as u64,
        status,
        error: Some(match key {
            Some(k) => scrub(&msg, &[k]),
            None => msg,
        }),
    };
    let http = match http_client(CHECK_TIMEOUT, Some(CHECK_TIMEOUT)) {
        Ok(h) => h,
        Err(e) => return fail(None, e),
    };
    let mut request = http.get(format!("{}/models", api_base(&provider.base_url)));
    if let Some(k) = key {
        request = request.bearer_auth(k.expose());
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Reachability {
            ok: true,
            latency_ms: started.elapsed().as_millis() as u64,
            status: Some(r.status().as_u16()),
            error: None,
        },
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => fail(
            Some(r.status().as_u16()),
            format!("key rejected: run `tandem auth set {}`", provider.name),
        ),
        Ok(r) => fail(Some(r.status().as_u16()), format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => fail(
            None,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        ),
        Err(e) => fail(None, describe_reqwest(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_every_common_shape_give_a_message() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            error_message(openai),
            (
                Some("Rate limit reached".into()),
                Some("rate_limit_exceeded".into())
            )
        );
        assert_eq!(
            error_message(br#"{"error":"overloaded"}"#).0.as_deref(),
            Some("overloaded")
        );
        assert_eq!(
            error_message(br#"{"detail":"Not Found"}"#).0.as_deref(),
            Some("Not Found")
        );
        assert_eq!(
            error_message(b"\n upstream timed out \nmore").0.as_deref(),
            Some("upstream timed out")
        );
        assert_eq!(error_message(b"").0, None);
    }

    #[test]
    fn an_empty_bearer_is_dropped_and_a_real_one_hidden() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        harden(&mut h);
        assert!(h.get(AUTHORIZATION).is_none());
        h.insert(AUTHORIZATION, "Bearer sk-123".parse().unwrap());
        harden(&mut h);
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("sk-123"));
    }

    #[test]
    fn the_api_base_has_no_trailing_slash() {
        assert_eq!(
            api_base(&"http://127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            api_base(&"https://api.openai.com/v1/".parse().unwrap()),
            "https://api.openai.com/v1"
        );
    }
}
