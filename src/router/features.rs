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
    /// Prompt length in words, log-scaled: 0.5 at about 63 words, 1.0 at 4,096 or more. Longer
    /// asks are harder, on every question set we know of; it anchors the score.
    Length,
    /// Wording that chains one step onto the last (then, each, per, remaining, twice, more than):
    /// the shape of a multi-step problem.
    Steps,
    /// Amounts the prompt gives to work with: "48 clips", "$12", "15%", "twice", "a dozen". A word
    /// problem's difficulty grows with the quantities it combines; years, identifiers ("H2O")
    /// and unit symbols ("600 MHz") are not counted.
    Quantities,
    /// Code fences, programming keywords and vocabulary, braces and semicolons.
    Code,
    /// Operators, LaTeX and mathematical vocabulary (solve, equation, probability ...).
    Math,
    /// Asks with no single right answer: creative writing, role-play, ideas, opinions.
    OpenEnded,
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
}

impl Feature {
    pub const ALL: [Feature; 11] = [
        Feature::Length,
        Feature::Steps,
        Feature::Quantities,
        Feature::Code,
        Feature::Math,
        Feature::OpenEnded,
        Feature::OutputLength,
        Feature::Brevity,
        Feature::NonEnglish,
        Feature::ConversationDepth,
        Feature::Trivial,
    ];
    pub const COUNT: usize = Feature::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Feature::Length => "length",
            Feature::Steps => "steps",
            Feature::Quantities => "quantities",
            Feature::Code => "code",
            Feature::Math => "math",
            Feature::OpenEnded => "open_ended",
            Feature::OutputLength => "output_length",
            Feature::Brevity => "brevity",
            Feature::NonEnglish => "non_english",
            Feature::ConversationDepth => "conversation_depth",
            Feature::Trivial => "trivial",
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
/// costs no more than a 4 KiB one. Secrets, length and the token count see the whole prompt.
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
    let words = word_count(prompt) as f64;
    v[Feature::Length as usize] = (words.ln_1p() / 4096f64.ln_1p()).min(1.0);
    v[Feature::Steps as usize] = sat(n(Lex::Steps), 4.0);
    let amounts = f64::from(s.amounts) + n(Lex::NumberWord);
    v[Feature::Quantities as usize] = sat(amounts, 5.0);
    let code = n(Lex::Fence) * 3.0
        + n(Lex::CodeKeyword) * 0.5
        + n(Lex::CodeWord)
        + f64::from(s.code_symbols) * 0.2;
    v[Feature::Code as usize] = sat(code, 1.5);
    let math = (f64::from(s.math_symbols) + n(Lex::Latex) * 2.0) * 0.5 + n(Lex::MathWord);
    v[Feature::Math as usize] = sat(math, 2.5);
    v[Feature::OpenEnded as usize] = sat(n(Lex::OpenEnded), 1.0);
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

    Features {
        values: v,
        prompt_tokens,
        secrets: secret_scan::detect(prompt),
    }
}

/// Whitespace-separated words in the whole prompt, as Python's `str.split` counts them for ASCII
/// (the length baseline that routing is compared with). It runs over every byte of a pasted
/// file, so it counts word starts (a non-space after a space) without branches, in blocks small
/// enough for a byte counter: the compiler vectorises that, several times faster than a loop
/// that tracks whether it is inside a word.
fn word_count(text: &str) -> usize {
    let space = |b: u8| b == b' ' || b.wrapping_sub(b'\t') < 5 || b.wrapping_sub(0x1c) < 4;
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else {
        return 0;
    };
    let mut count = usize::from(!space(first));
    // 255 pairs at most per block, so the u8 count cannot overflow.
    for (prev, next) in bytes.chunks(255).zip(bytes[1..].chunks(255)) {
        let starts: u8 = prev
            .iter()
            .zip(next)
            .map(|(&p, &n)| u8::from(space(p) & !space(n)))
            .sum();
        count += usize::from(starts);
    }
    count
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
    "good afternoon",
    "how are you",
    "how's it going",
    "what's up",
    "bye",
    "goodbye",
    "see you",
    "cool",
    "great",
    "nice",
    "lol",
    "haha",
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

    /// Prompt, feature, and whether it fires: each signal on its own kind of prompt, and a near
    /// miss (everyday words that a looser list would catch) that must not.
    #[rustfmt::skip]
    const CASES: &[(&str, Feature, bool)] = &[
        ("She buys 3 pens, then gives each friend 2. How many are left?", Feature::Steps, true),
        ("The stairs have twelve steps and a landing.", Feature::Steps, false),
        ("Tom has $12 and buys 3 apples at 15% off.", Feature::Quantities, true),
        ("In 1865 H2O at 298 K filled flask T1 at 600 MHz.", Feature::Quantities, false),
        ("Implement quicksort in Rust with O(n log n) average time.", Feature::Code, true),
        ("The class of 30 students voted true or false and returned home.", Feature::Code, false),
        ("Solve x^2 + 3x = 4 for x.", Feature::Math, true),
        ("Tell me about the museums in Paris.", Feature::Math, false),
        ("Write a poem about the sea in the voice of a pirate.", Feature::OpenEnded, true),
        ("Ann shares 12 cookies and writes 3 letters a week.", Feature::OpenEnded, false),
    ];

    #[test]
    fn signals_fire_and_near_misses_do_not() {
        for &(prompt, feature, fires) in CASES {
            let v = features(prompt, &[]).get(feature);
            assert_eq!(v > 0.0, fires, "{feature} = {v} for {prompt:?}");
        }
    }

    #[test]
    fn length_counts_words_like_split_whitespace() {
        for text in [
            "",
            "one",
            " two  words ",
            "a\tb\nc\r\nd",
            "naïve café: 3 ½ cups",
        ] {
            assert_eq!(
                word_count(text),
                text.split_ascii_whitespace().count(),
                "{text:?}"
            );
        }
        // Words and spaces on each side of the 255-byte blocks the count runs in.
        for at in [253, 254, 255, 256, 509, 510, 511] {
            for text in [
                format!("{} b", "a".repeat(at)),
                format!("{}b c", " ".repeat(at)),
                format!("x{}y", " ".repeat(at)),
                "ab \t".repeat(at),
            ] {
                assert_eq!(
                    word_count(&text),
                    text.split_ascii_whitespace().count(),
                    "{at}: {text:?}"
                );
            }
        }
        // Python's `str.split` (the baseline) also splits on the separators 0x1c-0x1f.
        assert_eq!(word_count("a\x1cb\x1fc \x0bd"), 4);
        let len = |t: &str| features(t, &[]).get(Feature::Length);
        assert!(len("a b c") < len(&"word ".repeat(60)));
        assert!((len(&"word ".repeat(63)) - 0.5).abs() < 0.01);
        assert_eq!(len(&"w ".repeat(10_000)), 1.0);
    }
}
