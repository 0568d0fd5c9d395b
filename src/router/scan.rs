//! The byte-level pass behind the features that need no word list: letters, symbols and a request
//! for many words. Pure counting; turning counts into 0..1 values is `features`' job.

#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) letters: u32,
    pub(crate) non_ascii_letters: u32,
    pub(crate) math_symbols: u32,
    pub(crate) code_symbols: u32,
    /// "in 2,000 words": a number of 300 or more just before "words".
    pub(crate) asks_many_words: bool,
}

impl Scan {
    pub(crate) fn add(&mut self, o: &Scan) {
        self.letters += o.letters;
        self.non_ascii_letters += o.non_ascii_letters;
        self.math_symbols += o.math_symbols;
        self.code_symbols += o.code_symbols;
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
            if !in_word
                && since_number < 4
                && last_number >= 300
                && bytes
                    .get(i..i + 5)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"words"))
            {
                s.asks_many_words = true;
            }
        }
        in_word = word_char;
        if b.is_ascii_digit() {
            if !in_number {
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
            _ => {}
        }
        i += 1;
    }
    s
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
