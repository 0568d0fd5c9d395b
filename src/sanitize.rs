//! The one sanitizer for text that came from a model, a provider or the history database and
//! is about to reach a terminal. Such text could otherwise carry escape sequences that write
//! the clipboard (OSC 52), plant links (OSC 8), retitle the window or move the cursor.
//!
//! Controls are shown, not obeyed: ESC becomes `␛` and every other C0 control (but newline and
//! tab) becomes its Unicode control picture, DEL becomes `␡` and a C1 control `�`. What follows
//! an ESC is then plain printable text, so every ESC/CSI/OSC/DCS sequence arrives defused and
//! visible, and the user sees that something tried. A carriage return is dropped rather than
//! shown: it ends lines in CRLF text and would otherwise let a line overwrite itself.
//!
//! Each character is judged alone, so a stream can be cleaned delta by delta with no state
//! across chunk boundaries. `--json` output does not pass here: it keeps the exact text, and
//! JSON escaping already writes controls as `\u001b`.

use std::borrow::Cow;

/// Shown in place of ESC.
pub const ESC_SHOWN: char = '␛';

/// `text` made safe to write to a terminal; borrowed when it already is.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_care) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match shown(c) {
            Shown::Keep => out.push(c),
            Shown::Drop => {}
            Shown::As(s) => out.push(s),
        }
    }
    Cow::Owned(out)
}

/// As `for_terminal`, but on one line: newlines and tabs become spaces too, for text that must
/// not break a layout (a title, a provider's error message).
pub fn one_line(text: &str) -> String {
    for_terminal(text)
        .chars()
        .map(|c| if matches!(c, '\n' | '\t') { ' ' } else { c })
        .collect()
}

fn needs_care(c: char) -> bool {
    !matches!(shown(c), Shown::Keep)
}

enum Shown {
    Keep,
    Drop,
    As(char),
}

fn shown(c: char) -> Shown {
    match c {
        '\n' | '\t' => Shown::Keep,
        '\r' => Shown::Drop,
        '\x1b' => Shown::As(ESC_SHOWN),
        // U+2400.. are the control pictures: ␀ ␁ ... ␟.
        '\0'..='\x1f' => Shown::As(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
        '\x7f' => Shown::As('␡'),
        '\u{80}'..='\u{9f}' => Shown::As('\u{fffd}'),
        _ => Shown::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing a terminal would act on: no C0 but newline and tab, no DEL, no C1.
    pub fn inert(s: &str) -> bool {
        s.chars().all(|c| {
            matches!(c, '\n' | '\t')
                || !(c < ' ' || c == '\x7f' || ('\u{80}'..='\u{9f}').contains(&c))
        })
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let nasty = "a\x1b]52;c;aGk=\x07b\x1b[2J\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\u{9b}31m\u{9d}0;t\u{9c}\x1bPq#0\x1b\\";
        let out = for_terminal(nasty);
        assert!(inert(&out), "{out:?}");
        assert!(out.starts_with("a␛]52;c;aGk=␇b␛[2J"), "{out:?}");
        assert_eq!(
            out.matches(ESC_SHOWN).count(),
            nasty.matches('\x1b').count()
        );
    }

    #[test]
    fn plain_text_newlines_and_tabs_pass_untouched() {
        let text = "line one\n\tindented — ünïcödé 🦀\n";
        assert!(matches!(for_terminal(text), Cow::Borrowed(_)));
        assert_eq!(for_terminal("a\r\nb\rc"), "a\nbc");
        assert_eq!(for_terminal("\0\x08\x7f"), "␀␈␡");
    }

    #[test]
    fn one_line_folds_newlines() {
        assert_eq!(one_line("a\nb\tc\x1b[1m"), "a b c␛[1m");
    }

    #[test]
    fn chunks_clean_alone_as_the_whole_does() {
        let text = "x\x1b]52;c;Zm9v\x07y\u{9b}1mz";
        let whole = for_terminal(text).into_owned();
        let cut: String = text
            .char_indices()
            .map(|(i, c)| for_terminal(&text[i..i + c.len_utf8()]).into_owned())
            .collect();
        assert_eq!(whole, cut);
    }
}
