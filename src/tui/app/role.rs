//! `/role NAME` and `@path` in the chat screen. A role is read by the driver (a file) and comes
//! back as `Msg::RoleLoaded`; the chat then answers with its system prompt and settings, and
//! the pipeline saves it on the conversation. `@path` words in a prompt name attachments, which
//! the driver reads before the turn starts; Tab after one asks the driver what it could be and
//! completes it. Pure, like the rest of `app`.

use std::path::PathBuf;

use crate::tui::msg::{Effect, RoleSet};

use super::App;

/// `/role` lists the roles, `/role NAME` picks one, `/role off` drops it.
pub(super) fn pick(app: &mut App, name: Option<String>) -> Vec<Effect> {
    match name.as_deref() {
        Some("off" | "none") => {
            app.notice = Some(match app.role.take() {
                Some(r) => format!("role {} off", r.name),
                None => "no role".into(),
            });
            vec![]
        }
        _ => vec![Effect::LoadRole(name)],
    }
}

/// The driver read the role (or could not: a one-line error with its file and line).
pub(super) fn loaded(app: &mut App, role: Result<RoleSet, String>) {
    match role {
        Ok(r) => {
            app.notice = Some(format!("role: {}", r.name));
            app.role = Some(r);
        }
        Err(e) => app.notice = Some(crate::sanitize::one_line(&e)),
    }
}

/// The `@path` words of a prompt, in order: `@` at a word's start, then a path. A lone `@`,
/// an e-mail address (`a@b`) and `@@x` are left alone.
pub fn attachments(prompt: &str) -> Vec<PathBuf> {
    prompt
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('@'))
        // Punctuation after a path belongs to the sentence ("see @a.rs, then ...").
        .map(|p| p.trim_end_matches([',', ';', ':', '!', '?', ')']))
        .filter(|p| !p.is_empty() && !p.starts_with('@'))
        .map(PathBuf::from)
        .collect()
}

/// The path typed after `@` in the word that ends at the cursor, if that word is an `@path`.
pub(super) fn at_word(c: &super::Composer) -> Option<String> {
    let before = &c.text[..c.cursor];
    let word = &before[before.rfind(char::is_whitespace).map_or(0, |i| i + 1)..];
    word.strip_prefix('@')
        .filter(|p| !p.starts_with('@'))
        .map(str::to_string)
}

/// Completes the `@path` word at the cursor to what all `choices` share (the whole name when
/// there is one), and lists them when there are several. Nothing changes if the user typed on.
pub(super) fn complete(app: &mut App, prefix: &str, choices: &[String]) {
    if at_word(&app.composer).as_deref() != Some(prefix) {
        return;
    }
    let Some(first) = choices.first() else {
        app.notice = Some(format!("no file matches @{prefix}"));
        return;
    };
    let mut common = first.as_str();
    for c in &choices[1..] {
        let n = common
            .char_indices()
            .zip(c.chars())
            .find(|((_, a), b)| a != b)
            .map_or(common.len().min(c.len()), |((i, _), _)| i);
        common = &common[..n];
    }
    if common.len() > prefix.len() && common.starts_with(prefix) {
        super::keys::insert(&mut app.composer, &common[prefix.len()..]);
    }
    if choices.len() > 1 {
        let shown: Vec<&str> = choices.iter().take(12).map(String::as_str).collect();
        let more = choices.len().saturating_sub(12);
        let more = if more > 0 {
            format!(" … {more} more")
        } else {
            String::new()
        };
        app.notice = Some(crate::sanitize::one_line(&format!(
            "{}{more}",
            shown.join("  ")
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_words_name_attachments() {
        assert_eq!(
            attachments("explain @src/main.rs and @Cargo.toml, mail a@b.c @ @@x"),
            [PathBuf::from("src/main.rs"), PathBuf::from("Cargo.toml")]
        );
    }
}
