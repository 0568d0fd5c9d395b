//! The event loop: turns terminal events, turn events, signals and timers into `Msg`s, feeds
//! them to `update`, runs the returned effects, then draws once per batch. Blocks (0% CPU)
//! when idle; ticks only while something runs. Turns run in the pipeline's tasks, never here.

use std::io::stdout;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Tier};
use crate::router::LocalState;
use crate::session::Store;
use crate::tiers::Tiers;
use crate::tui::app::{self, App, Prices};
use crate::tui::background::{local_models, spawn_local_start};
use crate::tui::keymap::Keymap;
use crate::tui::msg::Msg;
use crate::tui::theme::{self, Background, Theme};
use crate::tui::ui;
use crate::turn::Pipeline;

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
    /// Turns, and the tiers and store behind them.
    pub pipeline: Pipeline,
    pub theme: Theme,
    pub cancel: Option<CancellationToken>,
    /// Bumped by every local model start, so an overtaken `/model` switch stays quiet.
    pub local_generation: Arc<AtomicU64>,
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
    }
}

pub async fn run(cfg: &Config, keymap: Keymap, theme: Theme) -> anyhow::Result<()> {
    // Watched from the start: from here on SIGTERM and SIGHUP no longer kill the process
    // outright, so the terminal is always restored.
    let mut signals = Signals {
        term: signal(SignalKind::terminate())?,
        hup: signal(SignalKind::hangup())?,
    };
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
    app.local_models = local_models(cfg);
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
    let pipeline = Pipeline::new(cfg.clone(), tiers.clone(), Arc::new(Mutex::new(store)));
    let local_generation = Arc::new(AtomicU64::new(0));
    spawn_local_start(
        cfg.clone(),
        tiers.clone(),
        tx.clone(),
        local_generation.clone(),
        false,
    );
    let mut d = Driver {
        cfg,
        tx,
        pipeline,
        theme,
        cancel: None,
        local_generation,
        quit: false,
        events: Some(EventStream::new()),
    };
    d.refresh_conversations();
    let _ = d.tx.send(Msg::Spend(d.pipeline.spend()));
    if let Some(e) = store_err {
        let _ = d.tx.send(Msg::Notice(e));
    }

    while !d.quit {
        let first = next(&mut d, &mut rx, &mut signals, app.busy()).await;
        let mut batch = vec![first];
        // Drain everything already waiting, so a burst of tokens costs one frame.
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for msg in batch {
            let ended = matches!(msg, Msg::TurnEnded { .. });
            for effect in app::update(&mut app, msg) {
                d.run_effect(effect, &mut term, &app).await?;
            }
            if ended {
                let online = d.pipeline.tiers().read().await.cloud_online();
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

/// Waits for the next message: input, a background result, a signal, or (only while busy) a
/// tick. SIGTERM and SIGHUP become `Msg::Terminate`: the running answer is saved as
/// interrupted and the terminal restored on the way out, as with Ctrl-D.
async fn next(
    d: &mut Driver<'_>,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    signals: &mut Signals,
    busy: bool,
) -> Msg {
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
            _ = signals.term.recv() => return Msg::Terminate,
            _ = signals.hup.recv() => return Msg::Terminate,
        }
    }
}

struct Signals {
    term: Signal,
    hup: Signal,
}

fn quit_key() -> crossterm::event::KeyEvent {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL)
}
