//! A `tier = "local"` server as the local engine: it answers local turns (private ones too)
//! without any model being loaded, and its configured window decides what fits.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::*;
use crate::backend::StreamEvent;
use crate::config::{LoadOptions, load};
use crate::router::ReasonCode;

/// A loopback server answering every request with one streamed "hi"; it keeps each body.
fn server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(at) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= at + 4 + len || n == 0 {
                        break text[at + 4..].to_string();
                    }
                } else if n == 0 {
                    break String::new();
                }
            };
            keep.lock().unwrap().push(body);
            let chunk = |delta: &str, finish: &str| {
                format!(
                    "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"smol\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
                )
            };
            let body = chunk("{\"role\":\"assistant\",\"content\":\"hi\"}", "null")
                + &chunk("{}", "\"stop\"")
                + "data: [DONE]\n\n";
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}").as_bytes(),
            );
        }
    });
    (port, seen)
}

fn config(port: u16) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[local]\nengine = \"llama\"\nmodel = \"/nowhere/never-loaded.gguf\"\n\
             [providers.llama]\nbase_url = \"http://127.0.0.1:{port}/v1\"\ntier = \"local\"\n\
             models = [{{ name = \"other\" }}, {{ name = \"smol\", context_window = 2048 }}]\n\
             [providers.lab]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [{{ name = \"big\", context_window = 128000 }}]\n"
        ),
    )
    .unwrap();
    let mut opts = LoadOptions {
        config_file: Some(file),
        no_pull: true,
        ..Default::default()
    };
    opts.model = Some("llama/smol".into());
    let cfg = load(&opts).unwrap().config;
    (dir, cfg)
}

#[tokio::test]
async fn a_local_server_answers_private_turns_without_loading_a_model() {
    let (port, seen) = server();
    let (_dir, cfg) = config(port);
    assert_eq!(
        cfg.route,
        RouteMode::Local,
        "--model pins the tier it names"
    );
    let mut t = Tiers::new(&cfg).unwrap();
    assert_eq!(t.local_name, "llama/smol");
    t.start_local(&cfg, |_| {}).await;
    assert!(t.local_is_server());
    assert_eq!(t.local_state(), LocalState::Ready);
    assert_eq!(t.local_context(), 2048);

    let auto = RouteContext {
        private: true,
        ..Default::default()
    };
    let d = t.decide("what is my password hunter2 for?", &[], &auto);
    assert_eq!(d.target, Target::Local, "{:?}", d.reasons);
    let mut request = ChatRequest::new(vec![Message::user("hello")]);
    request.model = Some("lab/big".into());
    let events: Vec<_> = t
        .stream(Target::Local, request, CancellationToken::new())
        .collect()
        .await;
    assert_eq!(
        events.first(),
        Some(&Ok(StreamEvent::Started {
            provider: "llama".into(),
            model: "smol".into()
        })),
        "{events:?}"
    );
    assert!(
        events.contains(&Ok(StreamEvent::Delta("hi".into()))),
        "{events:?}"
    );
    let body = seen.lock().unwrap()[0].clone();
    assert!(body.contains("\"model\":\"smol\""), "{body}");
    // The answer is capped to what the 2,048-token window leaves.
    assert!(body.contains("\"max_tokens\":"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["max_tokens"].as_u64().unwrap() <= 2048, "{body}");
}

#[tokio::test]
async fn a_turn_too_long_for_the_servers_window_goes_to_the_cloud() {
    let (port, _) = server();
    let (_dir, cfg) = config(port);
    let mut t = Tiers::new(&cfg).unwrap();
    t.start_local(&cfg, |_| {}).await;
    assert!(t.cloud_online());
    let long = "word ".repeat(2000);
    let d = t.decide(&long, &[], &RouteContext::default());
    assert_eq!(d.target, Target::Cloud, "{:?}", d.reasons);
    assert_eq!(d.reasons[0].code, ReasonCode::ContextTooLong);
    let d = t.decide("hi", &[], &RouteContext::default());
    assert!(
        !d.reasons
            .iter()
            .any(|r| r.code == ReasonCode::ContextTooLong)
    );
}
