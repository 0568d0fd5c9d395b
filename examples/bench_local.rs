//! tandem side of `scripts/bench-local`: runs the shared workload (JSON on stdin, made by
//! scripts/bench/workload.py) through the local engine and prints per-run samples as JSON.
//! usage: bench_local MODEL.gguf MAX_TOKENS [f32|auto] < workload.json

use std::time::Instant;

use futures::StreamExt;
use serde_json::{Value, json};
use tandem::backend::local::{LocalEngine, LocalOptions};
use tandem::backend::{ChatBackend, ChatRequest, StreamEvent};
use tandem::chat::{Message, Role, Usage};
use tandem::config::LocalDType;
use tokio_util::sync::CancellationToken;

async fn turn(engine: &LocalEngine, messages: Vec<Message>, max_tokens: usize) -> (String, Usage) {
    let mut req = ChatRequest::new(messages);
    req.max_tokens = Some(max_tokens);
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

fn to_messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().unwrap() {
                "assistant" => Role::Assistant,
                "system" => Role::System,
                _ => Role::User,
            };
            Message::new(role, m["content"].as_str().unwrap())
        })
        .collect()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, max_tokens) = (args[1].clone(), args[2].parse::<usize>().unwrap());
    // An optional third argument picks `local.dtype` ("f32", the default, or "auto").
    let dtype = match args.get(3).map(String::as_str) {
        None | Some("f32") => LocalDType::F32,
        Some("auto") => LocalDType::Auto,
        Some(other) => {
            eprintln!("bench_local: dtype must be f32 or auto, not {other:?}");
            std::process::exit(2);
        }
    };
    // BENCH_TRACE=debug shows the engine's own log with timestamps (where load time goes).
    if let Ok(level) = std::env::var("BENCH_TRACE") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(std::io::stderr)
            .init();
    }
    let workload: Value = serde_json::from_reader(std::io::stdin()).unwrap();
    let q2 = workload["q2"].as_str().unwrap().to_string();

    let t0 = Instant::now();
    let engine = LocalEngine::start(LocalOptions {
        dtype,
        prefix_cache: tandem::backend::local::PREFIX_CACHE_SEQS,
        ..LocalOptions::greedy(&model, max_tokens)
    });
    engine.ready().await.expect("model failed to load");
    let load_s = t0.elapsed().as_secs_f64();

    let mut samples = serde_json::Map::new();
    for (case, runs) in workload["cases"].as_object().unwrap() {
        let mut rows = Vec::new();
        for run in runs.as_array().unwrap() {
            let msgs = to_messages(run);
            let (text, u1) = turn(&engine, msgs.clone(), max_tokens).await;
            let mut msgs2 = msgs;
            msgs2.push(Message::assistant(text));
            msgs2.push(Message::user(q2.clone()));
            let (_, u2) = turn(&engine, msgs2, max_tokens).await;
            let ttft_cold = u1.ttft_ms as f64 / 1000.0;
            rows.push(json!({
                "ttft_cold": ttft_cold,
                "ttft_warm": u2.ttft_ms as f64 / 1000.0,
                "decode_tps": u1.tokens_per_s,
                "prompt_tokens": u1.prompt_tokens,
                "prefill_tps": if ttft_cold > 0.0 { u1.prompt_tokens as f64 / ttft_cold } else { 0.0 },
            }));
        }
        samples.insert(case.clone(), Value::Array(rows));
    }
    println!(
        "{}",
        json!({"engine": "tandem", "load_s": load_s, "rss_mb": peak_rss_mb(), "samples": samples})
    );
}
