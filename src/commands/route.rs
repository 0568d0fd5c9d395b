//! `tandem route`: explain where a prompt would go and why, without calling any model.
//! `--batch` scores JSON lines from stdin for offline evaluation (see docs/routing-eval.md);
//! `--stats FILE` summarises what each preset would keep local (route_stats.rs).

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::cli::RouteCmd;
use crate::config::{Config, Engine, RouteMode, Tier};
use crate::router::{
    self, BudgetState, CloudPrice, Features, LocalState, Policy, RouteDecision, RouteInput,
};

/// The default local model's window; `route` runs before (and without) loading any model. A
/// local-tier server's window is in the config.
const LOCAL_CONTEXT_WINDOW: usize = 8192;

pub fn run(args: &RouteCmd, cfg: &Config) -> anyhow::Result<()> {
    let policy = Policy::from_config(&cfg.router)?;
    let env = Env::from_config(cfg);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = if let Some(path) = &args.stats {
        super::route_stats::run(path, &policy, &cfg.router, args.json, &mut out)
    } else if args.batch {
        let cap = cfg.print.max_stdin_bytes;
        batch(
            &policy,
            &env,
            args.json,
            std::io::stdin().lock(),
            cap,
            &mut out,
        )
    } else {
        let prompt = match &args.prompt {
            Some(p) => p.clone(),
            None if !std::io::stdin().is_terminal() => {
                crate::print::read_capped(std::io::stdin().lock(), cfg.print.max_stdin_bytes)?
            }
            None => bail!(
                "give a prompt: tandem route \"PROMPT\" (or pipe one on stdin, or use --batch)"
            ),
        };
        let f = router::features(&prompt, &[]);
        let d = env.decide(&policy, &f);
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&full_json(&policy, &f, &d))?
            )
            .map_err(Into::into)
        } else {
            explain(&policy, &f, &d, &mut out)
        }
    };
    // A closed pipe (`tandem route --batch | head`) is handled in main, like every command's.
    result.and_then(|()| out.flush().map_err(Into::into))
}

/// The live state `route` assumes: no network or key lookup, the local tier ready.
struct Env {
    /// The pin from config or `--route`.
    mode: RouteMode,
    cloud_online: bool,
    budget: BudgetState,
    price: Option<CloudPrice>,
    /// Room a local answer keeps (`local.max_tokens`).
    reserve: usize,
    window: usize,
}

impl Env {
    fn from_config(cfg: &Config) -> Env {
        Env {
            mode: cfg.route,
            cloud_online: cfg.providers.iter().any(|p| p.tier == Tier::Cloud),
            budget: BudgetState {
                daily_cap_usd: cfg.budget.daily_usd,
                monthly_cap_usd: cfg.budget.monthly_usd,
                ..BudgetState::default()
            },
            price: CloudPrice::cheapest(cfg),
            reserve: cfg.local.max_tokens,
            window: match &cfg.engine {
                Engine::InProcess => LOCAL_CONTEXT_WINDOW,
                Engine::Server(m) => cfg
                    .served(m)
                    .map_or(LOCAL_CONTEXT_WINDOW, |s| s.context_window),
            },
        }
    }

    fn decide(&self, policy: &Policy, f: &Features) -> RouteDecision {
        let input = RouteInput {
            features: f,
            mode: self.mode,
            force: false,
            private: false,
            cloud_online: self.cloud_online,
            local: LocalState::Ready,
            local_context_window: self.window,
            conversation_tokens: f.prompt_tokens,
            turn_tokens: crate::context::need(
                f.prompt_tokens + crate::context::MESSAGE_OVERHEAD,
                self.reserve,
            ),
            budget: self.budget,
            sticky_cloud: false,
            cloud_price: self.price,
        };
        router::route(policy, &input)
    }
}

fn batch(
    policy: &Policy,
    env: &Env,
    full: bool,
    mut input: impl BufRead,
    cap: u64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        // Each line is held to the one-shot stdin cap, so one endless line cannot eat memory.
        let read = (&mut input)
            .take(cap.saturating_add(1))
            .read_until(b'\n', &mut line)
            .context("reading stdin")?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        if line.len() as u64 > cap {
            return Err(crate::print::InputError::TooLarge(cap))
                .with_context(|| format!("stdin line {n}"));
        }
        // Invalid UTF-8 is replaced rather than rejected: junk must route, not crash the batch.
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let obj: Value =
            serde_json::from_str(&text).with_context(|| format!("stdin line {n}: not JSON"))?;
        let Some(prompt) = obj.get("prompt").and_then(Value::as_str) else {
            bail!("stdin line {n}: expected {{\"id\", \"prompt\"}} with a string prompt");
        };
        let id = obj.get("id").cloned().unwrap_or(Value::Null);
        let f = router::features(prompt, &[]);
        let d = env.decide(policy, &f);
        let mut row = Map::new();
        row.insert("id".into(), id);
        row.insert("target".into(), json!(d.target));
        row.insert("score".into(), json!(d.score));
        row.insert("reasons".into(), json!(d.reasons));
        if full {
            let values: Map<String, Value> = f
                .iter()
                .map(|(k, v)| (k.name().to_string(), json!(v)))
                .collect();
            row.insert("features".into(), Value::Object(values));
        }
        serde_json::to_writer(&mut *out, &row)?;
        out.write_all(b"\n")?;
    }
}

fn full_json(policy: &Policy, f: &Features, d: &RouteDecision) -> Value {
    let features: Vec<Value> = d
        .contributions
        .iter()
        .map(|(k, c)| json!({"feature": k, "value": f.get(*k), "weight": policy.weight(*k), "contribution": c}))
        .collect();
    json!({
        "target": d.target,
        "score": d.score,
        "threshold": d.threshold,
        "reasons": d.reasons,
        "features": features,
        "secrets": f.secrets,
        "est_cost_usd": d.est_cost_usd,
        "est_saved_usd": d.est_saved_usd,
    })
}

fn explain(
    policy: &Policy,
    f: &Features,
    d: &RouteDecision,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "route: {}  (score {:.2}, threshold {:.2})",
        d.target.as_str(),
        d.score,
        d.threshold
    )?;
    writeln!(out, "why:")?;
    for r in &d.reasons {
        writeln!(out, "  - {}", r.message)?;
    }
    writeln!(
        out,
        "features:  {:<20} {:>6} {:>7} {:>13}",
        "name", "value", "weight", "contribution"
    )?;
    for (k, c) in &d.contributions {
        writeln!(
            out,
            "           {:<20} {:>6.2} {:>7.2} {:>+13.2}",
            k.name(),
            f.get(*k),
            policy.weight(*k),
            c
        )?;
    }
    if d.est_cost_usd > 0.0 {
        writeln!(
            out,
            "estimated cost: ${:.5} (cheapest configured cloud model)",
            d.est_cost_usd
        )?;
    } else if d.est_saved_usd > 0.0 {
        writeln!(
            out,
            "estimated saving: ${:.5} by staying local",
            d.est_saved_usd
        )?;
    }
    Ok(())
}
