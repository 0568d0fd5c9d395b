//! `/model`: the models there are (an overlay), and picking one by name. A cloud model becomes
//! this chat's first choice whenever an answer goes to the cloud; a local model replaces the
//! running engine (the driver loads it). Names are read as the cloud tier reads them
//! (`names_model`: `model` or `provider/model`). Pure, like the rest of `app`.

use crate::backend::cloud::names_model;
use crate::config::RouteMode;
use crate::router::LocalState;
use crate::tui::msg::Effect;

use super::{App, Overlay};

pub(super) fn pick(app: &mut App, name: Option<String>) -> Vec<Effect> {
    let Some(name) = name else {
        app.overlay = Some(Overlay::Models);
        return vec![];
    };
    let cloud = app
        .prices
        .cloud
        .iter()
        .find(|(p, m, ..)| names_model(p, m, &name))
        .map(|(p, m, ..)| (p.clone(), m.clone()));
    if cloud.is_some() && (app.private || app.privacy.is_private()) {
        // Privacy wins over a pick: a private chat refuses a cloud model outright.
        let why = match &app.privacy {
            crate::turn::Privacy::Open => crate::turn::Privacy::Pinned,
            p => p.clone(),
        };
        app.notice = Some(crate::turn::Refusal::Private(why).to_string());
        return vec![];
    }
    if let Some((provider, model)) = cloud {
        // The router still picks the tier per prompt; the pick says which cloud model answers.
        let when = match app.mode {
            RouteMode::Cloud => "every prompt",
            RouteMode::Auto => "when routed to the cloud",
            RouteMode::Local => "route is local: /auto or /cloud",
        };
        app.notice = Some(format!("cloud model: {provider}/{model} ({when})"));
        app.cloud_model = Some((provider, model));
        return vec![];
    }
    if name == app.local_name {
        app.notice = Some(format!("{name} is already the local model"));
        return vec![];
    }
    // A path to a .gguf file is a local model too; whether it exists is the driver's question.
    let local = app.local_models.iter().any(|m| m.name == name) || name.ends_with(".gguf");
    if !local {
        app.notice = Some(format!("no model “{name}”; pick one of: {}", choices(app)));
        return vec![];
    }
    if app.running.is_some() {
        app.notice = Some("an answer is running; Esc stops it".into());
        return vec![];
    }
    // A file is named by its stem once loaded (as `models::resolve` names it); show that now.
    app.local_name = std::path::Path::new(&name)
        .file_stem()
        .filter(|_| name.ends_with(".gguf"))
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    app.notice = Some(format!("loading {} for every chat", app.local_name));
    app.local = LocalState::Loading;
    app.pull_pct = None;
    app.local_problem = None;
    vec![Effect::SwitchLocal(name)]
}

/// Every name `/model NAME` accepts, on one line: local models first, then cloud ones.
fn choices(app: &App) -> String {
    let mut names: Vec<String> = app.local_models.iter().map(|m| m.name.clone()).collect();
    if !names.contains(&app.local_name) {
        names.insert(0, app.local_name.clone());
    }
    names.extend(app.prices.cloud.iter().map(|(p, m, ..)| format!("{p}/{m}")));
    names.join(", ")
}
