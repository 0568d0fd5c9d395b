//! Secret detection for the privacy rule: API-key shapes, private-key blocks, password
//! assignments and card numbers. It reports kinds only and never copies the secret itself.
//! Generic "long random-looking" strings are deliberately not flagged: git SHAs, UUIDs and
//! hashes are everyday prompt content, and a false alarm silently keeps work off the cloud.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    ApiKey,
    PrivateKey,
    Password,
    CardNumber,
}

impl SecretKind {
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "an API key",
            SecretKind::PrivateKey => "a private key block",
            SecretKind::Password => "a password or credential",
            SecretKind::CardNumber => "a card number",
        }
    }
}

// `(?-u:\b)` keeps the regexes on the fast DFA path even when the prompt holds non-ASCII text.
const API_KEYS: &[&str] = &[
    r"(?-u:\b)sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",
    r"(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}(?-u:\b)",
    r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36}(?-u:\b)",
    r"(?-u:\b)github_pat_[A-Za-z0-9_]{22,}",
    r"(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}",
    r"(?-u:\b)AIza[0-9A-Za-z_-]{35}",
    r"(?-u:\b)[sr]k_(?:live|test)_[0-9A-Za-z]{16,}",
    r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
    r"(?-u:\b)eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
];
const PRIVATE_KEY: &str = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";
const URL_CREDENTIALS: &str = r"(?-u:\b)[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]{3,}@[A-Za-z0-9.-]+";
const ASSIGNMENT: &str = r#"(?i)(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)["']?\s*[:=]\s*["']?([^\s"'`,;]{6,})"#;

struct Scanner {
    api: RegexSet,
    private_key: Regex,
    url_credentials: Regex,
    assignment: Regex,
}

// Separate regexes rather than one set: each `is_match` stops at the first hit and most start
// with a literal, so a clean prompt is skimmed with memchr-like prefilters.
static SCANNER: LazyLock<Scanner> = LazyLock::new(|| Scanner {
    api: RegexSet::new(API_KEYS).expect("valid API key patterns"),
    private_key: Regex::new(PRIVATE_KEY).expect("valid pattern"),
    url_credentials: Regex::new(URL_CREDENTIALS).expect("valid pattern"),
    assignment: Regex::new(ASSIGNMENT).expect("valid pattern"),
});

/// The kinds of secret in `text`, each at most once, in a fixed order.
pub fn detect(text: &str) -> Vec<SecretKind> {
    let s = &*SCANNER;
    let mut found = Vec::new();
    if s.api.is_match(text) {
        found.push(SecretKind::ApiKey);
    }
    if s.private_key.is_match(text) {
        found.push(SecretKind::PrivateKey);
    }
    if s.url_credentials.is_match(text)
        || s.assignment
            .captures_iter(text)
            .take(64)
            .any(|c| is_credential(&c[1]))
    {
        found.push(SecretKind::Password);
    }
    if has_card_number(text.as_bytes()) {
        found.push(SecretKind::CardNumber);
    }
    found
}

/// Finds runs of 13 to 19 digits, optionally grouped by single spaces or dashes, that pass the
/// card checks. A hand loop, because a regex without a literal prefix walks every byte slowly.
fn has_card_number(bytes: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += next_digit(&bytes[i..]);
            continue;
        }
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let (mut n, mut j, mut too_long) = (0usize, i, false);
        while j < bytes.len() {
            let b = bytes[j];
            if b.is_ascii_digit() {
                if n == digits.len() {
                    too_long = true;
                    break;
                }
                digits[n] = b - b'0';
                n += 1;
                j += 1;
            } else if matches!(b, b' ' | b'-') && bytes.get(j + 1).is_some_and(u8::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        let bounded = !bytes.get(j).is_some_and(u8::is_ascii_alphanumeric);
        if !too_long && bounded && is_card_number(&digits[..n]) {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

/// Where the next digit is (or the length): prose has few digits, so whole blocks are checked
/// at once, a test the compiler vectorises, and skipped.
fn next_digit(bytes: &[u8]) -> usize {
    let mut skipped = 0;
    for block in bytes.chunks(32) {
        if block.iter().fold(false, |any, b| any | b.is_ascii_digit()) {
            return skipped + block.iter().take_while(|b| !b.is_ascii_digit()).count();
        }
        skipped += block.len();
    }
    skipped
}

/// Rejects values that are code or placeholders rather than a literal credential:
/// `password = input()`, `api_key: os.environ[...]`, `token = ********`, `password: <your password>`.
fn is_credential(value: &str) -> bool {
    let code_like = value.contains(['(', ')', '[', ']', '{', '}', '<', '>', '$'])
        || value.starts_with("os.")
        || value.starts_with("env");
    let placeholder = value
        .chars()
        .all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '-' | '_'));
    !code_like && !placeholder
}

/// 13 to 19 digits with a valid Luhn check digit and a known issuer prefix.
fn is_card_number(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) || !matches!(digits[0], 2..=6) {
        return false;
    }
    // A run of one repeated digit passes Luhn for some lengths but is never a real card.
    if digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::has_card_number;

    /// The skip to the next digit works in 32-byte blocks: a card found or refused the same way
    /// wherever it starts against a block's edge.
    #[test]
    fn card_numbers_are_found_across_skipped_blocks() {
        for at in [0, 1, 30, 31, 32, 33, 63, 64, 65, 100] {
            let prose = "x".repeat(at);
            let text = format!("{prose} 4111 1111 1111 1111.");
            assert!(has_card_number(text.as_bytes()), "{at}: {text:?}");
            // Glued to a word it is an identifier, not a card.
            let text = format!("{prose}4111 1111 1111 1111");
            assert_eq!(has_card_number(text.as_bytes()), at == 0, "{at}: {text:?}");
            let text = format!("{prose} 4111 1111 1111 1112");
            assert!(
                !has_card_number(text.as_bytes()),
                "Luhn fails, {at}: {text:?}"
            );
        }
    }
}
