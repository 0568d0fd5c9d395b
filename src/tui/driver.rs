//! The event loop: turns terminal events, stream events and timers into `Msg`s, feeds them to
//! `update`, runs the returned effects, then draws once per batch. Blocks (0% CPU) when idle;
//! ticks only while something runs. Inference runs in the engine's thread and stream tasks,
//! never here.

use std::io::stdout;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Tier};
use crate::router::{CloudPrice, LocalState};
use crate::session::Store;
use crate::tiers::Tiers;
use crate::tui::app::{self, App, Prices};
use crate::tui::keymap::Keymap;
use crate::tui::msg::{LocalEvent, Msg};
use crate::tui::theme::{self, Background, Theme};
use crate::tui::ui;

/// How often the spinner moves (and partial answers get a chance to be saved) while busy.
const TICK: Duration = Duration::from_millis(100);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the driver owns besides the app: the IO side of every effect.
pub(super) struct Driver<'a> {
    pub cfg: &'a Config,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub tiers: Arc<RwLock<Tiers>>,
    pub store: Store,
    pub theme: Theme,
    pub cancel: Option<CancellationToken>,
    pub quit: bool,
    /// Dropped while `$EDITOR` owns the terminal, so no keys are stolen from it.
    pub events: Option<EventStream>,
}

pub fn prices(cfg: &Config) -> Prices {
    Prices {
        cloud: cfg
            .providers
            .iter()
            .filter(|p| p.tier == Tier::Cloud)
            .flat_map(|p| {
                p.models.iter().map(|m| {
                    (
                        p.name.clone(),
                        m.name.clone(),
                        m.input_price,
                        m.output_price,
                    )
                })
            })
            .collect(),
        local_saving: CloudPrice::cheapest(cfg),
    }
}

pub async fn run(cfg: &Config, keymap: Keymap, theme: Theme) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut term = Terminal::new(CrosstermBackend::new(stdout()))?;
    let size = term.size()?;
    let dark = theme.background == Background::Dark;
    let mut app = App::new(
        keymap,
        cfg.route,
        cfg.local.model.clone(),
        (theme.name.clone(), dark),
    );
    app.size = (size.width, size.height);
    app.now_ms = now_ms();
    app.themes = theme::available(Some(&cfg.paths.themes_dir()));
    app.prices = prices(cfg);
    app.cloud_configured = cfg.providers.iter().any(|p| p.tier == Tier::Cloud);
    app.local = LocalState::Loading;
    let tiers = Tiers::new(cfg)?;
    app.cloud_online = tiers.cloud_online();
    // The first frame goes up before anything slow: the store, the model, the syntax sets.
    term.draw(|f| ui::draw(f, &app, &theme))?;

    let (store, store_err) = match Store::open(&cfg.paths.history_db()) {
        Ok(s) => (s, None),
        Err(e) => (
            Store::open_in_memory()?,
            Some(format!("history not saved: {e}")),
        ),
    };
    let tiers = Arc::new(RwLock::new(tiers));
    spawn_local_start(cfg.clone(), tiers.clone(), tx.clone());
    let mut d = Driver {
        cfg,
        tx,
        tiers,
        store,
        theme,
        cancel: None,
        quit: false,
        events: Some(EventStream::new()),
    };
    d.refresh_conversations();
    if let Some(e) = store_err {
        let _ = d.tx.send(Msg::Notice(e));
    }

    while !d.quit {
        let first = next(&mut d, &mut rx, app.busy()).await;
        let mut batch = vec![first];
        // Drain everything already waiting, so a burst of tokens costs one frame.
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for msg in batch {
            let ended = matches!(msg, Msg::StreamEnded { .. });
            for effect in app::update(&mut app, msg) {
                d.run_effect(effect, &mut term, &app).await?;
            }
            if ended {
                let online = d.tiers.read().await.cloud_online();
                app::update(&mut app, Msg::CloudOnline(online));
            }
        }
        if d.quit {
            break;
        }
        term.draw(|f| ui::draw(f, &app, &d.theme))?;
    }
    if let Some(c) = &d.cancel {
        c.cancel();
    }
    Ok(())
}

/// Waits for the next message: input, a background result, or (only while busy) a tick.
async fn next(d: &mut Driver<'_>, rx: &mut mpsc::UnboundedReceiver<Msg>, busy: bool) -> Msg {
    loop {
        let tick = async {
            if busy {
                tokio::time::sleep(TICK).await
            } else {
                std::future::pending::<()>().await
            }
        };
        let input = async {
            match d.events.as_mut() {
                Some(ev) => ev.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv() => if let Some(m) = m { return m },
            ev = input => match ev {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => return Msg::Key(k),
                Some(Ok(Event::Paste(s))) => return Msg::Paste(s),
                Some(Ok(Event::Resize(w, h))) => return Msg::Resize(w, h),
                Some(Ok(_)) => {}
                // The terminal went away: nothing more can be typed, so leave.
                Some(Err(_)) | None => return Msg::Key(quit_key()),
            },
            _ = tick => return Msg::Tick(now_ms()),
        }
    }
}

fn quit_key() -> crossterm::event::KeyEvent {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL)
}

/// Pulls (if needed) and loads the local model off the event loop, reporting progress as
/// `Msg`s. It works on its own `Tiers` and swaps it in when the engine exists, so prompts can
/// still be routed (to the cloud) while a download runs.
fn spawn_local_start(cfg: Config, shared: Arc<RwLock<Tiers>>, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let Ok(mut t) = Tiers::new(&cfg) else { return };
        let ptx = tx.clone();
        t.start_local(&cfg, move |ev| {
            use crate::models::PullEvent as P;
            let pct = match ev {
                P::Downloading(p) | P::Extracting(p) => p
                    .total
                    .map(|t| (p.done as f64 * 100.0 / t.max(1) as f64) as f32),
                P::Trying(_) | P::Resuming(_) | P::WaitingForLock => None,
                _ => return,
            };
            let _ = ptx.send(Msg::Local(LocalEvent::Pulling(pct)));
        })
        .await;
        let report = |t: &Tiers| match t.local_state() {
            LocalState::Failed => LocalEvent::Failed(t.local_problem().unwrap_or_default()),
            s => LocalEvent::State(s),
        };
        let first = report(&t);
        if t.local_state() == LocalState::Missing
            && let Some(why) = t.local_problem()
        {
            let _ = tx.send(Msg::Notice(why));
        }
        *shared.write().await = t;
        let _ = tx.send(Msg::Local(first));
        let guard = shared.read().await;
        guard.wait_local().await;
        let _ = tx.send(Msg::Local(report(&guard)));
    });
}
