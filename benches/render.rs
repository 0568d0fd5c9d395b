//! Render-path benchmark: one frame of a 200-message transcript that includes a 5,000-token
//! answer with code, drawn at 120x40 into ratatui's TestBackend. Prints p50/p99 of single
//! frames too, since the target (8 ms) is about the tail, which criterion does not report.

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tandem::config::RouteMode;
use tandem::router::{RouteDecision, Target};
use tandem::tui::app::{App, update};
use tandem::tui::keymap::Keymap;
use tandem::tui::msg::{Effect, Msg};
use tandem::tui::theme::Theme;
use tandem::tui::ui;
use tandem::turn::{Answer, Badge, Done, Finish, TurnEvent};

/// About 5,000 tokens (~20 KB) of prose, lists and Rust code.
pub fn long_answer() -> String {
    let mut s = String::from("# A long answer\n\n");
    while s.len() < 20_000 {
        s.push_str("Some prose about the problem, with *emphasis* and `inline code`, long enough to wrap.\n\n");
        s.push_str("- a point\n- another point\n\n```rust\nfn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{v:?}\");\n}\n```\n\n");
    }
    s
}

/// 100 questions and answers; the last answer is the long one. With `streaming`, it is still
/// arriving, in 4-byte deltas like a model's tokens, when the frames are drawn.
pub fn transcript(streaming: bool) -> App {
    let mut a = App::new(
        Keymap::default(),
        RouteMode::Auto,
        "smollm2-135m".into(),
        ("default".into(), true),
    );
    a.size = (120, 40);
    for i in 0..100 {
        a.composer.text = format!("question number {i}, asked with a little context");
        a.composer.cursor = a.composer.text.len();
        let req = match update(
            &mut a,
            Msg::Key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Enter,
            )),
        )
        .first()
        {
            Some(Effect::Ask { req, .. }) => *req,
            other => panic!("{other:?}"),
        };
        let decision = RouteDecision {
            target: Target::Local,
            score: 0.1,
            threshold: 0.5,
            reasons: vec![],
            contributions: vec![],
            est_cost_usd: 0.0,
            est_saved_usd: 0.0,
        };
        update(
            &mut a,
            Msg::Turn {
                req,
                event: TurnEvent::Routed(decision),
            },
        );
        let text = if i == 99 {
            long_answer()
        } else {
            format!("Answer {i}: a short reply with `code`.")
        };
        if streaming && i == 99 {
            let mut rest = text.as_str();
            let (t, mut deltas) = (Instant::now(), 0);
            while !rest.is_empty() {
                let mut n = 4.min(rest.len());
                while !rest.is_char_boundary(n) {
                    n += 1;
                }
                let (d, r) = rest.split_at(n);
                update(
                    &mut a,
                    Msg::Turn {
                        req,
                        event: TurnEvent::Delta(d.to_string()),
                    },
                );
                rest = r;
                deltas += 1;
            }
            println!(
                "streamed {deltas} deltas: mean update {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / f64::from(deltas)
            );
            break;
        }
        update(
            &mut a,
            Msg::Turn {
                req,
                event: TurnEvent::Delta(text.clone()),
            },
        );
        let answer = Answer {
            badge: Badge::routed(Target::Local, "smollm2-135m"),
            text,
            usage: Default::default(),
            interrupted: false,
        };
        update(
            &mut a,
            Msg::Turn {
                req,
                event: TurnEvent::Answered(answer),
            },
        );
        let done = Done {
            finish: Finish::Answered,
            spend: Default::default(),
        };
        update(
            &mut a,
            Msg::Turn {
                req,
                event: TurnEvent::Done(done),
            },
        );
        update(&mut a, Msg::TurnEnded { req });
    }
    a
}

/// Draws 500 frames and prints their p50, p99 and max in ms.
fn report(label: &str, app: &App, term: &mut Terminal<TestBackend>, theme: &Theme) {
    let mut times: Vec<f64> = (0..500)
        .map(|_| {
            let t = Instant::now();
            term.draw(|f| ui::draw(f, app, theme)).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{label}: frame ms over 500: p50 {:.3} p99 {:.3} max {:.3}",
        times[250], times[495], times[499]
    );
}

fn frames(c: &mut Criterion) {
    let app = transcript(false);
    let theme = Theme::builtin();
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    report("200 messages", &app, &mut term, &theme);
    let live = transcript(true);
    report(
        "200 messages, the 5,000-token answer still streaming",
        &live,
        &mut term,
        &theme,
    );
    c.bench_function("draw 200 messages at 120x40", |b| {
        b.iter(|| {
            term.draw(|f| ui::draw(f, &app, &theme)).unwrap();
        })
    });
    c.bench_function("render the 5,000-token answer's markdown", |b| {
        let text = long_answer();
        b.iter(|| tandem::tui::markdown::render(&text, true))
    });
}

criterion_group!(benches, frames);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
