//! Attachments on real temporary trees: what a directory walk keeps and skips, and each error
//! that sends nothing.

use std::path::{Path, PathBuf};

use super::*;

const CAPS: Caps = Caps {
    max_bytes: 64 * 1024,
    max_files: 50,
};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A small repository: sources, an ignored build dir and log, a hidden file, a binary.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir_all(r.join(".git")).unwrap();
    write(r, ".git/HEAD", b"ref: refs/heads/main\n");
    write(r, ".gitignore", b"target/\n*.tmp\n");
    write(r, "src/main.rs", b"fn main() {}\n");
    write(r, "src/lib/util.rs", b"pub fn util() {}\n");
    write(r, "README.md", b"# demo\n");
    write(r, "target/debug/out.rs", b"generated\n");
    write(r, "notes.tmp", b"scratch\n");
    write(r, ".env", b"SECRET=1\n");
    write(r, "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    write(r, "latin1.txt", b"caf\xe9\n");
    dir
}

fn names(a: &Attachment, root: &Path) -> Vec<String> {
    a.files
        .iter()
        .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

fn one(path: &Path, caps: Caps) -> Result<Attachment, AttachError> {
    load_with(&[path.to_path_buf()], caps, &mut std::io::empty()).map(|mut v| v.remove(0))
}

#[test]
fn a_directory_skips_ignored_hidden_and_binary_files() {
    let t = tree();
    let a = one(t.path(), CAPS).unwrap();
    assert_eq!(a.kind, Kind::Dir);
    assert_eq!(
        names(&a, t.path()),
        ["README.md", "src/lib/util.rs", "src/main.rs"]
    );
    let skipped: Vec<_> = a
        .skipped
        .iter()
        .map(|(p, why)| {
            (
                p.strip_prefix(t.path()).unwrap().display().to_string(),
                *why,
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("latin1.txt".to_string(), SkipReason::NotUtf8),
            ("logo.png".to_string(), SkipReason::Binary)
        ]
    );
    let text = a.render_for_prompt();
    assert!(!text.contains("generated") && !text.contains("scratch") && !text.contains("SECRET"));
    assert!(
        text.contains("fn main() {}") && text.contains("(skipped: binary)"),
        "{text}"
    );
    assert_eq!(a.bytes, (13 + 17 + 7) as u64);
}

#[test]
fn gitignore_counts_outside_a_git_repository_too() {
    let t = tree();
    std::fs::remove_dir_all(t.path().join(".git")).unwrap();
    let a = one(t.path(), CAPS).unwrap();
    assert!(!names(&a, t.path()).iter().any(|n| n.starts_with("target")));
}

#[test]
fn a_named_binary_or_non_utf8_file_is_an_error_not_a_skip() {
    let t = tree();
    let png = t.path().join("logo.png");
    let e = one(&png, CAPS).unwrap_err();
    assert!(
        matches!(&e, AttachError::Binary { path } if *path == png),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}: a binary file", png.display()))
    );
    let latin = t.path().join("latin1.txt");
    let e = one(&latin, CAPS).unwrap_err();
    assert!(matches!(e, AttachError::NotUtf8 { .. }), "{e}");
    assert!(e.to_string().contains("latin1.txt: not UTF-8"), "{e}");
}

#[test]
fn a_missing_path_names_itself() {
    let e = one(Path::new("/no/such/file.rs"), CAPS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/no/such/file.rs: cannot read it: no such file or directory"
    );
}

#[test]
fn over_the_byte_cap_names_the_path_and_the_cap_and_returns_nothing() {
    let t = tree();
    let caps = Caps {
        max_bytes: 20,
        max_files: 50,
    };
    let e = one(t.path(), caps).unwrap_err();
    assert!(matches!(e, AttachError::TooLarge { cap: 20, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("cap of 20 B ([attach] max_bytes)"), "{msg}");
    assert_eq!(msg.lines().count(), 1);
    // The cap is for all attachments together: two files that fit alone do not fit together.
    let main = t.path().join("src/main.rs");
    let readme = t.path().join("README.md");
    let pair = Caps {
        max_bytes: 15,
        max_files: 50,
    };
    assert!(load_with(std::slice::from_ref(&main), pair, &mut std::io::empty()).is_ok());
    let e = load_with(&[main, readme.clone()], pair, &mut std::io::empty()).unwrap_err();
    assert_eq!(e.path(), readme);
    // Exactly at the cap is within it.
    let exact = Caps {
        max_bytes: 13,
        max_files: 1,
    };
    assert!(one(&t.path().join("src/main.rs"), exact).is_ok());
}

#[test]
fn over_the_file_cap_names_the_directory() {
    let t = tree();
    let caps = Caps {
        max_bytes: 1 << 20,
        max_files: 2,
    };
    let e = one(t.path(), caps).unwrap_err();
    assert!(
        matches!(&e, AttachError::TooManyFiles { path, cap: 2 } if path == t.path()),
        "{e}"
    );
}

#[test]
fn a_directory_with_nothing_to_send_is_an_error() {
    let t = tree();
    write(t.path(), "assets/icon.bin", b"\0\x01\x02");
    write(t.path(), "assets/.keep", b"");
    let e = one(&t.path().join("assets"), CAPS).unwrap_err();
    assert!(matches!(e, AttachError::EmptyDir { .. }), "{e}");
}

#[test]
fn stdin_is_read_once_under_the_cap() {
    let dash = PathBuf::from("-");
    let a = load_with(
        std::slice::from_ref(&dash),
        CAPS,
        &mut &b"diff --git a b\n"[..],
    )
    .unwrap();
    assert_eq!(a[0].kind, Kind::Stdin);
    assert_eq!(a[0].files[0].text, "diff --git a b\n");
    assert!(
        a[0].render_for_prompt()
            .starts_with("Standard input:\n```\n")
    );
    let e = load_with(&[dash.clone(), dash.clone()], CAPS, &mut &b"x"[..]).unwrap_err();
    assert!(matches!(e, AttachError::StdinTwice));
    let small = Caps {
        max_bytes: 4,
        max_files: 5,
    };
    let e = load_with(std::slice::from_ref(&dash), small, &mut &b"12345"[..]).unwrap_err();
    assert!(matches!(e, AttachError::TooLarge { .. }), "{e}");
    let e = load_with(&[dash], CAPS, &mut &b"a\0b"[..]).unwrap_err();
    assert!(matches!(e, AttachError::Binary { .. }), "{e}");
}

#[test]
fn a_file_is_fenced_under_its_path_with_a_fence_it_cannot_close() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "doc.md", b"```rust\nlet x = 1;\n```");
    let a = one(&t.path().join("doc.md"), CAPS).unwrap();
    let text = a.render_for_prompt();
    let p = t.path().join("doc.md");
    assert_eq!(
        text,
        format!(
            "File `{}`:\n````md\n```rust\nlet x = 1;\n```\n````\n",
            p.display()
        )
    );
    assert_eq!(a.tokens, crate::chat::estimate_tokens(&text));
    let all = render_all(std::slice::from_ref(&a), "what is x?");
    assert!(
        all.starts_with("File `") && all.ends_with("````\n\nwhat is x?"),
        "{all}"
    );
}

#[test]
fn the_summary_line_gives_path_size_and_tokens() {
    let t = tree();
    let a = one(&t.path().join("src"), CAPS).unwrap();
    let s = a.summary();
    assert_eq!(
        s,
        format!(
            "{}/ · 2 files · 30 B · ~{} tokens",
            t.path().join("src").display(),
            a.tokens
        )
    );
    let mut big = a.clone();
    big.bytes = 5 * 1024 * 1024 + 1;
    big.tokens = 1_234_567;
    big.kind = Kind::File;
    big.path = "dump.sql".into();
    assert_eq!(big.summary(), "dump.sql · 5.0 MiB · ~1,234,567 tokens");
    assert_eq!(human_bytes(4300), "4.2 KiB");
}
