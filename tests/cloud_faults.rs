//! The cloud tier against a scripted fault server: for each fault, what the user gets, how many
//! requests reached the server (no retry storms), and that nothing hangs (every test is bounded).

#[path = "cloud_faults/checks.rs"]
mod checks;
#[path = "cloud_faults/server.rs"]
mod server;
#[path = "cloud_faults/streams.rs"]
mod streams;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tandem::backend::cloud::{CircuitState, CloudBackend};
use tandem::backend::{BackendError, ChatBackend, ChatRequest, FinishReason, StreamEvent};
use tandem::chat::Message;
use tandem::config::{ModelSpec, Provider, Tier};
use tokio_util::sync::CancellationToken;

use server::{FaultServer, Reply};

const KEY: &str = "sk-test-0123456789abcdef";
/// Far above any scripted delay: a test that reaches it has hung.
const BOUND: Duration = Duration::from_secs(30);

type Events = Vec<Result<StreamEvent, BackendError>>;

fn provider(name: &str, base_url: &str, models: &[(&str, usize)], timeout_secs: u64) -> Provider {
    Provider {
        name: name.into(),
        base_url: base_url.parse().unwrap(),
        api_key_env: Some("FAULT_TEST_KEY".into()),
        models: models
            .iter()
            .map(|(m, w)| ModelSpec {
                name: m.to_string(),
                context_window: *w,
                input_price: 0.0,
                output_price: 0.0,
            })
            .collect(),
        tier: Tier::Cloud,
        timeout_secs,
        trusted: false,
        max_tokens: 4096,
    }
}

fn backend(providers: &[Provider]) -> CloudBackend {
    CloudBackend::from_providers(providers, &|v| {
        (v == "FAULT_TEST_KEY").then(|| KEY.to_string())
    })
}

fn one(server: &FaultServer) -> CloudBackend {
    backend(&[provider("fault", &server.base_url, &[("m", 8192)], 2)])
}

async fn ask(b: &CloudBackend) -> Events {
    let req = ChatRequest::new(vec![Message::user("Say hello")]);
    tokio::time::timeout(
        BOUND,
        b.stream(req, CancellationToken::new()).collect::<Events>(),
    )
    .await
    .expect("the stream hung")
}

fn text(events: &Events) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn last(events: &Events) -> &Result<StreamEvent, BackendError> {
    events.last().expect("at least one event")
}

fn error(events: &Events) -> &BackendError {
    match last(events) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?} in {events:?}"),
    }
}

#[tokio::test]
async fn a_healthy_stream_maps_to_events_and_reports_server_usage() {
    let s = FaultServer::start(|_, _| Reply::answer(&["Hel", "lo"], Some((12, 2)))).await;
    let ev = ask(&one(&s)).await;
    assert_eq!(
        ev[0],
        Ok(StreamEvent::Started {
            provider: "fault".into(),
            model: "m".into()
        })
    );
    assert_eq!(text(&ev), "Hello");
    let usage = ev.iter().find_map(|e| match e {
        Ok(StreamEvent::Usage(u)) => Some(*u),
        _ => None,
    });
    let usage = usage.expect("a usage event");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 2));
    assert_eq!(last(&ev), &Ok(StreamEvent::Done(FinishReason::Stop)));
    assert_eq!(s.hits(), 1);
    // The key travels in the Authorization header and nowhere else; usage was asked for.
    let seen = &s.seen()[0];
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        !seen.body.contains(KEY) && !seen.uri.contains(KEY) && !seen.other_headers.contains(KEY)
    );
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"]["include_usage"], json!(true));
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_then_retried() {
    let s = FaultServer::start(|n, _| match n {
        0 => Reply::Status {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body:
                json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}})
                    .to_string(),
        },
        _ => Reply::answer(&["ok"], None),
    })
    .await;
    let started = Instant::now();
    let ev = ask(&one(&s)).await;
    assert_eq!(text(&ev), "ok");
    assert_eq!(s.hits(), 2, "one retry, no more");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_moves_on_without_waiting() {
    let s = FaultServer::start(|_, _| Reply::Status {
        status: 429,
        headers: vec![("retry-after", "120".into())],
        body: json!({"error": {"message": "slow down"}}).to_string(),
    })
    .await;
    let started = Instant::now();
    let ev = ask(&one(&s)).await;
    assert!(
        matches!(error(&ev), BackendError::Provider { provider, message } if provider == "fault" && message.contains("429"))
    );
    assert_eq!(s.hits(), 1);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_persistent_500_is_tried_three_times_in_all() {
    let s = FaultServer::start(|_, _| Reply::error(500, "internal error")).await;
    let started = Instant::now();
    let ev = ask(&one(&s)).await;
    let e = error(&ev);
    assert!(
        matches!(e, BackendError::Provider { message, .. } if message.contains("HTTP 500") && message.contains("3 tries")),
        "{e}"
    );
    assert_eq!(
        s.hits(),
        3,
        "1 request + 2 retries, and async-openai adds none"
    );
    // Backoff 0.5 s then 1 s, each ±20%.
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        ev.len(),
        1,
        "nothing but the error reached the user: {ev:?}"
    );
}

#[tokio::test]
async fn a_503_that_clears_is_answered_on_a_retry() {
    let s = FaultServer::start(|n, _| {
        if n < 2 {
            Reply::error(503, "overloaded")
        } else {
            Reply::answer(&["fine"], None)
        }
    })
    .await;
    let ev = ask(&one(&s)).await;
    assert_eq!(text(&ev), "fine");
    assert_eq!(last(&ev), &Ok(StreamEvent::Done(FinishReason::Stop)));
    assert_eq!(s.hits(), 3);
}

#[tokio::test]
async fn a_401_says_key_rejected_and_is_not_retried() {
    // Like OpenAI, the server quotes the key it rejected; it must not reach the user.
    let s =
        FaultServer::start(|_, _| Reply::error(401, &format!("Incorrect API key provided: {KEY}")))
            .await;
    let ev = ask(&one(&s)).await;
    let e = error(&ev);
    assert_eq!(
        e,
        &BackendError::KeyRejected {
            provider: "fault".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "key rejected for fault: run `tandem auth set fault`"
    );
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn a_slow_first_byte_times_out_and_is_retried_twice() {
    let s = FaultServer::start(|_, _| {
        Reply::Delay(
            Duration::from_secs(5),
            Box::new(Reply::answer(&["late"], None)),
        )
    })
    .await;
    let b = backend(&[provider("slow", &s.base_url, &[("m", 8192)], 1)]);
    let started = Instant::now();
    let ev = ask(&b).await;
    let e = error(&ev);
    assert!(
        matches!(e, BackendError::Provider { message, .. } if message.contains("no answer within 1 s")),
        "{e}"
    );
    assert_eq!(s.hits(), 3);
    // 3 × 1 s timeouts + ~1.5 s backoff, far below 3 × the 5 s delay.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

fn context_error() -> Reply {
    Reply::status(
        400,
        json!({"error": {"message": "This model's maximum context length is 2048 tokens.", "code": "context_length_exceeded"}}),
    )
}

#[tokio::test]
async fn a_context_length_error_moves_to_a_larger_window() {
    let s = FaultServer::start(|_, r| {
        if r.model.as_deref() == Some("small") {
            context_error()
        } else {
            Reply::answer(&["fits"], None)
        }
    })
    .await;
    // "tiny" (1024) is skipped without a request once "small" (2048) was too small.
    let b = backend(&[provider(
        "ctx",
        &s.base_url,
        &[("small", 2048), ("tiny", 1024), ("big", 32768)],
        2,
    )]);
    let ev = ask(&b).await;
    assert_eq!(
        ev[0],
        Ok(StreamEvent::Started {
            provider: "ctx".into(),
            model: "big".into()
        })
    );
    assert_eq!(text(&ev), "fits");
    let models: Vec<_> = s
        .seen()
        .into_iter()
        .map(|r| r.model.unwrap_or_default())
        .collect();
    assert_eq!(models, ["small", "big"]);
}

#[tokio::test]
async fn a_context_length_error_with_no_larger_model_says_so() {
    let s = FaultServer::start(|_, _| context_error()).await;
    let b = backend(&[provider("ctx", &s.base_url, &[("small", 2048)], 2)]);
    let ev = ask(&b).await;
    let e = error(&ev);
    assert!(
        matches!(e, BackendError::ContextLength { model, window: 2048, .. } if model == "small"),
        "{e}"
    );
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn a_failing_provider_fails_over_to_the_next() {
    let bad = FaultServer::start(|_, _| Reply::error(503, "down")).await;
    let good = FaultServer::start(|_, _| Reply::answer(&["from b"], None)).await;
    let b = backend(&[
        provider("a", &bad.base_url, &[("m1", 8192), ("m2", 8192)], 2),
        provider("b", &good.base_url, &[("m", 8192)], 2),
    ]);
    let ev = ask(&b).await;
    assert_eq!(
        ev[0],
        Ok(StreamEvent::Started {
            provider: "b".into(),
            model: "m".into()
        })
    );
    assert_eq!(text(&ev), "from b");
    assert_eq!(
        bad.hits(),
        3,
        "retries stay on m1; m2 of the failing provider is skipped"
    );
    assert_eq!(good.hits(), 1);
}

#[tokio::test]
async fn an_open_circuit_stops_requests_and_reports_offline() {
    let s = FaultServer::start(|_, _| Reply::error(500, "boom")).await;
    let b = one(&s);
    assert!(!b.health().is_offline());
    let _ = ask(&b).await;
    assert_eq!(s.hits(), 3);
    assert!(matches!(
        b.health().providers[0].circuit,
        CircuitState::Open { .. }
    ));
    assert!(b.health().is_offline());
    let ev = ask(&b).await;
    assert!(
        matches!(error(&ev), BackendError::Provider { message, .. } if message.contains("paused"))
    );
    assert_eq!(s.hits(), 3, "no request while the circuit is open");
}
