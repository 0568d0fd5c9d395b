//! The carried mistral.rs engine's fixes, on the real SmolLM2-135M model (Q8_0 copy, as tandem
//! runs it): the prefix cache stays bounded and its hits answer as a fresh engine does,
//! a one-token answer is not resurrected, and concurrent requests answer exactly as sequential
//! ones.
//! The engine's own counters (the `metrics` crate) show what it did; answers are greedy.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tandem::backend::local::{LocalEngine, LocalOptions, PREFIX_CACHE_SEQS};
use tandem::backend::{ChatBackend, ChatRequest, StreamEvent};
use tandem::chat::{Message, Usage};
use tokio_util::sync::CancellationToken;

mod common;

fn snapshotter() -> &'static Snapshotter {
    static SNAP: OnceLock<Snapshotter> = OnceLock::new();
    SNAP.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snap = recorder.snapshotter();
        recorder
            .install()
            .expect("a metrics recorder was already installed");
        snap
    })
}

/// The engine's counter `name` so far. A snapshot hands over what was counted since the last
/// one, so the totals are kept here.
fn counter(name: &str) -> u64 {
    static TOTALS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    for (key, .., value) in snapshotter().snapshot().into_vec() {
        let DebugValue::Counter(c) = value else {
            continue;
        };
        let key = key.key().name().to_string();
        match totals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, total)) => *total += c,
            None => totals.push((key, c)),
        }
    }
    totals
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, t)| *t)
}

/// The Q8_0 copy tandem makes of the Q4_1 download, made once per test process.
fn q8_model() -> PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = common::local_model();
        let dst = tandem::models::transcode::q8_path(dir.path(), &src);
        tandem::models::transcode::to_q8(&src, &dst).unwrap();
        (dir, dst)
    })
    .1
    .clone()
}

fn start(prefix_cache: usize) -> LocalEngine {
    snapshotter();
    LocalEngine::start(LocalOptions {
        prefix_cache,
        ..LocalOptions::greedy(q8_model(), 32)
    })
}

/// The tests share the engine's counters and cache, so they take turns: run side by side, one
/// test's requests evicted another's cached conversation and its hits counted for the other.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    // tokio's lock: the turn is held across the test's awaits.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// One engine with the prefix cache, shared by the tests below, as in the app.
fn engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(|| start(PREFIX_CACHE_SEQS))
}

async fn ask_on(
    engine: &LocalEngine,
    messages: Vec<Message>,
    max_tokens: usize,
) -> (String, Usage, usize) {
    let mut req = ChatRequest::new(messages);
    req.max_tokens = Some(max_tokens);
    let mut s = engine.stream(req, CancellationToken::new());
    let (mut text, mut usage, mut deltas) = (String::new(), Usage::default(), 0);
    let collect = async {
        while let Some(ev) = s.next().await {
            match ev.expect("stream error") {
                StreamEvent::Delta(d) => {
                    text.push_str(&d);
                    deltas += 1;
                }
                StreamEvent::Usage(u) => usage = u,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(240), collect)
        .await
        .expect("answer took too long");
    (text, usage, deltas)
}

fn history(tag: &str) -> Vec<Message> {
    vec![
        Message::system(format!("Conversation {tag}. You are a helpful assistant.")),
        Message::user("My favorite fruit is mango and I live in Lisbon."),
        Message::assistant("Noted! Your favorite fruit is mango, and you live in Lisbon."),
        Message::user("Name one fruit that grows in Portugal."),
    ]
}

/// A follow-up turn reuses the first turn's KV (the engine counts a prefix-cache hit), and its
/// answer is exactly the answer of an engine that computes the whole conversation afresh. An
/// off-by-one in the reused prefix, wrong positions or mask for the new tokens, or a cache
/// entry overwritten by a later request would change the greedy answer.
///
/// The earlier answer is given, not generated: KV that decoding computed one row at a time
/// differs in its last bits from what a whole-prompt prefill computes (llama.cpp's cache has
/// the same property), and a 135M model's greedy choice can turn on those bits. Here every
/// reused position was prefilled in both engines, so the answers must match exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_turn_reuses_the_cache_and_answers_as_a_fresh_engine() {
    let _turn = one_at_a_time().await;
    let engine = &start(2);
    let first = history("cache-hit");
    let _ = ask_on(engine, first.clone(), 24).await;
    // An unrelated request in between must not disturb the cached conversation.
    let _ = ask_on(engine, vec![Message::user("Count from one to five.")], 12).await;
    let mut second = first;
    second.push(Message::assistant("Oranges grow in Portugal."));
    second.push(Message::user("Where do I live?"));

    let hits = counter("mistralrs_prefix_cache_hits_total");
    let (cached, _, _) = ask_on(engine, second.clone(), 24).await;
    assert!(
        counter("mistralrs_prefix_cache_hits_total") > hits,
        "the follow-up turn did not hit the prefix cache"
    );

    let fresh_engine = start(0);
    let (fresh, _, _) = ask_on(&fresh_engine, second, 24).await;
    assert_eq!(cached, fresh, "a cached prefix changed the answer");
}

/// The usual follow-up, after an answer the engine generated, hits the cache too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_to_a_generated_answer_hits_the_cache() {
    let _turn = one_at_a_time().await;
    let engine = &start(2);
    let first = history("generated");
    let (a1, _, _) = ask_on(engine, first.clone(), 24).await;
    let mut second = first;
    second.push(Message::assistant(a1));
    second.push(Message::user("Where do I live?"));
    let hits = counter("mistralrs_prefix_cache_hits_total");
    let (text, usage, _) = ask_on(engine, second, 24).await;
    assert!(
        counter("mistralrs_prefix_cache_hits_total") > hits,
        "the follow-up turn did not hit the prefix cache"
    );
    assert!(
        !text.trim().is_empty() && usage.completion_tokens > 0,
        "{text:?}"
    );
}

/// On a CPU the 0.9 engine never evicted (it counted only caches off the CPU): every finished
/// request kept its KV for the life of the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefix_cache_evicts_beyond_its_limit() {
    let _turn = one_at_a_time().await;
    let engine = &start(2);
    let before = counter("mistralrs_prefix_cache_evictions_total");
    for i in 0..2 + 3 {
        let q = format!("Unrelated question number {i}: name a color.");
        let _ = ask_on(engine, vec![Message::user(q)], 4).await;
    }
    let evicted = counter("mistralrs_prefix_cache_evictions_total") - before;
    assert!(evicted >= 3, "only {evicted} cache entries were evicted");
}

/// A sequence that finishes on its first token stays finished (mistralrs 0.8.1 set every
/// prompt-step sequence back to running, so it decoded once more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_token_answer_is_one_token() {
    let _turn = one_at_a_time().await;
    let (text, usage, deltas) = ask_on(engine(), vec![Message::user("Say yes or no.")], 1).await;
    assert_eq!(usage.completion_tokens, 1, "{text:?} {usage:?}");
    assert!(deltas <= 1, "{deltas} deltas: {text:?}");
    let (after, _, _) = ask_on(engine(), vec![Message::user("Say hello.")], 8).await;
    assert!(!after.is_empty());
}

/// Four requests at once give the answers they give one at a time, and they are decoded as one
/// batch although their lengths differ (the carried engine attends each row over its own cache;
/// upstream decoded only equal lengths together, so these took turns). Two of the prompts are
/// the same, so their prefill is batched too (its last-token slice once failed the quantized
/// matmul: "input tensor is not contiguous").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_answer_as_sequential_ones() {
    let _turn = one_at_a_time().await;
    let engine = start(0);
    let prompts = [
        "Write one sentence about the sea.",
        "List three colors.",
        "What is two plus two? Explain briefly in a long sentence about numbers and counting.",
        "Write one sentence about the sea.",
    ];
    let ask = |p: &str| ask_on(&engine, vec![Message::user(p)], 24);
    let mut sequential = Vec::new();
    for p in prompts {
        sequential.push(ask(p).await.0);
    }
    let (steps, rows) = (
        counter("mistralrs_ragged_decode_steps_total"),
        counter("mistralrs_ragged_decode_rows_total"),
    );
    let (a, b, c, d) = tokio::join!(
        ask(prompts[0]),
        ask(prompts[1]),
        ask(prompts[2]),
        ask(prompts[3])
    );
    assert_eq!(vec![a.0, b.0, c.0, d.0], sequential);
    let steps = counter("mistralrs_ragged_decode_steps_total") - steps;
    let rows = counter("mistralrs_ragged_decode_rows_total") - rows;
    // decoded one at a time (as upstream does with these lengths), no step has two rows
    assert!(steps >= 8, "{steps} batched decode steps ({rows} rows)");
}

/// Two follow-ups to one cached conversation, asked at once, both hit the prefix cache and
/// decode as one batch; each answers as a fresh engine does. Rows that wrote into the cached
/// entry's KV (which both restored) would corrupt each other. Both answers run to the 32-token
/// cap, so the two decodes overlap for dozens of steps however the prompt steps are scheduled
/// (with a 4-token answer the first could finish before the second's prompt step: no batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_follow_ups_to_one_cached_conversation_answer_as_fresh_ones() {
    let _turn = one_at_a_time().await;
    let engine = &start(2);
    let mut first = history("two-follow-ups");
    first.push(Message::assistant("Oranges grow in Portugal."));
    let _ = ask_on(engine, first.clone(), 4).await;
    let follow = |q: &str| {
        let mut m = first.clone();
        m.push(Message::user(q));
        m
    };
    let (x, y) = (
        follow("Tell me about the city where I live."),
        follow("What is my favorite fruit?"),
    );

    let (hits, steps) = (
        counter("mistralrs_prefix_cache_hits_total"),
        counter("mistralrs_ragged_decode_steps_total"),
    );
    let (cx, cy) = tokio::join!(ask_on(engine, x.clone(), 32), ask_on(engine, y.clone(), 32));
    assert_eq!((cx.1.completion_tokens, cy.1.completion_tokens), (32, 32));
    assert!(counter("mistralrs_prefix_cache_hits_total") >= hits + 2);
    assert!(counter("mistralrs_ragged_decode_steps_total") > steps);

    let fresh = start(0);
    let fx = ask_on(&fresh, x, 32).await.0;
    let fy = ask_on(&fresh, y, 32).await.0;
    assert_eq!((cx.0, cy.0), (fx, fy));
}
