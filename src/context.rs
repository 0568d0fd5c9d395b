//! Context windows: how many tokens a request needs from the window of the model that answers
//! it, and fitting a conversation into that window. Kept whole: system messages and the current
//! turn (its attachments and prompt). Dropped first: the oldest earlier turns, a whole turn at a
//! time (a prompt with its answers), so the roles still alternate. Pure; no tokenizer: it uses
//! `chat::estimate_tokens`, padded because that estimate runs low on code and non-English text.

use crate::chat::{Message, Role, estimate_tokens};

/// What a chat template adds around each message (role markers, separators), roughly.
pub const MESSAGE_OVERHEAD: usize = 4;

/// The estimate counts four bytes a token, which holds for English prose; code, numbers and
/// non-Latin scripts tokenize denser, so a tenth is added before comparing with a window.
const SLACK_DIVISOR: usize = 10;

pub fn message_tokens(m: &Message) -> usize {
    estimate_tokens(&m.content) + MESSAGE_OVERHEAD
}

pub fn tokens(messages: &[Message]) -> usize {
    messages.iter().map(message_tokens).sum()
}

/// The window a request of `prompt_tokens` (estimated) needs, with `reserve` left for the
/// answer. The one comparison every caller makes: it fits when `need(..) <= window`.
pub fn need(prompt_tokens: usize, reserve: usize) -> usize {
    prompt_tokens + prompt_tokens.div_ceil(SLACK_DIVISOR) + reserve
}

/// A conversation cut to a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub messages: Vec<Message>,
    /// Earlier turns left out, oldest first; a transcript marks the cut after this many.
    pub dropped_turns: usize,
    pub dropped_messages: usize,
    /// Estimated prompt tokens of `messages`.
    pub tokens: usize,
    /// False when even the system messages and the current turn alone overflow the window:
    /// they are kept anyway, and the caller must send the turn elsewhere or refuse it.
    pub fits: bool,
}

/// Fits `messages` to `window` with `reserve` tokens left for the answer. The last
/// `keep_current` messages are the current turn and are always kept, as are system messages.
pub fn fit(messages: &[Message], window: usize, reserve: usize, keep_current: usize) -> Fitted {
    let split = messages.len().saturating_sub(keep_current.max(1));
    let (earlier, current) = messages.split_at(split);
    let system_tokens: usize = earlier
        .iter()
        .filter(|m| m.role == Role::System)
        .map(message_tokens)
        .sum();
    let mut used = system_tokens + tokens(current);
    let fits = need(used, reserve) <= window;

    // Earlier non-system messages in turns: each user message opens one.
    let turns = turns(earlier);
    let mut keep_from = turns.len();
    if fits {
        for (i, t) in turns.iter().enumerate().rev() {
            let cost: usize = t.iter().map(|&j| message_tokens(&earlier[j])).sum();
            if need(used + cost, reserve) > window {
                break;
            }
            used += cost;
            keep_from = i;
        }
    }
    let kept: std::collections::HashSet<usize> =
        turns[keep_from..].iter().flatten().copied().collect();
    let out: Vec<Message> = earlier
        .iter()
        .enumerate()
        .filter(|(i, m)| m.role == Role::System || kept.contains(i))
        .map(|(_, m)| m.clone())
        .chain(current.iter().cloned())
        .collect();
    Fitted {
        dropped_turns: keep_from,
        dropped_messages: messages.len() - out.len(),
        tokens: tokens(&out),
        messages: out,
        fits,
    }
}

/// Indices of the non-system messages, grouped into turns. Answers before the first prompt
/// form a turn of their own.
fn turns(messages: &[Message]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System => {}
            Role::User => out.push(vec![i]),
            Role::Assistant => match out.last_mut() {
                Some(t) => t.push(i),
                None => out.push(vec![i]),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` turns of about `each` tokens per message.
    fn history(n: usize, each: usize) -> Vec<Message> {
        let mut v = vec![Message::system("You are terse.")];
        for i in 0..n {
            v.push(Message::user(format!("q{i} {}", "w ".repeat(each * 2))));
            v.push(Message::assistant(format!(
                "a{i} {}",
                "w ".repeat(each * 2)
            )));
        }
        v
    }

    #[test]
    fn a_12000_token_history_fits_an_8192_window_with_room_for_the_answer() {
        let mut msgs = history(30, 200);
        msgs.push(Message::user("And now?"));
        assert!(tokens(&msgs) > 12_000, "{}", tokens(&msgs));
        let f = fit(&msgs, 8192, 512, 1);
        assert!(f.fits);
        assert!(need(f.tokens, 512) <= 8192, "{} tokens", f.tokens);
        assert!(f.tokens + 512 <= 8192);
        assert!(
            f.tokens > 6000,
            "the window is used, not emptied: {}",
            f.tokens
        );
        assert_eq!(f.messages[0].content, "You are terse.");
        assert_eq!(f.messages.last().unwrap().content, "And now?");
        // Oldest dropped first, whole turns only: what is kept starts with a prompt and
        // alternates from there.
        assert!(f.dropped_turns > 0);
        assert_eq!(f.dropped_messages, 2 * f.dropped_turns);
        assert!(
            f.messages[1]
                .content
                .starts_with(&format!("q{} ", f.dropped_turns))
        );
        assert!(f.messages[1..].windows(2).all(|w| w[0].role != w[1].role));
    }

    #[test]
    fn a_conversation_that_fits_is_sent_whole() {
        let msgs = history(3, 50);
        let f = fit(&msgs, 8192, 512, 1);
        assert_eq!((f.messages, f.dropped_turns, f.fits), (msgs, 0, true));
    }

    #[test]
    fn the_current_turn_is_kept_even_when_it_alone_overflows() {
        let mut msgs = history(2, 50);
        let attachment = Message::user("x".repeat(40_000));
        msgs.push(attachment.clone());
        msgs.push(Message::user("summarise it"));
        let f = fit(&msgs, 8192, 512, 2);
        assert!(!f.fits);
        assert_eq!(f.dropped_turns, 2, "nothing earlier is worth sending");
        assert_eq!(f.messages[0].role, Role::System);
        assert_eq!(
            &f.messages[1..],
            &[attachment, Message::user("summarise it")]
        );
    }

    #[test]
    fn need_pads_the_estimate_and_adds_the_reserve() {
        assert_eq!(need(0, 512), 512);
        assert_eq!(need(1000, 512), 1612);
        assert_eq!(need(7, 0), 8);
        // keep_current 0 still keeps the last message: a request is never empty.
        let f = fit(&[Message::user("hi")], 10, 0, 0);
        assert_eq!(f.messages.len(), 1);
    }
}
