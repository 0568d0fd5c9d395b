#![allow(dead_code, unused_imports)]
//! Shared helpers for the pure `update` tests: an app, keys, and a whole answer.

pub use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
pub use tandem::backend::{FinishReason, StreamEvent};
pub use tandem::chat::{Role, Usage};
pub use tandem::config::RouteMode;
pub use tandem::router::{Escalation, EscalationReason, LocalState, RouteDecision, Target};
pub use tandem::tui::app::{App, Overlay, Seam, update};
pub use tandem::tui::keymap::{Action, Focus, Keymap};
pub use tandem::tui::msg::{Effect, LocalEvent, LocalModel, Msg, RouteRequest};

pub fn app() -> App {
    let mut a = App::new(
        Keymap::default(),
        RouteMode::Auto,
        "smollm2-135m".into(),
        ("default".into(), true),
    );
    a.themes = vec!["default".into(), "light".into(), "high-contrast".into()];
    a
}

pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}
pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}
pub fn typed(a: &mut App, s: &str) {
    for c in s.chars() {
        update(a, key(KeyCode::Char(c)));
    }
}
pub fn send(a: &mut App, s: &str) -> Vec<Effect> {
    typed(a, s);
    update(a, key(KeyCode::Enter))
}
pub fn decision(target: Target) -> RouteDecision {
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
pub fn req_of(effects: &[Effect]) -> u64 {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Ask { req, .. } => Some(*req),
            _ => None,
        })
        .expect("an Ask effect")
}
/// Sends a prompt and walks its answer to the end.
pub fn answer(
    a: &mut App,
    prompt: &str,
    target: Target,
    text: &str,
    finish: FinishReason,
) -> Vec<Effect> {
    let req = req_of(&send(a, prompt));
    update(
        a,
        Msg::Routed {
            req,
            conv: 7,
            title: prompt.into(),
            turn: Some(70),
            decision: decision(target),
            local_name: "smollm2-135m".into(),
        },
    );
    update(
        a,
        Msg::Stream {
            req,
            event: StreamEvent::Started {
                provider: "p".into(),
                model: "gpt-4o-mini".into(),
            },
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
                prompt_tokens: 10,
                completion_tokens: 20,
                ttft_ms: 400,
                tokens_per_s: 33.0,
            }),
        },
    );
    update(
        a,
        Msg::Stream {
            req,
            event: StreamEvent::Done(finish),
        },
    );
    update(a, Msg::StreamEnded { req })
}
