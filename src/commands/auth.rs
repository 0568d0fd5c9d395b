//! `tandem auth set|remove|status`: keys in the OS keyring, never echoed or printed.

use std::io::{IsTerminal, Read};

use anyhow::Context;

use crate::config::Config;
use crate::secrets::{self, KeySource};

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A provider name the config does not define: a usage error (exit 2), like `--model nope`.
#[derive(Debug, thiserror::Error)]
#[error("unknown provider {name:?}; {hint}")]
pub struct UnknownProvider {
    name: String,
    hint: String,
}

fn known(cfg: &Config, provider: &str) -> anyhow::Result<()> {
    // `serve` holds the bearer token of `tandem serve`, not a provider's key.
    if cfg.provider(provider).is_none() && provider != crate::secrets::SERVE_TOKEN_USER {
        let names: Vec<&str> = cfg.providers.iter().map(|p| p.name.as_str()).collect();
        let hint = if names.is_empty() {
            "no providers are configured; add [providers.NAME] to the config (see `tandem config show`)".to_string()
        } else {
            format!("configured providers: {}", names.join(", "))
        };
        return Err(UnknownProvider {
            name: provider.to_string(),
            hint,
        }
        .into());
    }
    Ok(())
}

pub fn set(cfg: &Config, provider: &str) -> anyhow::Result<()> {
    known(cfg, provider)?;
    let key = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("API key for {provider} (input hidden): "))
            .context("cannot read the key from the terminal")?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("stdin is not UTF-8 text")?;
        s
    };
    secrets::store(provider, &key)?;
    eprintln!("stored the key for {provider} in the keyring");
    Ok(())
}

pub fn remove(cfg: &Config, provider: &str) -> anyhow::Result<()> {
    known(cfg, provider)?;
    if secrets::remove(provider)? {
        eprintln!("removed the key for {provider} from the keyring");
    } else {
        eprintln!("no key for {provider} was in the keyring");
    }
    Ok(())
}

pub fn status(cfg: &Config, only: Option<&str>) -> anyhow::Result<()> {
    if let Some(p) = only {
        known(cfg, p)?;
    }
    match secrets::keyring_unavailable() {
        None => outln!("keyring: available")?,
        Some(why) => outln!("keyring: unavailable ({why}); keys come from env vars only")?,
    }
    if cfg.providers.is_empty() {
        outln!(
            "no providers configured: add [providers.NAME] to {}",
            cfg.file.display()
        )?;
        return Ok(());
    }
    for p in cfg
        .providers
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.name))
    {
        let (source, _) = secrets::lookup(p, &env_lookup);
        let hint = match (&source, &p.api_key_env) {
            (KeySource::Missing, Some(var)) => {
                format!("  (set {var} or run `tandem auth set {}`)", p.name)
            }
            (KeySource::Missing, None) => format!("  (run `tandem auth set {}`)", p.name),
            _ => String::new(),
        };
        outln!("{:<16} {}{hint}", p.name, source)?;
    }
    Ok(())
}
