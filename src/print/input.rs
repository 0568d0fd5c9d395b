//! One-shot input: the `-p` text and piped stdin become one prompt, refusing what cannot be
//! used (not UTF-8, over the size cap, empty) instead of silently cutting or guessing.

use std::io::Read;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error(
        "stdin is not UTF-8 text (invalid byte at offset {0}); convert it first, e.g. with iconv"
    )]
    NotUtf8(usize),
    #[error(
        "stdin is larger than print.max_stdin_bytes ({0} bytes); raise the cap in the config or send less"
    )]
    TooLarge(u64),
    #[error("nothing to ask: give a prompt with -p TEXT or on stdin")]
    Empty,
    #[error("cannot read stdin: {0}")]
    Io(String),
}

/// The prompt: `-p` text, then piped stdin (if any) as context below it.
pub fn read_input(
    arg: Option<&str>,
    stdin: Option<impl Read>,
    cap: u64,
) -> Result<String, InputError> {
    let piped = match stdin {
        Some(r) => read_capped(r, cap)?,
        None => String::new(),
    };
    let arg = arg.unwrap_or("").trim();
    let piped_trim = piped.trim();
    match (arg.is_empty(), piped_trim.is_empty()) {
        (true, true) => Err(InputError::Empty),
        (false, true) => Ok(arg.to_string()),
        (true, false) => Ok(piped_trim.to_string()),
        (false, false) => Ok(format!("{arg}\n\n{piped_trim}")),
    }
}

/// All of `r` as UTF-8 text, refusing more than `cap` bytes (`print.max_stdin_bytes`) rather
/// than cutting it. Shared by one-shot mode and `tandem route`.
pub fn read_capped(r: impl Read, cap: u64) -> Result<String, InputError> {
    let mut buf = Vec::new();
    // One byte past the cap tells "exactly at the cap" from "over it"; a cap of u64::MAX
    // (no cap, in effect) must not overflow doing so.
    r.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| InputError::Io(e.to_string()))?;
    if buf.len() as u64 > cap {
        return Err(InputError::TooLarge(cap));
    }
    String::from_utf8(buf).map_err(|e| InputError::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_and_stdin_combine() {
        assert_eq!(
            read_input(Some("summarise"), Some(&b"some text\n"[..]), 100).unwrap(),
            "summarise\n\nsome text"
        );
        assert_eq!(
            read_input(None, Some(&b"just stdin\n"[..]), 100).unwrap(),
            "just stdin"
        );
        assert_eq!(
            read_input(Some("only arg"), None::<&[u8]>, 100).unwrap(),
            "only arg"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            read_input(None, Some(&b"  \n"[..]), 100),
            Err(InputError::Empty)
        );
        assert_eq!(
            read_input(Some(""), None::<&[u8]>, 100),
            Err(InputError::Empty)
        );
        assert_eq!(
            read_input(None, Some(&[b'a', 0xff, b'b'][..]), 100),
            Err(InputError::NotUtf8(1))
        );
        assert_eq!(
            read_input(None, Some(&[b'a'; 11][..]), 10),
            Err(InputError::TooLarge(10))
        );
        assert!(read_input(None, Some(&[b'a'; 10][..]), 10).is_ok());
    }

    #[test]
    fn a_cap_of_u64_max_reads_without_overflow() {
        assert_eq!(
            read_input(None, Some(&b"all of it"[..]), u64::MAX).unwrap(),
            "all of it"
        );
    }
}
