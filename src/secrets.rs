//! API keys: the OS keyring (service `tandem`, user = provider name), the env var a provider
//! names, and `Redacted`, the wrapper that keeps a key out of Debug, Display and logs.
//! Keys are never written to the config, logs, the history database or error messages.

use std::fmt;

use crate::config::Provider;

pub const SERVICE: &str = "tandem";

/// A secret whose Debug and Display are `***`; `expose` is the only way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(s: impl Into<String>) -> Self {
        Redacted(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    Keyring,
    Missing,
    /// No key is needed: a loopback server that takes none.
    NotNeeded,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(v) => write!(f, "env var {v}"),
            KeySource::Keyring => f.write_str("keyring"),
            KeySource::Missing => f.write_str("missing"),
            KeySource::NotNeeded => f.write_str("not needed (local server)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no keyring service is available here ({0}); set the provider's api_key_env variable instead"
    )]
    NoKeyring(String),
    #[error("keyring error for {provider}: {reason}")]
    Keyring { provider: String, reason: String },
    #[error("the key is empty; nothing was stored")]
    Empty,
}

/// The keyring, or why it cannot be used on this machine.
fn entry(provider: &str) -> Result<keyring::Entry, SecretError> {
    if let Err(e) = keyring::Entry::store_status() {
        return Err(SecretError::NoKeyring(one_line(e)));
    }
    keyring::Entry::new(SERVICE, provider).map_err(|e| SecretError::NoKeyring(one_line(&e)))
}

fn one_line(e: &keyring::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("unknown error")
        .to_string()
}

/// Whether a keyring service answers; `None` when it does, else the reason.
pub fn keyring_unavailable() -> Option<String> {
    match keyring::Entry::store_status() {
        Ok(()) => None,
        Err(e) => Some(one_line(e)),
    }
}

pub fn store(provider: &str, key: &str) -> Result<(), SecretError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    entry(provider)?
        .set_password(key)
        .map_err(|e| SecretError::Keyring {
            provider: provider.into(),
            reason: one_line(&e),
        })
}

/// Deletes the stored key; `Ok(false)` when there was none.
pub fn remove(provider: &str) -> Result<bool, SecretError> {
    match entry(provider)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(SecretError::Keyring {
            provider: provider.into(),
            reason: one_line(&e),
        }),
    }
}

/// The keyring user under which `tandem auth set serve` keeps the bearer token of `tandem serve`.
pub const SERVE_TOKEN_USER: &str = "serve";

/// The bearer token of `tandem serve` from the keyring (`--token-from-keyring`).
pub fn serve_token() -> Result<Option<Redacted>, SecretError> {
    match entry(SERVE_TOKEN_USER)?.get_password() {
        Ok(t) if !t.trim().is_empty() => Ok(Some(Redacted(t.trim().to_string()))),
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(SecretError::Keyring {
            provider: SERVE_TOKEN_USER.into(),
            reason: one_line(&e),
        }),
    }
}

fn from_keyring(provider: &str) -> Option<Redacted> {
    entry(provider).ok()?.get_password().ok().map(Redacted)
}

/// Looks a provider's key up: its env var first, then the keyring.
pub fn lookup(p: &Provider, env: &dyn Fn(&str) -> Option<String>) -> (KeySource, Option<Redacted>) {
    if let Some(var) = &p.api_key_env
        && let Some(v) = env(var).filter(|v| !v.trim().is_empty())
    {
        return (
            KeySource::Env(var.clone()),
            Some(Redacted(v.trim().to_string())),
        );
    }
    if let Some(k) = from_keyring(&p.name) {
        return (KeySource::Keyring, Some(k));
    }
    if crate::config::is_loopback(&p.base_url) {
        return (KeySource::NotNeeded, None);
    }
    // A local-tier server off this machine is one the user vouched for (`trusted`, checked at
    // load); like a loopback one, it takes a key only when one is given.
    if p.tier == crate::config::Tier::Local {
        return (KeySource::NotNeeded, None);
    }
    (KeySource::Missing, None)
}

/// Removes every known secret from a message before it is shown or logged.
pub fn scrub(text: &str, secrets: &[&Redacted]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.0.len() >= 4 {
            out = out.replace(&s.0, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_never_prints_its_value() {
        let r = Redacted::new("sk-live-123456");
        assert_eq!(format!("{r}"), "***");
        assert_eq!(format!("{r:?}"), "***");
        assert_eq!(format!("{:?}", Some(r.clone())), "Some(***)");
        assert_eq!(r.expose(), "sk-live-123456");
    }

    #[test]
    fn only_a_parsed_loopback_host_goes_without_a_key() {
        let lo = |u: &str| crate::config::is_loopback(&u.parse().unwrap());
        assert!(lo("http://127.0.0.1:8080/v1") && lo("http://127.9.9.9/") && lo("http://[::1]/"));
        assert!(lo("http://localhost:11434/v1"));
        assert!(!lo("http://127.evil.example/v1") && !lo("http://localhost.evil.example/"));
        assert!(!lo("https://api.openai.com/v1") && !lo("http://10.0.0.1/"));
    }

    #[test]
    fn scrub_removes_keys_from_messages() {
        let r = Redacted::new("sk-abcdef");
        assert_eq!(scrub("401 for key sk-abcdef!", &[&r]), "401 for key ***!");
    }
}
