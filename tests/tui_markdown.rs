//! Markdown rendering as it streams: what each construct becomes, including text cut off in
//! the middle of a code fence or a table.

use tandem::tui::markdown::{MdLine, code_blocks, render};
use tandem::tui::theme::Role;

fn texts(lines: &[MdLine]) -> Vec<String> {
    lines.iter().map(MdLine::text).collect()
}

#[test]
fn headings_lists_and_emphasis_get_their_roles() {
    let l = render("# Title\n\n- one\n- **two**\n\n1. first\n2. second\n", true);
    assert_eq!(
        texts(&l),
        vec!["# Title", "", "• one", "• two", "", "1. first", "2. second"]
    );
    assert_eq!(l[0].spans[0].role, Role::Heading);
    assert!(
        l[3].spans
            .iter()
            .any(|s| s.add.contains(ratatui::style::Modifier::BOLD))
    );
}

#[test]
fn an_unclosed_fence_mid_stream_still_shows_highlighted_code() {
    let l = render("Here:\n\n```rust\nfn main() {\n    let x = 1;", true);
    let t = texts(&l);
    assert_eq!(t[2], "```rust");
    assert_eq!(t[3], "fn main() {");
    assert_eq!(t[4], "    let x = 1;");
    assert!(
        l[3].spans
            .iter()
            .all(|s| s.role == Role::Code && s.fg.is_some())
    );
}

#[test]
fn tables_are_aligned_with_a_header_rule() {
    let l = render("| a | long header |\n|---|---|\n| xyz | 1 |\n", true);
    assert_eq!(
        texts(&l),
        vec![
            "a   │ long header",
            "────┼────────────",
            "xyz │ 1          "
        ]
    );
}

#[test]
fn quotes_are_marked() {
    let l = render("> careful\n", true);
    assert_eq!(texts(&l), vec!["│ careful"]);
}

#[test]
fn code_blocks_are_extracted_in_order() {
    let blocks = code_blocks("a\n```\none\n```\nb\n```py\ntwo\n```");
    assert_eq!(blocks, vec!["one\n", "two\n"]);
}
