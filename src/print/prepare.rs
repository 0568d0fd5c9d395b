//! What one-shot mode settles before a turn starts: the role (from `--role`, or the one a
//! continued conversation was saved with) and what it changes, namely the system prompt, the
//! route and model unless the flags name them, and the answer's temperature and length. A bad
//! role is a usage error, one line naming its file and line, before anything is sent.

use crate::config::Config;
use crate::roles::{self, RoleError};

/// The turn's settings after the role.
#[derive(Debug)]
pub(super) struct Prepared {
    pub cfg: Config,
    pub system: Option<String>,
    pub role: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<usize>,
}

/// Applies role `name` (if any) on top of `cfg`; `--system` text follows the role's prompt.
/// `route_given` and `model_given` say the flags chose, so the role does not.
pub(super) fn with_role(
    cfg: &Config,
    name: Option<&str>,
    system: Option<&str>,
    route_given: bool,
    model_given: bool,
) -> Result<Prepared, RoleError> {
    let mut out = Prepared {
        cfg: cfg.clone(),
        system: system.map(str::to_string),
        role: None,
        temperature: None,
        max_tokens: None,
    };
    let Some(name) = name else {
        return Ok(out);
    };
    let role = roles::load(name, &cfg.paths.roles_dir())?;
    role.check(cfg)?;
    if let Some(model) = &role.model
        && !model_given
        && let Ok(choice) = crate::models::choose(model, cfg)
    {
        // The role's own route (or the flag's) wins over the tier its model implies.
        choice.apply(&mut out.cfg, route_given || role.route.is_some());
    }
    if let Some(route) = role.route
        && !route_given
    {
        out.cfg.route = route;
    }
    out.system = Some(match system {
        Some(extra) => format!("{}\n\n{extra}", role.prompt.trim_end()),
        None => role.prompt.clone(),
    });
    out.role = Some(role.name.clone());
    out.temperature = role.temperature;
    out.max_tokens = role.max_tokens;
    Ok(out)
}
