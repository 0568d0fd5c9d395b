//! Prompt features: pure measurements of one prompt (and its thread) that the policy weighs.
//! Each value is in 0..1. No IO, no allocation beyond the result, no regex compiled per call.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::lexicon::{LEXICON, Lex};
use super::scan::scan;
use super::secret_scan::{self, SecretKind};
use crate::chat::{Message, Role};

/// One measured signal. The snake_case names are the keys of `[router.weights]`, so they are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Prompt size, log-scaled: 1.0 at about 2,000 tokens.
    Tokens,
    /// Code fences, programming keywords and vocabulary, braces and semicolons.
    Code,
    /// Numbers, operators, LaTeX and mathematical vocabulary.
    Math,
    /// Numbered or bulleted lines, sequencing and output-format instructions.
    Structure,
    /// Reasoning and analysis verbs (explain why, prove, compare, suppose ...).
    Reasoning,
    /// A request for long output: an essay, a report, "in 2,000 words".
    OutputLength,
    /// A request for a short answer: "briefly", "in fewer than 100 words".
    Brevity,
    /// Share of letters outside ASCII.
    NonEnglish,
    /// Earlier user turns in the thread.
    ConversationDepth,
    /// Greetings, thanks, yes/no, a short rewrite.
    Trivial,
    /// Creative writing and role-play.
    Creative,
    /// Short everyday words: puzzles are phrased plainly, prose and recall are not.
    PlainWording,
    /// Capitalised names mid-sentence: questions about named things are mostly recall.
    ProperNouns,
    /// Legal vocabulary: multi-party scenarios that need careful reading.
    Legal,
    /// Science and economics vocabulary.
    Science,
    /// Asking to name, define or date something ("is known as", "who wrote"): recall, which
    /// small models do nearly as well as large ones.
    Recall,
    /// Causal connectives (because, therefore, thus): an argument to follow or to judge.
    Causal,
    /// Sums of money ("$2,000", "€15"): contracts, prices and accounts to reason about.
    Money,
    /// Directional change and comparison (increases, doubled, greater, unchanged): working out
    /// how one quantity moves another.
    Change,
}

impl Feature {
    pub const ALL: [Feature; 19] = [
        Feature::Tokens,
        Feature::Code,
        Feature::Math,
        Feature::Structure,
        Feature::Reasoning,
        Feature::OutputLength,
        Feature::Brevity,
        Feature::NonEnglish,
        Feature::ConversationDepth,
        Feature::Trivial,
        Feature::Creative,
        Feature::PlainWording,
        Feature::ProperNouns,
        Feature::Legal,
        Feature::Science,
        Feature::Recall,
        Feature::Causal,
        Feature::Money,
        Feature::Change,
    ];
    pub const COUNT: usize = Feature::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Feature::Tokens => "tokens",
            Feature::Code => "code",
            Feature::Math => "math",
            Feature::Structure => "structure",
            Feature::Reasoning => "reasoning",
            Feature::OutputLength => "output_length",
            Feature::Brevity => "brevity",
            Feature::NonEnglish => "non_english",
            Feature::ConversationDepth => "conversation_depth",
            Feature::Trivial => "trivial",
            Feature::Creative => "creative",
            Feature::PlainWording => "plain_wording",
            Feature::ProperNouns => "proper_nouns",
            Feature::Legal => "legal",
            Feature::Science => "science",
            Feature::Recall => "recall",
            Feature::Causal => "causal",
            Feature::Money => "money",
            Feature::Change => "change",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Feature {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Feature::ALL.into_iter().find(|f| f.name() == s).ok_or(())
    }
}

/// What `features` measured for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    values: [f64; Feature::COUNT],
    /// `chat::estimate_tokens` of the prompt alone.
    pub prompt_tokens: usize,
    /// Kinds of secret found; these drive the privacy rule, not the score.
    pub secrets: Vec<SecretKind>,
}

impl Features {
    pub fn get(&self, f: Feature) -> f64 {
        self.values[f as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Feature, f64)> + '_ {
        Feature::ALL
            .into_iter()
            .map(|f| (f, self.values[f as usize]))
    }

    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Builds features from raw values, for tests and tools that score without a prompt.
    pub fn from_values(values: [f64; Feature::COUNT], prompt_tokens: usize) -> Features {
        Features {
            values,
            prompt_tokens,
            secrets: Vec::new(),
        }
    }
}

/// Lexical features saturate long before a prompt this size, so beyond it only the head and
/// the tail are read: the instruction sits at one end of a pasted document, and a 1 MB paste
/// costs no more than a 4 KiB one. Secrets and the token count still look at the whole prompt.
const HEAD_BYTES: usize = 3 * 1024;
const TAIL_BYTES: usize = 1024;

/// `1 - e^(-x/k)`: many hits approach 1 without any single word list dominating.
fn sat(x: f64, k: f64) -> f64 {
    1.0 - (-x / k).exp()
}

/// Measures `prompt` in the context of the earlier `conversation`. Pure and allocation-light.
pub fn features(prompt: &str, conversation: &[Message]) -> Features {
    let prompt_tokens = crate::chat::estimate_tokens(prompt);
    let (head, tail) = ends(prompt, HEAD_BYTES, TAIL_BYTES);
    let mut lex = LEXICON.count(head);
    let mut s = scan(head);
    if !tail.is_empty() {
        let more = LEXICON.count(tail);
        lex.iter_mut().zip(more).for_each(|(a, b)| *a += b);
        s.add(&scan(tail));
    }
    let n = |l: Lex| f64::from(lex[l as usize]);

    let mut v = [0.0; Feature::COUNT];
    let tokens = prompt.len() as f64 / 4.0;
    v[Feature::Tokens as usize] = (tokens.ln_1p() / 2048f64.ln_1p()).min(1.0);
    let code = n(Lex::Fence) * 3.0
        + n(Lex::CodeKeyword) * 0.5
        + n(Lex::CodeWord)
        + f64::from(s.code_symbols) * 0.2;
    v[Feature::Code as usize] = sat(code, 4.0);
    let math = (f64::from(s.math_symbols) + n(Lex::Latex) * 2.0) * 0.5
        + n(Lex::MathWord)
        + f64::from(s.numbers.min(20)) * 0.5;
    v[Feature::Math as usize] = sat(math, 5.0);
    v[Feature::Structure as usize] =
        sat(f64::from(s.list_lines) + 0.5 * n(Lex::StructureWord), 5.0);
    v[Feature::Reasoning as usize] = sat(n(Lex::Reasoning), 3.0);
    let long = n(Lex::LongOutput) + if s.asks_many_words { 2.0 } else { 0.0 };
    v[Feature::OutputLength as usize] = sat(long, 1.0);
    v[Feature::Brevity as usize] = sat(n(Lex::Brief), 1.0);
    v[Feature::NonEnglish as usize] = if s.letters == 0 {
        0.0
    } else {
        f64::from(s.non_ascii_letters) / f64::from(s.letters)
    };
    let turns = conversation.iter().filter(|m| m.role == Role::User).count();
    v[Feature::ConversationDepth as usize] = (turns as f64 / 8.0).min(1.0);
    v[Feature::Trivial as usize] = trivial(prompt);
    v[Feature::Creative as usize] = sat(n(Lex::Creative), 2.0);
    let words = f64::from(s.words.max(1));
    let mean_word_len = f64::from(s.word_chars) / words;
    v[Feature::PlainWording as usize] = if s.words == 0 {
        0.0
    } else {
        ((6.5 - mean_word_len) / 3.0).clamp(0.0, 1.0)
    };
    v[Feature::ProperNouns as usize] = sat(f64::from(s.proper_nouns) / words * 10.0, 1.0);
    v[Feature::Legal as usize] = sat(n(Lex::Legal), 4.0);
    v[Feature::Science as usize] = sat(n(Lex::Science), 3.0);
    v[Feature::Recall as usize] = sat(n(Lex::Recall), 1.0);
    v[Feature::Causal as usize] = sat(n(Lex::Causal), 2.0);
    v[Feature::Money as usize] = sat(f64::from(s.money), 0.5);
    v[Feature::Change as usize] = sat(n(Lex::Change), 2.0);

    Features {
        values: v,
        prompt_tokens,
        secrets: secret_scan::detect(prompt),
    }
}

/// The whole of `s` when it is short, else its first `head` and last `tail` bytes, each cut
/// on a char boundary.
fn ends(s: &str, head: usize, tail: usize) -> (&str, &str) {
    if s.len() <= head + tail {
        return (s, "");
    }
    let mut h = head;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len() - tail;
    while !s.is_char_boundary(t) {
        t += 1;
    }
    (&s[..h], &s[t..])
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank you",
    "thx",
    "ok",
    "okay",
    "yes",
    "no",
    "sure",
    "good morning",
    "good night",
    "good evening",
    "bye",
    "cool",
    "great",
    "nice",
];
const REWRITES: &[&str] = &[
    "rewrite",
    "rephrase",
    "reword",
    "fix the typo",
    "fix typos",
    "correct the spelling",
    "shorten",
];

/// 1.0 for chit-chat, 0.7 for a short rewrite request, else 0.
fn trivial(text: &str) -> f64 {
    let t = text.trim();
    let starts = |list: &[&str]| {
        list.iter().any(|w| {
            t.get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(w))
                && !t
                    .as_bytes()
                    .get(w.len())
                    .is_some_and(u8::is_ascii_alphanumeric)
        })
    };
    if t.len() < 60 && starts(GREETINGS) {
        1.0
    } else if t.len() < 300 && starts(REWRITES) {
        0.7
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prompt, feature, and whether it fires: each new signal on its own kind of prompt, and a
    /// near miss (a listed word inside a longer one, `$` in LaTeX or a shell path) that must not.
    #[rustfmt::skip]
    const CASES: &[(&str, Feature, bool)] = &[
        ("Who wrote Hamlet?", Feature::Recall, true),
        ("The tree of life is known as a motif.", Feature::Recall, true),
        ("Open the terminal and list the unnamed files.", Feature::Recall, false),
        ("The build failed because the cache was stale.", Feature::Causal, true),
        ("Sincerely, the thesis committee", Feature::Causal, false),
        ("The contract price was $2,000, or about €1,850.", Feature::Money, true),
        ("Typeset $x^2$ and $$\\frac{1}{2}$$ in $HOME/notes.", Feature::Money, false),
        ("If demand increases, what happens to the price?", Feature::Change, true),
        ("Put the constants in a lowercase file.", Feature::Change, false),
    ];

    #[test]
    fn new_signals_fire_and_near_misses_do_not() {
        for &(prompt, feature, fires) in CASES {
            let v = features(prompt, &[]).get(feature);
            assert_eq!(v > 0.0, fires, "{feature} = {v} for {prompt:?}");
        }
    }
}
