//! What a model is sent from a stored conversation, and what the conversation says about the
//! next turn (its title, whether it has gone to the cloud). Pure: turns in, messages out.
//!
//! Roles alternate: a prompt answered twice (a `/retry`, an escalation) is sent with one
//! answer, the newest whole one (the retry's, the cloud's), so chat templates that demand
//! user/assistant turns in turn never fail. Both stay in the history. An answer that never
//! finished (cancelled, broken off, or cut by a crash) is sent only when the prompt has no
//! whole answer, and then marked as cut off, so the model can pick it up. A prompt with no
//! answer at all (it failed) is left out.

use crate::chat::{Message, Role};
use crate::session::Turn;

/// Appended to a cut-off answer that is sent as context.
pub const CUT_OFF_MARK: &str = "\n\n[this answer was cut off]";

/// A conversation's title: the prompt's first non-empty line, at most 60 characters.
pub fn title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("untitled")
        .trim();
    let mut t: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        t.push('…');
    }
    t
}

/// The thread's last answer came from the cloud, so the router keeps follow-ups there.
pub fn sticky_cloud(turns: &[Turn]) -> bool {
    turns
        .iter()
        .rev()
        .find(|t| t.role == Role::Assistant)
        .is_some_and(|t| t.meta.target.as_deref() == Some("cloud"))
}

/// The stored turns as the messages a model sees (see the module comment for the rules).
pub fn messages(turns: &[Turn]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < turns.len() {
        let t = &turns[i];
        i += 1;
        match t.role {
            Role::System => out.push(Message::system(t.content.clone())),
            // An answer with no prompt before it has nothing to pair with.
            Role::Assistant => {}
            Role::User => {
                let end = turns[i..]
                    .iter()
                    .position(|t| t.role != Role::Assistant)
                    .map_or(turns.len(), |n| i + n);
                if let Some(answer) = pick(&turns[i..end]) {
                    out.push(Message::user(sent(t)));
                    out.push(answer);
                }
                i = end;
            }
        }
    }
    out
}

/// A prompt as the model was sent it: its attachments' text first, as `attach::render_all`
/// put it, then the prompt.
pub fn sent(t: &Turn) -> String {
    let mut out = String::new();
    for a in &t.attachments {
        out.push_str(&a.text);
        out.push('\n');
    }
    out.push_str(&t.content);
    out
}

/// The one answer a prompt is sent with.
fn pick(answers: &[Turn]) -> Option<Message> {
    let said = |t: &&Turn| !t.content.is_empty();
    if let Some(whole) = answers.iter().rev().filter(said).find(|t| !t.cut_off()) {
        return Some(Message::assistant(whole.content.clone()));
    }
    let cut = answers.iter().rev().find(said)?;
    Some(Message::assistant(format!("{}{CUT_OFF_MARK}", cut.content)))
}

/// The last prompt and the messages before it, for answering it again (`/retry`).
pub fn last_prompt(turns: &[Turn]) -> Option<(String, Vec<Message>)> {
    let at = turns.iter().rposition(|t| t.role == Role::User)?;
    Some((sent(&turns[at]), messages(&turns[..at])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::TurnMeta;

    fn turn(role: Role, text: &str, target: Option<&str>, whole: bool) -> Turn {
        Turn {
            id: 0,
            role,
            content: text.into(),
            meta: TurnMeta {
                target: target.map(String::from),
                ..Default::default()
            },
            interrupted: !whole,
            attachments: vec![],
            complete: true,
            created_at: 0,
        }
    }

    #[test]
    fn roles_alternate_with_the_newest_whole_answer() {
        let turns = vec![
            turn(Role::User, "q1", None, true),
            turn(Role::Assistant, "weak local", Some("local"), true),
            turn(Role::Assistant, "cloud's", Some("cloud"), true),
            turn(Role::User, "q2 failed", None, true),
            turn(Role::User, "q3", None, true),
            turn(Role::Assistant, "whole", Some("local"), true),
            turn(Role::Assistant, "retry cut", Some("cloud"), false),
        ];
        let m = messages(&turns);
        let text: Vec<_> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(text, ["q1", "cloud's", "q3", "whole"]);
        assert!(m.windows(2).all(|w| w[0].role != w[1].role));
        assert!(sticky_cloud(&turns));
        let (prompt, before) = last_prompt(&turns).unwrap();
        assert_eq!((prompt.as_str(), before.len()), ("q3", 2));
    }

    #[test]
    fn a_cut_off_answer_is_sent_marked_and_a_crashed_one_counts_as_cut() {
        let mut crashed = turn(Role::Assistant, "Once upon a", Some("local"), true);
        crashed.complete = false;
        let m = messages(&[turn(Role::User, "story", None, true), crashed]);
        assert_eq!(m[1].content, format!("Once upon a{CUT_OFF_MARK}"));
    }

    #[test]
    fn titles_are_the_first_line_cut_at_60() {
        assert_eq!(title("\n  hello\nworld"), "hello");
        assert_eq!(title(&"x".repeat(70)).chars().count(), 61);
    }
}
