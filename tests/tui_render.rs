//! Screen snapshots through ratatui's TestBackend at 80x24 and 120x40: the empty start, a
//! finished answer with code and a table, a stream cut off mid-answer, the offline banner, the
//! help, `/model` and `/delete` overlays, an escalated answer below its seam, and every shipped
//! theme.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use tandem::chat::Usage;
use tandem::config::RouteMode;
use tandem::router::{Escalation, EscalationReason, LocalState, RouteDecision, Target};
use tandem::tui::app::{App, Overlay, update};
use tandem::tui::keymap::Keymap;
use tandem::tui::msg::{ConvRow, Effect, LocalEvent, LocalModel, Msg};
use tandem::tui::theme::{self, Background};
use tandem::tui::ui;
use tandem::turn::{Answer, Badge, Done, Finish, Privacy, SpendNow, TurnEvent};

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

/// The pipeline's report of a finished (or cut-off) answer.
fn answered(tier: Target, model: &str, text: &str, whole: bool) -> TurnEvent {
    let mut badge = Badge::routed(tier, model);
    (badge.ttft_ms, badge.tokens_per_s) = (400, 33.0);
    TurnEvent::Answered(Answer {
        text: text.into(),
        badge,
        usage: Usage {
            prompt_tokens: 9,
            completion_tokens: 40,
            ttft_ms: 400,
            tokens_per_s: 33.0,
        },
        interrupted: !whole,
    })
}

fn turn(a: &mut App, req: u64, event: TurnEvent) {
    update(a, Msg::Turn { req, event });
}

fn end(a: &mut App, req: u64, finish: Finish) {
    let spend = SpendNow {
        today_usd: 0.0123,
        month_usd: 0.4,
        saved_month_usd: 0.05,
        daily_cap_usd: 1.0,
        monthly_cap_usd: 0.0,
    };
    turn(a, req, TurnEvent::Done(Done { finish, spend }));
    update(a, Msg::TurnEnded { req });
}

/// Sends `prompt` and streams `text`; `whole: false` leaves the answer cut off by Ctrl-C.
/// Returns the turn's request id, still open when `open` is set (for an escalation).
fn converse_open(a: &mut App, prompt: &str, text: &str, whole: bool) -> u64 {
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
    turn(a, req, TurnEvent::Routed(decision(Target::Local)));
    turn(
        a,
        req,
        TurnEvent::Opened {
            conversation: Some(1),
            title: prompt.into(),
            privacy: Privacy::Open,
        },
    );
    turn(a, req, TurnEvent::Delta(text.into()));
    if !whole {
        update(
            a,
            Msg::Key(crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::Char('c'),
                crossterm::event::KeyModifiers::CONTROL,
            )),
        );
    }
    turn(a, req, answered(Target::Local, "smollm2-135m", text, whole));
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
    req
}

fn converse(a: &mut App, prompt: &str, text: &str, whole: bool) {
    let req = converse_open(a, prompt, text, whole);
    end(
        a,
        req,
        if whole {
            Finish::Answered
        } else {
            Finish::Interrupted
        },
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
        converse(&mut a, "show me code", ANSWER, true);
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
            false,
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
        converse(&mut a, "show me code", ANSWER, true);
        let t = theme::load(name, None).unwrap();
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| ui::draw(f, &a, &t)).unwrap();
        // The full buffer, colours included, so a theme change shows in review.
        insta::assert_debug_snapshot!(format!("theme_{name}"), term.backend().buffer());
        if !t.has_colour() {
            // NO_COLOR's theme: not one coloured cell, syntax-highlighted code included.
            let buf = term.backend().buffer();
            assert!(
                buf.content()
                    .iter()
                    .all(|c| (c.fg, c.bg) == (Color::Reset, Color::Reset)),
                "{name}"
            );
        }
    }
}

#[test]
fn resize_mid_stream_rewraps() {
    let mut a = base(80, 24, "default");
    converse(&mut a, "wrap", &"word ".repeat(60), true);
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
    converse(&mut a, "show me code", ANSWER, true);
    type_line(&mut a, "/delete");
    insta::assert_snapshot!("delete_80x24", screen(&a, "default"));
}

#[test]
fn escalated_answer_below_its_seam() {
    for (w, h) in SIZES {
        let mut a = base(w, h, "default");
        let req = converse_open(
            &mut a,
            "What is the capital of France?",
            "The capital of France is the capital of France.",
            true,
        );
        let events = [
            TurnEvent::Escalated(Escalation {
                reason: EscalationReason::RepetitionLoop,
                message: "the local answer repeats itself (most phrases are repeats)".into(),
            }),
            TurnEvent::Started {
                tier: Target::Cloud,
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
            },
            TurnEvent::Delta("The capital of France is Paris.".into()),
            answered(
                Target::Cloud,
                "gpt-4o-mini",
                "The capital of France is Paris.",
                true,
            ),
        ];
        for event in events {
            turn(&mut a, req, event);
        }
        end(&mut a, req, Finish::Answered);
        insta::assert_snapshot!(format!("escalated_{w}x{h}"), screen(&a, "default"));
    }
}

#[test]
fn escape_sequences_in_the_chat_screen_are_shown_not_obeyed() {
    let mut a = base(80, 24, "default");
    let nasty = "title\x1b]0;pwned\x07 and \x1b]52;c;aGk=\x07 and \x1b[2J\u{9b}31m done";
    converse(&mut a, "hi", nasty, true);
    update(
        &mut a,
        Msg::Conversations(vec![ConvRow {
            id: 1,
            title: nasty.into(),
            updated_at: 1_800_000_000 - 300,
            local_answers: 1,
            cloud_answers: 0,
        }]),
    );
    update(&mut a, Msg::Notice("provider: \x1b[31mboom".into()));
    let shown = screen(&a, "default");
    // tandem shows the sequences as text itself (ratatui alone would drop ESC and print the
    // rest as if it were part of the answer).
    assert!(shown.contains("␛]52;c;aGk=␇"), "{shown}");
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\n'),
        "{shown:?}"
    );
}
