//! Where a streaming answer's markdown can be cut so that the part before the cut never
//! renders differently, whatever arrives later. The transcript renders that part once and
//! re-renders only the tail on each frame, so a long answer does not cost more per token as it
//! grows.

/// The byte offset of the last safe cut in `text` after `from` (itself a safe cut, or 0), if
/// there is one past `from`. A cut sits at the start of a line that follows a blank line, outside
/// any fenced code block, and that cannot continue what came before: it is not indented (list
/// item or indented code), not a list marker or rule (a loose list would split in two), and not
/// HTML. The line after the cut must be complete, so that "1" is not taken for a paragraph
/// before ". item" arrives. At such a point CommonMark has closed every block, so rendering
/// the two parts apart gives the same lines as rendering them together, with one blank line
/// between.
pub fn stable_boundary(text: &str, from: usize) -> Option<usize> {
    let mut fence: Option<(u8, usize)> = None;
    let mut prev_blank = false;
    let mut best = None;
    let mut pos = from;
    for line in text[from..].split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let start = pos;
        pos += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start_matches(' ').len();
        let rest = body.trim_start_matches(' ').as_bytes();
        if let Some((ch, len)) = fence {
            let run = rest.iter().take_while(|b| **b == ch).count();
            if indent <= 3 && run >= len && rest[run..].iter().all(u8::is_ascii_whitespace) {
                fence = None;
            }
            prev_blank = false;
            continue;
        }
        let blank = body.trim().is_empty();
        if prev_blank && !blank && indent == 0 && start > from && starts_block(rest) {
            best = Some(start);
        }
        if indent <= 3 && matches!(rest.first(), Some(b'`' | b'~')) {
            let ch = rest[0];
            let run = rest.iter().take_while(|b| **b == ch).count();
            if run >= 3 {
                fence = Some((ch, run));
            }
        }
        prev_blank = blank;
    }
    best
}

/// A line that opens a new top-level block by itself.
fn starts_block(line: &[u8]) -> bool {
    match line.first() {
        None | Some(b'\t' | b'-' | b'*' | b'+' | b'<' | b'_' | b'=') => false,
        Some(b) if b.is_ascii_digit() => {
            let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
            !matches!(line.get(digits), Some(b'.' | b')'))
        }
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_between_closed_blocks() {
        let t = "# Title\n\nSome text.\n\n```rust\nfn a() {}\n\nfn b() {}\n```\n\n1. one\n\n2. two\n\nEnd.\n";
        let cut = stable_boundary(t, 0).unwrap();
        assert_eq!(
            &t[cut..],
            "End.\n",
            "not inside the fence nor the loose list"
        );
        assert_eq!(stable_boundary(t, cut), None);
        assert_eq!(
            stable_boundary("Para.\n\n1", 0),
            None,
            "the next line is incomplete"
        );
        assert_eq!(stable_boundary("Para.\n\n    code\n", 0), None, "indented");
    }
}
