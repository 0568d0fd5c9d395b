//! Role files: front matter, the built-ins, shadowing, and errors that name the line.

use super::*;

#[test]
fn every_builtin_parses_and_has_a_prompt() {
    for (name, text) in BUILTIN {
        let r = parse(name, text, Source::BuiltIn).unwrap();
        assert!(!r.prompt.is_empty() && !r.prompt.contains("+++"), "{name}");
    }
    let shell = parse("shell", builtin("shell").unwrap(), Source::BuiltIn).unwrap();
    assert!(
        shell.prompt.contains("exactly one command"),
        "{}",
        shell.prompt
    );
    assert_eq!(shell.system_message().role, crate::chat::Role::System);
}

#[test]
fn front_matter_sets_the_turns_settings() {
    let r = parse(
        "rev",
        "+++\nroute = \"cloud\"\nmodel = \"lab/tiny\"\ntemperature = 0.1\nmax_tokens = 99\n+++\n\nReview code.\n",
        Source::BuiltIn,
    )
    .unwrap();
    assert_eq!(r.route, Some(RouteMode::Cloud));
    assert_eq!(r.model.as_deref(), Some("lab/tiny"));
    assert_eq!((r.temperature, r.max_tokens), (Some(0.1), Some(99)));
    assert_eq!(r.prompt, "Review code.");
    // No front matter: the whole file is the prompt, and a --- rule stays in it.
    let r = parse("p", "Be terse.\n---\nReally.\n", Source::BuiltIn).unwrap();
    assert_eq!(
        (r.route, r.prompt.as_str()),
        (None, "Be terse.\n---\nReally.")
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let at = Source::File("/roles/x.md".into());
    let e = parse(
        "x",
        "+++\nroute = \"cloud\"\ntemprature = 1\n+++\nHi\n",
        at.clone(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("/roles/x.md:3: unknown field `temprature`"),
        "{msg}"
    );
    let e = parse("x", "+++\nroute = \"sideways\"\n+++\nHi\n", at.clone()).unwrap_err();
    assert!(e.to_string().starts_with("/roles/x.md:2: "), "{e}");
    let e = parse("x", "+++\n\n\ntemperature = 3.5\n+++\nHi\n", at.clone()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/roles/x.md:4: temperature 3.5 is out of range"),
        "{e}"
    );
    let e = parse("x", "+++\nmax_tokens = 0\n+++\nHi\n", at.clone()).unwrap_err();
    assert!(
        e.to_string().starts_with("/roles/x.md:2: max_tokens 0"),
        "{e}"
    );
    let e = parse("x", "+++\nroute = \"local\"\nHi\n", at.clone()).unwrap_err();
    assert!(
        e.to_string()
            .contains(":1: the front matter opened with +++ is never closed"),
        "{e}"
    );
    let e = parse("x", "+++\n+++\n  \n", at).unwrap_err();
    assert!(e.to_string().contains("no prompt"), "{e}");
    let e = RoleError::BadName {
        name: "../x".into(),
    };
    assert_eq!(e.to_string().lines().count(), 1);
}

#[test]
fn a_user_file_shadows_a_builtin_and_unknown_names_list_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shell.md"), "Answer in fish syntax.\n").unwrap();
    std::fs::write(
        dir.path().join("mine.md"),
        "+++\nroute = \"local\"\n+++\nMine.\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a role").unwrap();
    let shell = load("shell", dir.path()).unwrap();
    assert_eq!(shell.prompt, "Answer in fish syntax.");
    assert_eq!(shell.source, Source::File(dir.path().join("shell.md")));
    assert_eq!(load("commit", dir.path()).unwrap().source, Source::BuiltIn);
    assert_eq!(names(dir.path()), ["commit", "explain", "mine", "shell"]);
    let e = load("nope", dir.path()).unwrap_err().to_string();
    assert!(e.contains("commit, explain, mine, shell"), "{e}");
    assert!(matches!(
        load("../etc/passwd", dir.path()),
        Err(RoleError::BadName { .. })
    ));
}

#[test]
fn a_broken_file_is_listed_beside_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.md"), "+++\nroute = 3\n+++\nx\n").unwrap();
    let all = list(dir.path());
    let bad = all.iter().find(|(n, _)| n == "bad").unwrap();
    assert!(
        matches!(&bad.1, Err(RoleError::Bad { line: 2, .. })),
        "{:?}",
        bad.1
    );
    assert_eq!(all.iter().filter(|(_, r)| r.is_ok()).count(), BUILTIN.len());
}

#[test]
fn the_template_parses_and_a_model_is_checked_against_the_config() {
    let r = parse("new", TEMPLATE, Source::BuiltIn).unwrap();
    assert_eq!((r.route, r.model.as_ref()), (None, None));
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::models::tests::cfg_with(
        dir.path(),
        "[providers.lab]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [{ name = \"tiny\" }]\n",
    );
    let ok = parse("a", "+++\nmodel = \"lab/tiny\"\n+++\nx\n", Source::BuiltIn).unwrap();
    assert!(ok.check(&cfg).is_ok());
    let at = Source::File("/r/b.md".into());
    let bad = parse(
        "b",
        "+++\nroute = \"auto\"\nmodel = \"lab/huge\"\n+++\nx\n",
        at,
    )
    .unwrap();
    let e = bad.check(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("/r/b.md:3: lab lists no model \"huge\""),
        "{e}"
    );
}
