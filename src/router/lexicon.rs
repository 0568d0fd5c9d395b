//! Word lists behind the lexical features, compiled once into a single aho-corasick automaton.
//! The lists name general signals (programming, maths, multi-step wording, number words,
//! open-ended asks), written from general knowledge; none may hold a subject's vocabulary or a
//! phrase lifted from an evaluation set: subject words were what made the previous router fail
//! on unseen subjects.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// The lexicon a matched phrase belongs to; one phrase may belong to several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lex {
    Fence,
    CodeKeyword,
    CodeWord,
    MathWord,
    Latex,
    LongOutput,
    Brief,
    OpenEnded,
    Steps,
    NumberWord,
}

pub(crate) const LEX_COUNT: usize = 10;

#[rustfmt::skip]
const FENCE: &[&str] = &[
    "```",
];
/// Keywords that are not also everyday English ("class", "return", "print", "true" are left out:
/// they fire on school classes and true-or-false questions).
#[rustfmt::skip]
const CODE_KEYWORD: &[&str] = &[
    "def", "fn", "elif", "impl", "println", "printf", "#include", "namespace", "enum", "lambda", "struct",
    "void", "const", "async", "await", "null", "int", "var", "std", "self.", "this.", "import numpy",
    "console.log",
];
#[rustfmt::skip]
const CODE_WORD: &[&str] = &[
    "python", "javascript", "typescript", "java", "c++", "golang", "sql", "html", "css", "bash", "regex",
    "algorithm", "implement", "compile", "compiler", "array", "arrays", "binary tree", "linked list",
    "hash map", "hash table", "recursion", "recursive", "time complexity", "space complexity", "o(n)",
    "o(1)", "o(log n)", "o(n log n)", "o(n^2)", "debug", "api", "dataframe", "json", "unit test",
    "refactor", "source code", "the code", "this code", "a program", "a function", "the function below",
    "write a function", "a script", "stack trace", "segfault", "runtime error", "compile error",
    "sorted array", "sorted arrays", "sorted list", "sorted lists", "integer array", "data structure",
    "data structures", "a function to", "a function that", "a program to", "a program that", "website",
    "rust", "php", "kotlin", "haskell", "c#", "quicksort", "merge sort", "binary search", "sorting algorithm",
];
#[rustfmt::skip]
const MATH_WORD: &[&str] = &[
    "solve", "equation", "equations", "integer", "integers", "prime", "probability", "derivative", "integral",
    "matrix", "polynomial", "remainder", "divisible", "inequality", "triangle", "area", "angle", "radius",
    "sum", "product", "ratio", "percent", "percentage", "average", "median", "mean", "fraction",
    "square root", "root", "roots", "digits", "factor", "multiply", "divided", "prove", "theorem",
    "lemma", "vertices", "function of", "expression", "express", "simplify", "evaluate",
];
#[rustfmt::skip]
const LATEX: &[&str] = &[
    "\\frac", "\\sum", "\\int", "\\sqrt", "\\alpha", "\\beta", "\\pi", "\\cdot", "\\le", "\\ge", "$$",
];
#[rustfmt::skip]
const LONG_OUTPUT: &[&str] = &[
    "essay", "article", "report", "story", "chapter", "novel", "detailed", "comprehensive", "in depth",
    "in-depth", "thorough", "elaborate", "long",
];
#[rustfmt::skip]
const BRIEF: &[&str] = &[
    "concise", "brief", "briefly", "short", "fewer than", "less than", "one sentence", "in one word",
    "summarize", "tl;dr",
];
/// Asks with no single right answer: creative writing, role-play, ideas and opinions. Words that
/// also tell a word problem's story ("share", "letter", "character", "writes") are left out, and
/// so is a bare "write a": "write a Python script" is code, so the genre has to be named.
#[rustfmt::skip]
const OPEN_ENDED: &[&str] = &[
    "draft", "compose", "describe", "discuss", "poem", "poems", "haiku",
    "limerick", "story", "short story", "essay", "blog", "blog post", "email", "slogan", "headline", "song",
    "lyrics", "joke", "speech", "tweet", "caption", "dialogue", "imagine", "pretend", "act as", "role-play",
    "roleplay", "the role of", "persona", "embody", "picture yourself", "brainstorm", "ideas", "tips",
    "advice", "opinion", "suggest", "creative", "vivid", "persuasive", "catchy", "fictional",
];
/// Words that chain one operation onto the last: the shape of a multi-step problem.
#[rustfmt::skip]
const STEPS: &[&str] = &[
    "then", "after", "afterwards", "each", "per", "every", "remaining", "remainder", "left", "rest",
    "more than", "less than", "fewer than", "times as", "twice", "half of", "already", "another", "again",
    "later", "first", "second", "third", "next", "finally", "total", "combined",
];

/// Amounts written as words. "half of" is listed beside "half" because the automaton takes the
/// longest phrase, and "half of" is also a step. "one" is left out: it is mostly not an amount
/// ("which one of the following", "one-dimensional", "at least one").
#[rustfmt::skip]
const NUMBER_WORD: &[&str] = &[
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "fifteen", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "dozen", "half",
    "half of", "twice", "double", "triple", "thrice", "quarter", "percent",
];

/// Verbs that ask for a number of things back: the number after them ("List five facts", "give
/// me 3 names") is the size of the answer, not an amount the question gives. Verbs that often
/// tell a word problem's story ("write", "share", "pick", "give" alone) are left out; of the verbs
/// kept, only "provide 3", "generate 1" and "name twice" occur in GSM8K's 7,473 training problems.
#[rustfmt::skip]
const REQUEST: &[&str] = &[
    "list", "name", "suggest", "recommend", "generate", "brainstorm", "propose", "describe", "outline",
    "identify", "explain", "provide",
];
/// ... and those that ask for it with "me" or "us": "give me 3", "write me two".
const REQUEST_ME: &[&str] = &["give", "tell", "show", "write", "make", "find"];
/// Verbs that ask for a number of things only as a command, opening a sentence or a list item
/// ("Write 3 tweets", "Please create five slogans"): inside a story they tell what someone did
/// ("she can write 3 pages a day"). None opens a sentence before a number in GSM8K's training
/// problems, MT-Bench or mmlu_dev (there, one answer choice: "B. give two rescue breaths").
#[rustfmt::skip]
const COMMAND: &[&str] = &[
    "write", "create", "make", "draft", "compose", "design", "craft", "give", "share", "pick",
    "invent", "draw",
];
/// What may sit between the verb and the number ("list at least 3"), as the word before the
/// number and the one before that.
const QUALIFIERS: &[(&str, &str)] = &[
    ("least", "at"),
    ("most", "at"),
    ("to", "up"),
    ("exactly", ""),
];

/// Whether `before` (the text up to a number) ends with a request verb and white space, maybe
/// with a qualifier between. It runs for every numeral and number word, so it compares whole words
/// (length first) rather than searching for each verb.
pub(crate) fn follows_request(before: &[u8]) -> bool {
    let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
    let Some((mut rest, mut w)) = pop_word(before) else {
        return false;
    };
    if let Some((_, lead)) = QUALIFIERS.iter().find(|(q, _)| is(w, q)) {
        if !lead.is_empty() {
            match pop_word(rest) {
                Some((r, l)) if is(l, lead) => rest = r,
                _ => return false,
            }
        }
        match pop_word(rest) {
            Some((r, v)) => (rest, w) = (r, v),
            None => return false,
        }
    }
    if is(w, "me") || is(w, "us") {
        return pop_word(rest).is_some_and(|(_, v)| REQUEST_ME.iter().any(|r| is(v, r)));
    }
    REQUEST.iter().any(|r| is(w, r)) || (COMMAND.iter().any(|r| is(w, r)) && opens(rest))
}

/// Whether a word after `before` opens a sentence, a line or a list item, maybe after "please"
/// or a polite "can you" ("Can you write 3 tweets?", "Could you please draft two"). Modal and
/// "you" open no sentence before a command and a number in GSM8K's training problems,
/// MT-Bench, mmlu_dev or arena-bench, so no number there changes.
fn opens(before: &[u8]) -> bool {
    let is = |w: &[u8], x: &str| w.eq_ignore_ascii_case(x.as_bytes());
    let mut before = before;
    if let Some((rest, _)) = pop_word(before).filter(|(_, w)| is(w, "please")) {
        before = rest;
    }
    if let Some((rest, _)) = pop_word(before).filter(|(_, w)| is(w, "you"))
        && let Some((r, _)) = pop_word(rest).filter(|(_, m)| MODAL.iter().any(|x| is(m, x)))
    {
        before = r;
    }
    if let Some((rest, _)) = pop_word(before).filter(|(_, w)| is(w, "please")) {
        before = rest;
    }
    let text = before.trim_ascii_end();
    before[text.len()..].contains(&b'\n')
        || matches!(
            text.last(),
            None | Some(b'.' | b'!' | b'?' | b':' | b';' | b'-' | b'*' | b')' | b'>' | b'"')
        )
}

/// The polite openers before a command: "can you", "could you", "would you", "will you".
const MODAL: &[&str] = &["can", "could", "would", "will"];

/// `s` without its trailing white space and the word before it: (what precedes the word, the
/// word). None when `s` does not end in white space after a word.
fn pop_word(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = Some(s.trim_ascii_end()).filter(|t| t.len() < s.len())?;
    let start = s
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    (start < s.len()).then(|| (&s[..start], &s[start..]))
}

fn lists() -> [(Lex, &'static [&'static str]); LEX_COUNT] {
    [
        (Lex::Fence, FENCE),
        (Lex::CodeKeyword, CODE_KEYWORD),
        (Lex::CodeWord, CODE_WORD),
        (Lex::MathWord, MATH_WORD),
        (Lex::Latex, LATEX),
        (Lex::LongOutput, LONG_OUTPUT),
        (Lex::Brief, BRIEF),
        (Lex::OpenEnded, OPEN_ENDED),
        (Lex::Steps, STEPS),
        (Lex::NumberWord, NUMBER_WORD),
    ]
}

pub(crate) struct Lexicon {
    ac: AhoCorasick,
    /// Per pattern: a bit per `Lex`, and whether each end must sit on a word boundary.
    masks: Vec<u16>,
    bounded: Vec<(bool, bool)>,
}

/// Compiled once: building the automaton costs far more than matching an 8,000-character prompt.
pub(crate) static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut patterns: Vec<String> = Vec::new();
    let mut masks: Vec<u16> = Vec::new();
    for (lex, words) in lists() {
        for w in words {
            match patterns.iter().position(|p| p.eq_ignore_ascii_case(w)) {
                Some(i) => masks[i] |= 1 << lex as u16,
                None => {
                    patterns.push(w.to_ascii_lowercase());
                    masks.push(1 << lex as u16);
                }
            }
        }
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let bounded = patterns
        .iter()
        .map(|p| (word(p.chars().next()), word(p.chars().last())))
        .collect();
    // Case-sensitive over lowercased text: the same matches as `ascii_case_insensitive`
    // (checked on every prompt of both routing sets), ~17% faster on a match-dense 4 KiB window.
    let ac = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        // A full DFA is a few hundred KiB for these lists and several times faster than the NFA.
        .kind(Some(AhoCorasickKind::DFA))
        .build(&patterns)
        .expect("lexicon patterns are valid");
    Lexicon { ac, masks, bounded }
});

impl Lexicon {
    /// Counts whole-word hits per lexicon in one pass over `text`.
    pub(crate) fn count(&self, text: &str) -> [u32; LEX_COUNT] {
        let lower = text.to_ascii_lowercase();
        let bytes = lower.as_bytes();
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut counts = [0u32; LEX_COUNT];
        for m in self.ac.find_iter(&lower) {
            let id = m.pattern().as_usize();
            let (start_b, end_b) = self.bounded[id];
            if start_b && m.start() > 0 && is_word(bytes[m.start() - 1]) {
                continue;
            }
            if end_b && m.end() < bytes.len() && is_word(bytes[m.end()]) {
                continue;
            }
            let mut mask = self.masks[id];
            if mask & (1 << Lex::NumberWord as u16) != 0 && follows_request(&bytes[..m.start()]) {
                mask &= !(1 << Lex::NumberWord as u16);
            }
            for (i, c) in counts.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *c += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        let c = LEXICON.count("Then each of them gets the rest; the thenar muscle is not a step.");
        assert_eq!(
            c[Lex::Steps as usize],
            3,
            "then, each and rest count; 'thenar' and 'step' do not"
        );
        assert_eq!(
            LEXICON.count("```rust\nfn main() {}\n```")[Lex::Fence as usize],
            2
        );
    }

    #[test]
    fn a_number_asked_for_is_not_an_amount_given() {
        for (text, amounts) in [
            (
                "List five facts about owls and give me at least three jokes.",
                0,
            ),
            ("Unlist five; rename two.", 2),
            (
                "Name up to four; tell us exactly two; list at most three.",
                0,
            ),
            ("List\n  five, give\tme two, list or three.", 1),
            ("She has five apples and gives two away.", 2),
            (
                "Write three tweets. Please create two slogans:\n- draft four; write me two.",
                0,
            ),
            ("She can write three pages and make two copies.", 2),
            (
                "Can you write three tweets? Please could you draft two. Could you please make four?",
                0,
            ),
            (
                "How many pages can you write in two days if you can make five?",
                2,
            ),
            // "you" alone opens nothing: the story's "you make four" still counts.
            (
                "Would you write two? Will you pick three? Then you make four.",
                1,
            ),
        ] {
            let c = LEXICON.count(text)[Lex::NumberWord as usize];
            assert_eq!(c, amounts, "{text:?}");
        }
    }
}
