//! Batched decode on the local engine: N greedy requests of different lengths answered one after
//! another and then all at once, alternating, on one engine; prints medians, tokens per second
//! and the ratio, and whether the concurrent answers equal the sequential ones.
//! usage: bench_batch MODEL.gguf [RUNS] [MAX_TOKENS]

use std::time::Instant;

use futures::StreamExt;
use futures::future::join_all;
use tandem::backend::local::{LocalEngine, LocalOptions};
use tandem::backend::{ChatBackend, ChatRequest, StreamEvent};
use tandem::chat::Message;
use tokio_util::sync::CancellationToken;

/// Four prompts of different lengths (so upstream's scheduler would never batch them).
const PROMPTS: [&str; 4] = [
    "Write one sentence about the sea.",
    "List three colors.",
    "What is two plus two? Explain briefly in a long sentence about numbers and counting.",
    "Describe a small village in the mountains, its people and what they do in winter.",
];

async fn ask(engine: &LocalEngine, prompt: &str, max_tokens: usize) -> (String, usize) {
    let mut req = ChatRequest::new(vec![Message::user(prompt)]);
    req.max_tokens = Some(max_tokens);
    let mut s = engine.stream(req, CancellationToken::new());
    let (mut text, mut tokens) = (String::new(), 0);
    while let Some(ev) = s.next().await {
        match ev.expect("engine error") {
            StreamEvent::Delta(d) => text.push_str(&d),
            StreamEvent::Usage(u) => tokens = u.completion_tokens,
            _ => {}
        }
    }
    (text, tokens)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .expect("usage: bench_batch MODEL.gguf [RUNS] [MAX_TOKENS]");
    let runs: usize = args.get(2).map_or(5, |s| s.parse().expect("RUNS"));
    let max_tokens: usize = args.get(3).map_or(64, |s| s.parse().expect("MAX_TOKENS"));
    // no prefix cache: every run prefills afresh, the same work on both sides
    let engine = LocalEngine::start(LocalOptions::greedy(model, max_tokens));
    engine.ready().await.expect("model did not load");
    let _ = ask(&engine, "Hello.", 4).await;

    println!(
        "| requests | one at a time | all at once | tokens | tok/s one at a time | tok/s all at once | ratio | same answers |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    for n in [1, 2, 4] {
        let prompts = &PROMPTS[..n];
        let (mut seq_s, mut par_s, mut tokens, mut same) = (vec![], vec![], 0, true);
        for _ in 0..runs {
            let t = Instant::now();
            let mut sequential = Vec::new();
            for p in prompts {
                sequential.push(ask(&engine, p, max_tokens).await);
            }
            seq_s.push(t.elapsed().as_secs_f64());

            let t = Instant::now();
            let concurrent = join_all(prompts.iter().map(|p| ask(&engine, p, max_tokens))).await;
            par_s.push(t.elapsed().as_secs_f64());

            tokens = sequential.iter().map(|a| a.1).sum::<usize>();
            same &= sequential == concurrent;
        }
        let (s, p) = (median(seq_s), median(par_s));
        println!(
            "| {n} | {s:.2} s | {p:.2} s | {tokens} | {:.1} | {:.1} | {:.2}x | {} |",
            tokens as f64 / s,
            tokens as f64 / p,
            s / p,
            if same { "yes" } else { "NO" }
        );
    }
}
