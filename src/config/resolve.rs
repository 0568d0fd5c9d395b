//! Turns the merged config file into a `Config`: each provider's URL, scheme and timeout, the
//! local sampling ranges and budget caps, and the newer sections' checks in `validate`.

use std::path::PathBuf;

use super::{Config, ConfigFile, MAX_TIMEOUT_SECS, Paths, Provider, validate};

/// Checks that need more than the types: URLs, ranges, the insecure-http rule.
pub(crate) fn resolve(
    raw: ConfigFile,
    file: PathBuf,
    paths: Paths,
    no_pull: bool,
) -> Result<Config, (String, String, String)> {
    // Errors are (key, problem, fix); `load` adds where the value came from.
    let mut providers = Vec::new();
    for (name, p) in raw.providers {
        let key = format!("providers.{name}.base_url");
        let url = url::Url::parse(&p.base_url).map_err(|e| {
            (
                key.clone(),
                format!("{e} in {:?}", p.base_url),
                "use a full URL such as \"https://api.openai.com/v1\"".into(),
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) || p.allow_insecure_http => {}
            "http" => {
                return Err((
                    key,
                    format!(
                        "plain http to {} would send the key unencrypted",
                        url.host_str().unwrap_or("?")
                    ),
                    format!("use https, or set providers.{name}.allow_insecure_http = true"),
                ));
            }
            other => {
                return Err((
                    key,
                    format!("unsupported scheme {other:?}"),
                    "use https://".into(),
                ));
            }
        }
        // A deadline this far out overflows the clock; a day is already "never" for an answer.
        if !(1..=MAX_TIMEOUT_SECS).contains(&p.timeout_secs) {
            return Err((
                format!("providers.{name}.timeout_secs"),
                format!("{} is out of range", p.timeout_secs),
                format!("use 1 to {MAX_TIMEOUT_SECS} seconds (60 is the default)"),
            ));
        }
        providers.push(Provider {
            name,
            base_url: url,
            api_key_env: p.api_key_env,
            models: p.models,
            tier: p.tier,
            timeout_secs: p.timeout_secs,
            trusted: p.trusted,
            max_tokens: p.max_tokens,
        });
    }
    validate::providers(&providers)?;
    let engine = validate::engine(&raw.local.engine, &providers)?;
    validate::attach(&raw.attach)?;
    let l = &raw.local;
    if !(0.0..=2.0).contains(&l.temperature) {
        return Err((
            "local.temperature".into(),
            format!("{} is out of range", l.temperature),
            "use a value from 0.0 to 2.0".into(),
        ));
    }
    if l.max_tokens == 0 {
        return Err((
            "local.max_tokens".into(),
            "0 would never answer".into(),
            "use a positive number such as 512".into(),
        ));
    }
    if raw.budget.daily_usd < 0.0 || raw.budget.monthly_usd < 0.0 {
        return Err((
            "budget".into(),
            "a negative cap".into(),
            "use 0 for no cap, or a positive amount".into(),
        ));
    }
    Ok(Config {
        route: raw.route,
        theme: raw.theme,
        local: raw.local,
        router: raw.router,
        budget: raw.budget,
        print: raw.print,
        attach: raw.attach,
        serve: raw.serve,
        keys: raw.keys,
        providers,
        models: raw.models,
        engine,
        cloud_model: None,
        file,
        paths,
        no_pull,
    })
}

/// A loopback host, decided by parsing it as an address (or the name `localhost`), never by
/// its spelling: `127.evil.example` is a domain, not loopback.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
