//! Roles: a named system prompt with optional settings for the turns it answers. A role is a
//! Markdown file, `$XDG_CONFIG_HOME/tandem/roles/NAME.md`, or one of the built-ins embedded
//! from `src/roles/`; a user file shadows a built-in of the same name. No terminal code here.
//!
//! The file opens with an optional TOML front matter between two `+++` lines (Hugo's marker
//! for TOML, so `---` stays free for Markdown rules in the prompt):
//!
//! ```text
//! +++
//! route = "local"         # "auto", "local" or "cloud"
//! model = "lab/tiny"      # any name `--model` takes
//! temperature = 0.2
//! max_tokens = 200
//! +++
//! The prompt: everything after the second +++.
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chat::Message;
use crate::config::{Config, RouteMode};

/// The built-in roles, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("commit", include_str!("roles/commit.md")),
    ("explain", include_str!("roles/explain.md")),
    ("shell", include_str!("roles/shell.md")),
];

/// Where a role was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    File(PathBuf),
}

impl Source {
    /// How errors name it: the file's path, or `built-in role NAME`.
    fn describe(&self, name: &str) -> String {
        match self {
            Source::BuiltIn => format!("built-in role {name}"),
            Source::File(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub route: Option<RouteMode>,
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<usize>,
    /// The system prompt.
    pub prompt: String,
    pub source: Source,
    /// The whole file as written (front matter included), for `roles show`.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoleError {
    #[error("{at}:{line}: {problem}; {fix}")]
    Bad {
        at: String,
        line: usize,
        problem: String,
        fix: String,
    },
    #[error("no role {name:?}; roles: {known}; add one with `tandem roles edit {name}`")]
    Unknown { name: String, known: String },
    #[error("{name:?} is not a role name; use letters, digits, '-' and '_'")]
    BadName { name: String },
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Front {
    route: Option<RouteMode>,
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<usize>,
}

const MARK: &str = "+++";

/// What `roles edit NAME` starts a new role from.
pub const TEMPLATE: &str = "+++
# Every setting is optional; the role's turns use these instead of the config's.
# route = \"auto\"         # \"auto\", \"local\" or \"cloud\"
# model = \"smollm2-135m\" # any name `tandem models list` shows
# temperature = 0.7
# max_tokens = 512
+++
Say here who the model should be and how it should answer.
";

/// A role name is a file name: no separators, no dots, so `edit` cannot leave the directory.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The user's file for `name` in `dir` (whether or not it exists).
pub fn file(name: &str, dir: &Path) -> Result<PathBuf, RoleError> {
    if !valid_name(name) {
        return Err(RoleError::BadName { name: name.into() });
    }
    Ok(dir.join(format!("{name}.md")))
}

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The role `name`: the user's file in `dir` when there is one, else the built-in.
pub fn load(name: &str, dir: &Path) -> Result<Role, RoleError> {
    let path = file(name, dir)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(name, &text, Source::File(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match builtin(name) {
            Some(text) => parse(name, text, Source::BuiltIn),
            None => Err(RoleError::Unknown {
                name: name.into(),
                known: names(dir).join(", "),
            }),
        },
        Err(e) => Err(RoleError::Unreadable {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Every role name, built-in and user, sorted, once each.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        v.extend(entries.flatten().filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_str()?;
            (p.extension()? == "md" && valid_name(stem)).then(|| stem.to_string())
        }));
    }
    v.sort();
    v.dedup();
    v
}

/// Every role, each loaded on its own so one broken file does not hide the rest.
pub fn list(dir: &Path) -> Vec<(String, Result<Role, RoleError>)> {
    names(dir)
        .into_iter()
        .map(|n| {
            let r = load(&n, dir);
            (n, r)
        })
        .collect()
}

/// Reads a role's text; errors carry the source and the line.
pub fn parse(name: &str, text: &str, source: Source) -> Result<Role, RoleError> {
    let at = source.describe(name);
    let bad = |line: usize, problem: String, fix: &str| RoleError::Bad {
        at: at.clone(),
        line,
        problem,
        fix: fix.into(),
    };
    let (front, front_start, body) = match split(text) {
        Split::None => ("", 1, text),
        Split::Front { front, start, body } => (front, start, body),
        Split::Unclosed => {
            return Err(bad(
                1,
                "the front matter opened with +++ is never closed".into(),
                "end it with a line holding only +++",
            ));
        }
    };
    let f: Front = toml::from_str(front).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(front, s.start) - 1);
        bad(
            front_start + line,
            e.message().trim().replace('\n', " "),
            "the keys are route, model, temperature and max_tokens",
        )
    })?;
    let key_line = |key: &str| front_start + line_of_key(front, key).unwrap_or(0);
    if let Some(t) = f.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(bad(
            key_line("temperature"),
            format!("temperature {t} is out of range"),
            "use a value from 0.0 to 2.0",
        ));
    }
    if f.max_tokens == Some(0) {
        return Err(bad(
            key_line("max_tokens"),
            "max_tokens 0 would never answer".into(),
            "use a positive number such as 512",
        ));
    }
    let prompt = body.trim().to_string();
    if prompt.is_empty() {
        let line = text.lines().count().max(1);
        return Err(bad(
            line,
            "the role has no prompt".into(),
            "write the system prompt after the front matter",
        ));
    }
    Ok(Role {
        name: name.into(),
        route: f.route,
        model: f.model,
        temperature: f.temperature,
        max_tokens: f.max_tokens,
        prompt,
        source,
        text: text.into(),
    })
}

impl Role {
    /// The message that opens every request this role answers.
    pub fn system_message(&self) -> Message {
        Message::system(self.prompt.clone())
    }

    /// Checks what only the config can tell: that `model` names a model there is.
    pub fn check(&self, cfg: &Config) -> Result<(), RoleError> {
        let Some(model) = &self.model else {
            return Ok(());
        };
        crate::models::choose(model, cfg).map(|_| ()).map_err(|e| {
            let (front, start) = match split(&self.text) {
                Split::Front { front, start, .. } => (front, start),
                _ => ("", 1),
            };
            RoleError::Bad {
                at: self.source.describe(&self.name),
                line: start + line_of_key(front, "model").unwrap_or(0),
                problem: e.to_string(),
                fix: "name a model `tandem models list` shows".into(),
            }
        })
    }
}

enum Split<'a> {
    None,
    Unclosed,
    /// `start` is the file line (1-based) of the front matter's first line.
    Front {
        front: &'a str,
        start: usize,
        body: &'a str,
    },
}

fn split(text: &str) -> Split<'_> {
    let first = text.lines().next().unwrap_or("");
    if first.trim_end() != MARK {
        return Split::None;
    }
    let after_open = text.find('\n').map_or(text.len(), |i| i + 1);
    let rest = &text[after_open..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == MARK {
            return Split::Front {
                front: &rest[..offset],
                start: 2,
                body: &rest[offset + line.len()..],
            };
        }
        offset += line.len();
    }
    Split::Unclosed
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// 0-based line of `key = ...` in the front matter.
fn line_of_key(front: &str, key: &str) -> Option<usize> {
    front.lines().position(|l| {
        l.trim_start()
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
    })
}

#[cfg(test)]
#[path = "roles/tests.rs"]
mod tests;
