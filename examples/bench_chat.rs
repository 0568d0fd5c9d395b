//! Memory and warm-turn speed of the local engine over long use, for docs/local-perf.md:
//! one 50-turn chat (each turn re-sends the whole history, as the chat screen does) and 50
//! separate one-turn chats. Prints one JSON line per turn: resident memory after it (MB), its
//! time to first token and its prompt size, so a growing cache or a leak shows as a trend.
//! usage: bench_chat MODEL.gguf [TURNS]

use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use tandem::backend::local::{LocalEngine, LocalOptions, PREFIX_CACHE_SEQS};
use tandem::backend::{ChatBackend, ChatRequest, StreamEvent};
use tandem::chat::{Message, Usage};
use tokio_util::sync::CancellationToken;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn turn(engine: &LocalEngine, messages: Vec<Message>) -> (String, Usage) {
    let mut req = ChatRequest::new(messages);
    req.max_tokens = Some(32);
    let mut s = engine.stream(req, CancellationToken::new());
    let (mut text, mut usage) = (String::new(), Usage::default());
    while let Some(ev) = s.next().await {
        match ev.expect("engine error") {
            StreamEvent::Delta(d) => text.push_str(&d),
            StreamEvent::Usage(u) => usage = u,
            _ => {}
        }
    }
    (text, usage)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).expect("usage: bench_chat MODEL.gguf [TURNS]");
    let turns: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(50);
    let engine = LocalEngine::start(LocalOptions {
        prefix_cache: PREFIX_CACHE_SEQS,
        ..LocalOptions::greedy(model, 32)
    });
    engine.ready().await.expect("model failed to load");
    println!("{}", json!({"phase": "loaded", "rss_mb": rss_mb()}));

    let mut history = vec![Message::system(
        "You are a helpful assistant. Keep answers short.",
    )];
    for i in 0..turns {
        history.push(Message::user(format!(
            "Turn {i}: tell me one fact about the number {i}."
        )));
        let t = Instant::now();
        let (text, usage) = turn(&engine, history.clone()).await;
        history.push(Message::assistant(text));
        println!(
            "{}",
            json!({"phase": "one chat", "turn": i, "rss_mb": rss_mb(), "ttft_s": usage.ttft_ms as f64 / 1000.0,
                   "prompt_tokens": usage.prompt_tokens, "wall_s": t.elapsed().as_secs_f64()})
        );
    }
    for i in 0..turns {
        let messages = vec![Message::user(format!(
            "Chat {i}: name a fruit that starts with the letter {}.",
            (b'a' + (i % 26) as u8) as char
        ))];
        let (_, usage) = turn(&engine, messages).await;
        println!(
            "{}",
            json!({"phase": "separate chats", "turn": i, "rss_mb": rss_mb(), "ttft_s": usage.ttft_ms as f64 / 1000.0})
        );
    }
}
