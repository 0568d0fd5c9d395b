//! `tandem doctor`: one screen (or one JSON object with `--json`) saying whether tandem can
//! work here: the config file, the keyring, the local model, each provider's key and
//! reachability, and whether a `tandem serve` answers at the configured address. It only
//! reads and probes; it never changes anything.

use std::io::Write;

use serde::Serialize;

use crate::backend::cloud::{self, CHECK_TIMEOUT, Reachability};
use crate::config::{Engine, Loaded, Tier};
use crate::models::{self, ModelStatus};
use crate::secrets::{self, KeySource};

#[derive(Debug, Serialize)]
pub struct Report {
    pub config: ConfigReport,
    pub keyring: KeyringReport,
    pub local_model: LocalReport,
    pub local_engine: EngineReport,
    pub providers: Vec<ProviderReport>,
    /// A `tandem serve` at the `[serve]` address, if one answers.
    pub server: crate::serve::ServerReport,
}

/// Who answers local turns (`local.engine`), and for a server whether it answered the probe.
#[derive(Debug, Serialize)]
pub struct EngineReport {
    /// "in-process" or "server".
    pub kind: &'static str,
    /// The in-process model's name, or PROVIDER/MODEL.
    pub model: String,
    /// The server model's window from the config (the in-process one is in its GGUF header).
    pub context_window: Option<usize>,
    /// The server's probe; `None` for the in-process engine.
    pub reachable: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub path: String,
    pub exists: bool,
    /// Always true here: an invalid config stops tandem before any command runs, with the error.
    pub valid: bool,
}

#[derive(Debug, Serialize)]
pub struct KeyringReport {
    pub available: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LocalReport {
    pub name: String,
    /// "installed", "partial", "missing" or "error".
    pub state: &'static str,
    pub path: Option<String>,
    pub size_bytes: Option<u64>,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ProviderReport {
    pub name: String,
    pub tier: Tier,
    pub base_url: String,
    pub key_source: String,
    /// A local-tier provider off this machine that the user vouched for.
    pub trusted: bool,
    pub reachability: Reachability,
}

pub async fn run(loaded: &Loaded, json: bool) -> anyhow::Result<()> {
    let report = collect(loaded).await;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    Ok(())
}

pub async fn collect(loaded: &Loaded) -> Report {
    let cfg = &loaded.config;
    let env = |v: &str| std::env::var(v).ok();
    // All providers are probed at once, so doctor takes ~2 s at worst, not 2 s per provider.
    let checks = cfg.providers.iter().map(|p| {
        let (source, key) = secrets::lookup(p, &env);
        async move {
            let reachability = cloud::check(p, key.as_ref()).await;
            ProviderReport {
                name: p.name.clone(),
                tier: p.tier,
                base_url: p.base_url.to_string(),
                key_source: source.to_string(),
                trusted: p.trusted,
                reachability,
            }
        }
    });
    let (providers, server) =
        futures::join!(futures::future::join_all(checks), crate::serve::probe(cfg));
    let local_engine = match &cfg.engine {
        Engine::InProcess => EngineReport {
            kind: "in-process",
            model: cfg.local.model.clone(),
            context_window: None,
            reachable: None,
        },
        Engine::Server(m) => EngineReport {
            kind: "server",
            model: m.to_string(),
            context_window: cfg.served(m).map(|s| s.context_window),
            reachable: providers
                .iter()
                .find(|p| p.name == m.provider)
                .map(|p| p.reachability.ok),
        },
    };
    let reason = secrets::keyring_unavailable();
    Report {
        config: ConfigReport {
            path: cfg.file.display().to_string(),
            exists: loaded.file_exists,
            valid: true,
        },
        keyring: KeyringReport {
            available: reason.is_none(),
            reason,
        },
        local_model: local(cfg),
        local_engine,
        providers,
        server,
    }
}

fn local(cfg: &crate::config::Config) -> LocalReport {
    let name = cfg.local.model.clone();
    let model = match models::resolve(&name, cfg) {
        Ok(m) => m,
        Err(e) => {
            return LocalReport {
                name,
                state: "error",
                path: None,
                size_bytes: None,
                detail: Some(e.to_string()),
            };
        }
    };
    let (state, path, size_bytes) = match models::status(&model, cfg) {
        ModelStatus::Installed { path, size } => {
            ("installed", Some(path.display().to_string()), Some(size))
        }
        ModelStatus::Partial { bytes } => ("partial", None, Some(bytes)),
        ModelStatus::Missing => ("missing", None, None),
    };
    let detail = match state {
        "installed" => None,
        "partial" => Some(format!(
            "an interrupted download; run `tandem models pull {}` to finish it",
            model.name
        )),
        _ => Some(format!("run `tandem models pull {}`", model.name)),
    };
    LocalReport {
        name: model.name,
        state,
        path,
        size_bytes,
        detail,
    }
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let c = &r.config;
    let cfg_state = if c.exists {
        "valid"
    } else {
        "not found; built-in defaults in use"
    };
    writeln!(out, "config     {} ({cfg_state})", c.path)?;
    match &r.keyring.reason {
        None => writeln!(out, "keyring    available")?,
        Some(why) => writeln!(
            out,
            "keyring    unavailable: {why}; keys must come from env vars"
        )?,
    }
    let l = &r.local_model;
    match (l.state, &l.path, l.size_bytes) {
        ("installed", Some(p), Some(size)) => writeln!(
            out,
            "local      {}: installed, {} at {p}",
            l.name,
            mib(size)
        )?,
        _ => writeln!(
            out,
            "local      {}: {}; {}",
            l.name,
            match l.state {
                "missing" => "not installed",
                "partial" => "partly downloaded",
                other => other,
            },
            l.detail.as_deref().unwrap_or("")
        )?,
    }
    let e = &r.local_engine;
    match (e.kind, e.reachable) {
        ("server", Some(true)) => writeln!(
            out,
            "engine     local turns go to {} (a local server, {}-token window)",
            e.model,
            e.context_window.unwrap_or(0)
        )?,
        ("server", _) => writeln!(
            out,
            "engine     local turns go to {}, which is not answering; start it, or set local.engine = \"in-process\"",
            e.model
        )?,
        _ => writeln!(out, "engine     local turns run {} in process", e.model)?,
    }
    writeln!(out, "serve      {}", r.server.line())?;
    if r.providers.is_empty() {
        writeln!(
            out,
            "providers  none configured; add [providers.NAME] to the config file for the cloud tier"
        )?;
        return Ok(());
    }
    writeln!(out, "providers")?;
    let width = r.providers.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let url_width = r
        .providers
        .iter()
        .map(|p| p.base_url.len())
        .max()
        .unwrap_or(0);
    for p in &r.providers {
        let tier = match (p.tier, p.trusted) {
            (Tier::Cloud, _) => "cloud",
            (Tier::Local, false) => "local",
            (Tier::Local, true) => "local (trusted host)",
        };
        let x = &p.reachability;
        let reach = match (&x.error, x.ok) {
            (_, true) => format!("reachable in {} ms", x.latency_ms),
            (Some(e), false) => format!("unreachable: {e} ({} ms)", x.latency_ms),
            (None, false) => format!("unreachable within {} s", CHECK_TIMEOUT.as_secs()),
        };
        let key = if p.key_source == KeySource::Missing.to_string() {
            format!("key missing: run `tandem auth set {}`", p.name)
        } else {
            format!("key: {}", p.key_source)
        };
        writeln!(
            out,
            "  {:width$}  {tier}  {:url_width$}  {reach}; {key}",
            p.name, p.base_url
        )?;
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
