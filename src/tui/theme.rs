//! Themes: a closed `Role` enum, and the loader for `themes/*.toml` (shipped, embedded) and the
//! user's themes directory, with `inherits` and every role and colour checked at load time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

macro_rules! roles {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Everything the screen paints is one of these; a theme must style each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Role { $($variant),* }
        impl Role {
            pub const ALL: &'static [Role] = &[$(Role::$variant),*];
            pub fn name(self) -> &'static str {
                match self { $(Role::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<Role> {
                match s { $($name => Some(Role::$variant),)* _ => None }
            }
        }
    };
}

roles! {
    Text => "text", Muted => "muted", User => "user", Assistant => "assistant",
    LocalBadge => "local-badge", CloudBadge => "cloud-badge", Code => "code",
    Heading => "heading", Emphasis => "emphasis", Strong => "strong", Quote => "quote",
    Link => "link", Border => "border", BorderFocus => "border-focus", Status => "status",
    Selection => "selection", Error => "error", Warning => "warning", Banner => "banner",
    Seam => "seam",
}

/// The shipped themes, embedded so the binary works from any directory.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    Dark,
    Light,
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub background: Background,
    styles: BTreeMap<Role, Style>,
    colour: bool,
}

impl Theme {
    pub fn style(&self, role: Role) -> Style {
        self.styles.get(&role).copied().unwrap_or_default()
    }

    /// Whether any role has a colour. A theme without (`mono`) also keeps syntax highlighting's
    /// colours out of code blocks, so nothing on the screen is coloured.
    pub fn has_colour(&self) -> bool {
        self.colour
    }

    /// The shipped default; it is checked by tests, so it always loads.
    pub fn builtin() -> Theme {
        load("default", None).expect("the embedded default theme is valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "unknown theme {name:?}; available: {available}. Use one of those, or add {dir}/{name}.toml"
    )]
    Unknown {
        name: String,
        available: String,
        dir: String,
    },
    #[error("{file}: {problem}; {fix}")]
    Invalid {
        file: String,
        problem: String,
        fix: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    background: Option<Background>,
    inherits: Option<String>,
    #[serde(default)]
    palette: BTreeMap<String, String>,
    #[serde(default)]
    styles: BTreeMap<String, StyleSpec>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum StyleSpec {
    Color(String),
    Full {
        fg: Option<String>,
        bg: Option<String>,
        #[serde(default)]
        bold: bool,
        #[serde(default)]
        italic: bool,
        #[serde(default)]
        underline: bool,
        #[serde(default)]
        dim: bool,
        #[serde(default)]
        reversed: bool,
    },
}

/// Names of every theme a user can pick, shipped first.
pub fn available(user_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = SHIPPED.iter().map(|(n, _)| n.to_string()).collect();
    if let Some(dir) = user_dir
        && let Ok(rd) = std::fs::read_dir(dir)
    {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && !names.iter().any(|n| n == stem)
            {
                names.push(stem.to_string());
            }
        }
    }
    names
}

/// Loads theme `name`: a user file shadows a shipped one of the same name.
pub fn load(name: &str, user_dir: Option<&Path>) -> Result<Theme, ThemeError> {
    load_chain(name, user_dir, &mut Vec::new())
}

fn source(name: &str, user_dir: Option<&Path>) -> Option<(String, String)> {
    if let Some(dir) = user_dir {
        let p: PathBuf = dir.join(format!("{name}.toml"));
        if let Ok(text) = std::fs::read_to_string(&p) {
            return Some((p.display().to_string(), text));
        }
    }
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, t)| (format!("themes/{n}.toml"), t.to_string()))
}

struct Raw {
    background: Option<Background>,
    palette: BTreeMap<String, String>,
    styles: BTreeMap<Role, StyleSpec>,
}

fn load_chain(
    name: &str,
    user_dir: Option<&Path>,
    seen: &mut Vec<String>,
) -> Result<Theme, ThemeError> {
    let raw = raw_chain(name, user_dir, seen)?;
    let file = seen.first().cloned().unwrap_or_default();
    let invalid = |problem: String, fix: &str| ThemeError::Invalid {
        file: file.clone(),
        problem,
        fix: fix.into(),
    };
    let mut styles = BTreeMap::new();
    let mut missing = Vec::new();
    for role in Role::ALL {
        let Some(spec) = raw.styles.get(role) else {
            missing.push(role.name());
            continue;
        };
        let style = match spec {
            StyleSpec::Color(c) => Style::default().fg(color(c, &raw.palette).map_err(|e| {
                invalid(
                    format!("styles.{}: {e}", role.name()),
                    "use a palette name, #rrggbb or an ANSI colour name",
                )
            })?),
            StyleSpec::Full {
                fg,
                bg,
                bold,
                italic,
                underline,
                dim,
                reversed,
            } => {
                let mut s = Style::default();
                for (which, v) in [("fg", fg), ("bg", bg)] {
                    if let Some(v) = v {
                        let c = color(v, &raw.palette).map_err(|e| {
                            invalid(
                                format!("styles.{}.{which}: {e}", role.name()),
                                "use a palette name, #rrggbb or an ANSI colour name",
                            )
                        })?;
                        s = if which == "fg" { s.fg(c) } else { s.bg(c) };
                    }
                }
                for (on, m) in [
                    (bold, Modifier::BOLD),
                    (italic, Modifier::ITALIC),
                    (underline, Modifier::UNDERLINED),
                    (dim, Modifier::DIM),
                    (reversed, Modifier::REVERSED),
                ] {
                    if *on {
                        s = s.add_modifier(m);
                    }
                }
                s
            }
        };
        styles.insert(*role, style);
    }
    if !missing.is_empty() {
        return Err(invalid(
            format!("no style for role(s) {}", missing.join(", ")),
            "add them under [styles] or set inherits = \"default\"",
        ));
    }
    Ok(Theme {
        name: name.to_string(),
        background: raw.background.unwrap_or(Background::Dark),
        colour: styles.values().any(|s| s.fg.is_some() || s.bg.is_some()),
        styles,
    })
}

fn raw_chain(
    name: &str,
    user_dir: Option<&Path>,
    seen: &mut Vec<String>,
) -> Result<Raw, ThemeError> {
    let Some((file, text)) = source(name, user_dir) else {
        return Err(ThemeError::Unknown {
            name: name.into(),
            available: available(user_dir).join(", "),
            dir: user_dir
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "~/.config/tandem/themes".into()),
        });
    };
    if seen.contains(&file) {
        return Err(ThemeError::Invalid {
            file,
            problem: "inherits itself".into(),
            fix: "break the inherits cycle".into(),
        });
    }
    seen.push(file.clone());
    let parsed: ThemeFile = toml::from_str(&text).map_err(|e| ThemeError::Invalid {
        file: file.clone(),
        problem: e.message().trim().to_string(),
        fix: "see themes/default.toml for the format".into(),
    })?;
    let _ = parsed.name;
    let mut raw = match &parsed.inherits {
        Some(parent) => raw_chain(parent, user_dir, seen)?,
        None => Raw {
            background: None,
            palette: BTreeMap::new(),
            styles: BTreeMap::new(),
        },
    };
    raw.background = parsed.background.or(raw.background);
    raw.palette.extend(parsed.palette);
    for (k, v) in parsed.styles {
        let role = Role::parse(&k).ok_or_else(|| ThemeError::Invalid {
            file: file.clone(),
            problem: format!("unknown role {k:?} in [styles]"),
            fix: format!(
                "use one of: {}",
                Role::ALL
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        raw.styles.insert(role, v);
    }
    Ok(raw)
}

fn color(spec: &str, palette: &BTreeMap<String, String>) -> Result<Color, String> {
    let resolved = palette.get(spec).map(String::as_str).unwrap_or(spec);
    if let Some(hex) = resolved.strip_prefix('#') {
        if hex.len() == 6
            && let Ok(v) = u32::from_str_radix(hex, 16)
        {
            return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
        return Err(format!("bad hex colour {resolved:?}"));
    }
    resolved
        .parse::<Color>()
        .map_err(|_| format!("unknown colour {spec:?}"))
}

#[cfg(test)]
#[path = "theme_tests.rs"]
mod tests;
