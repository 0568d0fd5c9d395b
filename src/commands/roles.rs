//! `tandem roles list|show|edit`: the roles in `crate::roles`, printed for a person. A broken
//! role file is a usage error, like a broken config file: one line naming its file and line,
//! exit 2.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::RolesCmd;
use crate::config::{Config, RouteMode};
use crate::roles::{self, Role, RoleError};

pub fn run(cmd: &RolesCmd, cfg: &Config) -> anyhow::Result<ExitCode> {
    let dir = cfg.paths.roles_dir();
    let result = match cmd {
        RolesCmd::List => list(&dir, cfg),
        RolesCmd::Show { name } => show(name, &dir, cfg),
        RolesCmd::Edit { name } => edit(name, &dir, cfg),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<RoleError>() {
            Some(role) => {
                eprintln!("tandem: {role}");
                Ok(ExitCode::from(2))
            }
            None => Err(e),
        },
    }
}

/// A role read and checked against the config (its model must exist).
fn checked(name: &str, dir: &Path, cfg: &Config) -> Result<Role, RoleError> {
    let role = roles::load(name, dir)?;
    role.check(cfg)?;
    Ok(role)
}

fn list(dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    let mut rows = vec![["NAME", "SOURCE", "ROUTE", "MODEL", "PROMPT"].map(String::from)];
    for (name, role) in roles::list(dir) {
        let user = dir.join(format!("{name}.md"));
        let source = match (user.is_file(), roles::builtin(&name).is_some()) {
            (true, true) => "user (overrides built-in)",
            (true, false) => "user",
            _ => "built-in",
        };
        let dash = || "-".to_string();
        let row = match role.and_then(|r| r.check(cfg).map(|()| r)) {
            Ok(r) => [
                name,
                source.into(),
                r.route
                    .map_or_else(dash, |m| RouteMode::as_str(m).to_string()),
                r.model.clone().unwrap_or_else(dash),
                first_words(&r.prompt, 60),
            ],
            Err(e) => [name, source.into(), dash(), dash(), format!("broken: {e}")],
        };
        rows.push(row);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, w) in r.iter().zip(&widths) {
            line.push_str(&format!("{c:<w$}  "));
        }
        line.push_str(&r[4]);
        outln!("{}", line.trim_end())?;
    }
    outln!("\nuser roles: {}/NAME.md", dir.display())?;
    Ok(())
}

fn first_words(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max - 1).collect();
    format!("{}…", cut.trim_end())
}

fn show(name: &str, dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    let role = checked(name, dir, cfg)?;
    let mut out = std::io::stdout().lock();
    out.write_all(role.text.as_bytes())?;
    if !role.text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Opens the user's file, first writing the built-in (or a template) there when it is missing,
/// then reads it back so a mistake is reported now, with its line, not at the next turn.
fn edit(name: &str, dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    let path = roles::file(name, dir)?;
    if !path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let seed = roles::builtin(name).unwrap_or(roles::TEMPLATE);
        std::fs::write(&path, seed).with_context(|| format!("cannot write {}", path.display()))?;
    }
    open_editor(&path)?;
    checked(name, dir, cfg)?;
    outln!("{name}: saved {}", path.display())?;
    Ok(())
}

/// `$VISUAL`, then `$EDITOR`, then vi, as `config edit` does (one shared opener is planned with
/// the turn pipeline's editor module).
fn open_editor(path: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let prog = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(prog)
        .args(parts)
        .arg(path)
        .status()
        .with_context(|| format!("cannot start editor {prog:?}; set $EDITOR"))?;
    anyhow::ensure!(status.success(), "editor {prog:?} exited with {status}");
    Ok(())
}
