//! How attachments read: in the prompt (each file fenced under its path) and in a transcript
//! (one compact line). Pure text in, text out.

use std::fmt::Write;

use super::{Attachment, Kind, SkipReason};

/// The user message for a turn: its attachments, then the prompt.
pub fn render_all(attachments: &[Attachment], prompt: &str) -> String {
    let mut out = String::new();
    for a in attachments {
        out.push_str(&a.render_for_prompt());
        out.push('\n');
    }
    out.push_str(prompt);
    out
}

pub(super) fn prompt(a: &Attachment) -> String {
    let mut out = String::new();
    if a.kind == Kind::Dir {
        let _ = writeln!(
            out,
            "Directory `{}` ({} file{}):",
            a.path.display(),
            a.files.len(),
            plural(a.files.len())
        );
        for f in &a.files {
            let _ = writeln!(out, "- {}", f.path.display());
        }
        for (p, why) in &a.skipped {
            let why = match why {
                SkipReason::Binary => "binary",
                SkipReason::NotUtf8 => "not UTF-8",
            };
            let _ = writeln!(out, "- {} (skipped: {why})", p.display());
        }
        out.push('\n');
    }
    for f in &a.files {
        let (head, lang) = match a.kind {
            Kind::Stdin => ("Standard input:".to_string(), ""),
            _ => (
                format!("File `{}`:", f.path.display()),
                f.path.extension().and_then(|e| e.to_str()).unwrap_or(""),
            ),
        };
        // A fence longer than any backtick run inside, so a Markdown file cannot close it.
        let fence = "`".repeat(longest_backtick_run(&f.text).max(2) + 1);
        let nl = if f.text.ends_with('\n') { "" } else { "\n" };
        let _ = write!(out, "{head}\n{fence}{lang}\n{}{nl}{fence}\n", f.text);
    }
    out
}

pub(super) fn summary(a: &Attachment) -> String {
    let name = match a.kind {
        Kind::Stdin => "stdin".to_string(),
        Kind::Dir => {
            let p = a.path.display().to_string();
            if p.ends_with('/') { p } else { format!("{p}/") }
        }
        Kind::File => a.path.display().to_string(),
    };
    let mut parts = vec![name];
    if a.kind == Kind::Dir {
        parts.push(format!("{} file{}", a.files.len(), plural(a.files.len())));
    }
    parts.push(human_bytes(a.bytes));
    parts.push(format!("~{} tokens", thousands(a.tokens)));
    if !a.skipped.is_empty() {
        parts.push(format!("{} skipped", a.skipped.len()));
    }
    parts.join(" · ")
}

/// 512 B, 4.2 KiB, 1.0 MiB.
pub fn human_bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / K),
        _ => format!("{:.1} MiB", n as f64 / (K * K)),
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for b in text.bytes() {
        run = if b == b'`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}
