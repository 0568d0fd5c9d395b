//! The byte-level pass behind the features that need no word list: letters, symbols, amounts and a
//! request for many words. Pure counting; turning counts into 0..1 values is `features`' job.

use super::lexicon::follows_request;

#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) letters: u32,
    pub(crate) non_ascii_letters: u32,
    pub(crate) math_symbols: u32,
    pub(crate) code_symbols: u32,
    /// Numerals that state an amount: "48 clips", "$12", "15%" (see `is_amount`).
    pub(crate) amounts: u32,
    /// "in 2,000 words": a number of 300 or more just before "words".
    pub(crate) asks_many_words: bool,
}

impl Scan {
    pub(crate) fn add(&mut self, o: &Scan) {
        self.letters += o.letters;
        self.non_ascii_letters += o.non_ascii_letters;
        self.math_symbols += o.math_symbols;
        self.code_symbols += o.code_symbols;
        self.amounts += o.amounts;
        self.asks_many_words |= o.asks_many_words;
    }
}

/// One pass over the bytes for the counts that need no word list. ASCII takes a fast path;
/// other characters are decoded only where they start.
pub(crate) fn scan(text: &str) -> Scan {
    let mut s = Scan::default();
    let bytes = text.as_bytes();
    let mut in_word = false;
    let mut numbers = Numbers::default();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Most bytes are letters inside a word or spaces, away from any numeral: for them only
        // the letter count and the distance from the last numeral change (the same result as
        // the full path below, which a prompt pays for only at word starts, digits and symbols).
        if numbers.current.is_none() {
            if in_word && b.is_ascii_alphabetic() {
                let run = bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                s.letters += run as u32;
                numbers.pass(run);
                i += run;
                continue;
            }
            if b == b' ' {
                in_word = false;
                numbers.pass(1);
                i += 1;
                continue;
            }
        }
        if b >= 0x80 {
            let c = text[i..].chars().next().unwrap_or('\u{FFFD}');
            if c.is_alphabetic() {
                s.letters += 1;
                s.non_ascii_letters += 1;
            }
            if is_math_char(c) {
                s.math_symbols += 1;
            }
            numbers.other(bytes, i, &mut s.amounts);
            in_word = false;
            i += c.len_utf8();
            continue;
        }
        let word_char = b.is_ascii_alphabetic() || (in_word && b == b'\'');
        if word_char {
            if b != b'\'' {
                s.letters += 1;
            }
            if !in_word
                && numbers.since < 4
                && numbers.last >= 300
                && bytes
                    .get(i..i + 5)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"words"))
            {
                s.asks_many_words = true;
            }
        }
        in_word = word_char;
        if b.is_ascii_digit() {
            numbers.digit(i, b - b'0');
        } else if let Some(n) = numbers.current.as_mut().filter(|_| {
            matches!(b, b',' | b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
        }) {
            // "2,000" and "3.5" are one number.
            n.plain = false;
        } else {
            numbers.other(bytes, i, &mut s.amounts);
        }
        match b {
            // One arm for all six: with '/' in an arm of its own the same instructions ran ~6%
            // slower at 8,000 characters (the byte scan's share of a call 13% -> 18%).
            b'=' | b'+' | b'/' | b'^' | b'<' | b'>' => {
                s.math_symbols += u32::from(b != b'/' || !prose_slash(bytes, i));
            }
            b'*' | b'|' => s.math_symbols += u32::from(is_operator(bytes, i)),
            b'{' | b'}' | b';' => s.code_symbols += 1,
            _ => {}
        }
        i += 1;
    }
    if let Some(n) = numbers.current {
        s.amounts += u32::from(n.is_amount(bytes, bytes.len()));
    }
    s
}

/// The numerals read so far: the one in progress, and the value of the last one and how many
/// bytes ago it ended ("in 2,000 words").
struct Numbers {
    current: Option<Numeral>,
    last: u64,
    since: usize,
}

impl Default for Numbers {
    fn default() -> Self {
        Numbers {
            current: None,
            last: 0,
            since: usize::MAX,
        }
    }
}

impl Numbers {
    fn digit(&mut self, i: usize, d: u8) {
        let n = self.current.get_or_insert(Numeral {
            start: i,
            value: 0,
            plain: true,
        });
        n.value = n.value.saturating_mul(10).saturating_add(u64::from(d));
    }

    /// A byte outside any numeral: the one in progress ends here, counted if it states an amount.
    fn other(&mut self, bytes: &[u8], i: usize, amounts: &mut u32) {
        if let Some(n) = self.current.take() {
            self.last = n.value;
            self.since = 0;
            *amounts += u32::from(n.is_amount(bytes, i));
        }
        self.pass(1);
    }

    /// `n` bytes with no numeral in progress: only the distance from the last one grows.
    fn pass(&mut self, n: usize) {
        self.since = self.since.saturating_add(n);
    }
}

/// A run of digits: where it starts, its value, and whether it is plain digits ("2,000" and
/// "3.5" are not).
struct Numeral {
    start: usize,
    value: u64,
    plain: bool,
}

impl Numeral {
    /// Whether the numeral, ending at `end`, states an amount a problem gives to work with: money
    /// ("$12"), a share ("15%", "15 percent"), or a count or measure in words ("48 clips",
    /// "50 minutes", "3 half-price tickets"). Left out, because they are names rather than
    /// amounts: years ("in 1865"), parts of identifiers ("H2O", "T1", "cobalt-60", "13C"),
    /// numbered options and list items ("A. 8", "2. Then"), and scientific units ("600 MHz",
    /// "298 K"), whose questions (specialist calculations) both a strong and a weaker model tend
    /// to fail; and counts asked for ("list 5 ways"), the size of the answer.
    fn is_amount(&self, bytes: &[u8], end: usize) -> bool {
        let before = &bytes[..self.start];
        let money = matches!(before.last(), Some(b'$'))
            || before.ends_with("€".as_bytes())
            || before.ends_with("£".as_bytes());
        if money {
            return true;
        }
        if !before.last().is_none_or(u8::is_ascii_whitespace) {
            return false;
        }
        if self.plain && end - self.start == 4 && (1000..=2099).contains(&self.value) {
            return false;
        }
        let rest = &bytes[end..];
        let gap = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let word = &rest[gap..];
        let lower = word.iter().take_while(|b| b.is_ascii_lowercase()).count();
        let counted = rest.first() == Some(&b'%')
            || (gap > 0 && (lower >= 4 || (lower >= 1 && word.get(lower) == Some(&b'-'))));
        // Last: most numerals fail the cheaper tests above, and this one reads words back.
        counted && !follows_request(before)
    }
}

/// Word pairs that a slash joins in prose: "and/or" is not a division. Only these: "dy/dx",
/// "km/h" and "kJ/mol" still count as maths.
const PROSE_SLASHES: &[(&str, &str)] = &[
    ("and", "or"),
    ("he", "she"),
    ("his", "her"),
    ("him", "her"),
    ("s", "he"),
    ("yes", "no"),
];

/// Whether the slash at `i` joins one of `PROSE_SLASHES`.
fn prose_slash(bytes: &[u8], i: usize) -> bool {
    let start = bytes[..i]
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |j| j + 1);
    let end = bytes[i + 1..]
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .map_or(bytes.len(), |j| i + 1 + j);
    let (left, right) = (&bytes[start..i], &bytes[i + 1..end]);
    PROSE_SLASHES.iter().any(|(l, r)| {
        left.eq_ignore_ascii_case(l.as_bytes()) && right.eq_ignore_ascii_case(r.as_bytes())
    })
}

/// Whether the '*' or '|' at `i` reads as maths ("x * y", "(a+b)*c", "|x + 5|") rather than
/// markup or a separator: not against a word ("*emphasis*"), not doubled ("**bold**", "||"), a
/// star needs a factor on each side (not a "* item" bullet or "*Note:*"), and a bar must touch a
/// digit or a single letter, so the bars of a table or of "Scenario 1 | I took" do not count.
fn is_operator(bytes: &[u8], i: usize) -> bool {
    let b = bytes[i];
    let prev = i.checked_sub(1).map(|j| bytes[j]);
    let next = bytes.get(i + 1).copied();
    if prev == Some(b) || next == Some(b) {
        return false;
    }
    let letter = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_alphabetic);
    let word_before = i >= 2 && letter(i - 1) && letter(i - 2);
    let word_after = letter(i + 1) && letter(i + 2);
    if word_before || word_after {
        return false;
    }
    if b == b'|' {
        return [prev, next]
            .into_iter()
            .flatten()
            .any(|c| c.is_ascii_alphanumeric());
    }
    // One space is allowed on each side: "3 * 4".
    let before = bytes[..i].iter().rev().take(2).find(|c| **c != b' ');
    let after = bytes[i + 1..].iter().take(2).find(|c| **c != b' ');
    before.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b')')
        && after.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'(')
}

fn is_math_char(c: char) -> bool {
    matches!(
        c,
        '≤' | '≥'
            | '≠'
            | '∑'
            | '∫'
            | '√'
            | 'π'
            | '∞'
            | '±'
            | '×'
            | '÷'
            | '⊃'
            | '≡'
            | '∨'
            | '∧'
            | '¬'
            | '→'
            | '↔'
            | '∀'
            | '∃'
    )
}

#[cfg(test)]
mod tests {
    use super::scan;

    #[test]
    fn amounts_are_money_shares_and_counted_things_not_names() {
        for (text, amounts) in [
            ("Tom pays $12 for 3 apples and €5 for 2 pears.", 4),
            ("Prices rose 15% and then 4 percent.", 2),
            ("She sold 48 clips to 6 friends", 2),
            ("He bought 3 half-price tickets.", 1),
            ("In 1865 the 1,500 workers left.", 1),
            ("H2O at 298 K in flask T1 at 600 MHz, cobalt-60, 13C.", 0),
            ("A. 8\nB. 24\nC. 120", 0),
            ("a total of 7", 0),
            ("Suggest 3 gifts under $50 and name 2 books.", 1),
        ] {
            assert_eq!(scan(text).amounts, amounts, "{text:?}");
        }
    }

    #[test]
    fn stars_and_bars_count_as_maths_only_between_operands() {
        for (text, symbols) in [
            ("3/4 of x/y, 2 * 3, 2x*y at 5 km/h", 5),
            ("How many integers solve |x + 5| < 10?", 4),
            ("and/or, His/her, x/y, 3/4, km/h, dy/dx, kJ/mol", 5),
            ("**bold**, *emphasis*, a || b", 0),
            ("Scenario 1 | I took it. | a | b |", 0),
            ("* item\n*Note:* then (a+b)*c", 2),
            ("*café* and *привет*", 0),
        ] {
            assert_eq!(scan(text).math_symbols, symbols, "{text:?}");
        }
    }
}
