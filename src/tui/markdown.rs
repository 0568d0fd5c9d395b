//! Markdown (pulldown-cmark) to theme-independent styled lines: spans carry a theme `Role`
//! plus, inside fenced code, syntect's colour. Wrapping to the terminal's width happens at
//! draw time, so a resize mid-stream re-wraps correctly. Pure: no IO, no theme lookups.

use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier};
use syntect::easy::HighlightLines;
use syntect::highlighting::ThemeSet;
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

pub use crate::chat::code_blocks;
use crate::tui::theme::Role;

mod stable;
pub use stable::stable_boundary;

#[derive(Debug, Clone, PartialEq)]
pub struct MdSpan {
    pub text: String,
    pub role: Role,
    /// A syntax colour that overrides the role's foreground.
    pub fg: Option<Color>,
    pub add: Modifier,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MdLine {
    pub spans: Vec<MdSpan>,
}

impl MdLine {
    pub fn plain(text: impl Into<String>, role: Role) -> MdLine {
        MdLine {
            spans: vec![MdSpan {
                text: text.into(),
                role,
                fg: None,
                add: Modifier::empty(),
            }],
        }
    }
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }
}

/// Syntax definitions and colour schemes are large and immutable; they load once, on the first
/// code block, so start-up never pays for them.
static SYNTAX: LazyLock<(SyntaxSet, ThemeSet)> = LazyLock::new(|| {
    (
        SyntaxSet::load_defaults_newlines(),
        ThemeSet::load_defaults(),
    )
});

struct Renderer {
    lines: Vec<MdLine>,
    cur: Vec<MdSpan>,
    roles: Vec<Role>,
    mods: Vec<Modifier>,
    /// Open lists: `Some(n)` is numbered, next number n.
    lists: Vec<Option<u64>>,
    quote: usize,
    code: Option<(String, String)>,
    table: Option<Table>,
    dark: bool,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    cell: String,
    header_rows: usize,
}

/// Renders `text` to lines. `dark` picks the code palette that suits the terminal.
pub fn render(text: &str, dark: bool) -> Vec<MdLine> {
    let mut r = Renderer {
        lines: Vec::new(),
        cur: Vec::new(),
        roles: vec![Role::Assistant],
        mods: vec![],
        lists: vec![],
        quote: 0,
        code: None,
        table: None,
        dark,
    };
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for ev in Parser::new_ext(text, opts) {
        r.event(ev);
    }
    // A stream cut mid-code-block still shows its code.
    if r.code.is_some() {
        r.end_code();
    }
    r.flush();
    while r
        .lines
        .last()
        .is_some_and(|l| l.spans.iter().all(|s| s.text.trim().is_empty()))
    {
        r.lines.pop();
    }
    r.lines
}

impl Renderer {
    fn push(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.cur.is_empty() && self.quote > 0 {
            self.cur.push(span(
                "│ ".repeat(self.quote),
                Role::Quote,
                Modifier::empty(),
            ));
        }
        let role = *self.roles.last().unwrap_or(&Role::Assistant);
        let add = self.mods.iter().fold(Modifier::empty(), |a, m| a | *m);
        self.cur.push(span(text.to_string(), role, add));
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            self.lines.push(MdLine {
                spans: std::mem::take(&mut self.cur),
            });
        }
    }

    fn blank(&mut self) {
        self.flush();
        if self.lists.is_empty() && self.lines.last().is_some_and(|l| !l.spans.is_empty()) {
            self.lines.push(MdLine::default());
        }
    }

    fn event(&mut self, ev: Event) {
        if let Some(t) = &mut self.table {
            match ev {
                Event::Text(s) | Event::Code(s) => return t.cell.push_str(&s),
                Event::End(TagEnd::TableCell) => {
                    let cell = std::mem::take(&mut t.cell);
                    if let Some(row) = t.rows.last_mut() {
                        row.push(cell);
                    }
                    return;
                }
                Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => {
                    return t.rows.push(Vec::new());
                }
                Event::End(TagEnd::TableHead) => return t.header_rows = t.rows.len(),
                Event::End(TagEnd::Table) => return self.end_table(),
                _ => return,
            }
        }
        if let Some((_, buf)) = &mut self.code {
            match ev {
                Event::Text(s) => return buf.push_str(&s),
                Event::End(TagEnd::CodeBlock) => return self.end_code(),
                _ => return,
            }
        }
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            // An HTML block's text holds its own line breaks, like a text run's.
            Event::Text(s) | Event::Html(s) => {
                let mut parts = s.split('\n').peekable();
                while let Some(p) = parts.next() {
                    self.push(p);
                    if parts.peek().is_some() {
                        self.flush();
                    }
                }
            }
            Event::Code(s) => {
                self.roles.push(Role::Code);
                self.push(&s);
                self.roles.pop();
            }
            Event::SoftBreak => self.push(" "),
            Event::HardBreak => self.flush(),
            Event::Rule => {
                self.flush();
                self.lines.push(MdLine::plain("─".repeat(24), Role::Muted));
                self.blank();
            }
            Event::TaskListMarker(done) => self.push(if done { "[x] " } else { "[ ] " }),
            Event::InlineHtml(s) => self.push(&s),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush();
                self.roles.push(Role::Heading);
                self.push(&format!("{} ", "#".repeat(level as usize)));
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote += 1;
                self.roles.push(Role::Quote);
            }
            Tag::List(start) => {
                self.flush();
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let depth = self.lists.len().saturating_sub(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "• ".into(),
                };
                self.push(&format!("{}{bullet}", "  ".repeat(depth)));
            }
            Tag::Emphasis => self.mods.push(Modifier::ITALIC),
            Tag::Strong => self.mods.push(Modifier::BOLD),
            Tag::Strikethrough => self.mods.push(Modifier::CROSSED_OUT),
            Tag::Link { .. } => self.roles.push(Role::Link),
            Tag::CodeBlock(kind) => {
                self.flush();
                let lang = match kind {
                    CodeBlockKind::Fenced(l) => {
                        l.split_whitespace().next().unwrap_or("").to_string()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::Table(_) => {
                self.flush();
                self.table = Some(Table::default());
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                self.roles.pop();
                self.blank();
            }
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.blank(),
            TagEnd::BlockQuote(_) => {
                self.roles.pop();
                self.quote = self.quote.saturating_sub(1);
                self.blank();
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::Item => self.flush(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.mods.pop();
            }
            TagEnd::Link => {
                self.roles.pop();
            }
            _ => {}
        }
    }

    fn end_code(&mut self) {
        let Some((lang, code)) = self.code.take() else {
            return;
        };
        self.lines
            .push(MdLine::plain(format!("```{lang}"), Role::Muted));
        let (ss, ts) = &*SYNTAX;
        let syntax = ss
            .find_syntax_by_token(&lang)
            .unwrap_or_else(|| ss.find_syntax_plain_text());
        let scheme = if self.dark {
            "base16-ocean.dark"
        } else {
            "InspiredGitHub"
        };
        let mut hl = HighlightLines::new(syntax, &ts.themes[scheme]);
        for line in LinesWithEndings::from(&code) {
            let mut spans = Vec::new();
            match hl.highlight_line(line, ss) {
                Ok(ranges) => {
                    for (style, text) in ranges {
                        let text = text.trim_end_matches(['\n', '\r']);
                        if text.is_empty() {
                            continue;
                        }
                        let c = style.foreground;
                        spans.push(MdSpan {
                            text: text.replace('\t', "    "),
                            role: Role::Code,
                            fg: Some(Color::Rgb(c.r, c.g, c.b)),
                            add: Modifier::empty(),
                        });
                    }
                }
                Err(_) => spans.push(span(
                    line.trim_end().to_string(),
                    Role::Code,
                    Modifier::empty(),
                )),
            }
            if spans.is_empty() {
                spans.push(span(String::new(), Role::Code, Modifier::empty()));
            }
            self.lines.push(MdLine { spans });
        }
        self.lines.push(MdLine::plain("```", Role::Muted));
        self.blank();
    }

    fn end_table(&mut self) {
        let Some(t) = self.table.take() else { return };
        let cols = t.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                t.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| width(s))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in t.rows.iter().enumerate() {
            let mut spans = Vec::new();
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                let role = if i < t.header_rows {
                    Role::Strong
                } else {
                    Role::Assistant
                };
                if c > 0 {
                    spans.push(span(" │ ".into(), Role::Border, Modifier::empty()));
                }
                let pad = w.saturating_sub(width(cell));
                spans.push(span(
                    format!("{cell}{}", " ".repeat(pad)),
                    role,
                    Modifier::empty(),
                ));
            }
            self.lines.push(MdLine { spans });
            if i + 1 == t.header_rows {
                let sep: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
                self.lines
                    .push(MdLine::plain(sep.join("─┼─"), Role::Border));
            }
        }
        self.blank();
    }
}

fn span(text: String, role: Role, add: Modifier) -> MdSpan {
    MdSpan {
        text,
        role,
        fg: None,
        add,
    }
}
