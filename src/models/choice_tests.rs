//! `choose`: every way of naming a model, the tier each implies, and the errors that list names.

use super::*;
use crate::models::tests::cfg_with;

const PROVIDERS: &str = "\
[models.mine]
path = \"m.gguf\"
[providers.lab]
base_url = \"http://127.0.0.1:9/v1\"
models = [{ name = \"tiny\" }, { name = \"shared\" }, { name = \"meta-llama/llama-3\" }]
[providers.other]
base_url = \"https://other.example/v1\"
models = [{ name = \"shared\" }, { name = \"big\", context_window = 128000 }]
[providers.llama]
base_url = \"http://localhost:8080/v1\"
tier = \"local\"
models = [{ name = \"smol\" }]
";

fn served(provider: &str, model: &str, tier: Tier) -> ModelChoice {
    ModelChoice::Served {
        model: ServedModel {
            provider: provider.into(),
            model: model.into(),
        },
        tier,
    }
}

#[test]
fn local_names_and_paths_run_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), PROVIDERS);
    for name in [
        "smollm2-135m",
        "mine",
        "x.gguf",
        "/models/X.GGUF",
        "./models/raw",
        "~/m",
    ] {
        assert_eq!(
            choose(name, &cfg),
            Ok(ModelChoice::InProcess(name.into())),
            "{name}"
        );
    }
}

#[test]
fn served_names_imply_their_providers_tier() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), PROVIDERS);
    assert_eq!(
        choose("lab/tiny", &cfg),
        Ok(served("lab", "tiny", Tier::Cloud))
    );
    assert_eq!(choose("tiny", &cfg), Ok(served("lab", "tiny", Tier::Cloud)));
    assert_eq!(
        choose("other/shared", &cfg),
        Ok(served("other", "shared", Tier::Cloud))
    );
    assert_eq!(
        choose("meta-llama/llama-3", &cfg),
        Ok(served("lab", "meta-llama/llama-3", Tier::Cloud)),
        "a bare name with a slash in it"
    );
    assert_eq!(
        choose("lab/meta-llama/llama-3", &cfg),
        Ok(served("lab", "meta-llama/llama-3", Tier::Cloud))
    );
    let smol = choose("smol", &cfg).unwrap();
    assert_eq!(smol, served("llama", "smol", Tier::Local));
    assert_eq!(smol.route(), RouteMode::Local);
}

#[test]
fn unknown_ambiguous_and_unlisted_names_say_what_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_with(dir.path(), PROVIDERS);
    let e = choose("nope", &cfg).unwrap_err().to_string();
    for name in [
        "smollm2-135m (local)",
        "mine (local)",
        "lab/tiny (cloud)",
        "other/big (cloud)",
        "llama/smol (local server)",
    ] {
        assert!(e.contains(name), "{name} missing from: {e}");
    }
    assert!(e.contains(".gguf"), "{e}");
    let e = choose("shared", &cfg).unwrap_err();
    assert_eq!(
        e,
        ChooseError::Ambiguous {
            name: "shared".into(),
            options: "lab/shared, other/shared".into()
        }
    );
    let e = choose("other/tiny", &cfg).unwrap_err().to_string();
    assert!(
        e.contains("other lists no model \"tiny\"") && e.contains("shared, big"),
        "{e}"
    );
    // A slash after an unknown provider is neither a provider's model nor a path.
    assert!(matches!(
        choose("nobody/tiny", &cfg),
        Err(ChooseError::Unknown { .. })
    ));
}

#[test]
fn applying_a_choice_sets_the_model_and_pins_its_tier() {
    let dir = tempfile::tempdir().unwrap();
    let base = cfg_with(dir.path(), PROVIDERS);

    let mut cfg = base.clone();
    choose("lab/tiny", &cfg).unwrap().apply(&mut cfg, false);
    assert_eq!(cfg.route, RouteMode::Cloud);
    assert_eq!(
        cfg.cloud_model.as_ref().map(|m| m.to_string()).as_deref(),
        Some("lab/tiny")
    );
    assert_eq!(
        cfg.local.model, base.local.model,
        "the local model is untouched"
    );

    let mut cfg = base.clone();
    choose("smol", &cfg).unwrap().apply(&mut cfg, false);
    assert_eq!(cfg.route, RouteMode::Local);
    assert_eq!(
        cfg.engine,
        Engine::Server(ServedModel {
            provider: "llama".into(),
            model: "smol".into()
        })
    );

    let mut cfg = base.clone();
    cfg.engine = Engine::Server(ServedModel {
        provider: "llama".into(),
        model: "smol".into(),
    });
    choose("mine", &cfg).unwrap().apply(&mut cfg, true);
    assert_eq!(cfg.local.model, "mine");
    assert_eq!(
        cfg.engine,
        Engine::InProcess,
        "a GGUF model runs in process"
    );
    assert_eq!(cfg.route, base.route, "an explicit --route is kept");
}
