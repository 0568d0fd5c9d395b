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
        Some(r) => {
            let mut buf = Vec::new();
            // One byte past the cap tells "exactly at the cap" from "over it".
            r.take(cap + 1)
                .read_to_end(&mut buf)
                .map_err(|e| InputError::Io(e.to_string()))?;
            if buf.len() as u64 > cap {
                return Err(InputError::TooLarge(cap));
            }
            String::from_utf8(buf).map_err(|e| InputError::NotUtf8(e.utf8_error().valid_up_to()))?
        }
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

/// The Unix time at which the UTC month of `t` began (civil-from-days, Howard Hinnant).
pub fn month_start(t: i64) -> i64 {
    let days = t.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5; // 0-based
    (days - day_of_month) * 86_400
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
    fn month_start_is_the_first_of_the_month_utc() {
        // 2026-11-22 12:00:00 UTC -> 2026-11-01 00:00:00 UTC
        assert_eq!(month_start(1_795_348_800), 1_793_491_200);
        assert_eq!(month_start(1_793_491_200), 1_793_491_200);
    }
}
