#![allow(dead_code, unused_imports)]
//! Shared helpers for the pure `update` tests: an app, keys, a turn's events, a whole answer.

pub use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
pub use tandem::chat::{Role, Usage};
pub use tandem::config::RouteMode;
pub use tandem::router::{Escalation, EscalationReason, LocalState, RouteDecision, Target};
pub use tandem::tui::app::{App, Overlay, Seam, update};
pub use tandem::tui::keymap::{Action, Focus, Keymap};
pub use tandem::tui::msg::{Effect, LocalEvent, LocalModel, Msg};
pub use tandem::turn::{
    Answer, Ask, Badge, Done, Failure, Finish, Privacy, Refusal, RouteRequest, SpendNow, Thread,
    TurnEvent, TurnRequest,
};

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
/// The `Ask` effect's request id and request.
pub fn ask_of(effects: &[Effect]) -> (u64, TurnRequest) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Ask { req, request } => Some((*req, request.clone())),
            _ => None,
        })
        .expect("an Ask effect")
}
pub fn req_of(effects: &[Effect]) -> u64 {
    ask_of(effects).0
}
/// Feeds one event of turn `req` to the app.
pub fn ev(a: &mut App, req: u64, event: TurnEvent) -> Vec<Effect> {
    update(a, Msg::Turn { req, event })
}
pub fn opened(a: &mut App, req: u64, conv: i64) -> Vec<Effect> {
    ev(
        a,
        req,
        TurnEvent::Opened {
            conversation: Some(conv),
            title: "chat".into(),
            privacy: Privacy::Open,
        },
    )
}
/// An answer as the pipeline reports it when it ends.
pub fn answered(target: Target, model: &str, text: &str, whole: bool) -> TurnEvent {
    let mut badge = Badge::routed(target, model);
    (badge.ttft_ms, badge.tokens_per_s) = (400, 33.0);
    if target == Target::Cloud {
        badge.cost_usd = 0.000_012;
    }
    TurnEvent::Answered(Answer {
        text: text.into(),
        badge,
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: 20,
            ttft_ms: 400,
            tokens_per_s: 33.0,
        },
        interrupted: !whole,
    })
}
/// The end of a turn: `Done`, then the stream's end.
pub fn done(a: &mut App, req: u64, finish: Finish) -> Vec<Effect> {
    let mut fx = ev(
        a,
        req,
        TurnEvent::Done(Done {
            finish,
            spend: SpendNow {
                today_usd: 0.5,
                ..Default::default()
            },
        }),
    );
    fx.extend(update(a, Msg::TurnEnded { req }));
    fx
}
/// Sends a prompt and walks its turn to the end, as the pipeline would report it.
pub fn answer(a: &mut App, prompt: &str, target: Target, text: &str, whole: bool) -> Vec<Effect> {
    let req = req_of(&send(a, prompt));
    ev(a, req, TurnEvent::Routed(decision(target)));
    ev(
        a,
        req,
        TurnEvent::Opened {
            conversation: Some(7),
            title: prompt.into(),
            privacy: Privacy::Open,
        },
    );
    let model = match target {
        Target::Local => "smollm2-135m",
        Target::Cloud => "gpt-4o-mini",
    };
    ev(
        a,
        req,
        TurnEvent::Started {
            tier: target,
            provider: "p".into(),
            model: model.into(),
        },
    );
    ev(a, req, TurnEvent::Delta(text.into()));
    ev(a, req, answered(target, model, text, whole));
    let finish = if whole {
        Finish::Answered
    } else {
        Finish::Interrupted
    };
    done(a, req, finish)
}
