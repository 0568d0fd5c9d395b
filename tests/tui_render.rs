//! Screen snapshots through ratatui's TestBackend at 80x24 and 120x40: the empty start, a
//! finished answer with code and a table, a stream cut off mid-answer, the offline banner, the
//! help, `/model` and `/delete` overlays, an escalated answer below its seam, and every shipped
//! theme.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tandem::backend::{FinishReason, StreamEvent};
use tandem::chat::Usage;
use tandem::config::RouteMode;
use tandem::router::{Escalation, EscalationReason, LocalState, RouteDecision, Target};
use tandem::tui::app::{App, Overlay, update};
use tandem::tui::keymap::Keymap;
use tandem::tui::msg::{ConvRow, Effect, LocalEvent, LocalModel, Msg};
use tandem::tui::theme::{self, Background};
use tandem::tui::ui;

const ANSWER: &str = "Here is a function:\n\n```rust\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n```\n\n| tier | cost |\n|------|------|\n| local | free |\n| cloud | $0.0004 |\n\n- fast\n- *private*\n";

fn base(w: u16, h: u16, theme_name: &str) -> App {
    let t = theme::load(theme_name, None).unwrap();
    let mut a = App::new(
        Keymap::default(),
        RouteMode::Auto,
        "smollm2-135m".into(),
        (theme_name.into(), t.background == Background::Dark),
    );
    a.now_ms = 1_800_000_000_000;
    a.size = (w, h);
    update(&mut a, Msg::Local(LocalEvent::State(LocalState::Ready)));
    a
}

fn decision(target: Target) -> RouteDecision {
    RouteDecision {
        target,
        score: 0.2,
        threshold: 0.5,
        reasons: vec![],
        contributions: vec![],
        est_cost_usd: 0.0,
        est_saved_usd: 0.0,
    }
}

/// Sends `prompt` and streams `text`; `finish: None` leaves the answer cut off by Ctrl-C.
fn converse(a: &mut App, prompt: &str, text: &str, finish: Option<FinishReason>) {
    for c in prompt.chars() {
        update(
            a,
            Msg::Key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Char(c),
            )),
        );
    }
    let fx = update(
        a,
        Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Enter,
        )),
    );
    let req = match &fx[0] {
        tandem::tui::msg::Effect::Ask { req, .. } => *req,
        other => panic!("{other:?}"),
    };
    update(
        a,
        Msg::Routed {
            req,
            conv: 1,
            title: prompt.into(),
            turn: Some(2),
            decision: decision(Target::Local),
            local_name: "smollm2-135m".into(),
        },
    );
    update(
        a,
        Msg::Stream {
            req,
            event: StreamEvent::Delta(text.into()),
        },
    );
    update(
        a,
        Msg::Stream {
            req,
            event: StreamEvent::Usage(Usage {
                prompt_tokens: 9,
                completion_tokens: 40,
                ttft_ms: 400,
                tokens_per_s: 33.0,
            }),
        },
    );
    match finish {
        Some(f) => {
            update(
                a,
                Msg::Stream {
                    req,
                    event: StreamEvent::Done(f),
                },
            );
        }
        None => {
            update(
                a,
                Msg::Key(crossterm::event::KeyEvent::new(
                    crossterm::event::KeyCode::Char('c'),
                    crossterm::event::KeyModifiers::CONTROL,
                )),
            );
        }
    }
    update(a, Msg::StreamEnded { req });
    update(
        a,
        Msg::Conversations(vec![ConvRow {
            id: 1,
            title: prompt.into(),
            updated_at: 1_800_000_000 - 300,
            local_answers: 1,
            cloud_answers: 0,
        }]),
    );
}

fn screen(a: &App, theme_name: &str) -> String {
    let t = theme::load(theme_name, None).unwrap();
    let mut term = Terminal::new(TestBackend::new(a.size.0, a.size.1)).unwrap();
    term.draw(|f| ui::draw(f, a, &t)).unwrap();
    let buf = term.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

#[test]
fn empty_start() {
    for (w, h) in SIZES {
        insta::assert_snapshot!(
            format!("empty_{w}x{h}"),
            screen(&base(w, h, "default"), "default")
        );
    }
}

#[test]
fn finished_answer_with_code_and_table() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        converse(&mut a, "show me code", ANSWER, Some(FinishReason::Stop));
        insta::assert_snapshot!(format!("answer_{w}x{h}"), screen(&a, "default"));
    }
}

#[test]
fn stream_cut_off_mid_answer() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        converse(
            &mut a,
            "write a long story",
            "Once upon a time, in a terminal far away, there lived a",
            None,
        );
        insta::assert_snapshot!(format!("interrupted_{w}x{h}"), screen(&a, "default"));
    }
}

#[test]
fn offline_banner() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        a.cloud_configured = true;
        update(&mut a, Msg::CloudOnline(false));
        insta::assert_snapshot!(format!("offline_{w}x{h}"), screen(&a, "default"));
    }
}

#[test]
fn pull_progress_banner() {
    let mut a = base(80, 24, "default");
    update(&mut a, Msg::Local(LocalEvent::Pulling(Some(42.0))));
    insta::assert_snapshot!("pulling_80x24", screen(&a, "default"));
}

#[test]
fn help_overlay() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        a.overlay = Some(Overlay::Help);
        insta::assert_snapshot!(format!("help_{w}x{h}"), screen(&a, "default"));
    }
}

#[test]
fn every_shipped_theme() {
    for (name, _) in theme::SHIPPED {
        let mut a = base(80, 24, name);
        converse(&mut a, "show me code", ANSWER, Some(FinishReason::Stop));
        let t = theme::load(name, None).unwrap();
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| ui::draw(f, &a, &t)).unwrap();
        // The full buffer, colours included, so a theme change shows in review.
        insta::assert_debug_snapshot!(format!("theme_{name}"), term.backend().buffer());
    }
}

#[test]
fn resize_mid_stream_rewraps() {
    let mut a = base(80, 24, "default");
    converse(
        &mut a,
        "wrap",
        &"word ".repeat(60),
        Some(FinishReason::Stop),
    );
    let wide = screen(&a, "default");
    update(&mut a, Msg::Resize(50, 24));
    let narrow = screen(&a, "default");
    assert!(narrow.lines().all(|l| l.chars().count() <= 50));
    assert_ne!(wide, narrow);
}

fn type_line(a: &mut App, line: &str) -> Vec<Effect> {
    use crossterm::event::{KeyCode, KeyEvent};
    for c in line.chars() {
        update(a, Msg::Key(KeyEvent::from(KeyCode::Char(c))));
    }
    update(a, Msg::Key(KeyEvent::from(KeyCode::Enter)))
}

#[test]
fn model_overlay_and_pick() {
    let mut a = base(80, 24, "default");
    a.cloud_configured = true;
    update(&mut a, Msg::CloudOnline(true));
    a.prices.cloud = vec![
        ("openai".into(), "gpt-4o-mini".into(), 0.15, 0.6),
        ("openai".into(), "gpt-4o".into(), 2.5, 10.0),
    ];
    a.local_models = vec![
        LocalModel {
            name: "smollm2-135m".into(),
            installed: true,
        },
        LocalModel {
            name: "qwen2.5-0.5b-instruct".into(),
            installed: false,
        },
    ];
    type_line(&mut a, "/model");
    insta::assert_snapshot!("models_80x24", screen(&a, "default"));
    update(
        &mut a,
        Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Esc,
        )),
    );
    type_line(&mut a, "/model gpt-4o");
    type_line(&mut a, "/model");
    // The pick is marked, and the status bar carries it next to the route mode.
    insta::assert_snapshot!("models_picked_80x24", screen(&a, "default"));
}

#[test]
fn delete_confirmation() {
    let mut a = base(80, 24, "default");
    converse(&mut a, "show me code", ANSWER, Some(FinishReason::Stop));
    type_line(&mut a, "/delete");
    insta::assert_snapshot!("delete_80x24", screen(&a, "default"));
}

#[test]
fn escalated_answer_below_its_seam() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        converse(
            &mut a,
            "What is the capital of France?",
            "The capital of France is the capital of France.",
            Some(FinishReason::Stop),
        );
        let req = a.last_finished.unwrap();
        let fx = update(
            &mut a,
            Msg::Escalate {
                req,
                reason: Escalation {
                    reason: EscalationReason::RepetitionLoop,
                    message: "the local answer repeats itself (most phrases are repeats)".into(),
                },
            },
        );
        let Some(Effect::Ask { req, .. }) = fx.first() else {
            panic!("{fx:?}")
        };
        let req = *req;
        update(
            &mut a,
            Msg::Routed {
                req,
                conv: 1,
                title: "What is the capital of France?".into(),
                turn: Some(3),
                decision: decision(Target::Cloud),
                local_name: "smollm2-135m".into(),
            },
        );
        for event in [
            StreamEvent::Started {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
            },
            StreamEvent::Delta("The capital of France is Paris.".into()),
            StreamEvent::Done(FinishReason::Stop),
        ] {
            update(&mut a, Msg::Stream { req, event });
        }
        update(&mut a, Msg::StreamEnded { req });
        insta::assert_snapshot!(format!("escalated_{w}x{h}"), screen(&a, "default"));
    }
}
