//! The local tier on the real SmolLM2-135M model (no stub): streaming, usage, cancellation,
//! multi-turn memory. The model comes from `scripts/test` (PyPI source) into TANDEM_MODELS_DIR.

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use tandem::backend::local::{LocalEngine, LocalOptions};
use tandem::backend::{ChatBackend, ChatRequest, FinishReason, StreamEvent};
use tandem::chat::{Message, Usage};
use tokio_util::sync::CancellationToken;

mod common;

fn options() -> LocalOptions {
    LocalOptions {
        name: "smollm2-135m".into(),
        top_p: 0.9,
        repeat_penalty: 1.15,
        prefix_cache: tandem::backend::local::PREFIX_CACHE_SEQS,
        ..LocalOptions::greedy(common::local_model(), 64)
    }
}

fn engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(|| LocalEngine::start(options()))
}

struct Answer {
    deltas: Vec<String>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
}

impl Answer {
    fn text(&self) -> String {
        self.deltas.concat()
    }
}

async fn ask(messages: Vec<Message>, max_tokens: usize) -> Answer {
    let mut req = ChatRequest::new(messages);
    req.max_tokens = Some(max_tokens);
    let mut s = engine().stream(req, CancellationToken::new());
    let mut a = Answer {
        deltas: vec![],
        usage: None,
        finish: None,
    };
    let collect = async {
        while let Some(ev) = s.next().await {
            match ev.expect("stream error") {
                StreamEvent::Delta(d) => a.deltas.push(d),
                StreamEvent::Usage(u) => a.usage = Some(u),
                StreamEvent::Done(f) => a.finish = Some(f),
                StreamEvent::Started { .. } => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(240), collect)
        .await
        .expect("answer took too long");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_answer_streams_deltas_and_usage() {
    let a = ask(
        vec![Message::user(
            "What is the capital of France? Answer in one sentence.",
        )],
        48,
    )
    .await;
    assert!(
        a.deltas.len() > 1,
        "expected several deltas, got {:?}",
        a.deltas
    );
    assert!(a.text().contains("Paris"), "{}", a.text());
    let u = a.usage.expect("usage");
    assert!(u.prompt_tokens > 5 && u.completion_tokens > 1, "{u:?}");
    assert!(u.ttft_ms > 0 && u.tokens_per_s > 0.0, "{u:?}");
    assert!(matches!(
        a.finish,
        Some(FinishReason::Stop | FinishReason::Length)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_long_answer_within_a_few_tokens() {
    let mut req = ChatRequest::new(vec![Message::user(
        "Write a very long story about a dragon and a knight.",
    )]);
    req.max_tokens = Some(400);
    let cancel = CancellationToken::new();
    let mut s = engine().stream(req, cancel.clone());
    let mut before = 0;
    let mut after = 0;
    let mut finish = None;
    let run = async {
        while let Some(ev) = s.next().await {
            match ev.unwrap() {
                StreamEvent::Delta(_) if cancel.is_cancelled() => after += 1,
                StreamEvent::Delta(_) => {
                    before += 1;
                    if before == 5 {
                        cancel.cancel();
                    }
                }
                StreamEvent::Done(f) => finish = Some(f),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("cancel did not end the stream");
    assert_eq!(before, 5);
    assert!(after <= 1, "{after} deltas arrived after cancel");
    assert_eq!(finish, Some(FinishReason::Cancelled));

    // The engine is still usable afterwards.
    let a = ask(vec![Message::user("Say hello.")], 8).await;
    assert!(!a.deltas.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_turn_sees_the_first() {
    let first = vec![Message::user("My favorite fruit is mango.")];
    let a1 = ask(first.clone(), 24).await;
    // The earlier answer is given, not generated, so the check does not hang on what a
    // 135M model happens to say in turn one; what is under test is that turn two sees it.
    let mut second = first;
    second.push(Message::assistant("Noted! Your favorite fruit is mango."));
    second.push(Message::user("What is my favorite fruit?"));
    let a2 = ask(second, 24).await;
    assert!(
        a2.text().to_lowercase().contains("mango"),
        "the model forgot: {}",
        a2.text()
    );
    let (u1, u2) = (a1.usage.unwrap(), a2.usage.unwrap());
    assert!(u2.prompt_tokens > u1.prompt_tokens + 10, "{u1:?} {u2:?}");
    // Control: without the first turn the same question gets no mango.
    let alone = ask(vec![Message::user("What is my favorite fruit?")], 24).await;
    assert!(
        !alone.text().to_lowercase().contains("mango"),
        "{}",
        alone.text()
    );
}

#[test]
fn history_is_fitted_to_the_window_keeping_the_system_prompt() {
    let mut msgs = vec![Message::system("be brief")];
    for i in 0..50 {
        msgs.push(Message::user(format!("question {i} {}", "x".repeat(400))));
    }
    let kept = tandem::context::fit(&msgs, 1000, 200, 1).messages;
    assert_eq!(kept[0].content, "be brief");
    assert!(kept.len() < 10 && kept.len() > 2, "{}", kept.len());
    assert!(kept.last().unwrap().content.starts_with("question 49"));
}

/// mistralrs 0.8.1's prefix cache reused a cached prefix wrongly on this CPU path: a question
/// answered correctly on a fresh engine got nonsense after an unrelated request. Greedy answers
/// make that checkable: after an unrelated request, the shared engine (prefix cache on) answers
/// exactly as an engine that has seen nothing else. Whether a 135M model gets it right is not
/// what this tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_does_not_depend_on_earlier_requests() {
    let msgs = vec![
        Message::user("My favorite fruit is mango."),
        Message::assistant("Noted! Your favorite fruit is mango."),
        Message::user("What is my favorite fruit?"),
    ];
    let first = ask(msgs.clone(), 16).await;
    let _ = ask(
        vec![Message::user("Write one sentence about the city of Paris.")],
        16,
    )
    .await;
    let again = ask(msgs.clone(), 16).await;
    assert_eq!(
        first.text(),
        again.text(),
        "an earlier request changed the answer"
    );

    let fresh = LocalEngine::start(LocalOptions {
        prefix_cache: 0,
        ..options()
    });
    let mut req = ChatRequest::new(msgs);
    req.max_tokens = Some(16);
    let text: String = fresh
        .stream(req, CancellationToken::new())
        .filter_map(|ev| async move {
            match ev.expect("stream error") {
                StreamEvent::Delta(d) => Some(d),
                _ => None,
            }
        })
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(
        first.text(),
        text,
        "the shared engine answered unlike a fresh one"
    );
}

#[test]
fn q8_copy_keeps_every_tensor_and_reads_as_q8() {
    use tandem::models::gguf::{GgmlType, inspect};
    let dir = tempfile::tempdir().unwrap();
    let src = common::local_model();
    let dst = tandem::models::transcode::q8_path(dir.path(), &src);
    tandem::models::transcode::to_q8(&src, &dst).unwrap();
    let (a, b) = (inspect(&src).unwrap(), inspect(&dst).unwrap());
    assert_eq!(a.main_type(), Some(GgmlType::Q4_1));
    assert_eq!(b.main_type(), Some(GgmlType::Q8_0));
    assert_eq!(
        (a.tensor_count, a.parameter_count),
        (b.tensor_count, b.parameter_count)
    );
    assert_eq!(a.context_length, b.context_length);
    assert!(tandem::models::check_supported(&b).is_ok());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dst.parent().unwrap()).unwrap().count(), 1);
}
