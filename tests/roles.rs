//! `tandem roles` as a user runs it: the built-ins, a user file shadowing one, `edit` seeding a
//! file, and a broken file refused with its file and line (exit 2, one line).

mod common;
use common::{Sandbox, assert_usage_error};

fn roles_dir(sb: &Sandbox) -> std::path::PathBuf {
    let d = sb.path().join("config/tandem/roles");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stdout(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().args(args).output().unwrap();
    common::stdout_ok(&out)
}

fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn list_and_show_the_builtins_and_a_users_own() {
    let sb = Sandbox::new();
    let list = stdout(&sb, &["roles", "list"]);
    for name in ["commit", "explain", "shell"] {
        assert!(row(&list, name).contains("built-in"), "{list}");
    }
    let shell = stdout(&sb, &["roles", "show", "shell"]);
    assert!(
        shell.starts_with("+++\n") && shell.contains("exactly one command"),
        "{shell}"
    );

    let dir = roles_dir(&sb);
    std::fs::write(
        dir.join("shell.md"),
        "+++\nroute = \"local\"\n+++\nAnswer in fish.\n",
    )
    .unwrap();
    std::fs::write(dir.join("review.md"), "Review the diff.\n").unwrap();
    let list = stdout(&sb, &["roles", "list"]);
    let shell = row(&list, "shell");
    assert!(
        shell.contains("user (overrides built-in)") && shell.contains("local"),
        "{shell}"
    );
    assert!(row(&list, "review").contains("Review the diff."), "{list}");
    assert_eq!(
        stdout(&sb, &["roles", "show", "review"]),
        "Review the diff.\n"
    );
}

#[test]
fn a_broken_role_file_names_its_line_and_exits_2() {
    let sb = Sandbox::new();
    let file = roles_dir(&sb).join("bad.md");
    std::fs::write(
        &file,
        "+++\nmodel = \"x.gguf\"\nroute = \"sideways\"\n+++\nHi\n",
    )
    .unwrap();
    let out = sb.cmd().args(["roles", "show", "bad"]).output().unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    assert!(err.contains("sideways"), "{err}");
    // The list still shows every role, the broken one marked.
    let list = stdout(&sb, &["roles", "list"]);
    assert!(row(&list, "bad").contains("broken:"), "{list}");
    assert!(row(&list, "commit").contains("built-in"), "{list}");
    // A model the config does not know is found too, on its line.
    std::fs::write(&file, "+++\nroute = \"cloud\"\nmodel = \"nope\"\n+++\nHi\n").unwrap();
    let err = assert_usage_error(&sb.cmd().args(["roles", "show", "bad"]).output().unwrap());
    assert!(err.contains("bad.md:3: unknown model \"nope\""), "{err}");
    let err = assert_usage_error(&sb.cmd().args(["roles", "show", "nope"]).output().unwrap());
    assert!(
        err.contains("no role \"nope\"") && err.contains("commit, explain"),
        "{err}"
    );
}

#[test]
fn edit_starts_from_the_builtin_and_checks_the_result() {
    let sb = Sandbox::new();
    let dir = roles_dir(&sb);
    // `true` as the editor leaves the seeded file as it is.
    let out = sb
        .cmd()
        .env("VISUAL", "true")
        .args(["roles", "edit", "commit"])
        .output()
        .unwrap();
    common::stdout_ok(&out);
    let seeded = std::fs::read_to_string(dir.join("commit.md")).unwrap();
    assert!(seeded.contains("commit message"), "{seeded}");
    let out = sb
        .cmd()
        .env("VISUAL", "true")
        .args(["roles", "edit", "fresh"])
        .output()
        .unwrap();
    common::stdout_ok(&out);
    assert!(
        std::fs::read_to_string(dir.join("fresh.md"))
            .unwrap()
            .starts_with("+++\n")
    );
    // An editor that leaves a mistake behind: reported at once, with the line.
    let script = sb.path().join("bad-editor");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '+++\\n\\ntemperature = 9\\n+++\\nx\\n' > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = sb
        .cmd()
        .env("VISUAL", &script)
        .args(["roles", "edit", "fresh"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(
        err.contains("fresh.md:3: temperature 9 is out of range"),
        "{err}"
    );
    let err = assert_usage_error(
        &sb.cmd()
            .args(["roles", "edit", "../escape"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("not a role name"), "{err}");
}
