//! `tandem history list|show|search|export|rm`: the saved conversations, for reading and for
//! scripts (`export --format json`). Stored text is shown through the sanitizer (a model's
//! escape sequences are kept in the history, never replayed to the terminal); JSON keeps it
//! exact.

use std::io::Write;

use anyhow::Context;
use serde_json::json;

use crate::chat::Role;
use crate::cli::{ExportFormat, HistoryCmd};
use crate::config::Config;
use crate::sanitize::{for_terminal, one_line};
use crate::session::{Store, Turn, now};

pub fn run(cmd: &HistoryCmd, cfg: &Config) -> anyhow::Result<()> {
    let mut store = Store::open(&cfg.paths.history_db())?;
    let mut out = std::io::stdout().lock();
    match cmd {
        HistoryCmd::List { limit } => {
            let rows = store.list(*limit)?;
            if rows.is_empty() {
                writeln!(out, "no conversations yet")?;
            }
            for s in rows {
                let c = &s.conversation;
                let mix = format!("{}L/{}C", s.local_answers, s.cloud_answers);
                let private = if c.private { " [private]" } else { "" };
                writeln!(
                    out,
                    "{:>5}  {:>6}  {:>7}  {}{private}",
                    c.id,
                    age(now() - c.updated_at),
                    mix,
                    one_line(&c.title)
                )?;
            }
        }
        HistoryCmd::Show { conversation } => {
            let c = store.find(conversation)?;
            writeln!(out, "# {} (#{})\n", one_line(&c.title), c.id)?;
            if let Some(role) = &c.role {
                writeln!(out, "role: {}\n", one_line(role))?;
            }
            for t in store.turns(c.id)? {
                writeln!(out, "{}", heading(&t))?;
                for a in &t.attachments {
                    writeln!(out, "+ {}", one_line(&a.summary))?;
                }
                writeln!(out, "{}\n", for_terminal(&t.content))?;
            }
        }
        HistoryCmd::Search { text } => {
            let hits = store.search(text, 50)?;
            if hits.is_empty() {
                writeln!(out, "no matches")?;
            }
            for h in hits {
                writeln!(
                    out,
                    "{:>5}  {}: {}",
                    h.conversation_id,
                    one_line(&h.title),
                    one_line(&h.snippet)
                )?;
            }
        }
        HistoryCmd::Export {
            conversation,
            format,
        } => {
            let c = store.find(conversation)?;
            let turns = store.turns(c.id)?;
            match format {
                ExportFormat::Json => {
                    let v = json!({ "conversation": c, "turns": turns });
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                }
                ExportFormat::Md => {
                    writeln!(out, "# {}\n", one_line(&c.title))?;
                    for t in &turns {
                        writeln!(out, "## {}\n\n{}\n", heading(t), for_terminal(&t.content))?;
                    }
                }
            }
        }
        HistoryCmd::Rm { conversation } => {
            let c = store.find(conversation).context("nothing deleted")?;
            store.delete(c.id)?;
            writeln!(out, "deleted #{} {}", c.id, one_line(&c.title))?;
        }
    }
    Ok(())
}

fn heading(t: &Turn) -> String {
    match t.role {
        Role::User => "**you**".into(),
        Role::System => "**system**".into(),
        Role::Assistant => {
            let m = &t.meta;
            let mut parts = vec![m.target.clone().unwrap_or_else(|| "assistant".into())];
            parts.extend(m.model.as_deref().map(one_line));
            if m.cost_usd > 0.0 {
                parts.push(format!("${:.4}", m.cost_usd));
            }
            // `complete` still 0 means the process died mid-answer (kill -9): cut off too.
            if t.cut_off() {
                parts.push("interrupted".into());
            }
            format!("**{}**", parts.join(" · "))
        }
    }
}

fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
