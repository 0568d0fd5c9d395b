//! Faults inside a 200 stream: cut connections, malformed chunks, empty streams, missing
//! usage, and cancellation. Nothing may be retried once text has been shown.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tandem::backend::{BackendError, ChatBackend, ChatRequest, FinishReason, StreamEvent};
use tandem::chat::Message;
use tokio_util::sync::CancellationToken;

use super::server::{FaultServer, Reply, chunk};
use super::{ask, error, last, one, text};

#[tokio::test]
async fn without_server_usage_tokens_are_counted() {
    let s = FaultServer::start(|_, _| Reply::answer(&["four score and seven"], None)).await;
    let ev = ask(&one(&s)).await;
    let usage = ev.iter().find_map(|e| match e {
        Ok(StreamEvent::Usage(u)) => Some(*u),
        _ => None,
    });
    let usage = usage.expect("a usage event");
    assert!(
        usage.prompt_tokens > 0 && usage.completion_tokens > 0,
        "{usage:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_mid_answer_keeps_the_text_and_is_marked_interrupted() {
    let s = FaultServer::start(|_, _| Reply::Sse {
        events: vec![
            chunk(json!({"content": "The answer is"}), None),
            chunk(json!({"content": " forty"}), None),
        ],
        cut: true,
    })
    .await;
    let ev = ask(&one(&s)).await;
    assert_eq!(text(&ev), "The answer is forty");
    assert!(matches!(ev[0], Ok(StreamEvent::Started { .. })));
    assert!(matches!(ev[ev.len() - 2], Ok(StreamEvent::Usage(_))));
    assert_eq!(last(&ev), &Ok(StreamEvent::Done(FinishReason::Interrupted)));
    assert_eq!(s.hits(), 1, "never retried once text was shown");
}

#[tokio::test]
async fn a_cut_before_the_first_token_is_retried() {
    let s = FaultServer::start(|n, _| match n {
        0 => Reply::Sse {
            events: vec![chunk(json!({"role": "assistant"}), None)],
            cut: true,
        },
        _ => Reply::answer(&["whole"], None),
    })
    .await;
    let ev = ask(&one(&s)).await;
    assert_eq!(text(&ev), "whole");
    assert_eq!(s.hits(), 2);
}

#[tokio::test]
async fn malformed_sse_json_fails_cleanly_before_text_and_interrupts_after() {
    let s = FaultServer::start(|_, _| Reply::Sse {
        events: vec!["{\"id\": oops".into(), "[DONE]".into()],
        cut: false,
    })
    .await;
    let ev = ask(&one(&s)).await;
    let e = error(&ev);
    assert!(
        matches!(e, BackendError::Provider { message, .. } if message.contains("malformed")),
        "{e}"
    );
    assert_eq!(s.hits(), 1, "a malformed stream is not retried");

    let s = FaultServer::start(|_, _| Reply::Sse {
        events: vec![
            chunk(json!({"content": "partial"}), None),
            "not json at all".into(),
            "[DONE]".into(),
        ],
        cut: false,
    })
    .await;
    let ev = ask(&one(&s)).await;
    assert_eq!(text(&ev), "partial");
    assert_eq!(last(&ev), &Ok(StreamEvent::Done(FinishReason::Interrupted)));
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn an_empty_stream_is_an_error_not_a_blank_answer() {
    let s = FaultServer::start(|_, _| Reply::Sse {
        events: vec!["[DONE]".into()],
        cut: false,
    })
    .await;
    let ev = ask(&one(&s)).await;
    let e = error(&ev);
    assert!(
        matches!(e, BackendError::Provider { message, .. } if message.contains("without an answer")),
        "{e}"
    );
    assert_eq!(ev.len(), 1);
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn cancelling_mid_answer_stops_promptly() {
    let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
    let s = FaultServer::start(move |_, _| {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Reply::answer(&words, None)
    })
    .await;
    let b = one(&s);
    let cancel = CancellationToken::new();
    let mut stream = b.stream(
        ChatRequest::new(vec![Message::user("count")]),
        cancel.clone(),
    );
    let run = async {
        let mut got = Vec::new();
        while let Some(e) = stream.next().await {
            if matches!(e, Ok(StreamEvent::Delta(_))) {
                cancel.cancel();
            }
            got.push(e);
        }
        got
    };
    let ev = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("cancel was not prompt");
    assert_eq!(last(&ev), &Ok(StreamEvent::Done(FinishReason::Cancelled)));
    assert!(text(&ev).len() < 100, "stopped long before the end");
    assert_eq!(s.hits(), 1);
}
