use super::*;

fn rgb(c: Color) -> Option<(u8, u8, u8)> {
    match c {
        Color::Rgb(r, g, b) => Some((r, g, b)),
        _ => None,
    }
}

/// WCAG 2 relative luminance and contrast ratio.
fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    fn lum((r, g, b): (u8, u8, u8)) -> f64 {
        let ch = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)
    }
    let (x, y) = (lum(a), lum(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn every_shipped_theme_loads_with_every_role() {
    for (name, _) in SHIPPED {
        let t = load(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        for role in Role::ALL {
            assert!(t.styles.contains_key(role), "{name} lacks {}", role.name());
        }
    }
}

#[test]
fn shipped_themes_are_readable_on_the_background_they_promise() {
    for (name, _) in SHIPPED {
        let t = load(name, None).unwrap();
        if !t.has_colour() {
            continue; // the terminal's own colours: nothing to measure
        }
        let page = rgb(t.style(Role::Text).bg.unwrap()).unwrap();
        let luma = contrast(page, (0, 0, 0));
        match t.background {
            Background::Dark => assert!(luma < 2.0, "{name} promises dark but its page is light"),
            Background::Light => assert!(luma > 10.0, "{name} promises light but its page is dark"),
        }
        let min = if *name == "high-contrast" { 7.0 } else { 4.5 };
        for role in Role::ALL {
            let s = t.style(*role);
            let Some(fg) = s.fg.and_then(rgb) else {
                continue;
            };
            // Borders are decoration, not text: 1.5:1 keeps them visible without shouting.
            let need = if *role == Role::Border { 1.5 } else { min };
            let bg = s.bg.and_then(rgb).unwrap_or(page);
            let c = contrast(fg, bg);
            assert!(
                c >= need,
                "{name}: {} has contrast {c:.2} < {need}",
                role.name()
            );
        }
    }
}

#[test]
fn mono_has_no_colour_and_marks_what_colour_marked() {
    let t = load("mono", None).unwrap();
    assert!(!t.has_colour());
    for role in Role::ALL {
        let s = t.style(*role);
        assert_eq!((s.fg, s.bg), (None, None), "{}", role.name());
    }
    // Roles that other themes tell apart by a background.
    for role in [Role::Selection, Role::Status, Role::Banner] {
        assert!(
            t.style(role).add_modifier.contains(Modifier::REVERSED),
            "{}",
            role.name()
        );
    }
    assert!(load("default", None).unwrap().has_colour());
}

#[test]
fn unknown_theme_names_the_choices() {
    let e = load("nope", None).unwrap_err().to_string();
    assert!(e.contains("unknown theme \"nope\""), "{e}");
    assert!(e.contains("default, light, high-contrast"), "{e}");
}

#[test]
fn user_theme_inherits_and_bad_roles_or_colours_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "inherits = \"light\"\n[styles]\nuser = \"#ff0000\"\n",
    )
    .unwrap();
    let t = load("mine", Some(dir.path())).unwrap();
    assert_eq!(t.style(Role::User).fg, Some(Color::Rgb(255, 0, 0)));
    assert_eq!(t.background, Background::Light);

    std::fs::write(
        dir.path().join("bad.toml"),
        "inherits = \"default\"\n[styles]\nsidebar = \"red\"\n",
    )
    .unwrap();
    let e = load("bad", Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("unknown role \"sidebar\""), "{e}");

    std::fs::write(
        dir.path().join("col.toml"),
        "inherits = \"default\"\n[styles]\nuser = \"#12\"\n",
    )
    .unwrap();
    let e = load("col", Some(dir.path())).unwrap_err().to_string();
    assert!(
        e.contains("styles.user") && e.contains("bad hex colour"),
        "{e}"
    );

    std::fs::write(dir.path().join("loop.toml"), "inherits = \"loop\"\n").unwrap();
    assert!(
        load("loop", Some(dir.path()))
            .unwrap_err()
            .to_string()
            .contains("inherits itself")
    );

    std::fs::write(dir.path().join("half.toml"), "[styles]\nuser = \"red\"\n").unwrap();
    assert!(
        load("half", Some(dir.path()))
            .unwrap_err()
            .to_string()
            .contains("no style for role")
    );
}
