//! What a request's `model` means to tandem: `tandem` (or `tandem/auto`) lets the router decide,
//! `tandem/local` and `tandem/cloud` pin a tier, and any model tandem knows by name
//! (`models::choose`) pins the tier it lives on, a cloud model also being tried first.
//! The server runs one local model: naming another is refused rather than swapping it.

use super::error::ApiError;
use crate::config::{Config, Engine, RouteMode, Tier};
use crate::models::{ChooseError, ModelChoice, choose};
use crate::turn::RouteRequest;

pub const AUTO: &str = "tandem";
pub const AUTO_ALIAS: &str = "tandem/auto";
pub const LOCAL: &str = "tandem/local";
pub const CLOUD: &str = "tandem/cloud";

/// Where a request goes, as the turn pipeline takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub route: RouteRequest,
    /// The cloud model to try first ("provider/model").
    pub cloud_model: Option<String>,
}

impl Pick {
    fn mode(mode: RouteMode) -> Pick {
        Pick {
            route: RouteRequest::Mode(mode),
            cloud_model: None,
        }
    }
}

/// Reads `model`; `local_name` is the model the in-process engine runs.
pub fn pick(model: &str, cfg: &Config, local_name: &str) -> Result<Pick, ApiError> {
    match model {
        AUTO | AUTO_ALIAS => return Ok(Pick::mode(RouteMode::Auto)),
        LOCAL => return Ok(Pick::mode(RouteMode::Local)),
        CLOUD => return Ok(Pick::mode(RouteMode::Cloud)),
        _ => {}
    }
    let unknown = |why: String| ApiError::UnknownModel(why);
    let choice = choose(model, cfg).map_err(|e| match e {
        ChooseError::Unknown { .. } => unknown(format!(
            "unknown model {model:?}; use {AUTO}, {LOCAL}, {CLOUD} or a name from GET /v1/models"
        )),
        other => unknown(other.to_string()),
    })?;
    let not_loaded = || {
        unknown(format!(
            "{model:?} is not the local model this server runs ({local_name}); restart it with --model {model:?}, or use {LOCAL}"
        ))
    };
    match choice {
        ModelChoice::InProcess(name) if name == local_name || name == cfg.local.model => {
            Ok(Pick::mode(RouteMode::Local))
        }
        ModelChoice::InProcess(_) => Err(not_loaded()),
        ModelChoice::Served {
            model: served,
            tier: Tier::Cloud,
        } => Ok(Pick {
            route: RouteRequest::Mode(RouteMode::Cloud),
            cloud_model: Some(served.to_string()),
        }),
        ModelChoice::Served {
            model: served,
            tier: Tier::Local,
        } => match &cfg.engine {
            Engine::Server(s) if *s == served => Ok(Pick::mode(RouteMode::Local)),
            _ => Err(not_loaded()),
        },
    }
}

/// Every name a request may use: the routed ones, the local model, the configured cloud models.
pub fn names(cfg: &Config, local_name: &str) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = [AUTO, AUTO_ALIAS, LOCAL, CLOUD]
        .iter()
        .map(|n| (n.to_string(), "tandem"))
        .collect();
    v.push((local_name.to_string(), "local"));
    for p in &cfg.providers {
        let owner = match p.tier {
            Tier::Local => "local",
            Tier::Cloud => "cloud",
        };
        v.extend(
            p.models
                .iter()
                .map(|m| (format!("{}/{}", p.name, m.name), owner)),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tests::cfg_with;

    #[test]
    fn routed_names_pin_tiers_and_known_models_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg_with(
            dir.path(),
            "[providers.lab]\nbase_url = \"https://lab.example/v1\"\nmodels = [{ name = \"big\" }]\n",
        );
        let route = |m: &str| pick(m, &cfg, "smollm2-135m").map(|p| p.route);
        assert_eq!(route(AUTO), Ok(RouteRequest::Mode(RouteMode::Auto)));
        assert_eq!(route(AUTO_ALIAS), Ok(RouteRequest::Mode(RouteMode::Auto)));
        assert_eq!(route(LOCAL), Ok(RouteRequest::Mode(RouteMode::Local)));
        assert_eq!(
            route("smollm2-135m"),
            Ok(RouteRequest::Mode(RouteMode::Local))
        );
        let cloud = pick("lab/big", &cfg, "smollm2-135m").unwrap();
        assert_eq!(cloud.route, RouteRequest::Mode(RouteMode::Cloud));
        assert_eq!(cloud.cloud_model.as_deref(), Some("lab/big"));
        assert_eq!(
            pick("big", &cfg, "x").unwrap().cloud_model.as_deref(),
            Some("lab/big")
        );
        // The server runs one local model; another is refused, not swapped in.
        assert!(matches!(
            route("other.gguf"),
            Err(ApiError::UnknownModel(_))
        ));
        assert!(matches!(route("gpt-17"), Err(ApiError::UnknownModel(_))));
        assert!(
            names(&cfg, "smollm2-135m")
                .iter()
                .any(|(n, _)| n == "lab/big")
        );
    }
}
