//! Checks on the newer sections that need more than their types: the local tier's trust rule,
//! `local.engine` read against the providers, per-provider answer caps, attachment caps.
//! Errors are (key, problem, fix), as in `config::resolve`; `load` adds the value's origin.

use super::{AttachConfig, Engine, Provider, ServedModel, Tier};

type Problem = (String, String, String);

/// A `tier = "local"` provider counts as this machine: private turns may go there. So its host
/// must be loopback (decided by parsing it as an address, or the name `localhost`), unless the
/// user vouches for it with `trusted = true`.
pub(super) fn providers(providers: &[Provider]) -> Result<(), Problem> {
    for p in providers {
        if p.tier == Tier::Local && !p.trusted && !super::is_loopback(&p.base_url) {
            return Err((
                format!("providers.{}.tier", p.name),
                format!(
                    "\"local\" for {}, which is not this machine, so private prompts would leave it",
                    p.base_url.host_str().unwrap_or("?")
                ),
                format!(
                    "use a loopback address (127.0.0.1, [::1], localhost), set providers.{}.trusted = true if that host is yours, or use tier = \"cloud\"",
                    p.name
                ),
            ));
        }
        if p.max_tokens == 0 {
            return Err((
                format!("providers.{}.max_tokens", p.name),
                "0 would never answer".into(),
                "use a positive number such as 4096".into(),
            ));
        }
    }
    Ok(())
}

/// `local.engine`: "in-process", or "PROVIDER" / "PROVIDER/MODEL" naming a `tier = "local"`
/// provider (its first listed model when none is named).
pub(super) fn engine(value: &str, providers: &[Provider]) -> Result<Engine, Problem> {
    const KEY: &str = "local.engine";
    if value == "in-process" {
        return Ok(Engine::InProcess);
    }
    let locals: Vec<&str> = providers
        .iter()
        .filter(|p| p.tier == Tier::Local)
        .map(|p| p.name.as_str())
        .collect();
    let choices = || {
        let mut c = vec!["\"in-process\"".to_string()];
        c.extend(locals.iter().map(|n| format!("\"{n}\"")));
        format!("use one of {}", c.join(", "))
    };
    let (name, model) = match value.split_once('/') {
        Some((p, m)) => (p, Some(m)),
        None => (value, None),
    };
    let Some(p) = providers.iter().find(|p| p.name == name) else {
        return Err((
            KEY.into(),
            format!("no provider named {name:?}"),
            format!(
                "{}, or add a [providers.{name}] with tier = \"local\"",
                choices()
            ),
        ));
    };
    if p.tier != Tier::Local {
        return Err((
            KEY.into(),
            format!(
                "{name} is a cloud provider; only a tier = \"local\" one can answer local turns"
            ),
            format!(
                "set providers.{name}.tier = \"local\" if it runs on this machine, or {}",
                choices()
            ),
        ));
    }
    let listed: Vec<&str> = p.models.iter().map(|m| m.name.as_str()).collect();
    let model = match model {
        Some(m) if listed.contains(&m) => m,
        Some(m) => {
            return Err((
                KEY.into(),
                format!("{name} lists no model {m:?}"),
                format!("name one of: {}", listed.join(", ")),
            ));
        }
        None => listed.first().copied().ok_or_else(|| {
            (
                KEY.to_string(),
                format!("{name} lists no models"),
                format!("add models = [{{ name = \"...\" }}] to [providers.{name}]"),
            )
        })?,
    };
    Ok(Engine::Server(ServedModel {
        provider: name.to_string(),
        model: model.to_string(),
    }))
}

pub(super) fn attach(a: &AttachConfig) -> Result<(), Problem> {
    if a.max_bytes == 0 || a.max_files == 0 {
        let key = if a.max_bytes == 0 {
            "attach.max_bytes"
        } else {
            "attach.max_files"
        };
        return Err((
            key.into(),
            "0 would refuse every attachment".into(),
            "use a positive number (the defaults are in `tandem config show`)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelSpec;

    fn provider(name: &str, url: &str, tier: Tier, trusted: bool) -> Provider {
        Provider {
            name: name.into(),
            base_url: url.parse().unwrap(),
            api_key_env: None,
            models: ["a", "b"]
                .iter()
                .map(|m| ModelSpec {
                    name: m.to_string(),
                    context_window: 8192,
                    input_price: 0.0,
                    output_price: 0.0,
                })
                .collect(),
            tier,
            timeout_secs: 60,
            trusted,
            max_tokens: 4096,
        }
    }

    #[test]
    fn a_local_tier_must_be_loopback_by_address_unless_trusted() {
        for ok in [
            "http://127.0.0.1:8080/v1",
            "http://127.9.9.9/v1",
            "http://[::1]:11434/v1",
            "http://localhost:1234/v1",
        ] {
            assert!(
                providers(&[provider("l", ok, Tier::Local, false)]).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://127.evil.example/v1",
            "http://192.168.1.5:8080/v1",
            "https://localhost.example.com/v1",
            "http://[::2]/v1",
        ] {
            let (key, problem, fix) =
                providers(&[provider("l", bad, Tier::Local, false)]).unwrap_err();
            assert_eq!(key, "providers.l.tier", "{bad}");
            assert!(problem.contains("not this machine"), "{problem}");
            assert!(fix.contains("providers.l.trusted = true"), "{fix}");
            assert!(providers(&[provider("l", bad, Tier::Local, true)]).is_ok());
            assert!(providers(&[provider("l", bad, Tier::Cloud, false)]).is_ok());
        }
    }

    #[test]
    fn the_engine_names_a_local_tier_provider_and_one_of_its_models() {
        let ps = [
            provider("llama", "http://127.0.0.1:8080/v1", Tier::Local, false),
            provider("openai", "https://api.openai.com/v1", Tier::Cloud, false),
        ];
        assert_eq!(engine("in-process", &ps), Ok(Engine::InProcess));
        let served = |m: &str| {
            Engine::Server(ServedModel {
                provider: "llama".into(),
                model: m.into(),
            })
        };
        assert_eq!(engine("llama", &ps), Ok(served("a")));
        assert_eq!(engine("llama/b", &ps), Ok(served("b")));
        let (_, problem, fix) = engine("openai", &ps).unwrap_err();
        assert!(problem.contains("cloud provider"), "{problem}");
        assert!(fix.contains("\"llama\""), "{fix}");
        let (_, problem, fix) = engine("ollama", &ps).unwrap_err();
        assert!(
            problem.contains("no provider named \"ollama\""),
            "{problem}"
        );
        assert!(fix.contains("\"in-process\", \"llama\""), "{fix}");
        let (_, problem, fix) = engine("llama/c", &ps).unwrap_err();
        assert!(problem.contains("no model \"c\""), "{problem}");
        assert!(fix.contains("a, b"), "{fix}");
    }
}
