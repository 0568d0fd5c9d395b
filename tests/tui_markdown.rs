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

/// A streaming answer keeps its closed blocks rendered and re-renders only the tail; at every
/// point of the stream, closed blocks plus tail must be exactly what rendering the whole text
/// gives, or the screen would jump when the answer ends.
#[test]
fn closed_blocks_plus_tail_render_as_the_whole_text_at_every_point_of_a_stream() {
    use tandem::chat::Role as ChatRole;
    use tandem::tui::app::Entry;
    let doc = "# Plan\n\nFirst *para* with `code`.\nStill the same paragraph.\n\n\
        > a quote\n> more\n\nAfter the quote.\n\n\
        ```rust\nfn a() {}\n\nfn b() {}\n```\n\n\
        ~~~\nplain\n\n~~~\n\n\
        1. one\n\n2. two\n   continued\n\n3. three\n\n\
        - tight\n- list\n\n\
        | a | b |\n|---|---|\n| 1 | 2 |\n\n\
        ---\n\nSetext\n===\n\n    indented code\n\n    more of it\n\n\
        <div>html</div>\n\n2024 was a year.\n\nThe end.\n";
    let long =
        "Some prose, *emphasis*, `code`.\n\n- a\n- b\n\n```rust\nfn main() {}\n```\n\n".repeat(40);
    for text in [doc.to_string(), long] {
        for chunk in [1, 3, 7, 64] {
            let mut e = Entry::new(ChatRole::Assistant, String::new(), true);
            let chars: Vec<char> = text.chars().collect();
            let mut cut_once = false;
            for piece in chars.chunks(chunk) {
                e.push_stream(&piece.iter().collect::<String>(), true);
                let mut got = e.lines.clone();
                let tail = render(&e.text[e.stable..], true);
                if !got.is_empty() && !tail.is_empty() {
                    got.push(MdLine::default());
                }
                got.extend(tail);
                assert_eq!(
                    texts(&got),
                    texts(&render(&e.text, true)),
                    "after {} bytes in chunks of {chunk}",
                    e.text.len()
                );
                assert_eq!(got, render(&e.text, true), "styles too");
                cut_once |= e.stable > 0;
            }
            assert!(cut_once, "the stream was never cut: nothing was cached");
        }
    }
}
