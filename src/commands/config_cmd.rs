//! `tandem config show|path|edit`.

use std::io::Write;

use anyhow::Context;

use crate::config::{DEFAULT_TOML, Loaded};

/// The effective settings as TOML, each value annotated with the layer it came from.
/// Secrets cannot appear: the config holds only the names of key variables.
pub fn render_show(loaded: &Loaded) -> anyhow::Result<String> {
    let text = toml::to_string(&loaded.effective)?;
    let mut out = format!(
        "# effective settings; file: {} ({})\n# each value: default < file < env < flag\n",
        loaded.config.file.display(),
        if loaded.file_exists {
            "read"
        } else {
            "not present, defaults apply"
        }
    );
    let mut table = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        match t.split_once(" = ") {
            Some((k, _)) if !t.starts_with('#') => {
                let key = if table.is_empty() {
                    k.to_string()
                } else {
                    format!("{table}.{k}")
                };
                out.push_str(&format!("{line}  # {}\n", loaded.origin(&key).as_str()));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

pub fn show(loaded: &Loaded) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(render_show(loaded)?.as_bytes())?;
    Ok(())
}

pub fn path(loaded: &Loaded) -> std::io::Result<()> {
    outln!("{}", loaded.config.file.display())
}

/// Opens the file in $VISUAL/$EDITOR, seeding it with the commented reference when missing.
pub fn edit(loaded: &Loaded) -> anyhow::Result<()> {
    let file = &loaded.config.file;
    if !file.exists() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let seeded: String = DEFAULT_TOML
            .lines()
            .map(|l| {
                if l.is_empty() || l.starts_with('#') {
                    l.to_string()
                } else {
                    format!("# {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(file, seeded + "\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    crate::editor::open(file)?;
    // Check the edit at once, so a typo is found now rather than at the next chat.
    let reread = crate::config::LoadOptions {
        config_file: Some(file.clone()),
        ..Default::default()
    };
    crate::config::load(&reread)?;
    Ok(())
}
