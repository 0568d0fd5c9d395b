//! Any model by name (`--model`, `/model`, a role's `model`): a local catalog name, a `[models]`
//! entry or a GGUF path runs in this process; `PROVIDER/MODEL`, or a bare model name that one
//! provider alone lists, is served by that provider, whose tier the choice implies. Pure: it
//! reads the config and the catalog, never the disk or the network.

use crate::config::{Config, Engine, RouteMode, ServedModel, Tier};

use super::catalog;

/// What a model name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// The in-process engine: a catalog name, a `[models]` entry, or a path to a .gguf file
    /// (whether the file exists is found when it loads).
    InProcess(String),
    /// A model a configured provider serves, local-tier or cloud.
    Served { model: ServedModel, tier: Tier },
}

impl ModelChoice {
    pub fn tier(&self) -> Tier {
        match self {
            ModelChoice::InProcess(_) => Tier::Local,
            ModelChoice::Served { tier, .. } => *tier,
        }
    }

    /// The route a forced model implies: the tier it lives on.
    pub fn route(&self) -> RouteMode {
        match self.tier() {
            Tier::Local => RouteMode::Local,
            Tier::Cloud => RouteMode::Cloud,
        }
    }

    /// Makes this the model that answers: the in-process model, the local server's model, or
    /// the cloud model tried first. The route is pinned to its tier unless `keep_route`.
    pub fn apply(&self, cfg: &mut Config, keep_route: bool) {
        match self {
            ModelChoice::InProcess(name) => {
                cfg.local.model = name.clone();
                cfg.engine = Engine::InProcess;
            }
            ModelChoice::Served {
                model,
                tier: Tier::Local,
            } => cfg.engine = Engine::Server(model.clone()),
            ModelChoice::Served {
                model,
                tier: Tier::Cloud,
            } => cfg.cloud_model = Some(model.clone()),
        }
        if !keep_route {
            cfg.route = self.route();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    #[error("unknown model {name:?}; known: {known}; or give a path to a .gguf file")]
    Unknown { name: String, known: String },
    #[error("{provider} lists no model {model:?}; its models: {listed}")]
    NotListed {
        provider: String,
        model: String,
        listed: String,
    },
    #[error("{name:?} is served by several providers; say which: {options}")]
    Ambiguous { name: String, options: String },
}

/// Reads `name` (see the module comment). Local names come first, so a configured provider can
/// never shadow the model that `local.model` has always meant.
pub fn choose(name: &str, cfg: &Config) -> Result<ModelChoice, ChooseError> {
    if cfg.models.contains_key(name) || catalog::find(name).is_some() {
        return Ok(ModelChoice::InProcess(name.to_string()));
    }
    let served = |p: &crate::config::Provider, m: &str| ModelChoice::Served {
        model: ServedModel {
            provider: p.name.clone(),
            model: m.to_string(),
        },
        tier: p.tier,
    };
    if let Some((prefix, rest)) = name.split_once('/')
        && let Some(p) = cfg.provider(prefix)
    {
        return match p.models.iter().find(|m| m.name == rest) {
            Some(m) => Ok(served(p, &m.name)),
            None => Err(ChooseError::NotListed {
                provider: p.name.clone(),
                model: rest.to_string(),
                listed: names(p.models.iter().map(|m| m.name.clone())),
            }),
        };
    }
    // Bare names may hold a slash themselves ("meta-llama/llama-3.1-70b-instruct").
    let bare: Vec<_> = cfg
        .providers
        .iter()
        .filter_map(|p| p.models.iter().find(|m| m.name == name).map(|m| (p, m)))
        .collect();
    match bare.as_slice() {
        [(p, m)] => return Ok(served(p, &m.name)),
        [] => {}
        many => {
            return Err(ChooseError::Ambiguous {
                name: name.to_string(),
                options: names(many.iter().map(|(p, m)| format!("{}/{}", p.name, m.name))),
            });
        }
    }
    if looks_like_path(name) {
        return Ok(ModelChoice::InProcess(name.to_string()));
    }
    Err(ChooseError::Unknown {
        name: name.to_string(),
        known: known(cfg),
    })
}

/// A path by its spelling: a .gguf file, or one written from a directory (`./`, `../`, `/`,
/// `~/`). Anything else unknown is a typo to report, not a file to look for.
fn looks_like_path(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
        || ["/", "./", "../", "~/"].iter().any(|p| name.starts_with(p))
}

/// Every name `choose` accepts, local ones first, each with where it runs.
fn known(cfg: &Config) -> String {
    let mut local: Vec<String> = catalog::builtin()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    local.extend(cfg.models.keys().cloned());
    local.sort();
    local.dedup();
    let mut all: Vec<String> = local.into_iter().map(|n| format!("{n} (local)")).collect();
    for p in &cfg.providers {
        let tier = match p.tier {
            Tier::Local => "local server",
            Tier::Cloud => "cloud",
        };
        all.extend(
            p.models
                .iter()
                .map(|m| format!("{}/{} ({tier})", p.name, m.name)),
        );
    }
    names(all.into_iter())
}

fn names(it: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
#[path = "choice_tests.rs"]
mod tests;
