//! The byte-level pass behind the features that need no word list: letters, words, numbers,
//! symbols and list lines. Pure counting; turning counts into 0..1 values is `features`' job.

#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) letters: u32,
    pub(crate) non_ascii_letters: u32,
    pub(crate) words: u32,
    pub(crate) word_chars: u32,
    pub(crate) proper_nouns: u32,
    pub(crate) numbers: u32,
    pub(crate) math_symbols: u32,
    pub(crate) code_symbols: u32,
    pub(crate) list_lines: u32,
    /// Currency amounts: a `$`, `£`, `€` or `¥` right before a digit.
    pub(crate) money: u32,
    pub(crate) asks_many_words: bool,
}

impl Scan {
    pub(crate) fn add(&mut self, o: &Scan) {
        self.letters += o.letters;
        self.non_ascii_letters += o.non_ascii_letters;
        self.words += o.words;
        self.word_chars += o.word_chars;
        self.proper_nouns += o.proper_nouns;
        self.numbers += o.numbers;
        self.math_symbols += o.math_symbols;
        self.code_symbols += o.code_symbols;
        self.list_lines += o.list_lines;
        self.money += o.money;
        self.asks_many_words |= o.asks_many_words;
    }
}

/// One pass over the bytes for the counts that need no word list. ASCII takes a fast path;
/// other characters are decoded only where they start.
pub(crate) fn scan(text: &str) -> Scan {
    let mut s = Scan::default();
    let bytes = text.as_bytes();
    let mut in_word = false;
    let mut in_number = false;
    let mut number_value: u64 = 0;
    let mut last_number: u64 = 0;
    let mut since_number = usize::MAX;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b >= 0x80 {
            let c = text[i..].chars().next().unwrap_or('\u{FFFD}');
            if c.is_alphabetic() {
                s.letters += 1;
                s.non_ascii_letters += 1;
            }
            if is_math_char(c) {
                s.math_symbols += 1;
            }
            if matches!(c, '£' | '€' | '¥') && starts_number(bytes, i + c.len_utf8()) {
                s.money += 1;
            }
            if in_number {
                last_number = number_value;
                since_number = 0;
            }
            in_word = false;
            in_number = false;
            since_number = since_number.saturating_add(1);
            i += c.len_utf8();
            continue;
        }
        let word_char = b.is_ascii_alphabetic() || (in_word && b == b'\'');
        if word_char {
            if b != b'\'' {
                s.letters += 1;
            }
            if !in_word {
                s.words += 1;
                if b.is_ascii_uppercase()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase)
                    && i >= 2
                    && bytes[i - 1] == b' '
                    && matches!(bytes[i - 2], b'a'..=b'z' | b',' | b';' | b':')
                {
                    s.proper_nouns += 1;
                }
                if since_number < 4
                    && last_number >= 300
                    && bytes
                        .get(i..i + 5)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"words"))
                {
                    s.asks_many_words = true;
                }
            }
            s.word_chars += 1;
        }
        in_word = word_char;
        if b.is_ascii_digit() {
            if !in_number {
                s.numbers += 1;
                number_value = 0;
            }
            number_value = number_value
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
            in_number = true;
        } else if in_number
            && matches!(b, b',' | b'.')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            // "2,000" and "3.5" are one number.
        } else {
            if in_number {
                last_number = number_value;
                since_number = 0;
            }
            in_number = false;
            since_number = since_number.saturating_add(1);
        }
        match b {
            b'=' | b'+' | b'*' | b'/' | b'^' | b'<' | b'>' | b'|' => s.math_symbols += 1,
            b'{' | b'}' | b';' => s.code_symbols += 1,
            b'$' if starts_number(bytes, i + 1) => s.money += 1,
            _ => {}
        }
        i += 1;
    }
    s.list_lines = text.lines().filter(|l| is_list_item(l)).count() as u32;
    s
}

/// A digit right at `i`, as in "$5" or "€12". LaTeX such as `$2x$` also counts; it is rare
/// enough next to prices not to matter.
fn starts_number(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_digit)
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

/// "1. ", "2) ", "a) ", "- ", "* ", "• " at the start of a line.
fn is_list_item(line: &str) -> bool {
    let l = line.trim_start().as_bytes();
    let digits = l.iter().take_while(|b| b.is_ascii_digit()).count();
    let marker = if digits > 0 && digits <= 3 {
        matches!(l.get(digits), Some(b'.' | b')')).then_some(digits + 1)
    } else if l.first().is_some_and(u8::is_ascii_lowercase) && matches!(l.get(1), Some(b'.' | b')'))
    {
        Some(2)
    } else if matches!(l.first(), Some(b'-' | b'*')) {
        Some(1)
    } else if line.trim_start().starts_with('•') {
        Some('•'.len_utf8())
    } else {
        None
    };
    marker.is_some_and(|m| l.get(m).is_some_and(|b| *b == b' '))
}
