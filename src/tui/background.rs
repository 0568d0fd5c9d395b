//! Work the driver runs off the event loop, reporting back only through `Msg`s: forwarding a
//! turn's events, and starting or switching the local model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use tokio::sync::{RwLock, mpsc};

use crate::config::Config;
use crate::models;
use crate::router::LocalState;
use crate::tiers::Tiers;
use crate::tui::msg::{LocalEvent, LocalModel, Msg, ReqId};
use crate::turn::TurnStream;

/// Forwards a turn's events as `Msg`s, then `TurnEnded`, which comes even when the turn's task
/// died: the app never waits on a turn that cannot finish.
pub(super) fn spawn_turn(req: ReqId, mut events: TurnStream, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(Msg::Turn { req, event }).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::TurnEnded { req });
    });
}

/// The catalog and `[models]` entries, for `/model`.
pub(super) fn local_models(cfg: &Config) -> Vec<LocalModel> {
    models::all(cfg)
        .into_iter()
        .filter_map(Result::ok)
        .map(|m| LocalModel {
            installed: models::installed_path(&m, cfg).is_some(),
            name: m.name,
        })
        .collect()
}

/// Pulls (if needed) and loads `cfg.local.model` off the event loop, reporting progress as
/// `Msg`s: at start-up, and for each `/model` switch (`switch`), which first drops the running
/// engine. It works on its own `Tiers` and hands the local tier over once the engine exists,
/// so prompts can still be routed (to the cloud) while a download runs. Each start takes a new
/// `generation`; a start that a later one has overtaken stays quiet and hands nothing over.
pub(super) fn spawn_local_start(
    cfg: Config,
    shared: Arc<RwLock<Tiers>>,
    tx: mpsc::UnboundedSender<Msg>,
    generation: Arc<AtomicU64>,
    switch: bool,
) {
    let mine = generation.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::spawn(async move {
        let current = move || generation.load(Ordering::SeqCst) == mine;
        if switch {
            shared.write().await.stop_local(&cfg.local.model);
        }
        let Ok(mut t) = Tiers::new(&cfg) else { return };
        let ptx = tx.clone();
        let still = current.clone();
        t.start_local(&cfg, move |ev| {
            use crate::models::PullEvent as P;
            let pct = match ev {
                P::Downloading(p) | P::Extracting(p) => p
                    .total
                    .map(|t| (p.done as f64 * 100.0 / t.max(1) as f64) as f32),
                P::Trying(_) | P::Resuming(_) | P::WaitingForLock => None,
                _ => return,
            };
            if still() {
                let _ = ptx.send(Msg::Local(LocalEvent::Pulling(pct)));
            }
        })
        .await;
        let first = report(&t);
        let missing = (t.local_state() == LocalState::Missing)
            .then(|| t.local_problem())
            .flatten();
        let engine = t.local_engine().cloned();
        {
            // Checked under the lock: a switch bumps the generation before it takes the lock.
            let mut g = shared.write().await;
            if !current() {
                return;
            }
            g.adopt_local(t);
        }
        if let Some(why) = missing {
            let _ = tx.send(Msg::Notice(why));
        }
        let _ = tx.send(Msg::Local(first));
        let _ = tx.send(Msg::LocalModels(local_models(&cfg)));
        // Wait on the engine itself, not under the lock, so routing never waits for a load.
        if let Some(e) = engine {
            let _ = e.ready().await;
            if current() {
                let _ = tx.send(Msg::Local(report(&*shared.read().await)));
            }
        }
    });
}

fn report(t: &Tiers) -> LocalEvent {
    match t.local_state() {
        LocalState::Failed => LocalEvent::Failed(t.local_problem().unwrap_or_default()),
        s => LocalEvent::State(s),
    }
}
