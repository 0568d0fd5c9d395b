//! Layering: embedded defaults < user file < `TANDEM_*` environment < command-line flags,
//! merged by the `config` crate, with each value's origin kept for `tandem config show`.
//! Every failure is one line naming where the bad value is and how to fix it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::paths::RESERVED_ENV;
use super::{Config, ConfigFile, DEFAULT_TOML, Paths, RouteMode};

/// Where an effective value came from, lowest to highest precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Default,
    /// `NO_COLOR` chose the theme (no-color.org): above the default, below any choice.
    NoColor,
    File,
    Env,
    Flag,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Default => "default",
            Layer::NoColor => "NO_COLOR",
            Layer::File => "file",
            Layer::Env => "env",
            Layer::Flag => "flag",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}:{line}:{col}: {problem}; {fix}", path = path.display())]
    File {
        path: PathBuf,
        line: usize,
        col: usize,
        problem: String,
        fix: String,
    },
    #[error("cannot read config file {path}: {reason}; fix its permissions or pass another with --config FILE", path = path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{origin}: {key}: {problem}; {fix}")]
    Value {
        origin: String,
        key: String,
        problem: String,
        fix: String,
    },
}

#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// `--config FILE`; when given, the file must exist.
    pub config_file: Option<PathBuf>,
    /// The process environment (passed in so tests need not mutate it).
    pub env: Vec<(String, String)>,
    pub route: Option<RouteMode>,
    pub theme: Option<String>,
    /// `--model`: any model by name (`models::choose`); it pins the route to the model's tier
    /// unless `route` is given too.
    pub model: Option<String>,
    pub no_pull: bool,
}

/// The resolved config plus what `config show` needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub effective: ConfigFile,
    /// Dotted key -> the highest layer that set it (or a parent table of it).
    pub origins: BTreeMap<String, Layer>,
    pub file_exists: bool,
}

impl Loaded {
    /// Where a key's value came from, in words, for error messages.
    pub fn describe_origin(&self, key: &str) -> String {
        describe(self.origin(key), key, &self.config.file)
    }

    pub fn origin(&self, key: &str) -> Layer {
        let mut k = key;
        loop {
            if let Some(l) = self.origins.get(k) {
                return *l;
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return Layer::Default,
            }
        }
    }
}

pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let paths = Paths::from_env();
    let explicit = opts.config_file.is_some();
    let path = opts
        .config_file
        .clone()
        .unwrap_or_else(|| paths.default_config_file());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path,
                reason: e.to_string(),
            });
        }
    };
    if let Some(t) = &text {
        check_file(&path, t)?;
    }

    let env: config::Map<String, String> = opts
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("TANDEM_") && !RESERVED_ENV.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Some(r) = opts.route {
        flags.push(("route", r.as_str().into()));
    }
    if let Some(t) = &opts.theme {
        flags.push(("theme", t.clone()));
    }

    let mut b = config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .add_source(config::File::from_str(
            text.as_deref().unwrap_or(""),
            config::FileFormat::Toml,
        ))
        .add_source(
            config::Environment::with_prefix("TANDEM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.clone())),
        );
    for (k, v) in &flags {
        b = b
            .set_override(*k, v.clone())
            .expect("static keys are valid");
    }
    let merged = b.build().map_err(|e| value_error(e, &env))?;
    let effective: ConfigFile = merged.try_deserialize().map_err(|e| value_error(e, &env))?;

    let mut origins = BTreeMap::new();
    // Ordered as written (toml's preserve_order): the providers are tried in the file's order.
    let table = text.as_deref().and_then(|t| t.parse::<toml::Table>().ok());
    for k in table.iter().flat_map(flatten) {
        origins.insert(k, Layer::File);
    }
    for k in env.keys() {
        origins.insert(env_key(k), Layer::Env);
    }
    for (k, _) in &flags {
        origins.insert((*k).to_string(), Layer::Flag);
    }

    // no-color.org: NO_COLOR picks the colourless theme, unless a theme was chosen in the file,
    // TANDEM_THEME or --theme.
    let mut effective = effective;
    let no_color = opts
        .env
        .iter()
        .any(|(k, v)| k == "NO_COLOR" && !v.is_empty());
    if no_color && !origins.contains_key("theme") {
        effective.theme = NO_COLOR_THEME.into();
        origins.insert("theme".into(), Layer::NoColor);
    }
    let mut config = super::resolve(effective.clone(), path.clone(), paths, opts.no_pull).map_err(
        |(key, problem, fix)| {
            let layer = origins.get(&key).copied().unwrap_or(Layer::Default);
            ConfigError::Value {
                origin: describe(layer, &key, &path),
                key,
                problem,
                fix,
            }
        },
    )?;
    in_file_order(&mut config.providers, table.as_ref());
    if let Some(name) = &opts.model {
        // Applied after the merge: only the resolved providers say what a name means.
        let choice = crate::models::choose(name, &config).map_err(|e| ConfigError::Value {
            origin: "flag --model".into(),
            key: "model".into(),
            problem: e.to_string(),
            fix: "`tandem models list` shows every model".into(),
        })?;
        choice.apply(&mut config, opts.route.is_some());
        let touched = match &choice {
            crate::models::ModelChoice::InProcess(n) => {
                effective.local.model = n.clone();
                effective.local.engine = "in-process".into();
                Some("local.model")
            }
            crate::models::ModelChoice::Served {
                model,
                tier: super::Tier::Local,
            } => {
                effective.local.engine = model.to_string();
                Some("local.engine")
            }
            crate::models::ModelChoice::Served { .. } => None,
        };
        for key in touched
            .into_iter()
            .chain(opts.route.is_none().then_some("route"))
        {
            origins.insert(key.to_string(), Layer::Flag);
        }
        effective.route = config.route;
    }
    Ok(Loaded {
        config,
        effective,
        origins,
        file_exists: text.is_some(),
    })
}

/// The shipped theme without colours (themes/mono.toml).
const NO_COLOR_THEME: &str = "mono";

/// Puts the providers in the order the user's file lists them: the first is tried first (the
/// merge's map had sorted them by name). Providers only the environment defines come after,
/// by name.
fn in_file_order(providers: &mut [super::Provider], file: Option<&toml::Table>) {
    let written: Vec<&String> = file
        .and_then(|t| t.get("providers"))
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    providers.sort_by_key(|p| {
        written
            .iter()
            .position(|n| **n == p.name)
            .unwrap_or(usize::MAX)
    });
}

/// Checks the user's file alone, so errors carry its line and column.
fn check_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    if let Err(e) = text.parse::<toml::Table>() {
        let (line, col, _) =
            e.span()
                .map(|s| locate(text, s.start))
                .unwrap_or((1, 1, String::new()));
        return Err(ConfigError::File {
            path: path.to_path_buf(),
            line,
            col,
            problem: format!("invalid TOML: {}", e.message().trim().replace('\n', " ")),
            fix: "fix the syntax at that position".into(),
        });
    }
    let err = match toml::from_str::<ConfigFile>(text) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let (line, col, key) = match err.span() {
        Some(span) => locate(text, span.start),
        None => (1, 1, String::new()),
    };
    let msg = err.message().trim().replace('\n', " ");
    let (problem, fix) = if msg.contains("unknown field `api_key`") {
        (
            format!("{key}: API keys are never stored in the config"),
            "remove it; name an env var with api_key_env, or run `tandem auth set PROVIDER`"
                .to_string(),
        )
    } else if msg.starts_with("unknown field") {
        (
            format!("{key}: {msg}"),
            "remove or rename the key (the reference is `tandem config show`)".to_string(),
        )
    } else if msg.starts_with("invalid type")
        || msg.starts_with("unknown variant")
        || msg.starts_with("invalid value")
    {
        (
            format!("{key}: {msg}"),
            "change the value to the expected type".to_string(),
        )
    } else {
        (
            format!("{key}: {msg}"),
            "fix the value at that position".to_string(),
        )
    };
    Err(ConfigError::File {
        path: path.to_path_buf(),
        line,
        col,
        problem,
        fix,
    })
}

/// Line and column (1-based) of a byte offset, and the dotted key written on that line.
fn locate(text: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    let mut table = String::new();
    for l in before.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            table = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let this_line = text[line_start..].lines().next().unwrap_or("");
    let key = match this_line.split_once('=') {
        Some((k, _)) if !this_line.trim_start().starts_with('[') => k.trim().to_string(),
        _ => String::new(),
    };
    let full = match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    };
    (line, col, full)
}

fn flatten(table: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    for (k, v) in table {
        walk(k, v, &mut out);
    }
    out
}

fn env_key(var: &str) -> String {
    var.trim_start_matches("TANDEM_")
        .to_lowercase()
        .replace("__", ".")
}

fn describe(layer: Layer, key: &str, path: &Path) -> String {
    match layer {
        Layer::Default => "built-in default".into(),
        Layer::NoColor => "environment NO_COLOR (it picks the mono theme)".into(),
        Layer::File => path.display().to_string(),
        Layer::Env => format!(
            "environment TANDEM_{}",
            key.to_uppercase().replace('.', "__")
        ),
        Layer::Flag => format!("flag --{}", key.rsplit('.').next().unwrap_or(key)),
    }
}

/// Errors found after merging can only come from the environment or flags: the file was
/// already checked on its own.
fn value_error(e: config::ConfigError, env: &config::Map<String, String>) -> ConfigError {
    let msg = e.to_string().replace('\n', " ");
    let var = env
        .keys()
        .find(|k| msg.contains(&env_key(k)))
        .or_else(|| env.keys().find(|k| msg.contains(k.as_str())))
        .cloned();
    let key = var.as_deref().map(env_key).unwrap_or_default();
    let origin = match &var {
        Some(v) => format!("environment {v}"),
        None => "environment or flags".into(),
    };
    let fix = match &var {
        Some(v) => format!("change or unset {v}"),
        None => "check the TANDEM_* variables and flags".into(),
    };
    ConfigError::Value {
        origin,
        key,
        problem: msg,
        fix,
    }
}
