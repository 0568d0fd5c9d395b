//! `tandem serve`: the OpenAI-compatible HTTP front-end over the turn pipeline. It owns the
//! listener, the connections, security at the door (loopback by default, a bearer token for
//! any other address, a body cap) and the lifecycle (the local model loads in the background;
//! SIGTERM/SIGINT stop accepting, let answers finish for a grace period, then end them).
//! Routing, privacy, budget and recording are the pipeline's; none of it is repeated here.
//!
//! Built on hyper directly rather than a framework: three routes do not need a router, and
//! hyper is already in the tree with these features, so the server adds no dependency.
//!
//! `access` checks tokens and logs requests, `wire` reads requests, `pick` reads the model
//! name, `chat` answers, `reply` shapes replies, `info` lists models and health, `error` holds
//! the OpenAI-shaped errors, `probe` asks a running server's health for `tandem doctor`.

mod access;
mod chat;
mod error;
mod info;
mod pick;
mod probe;
mod reply;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{RwLock, mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use access::authorized;
pub use error::ApiError;
pub use probe::{ServerReport, probe};

use crate::config::Config;
use crate::secrets::Redacted;
use crate::session::Store;
use crate::tiers::Tiers;
use crate::turn::Pipeline;

pub type Body = BoxBody<Bytes, Infallible>;

/// How long a client may take to send its request head, and then its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// After the grace period has ended the answers, how long their final events may take.
const LAST_WORDS: Duration = Duration::from_secs(3);

/// What `tandem serve` was asked for; host and port fall back to `[serve]`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The bearer token clients must send; required off loopback.
    pub token: Option<Redacted>,
    /// One JSON object per log line instead of text.
    pub json_logs: bool,
}

/// What every request handler shares.
pub(crate) struct App {
    cfg: Config,
    pipeline: Pipeline,
    token: Option<Redacted>,
    log: access::AccessLog,
    /// Cancelled when the grace period is over: every answer still running ends then.
    shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a token: any address but loopback needs TANDEM_SERVE_TOKEN or --token-from-keyring"
    )]
    NoToken(SocketAddr),
    #[error("cannot resolve {0:?} to an address to listen on")]
    BadHost(String),
}

/// Runs the server until SIGTERM or SIGINT, then stops cleanly.
pub async fn run(cfg: &Config, opts: ServeOptions) -> anyhow::Result<()> {
    let host = opts.host.clone().unwrap_or_else(|| cfg.serve.host.clone());
    let port = opts.port.unwrap_or(cfg.serve.port);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServeError::BadHost(host.clone()))?;
    // Checked before binding: an open port without a token must never exist, even briefly.
    if !addr.ip().is_loopback() && opts.token.is_none() {
        return Err(ServeError::NoToken(addr).into());
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let store = Store::open(&cfg.paths.history_db())?;
    let mut tiers = Tiers::new(cfg)?;
    // Until the background start hands the engine over, the local tier reads as being fetched.
    tiers.stop_local(&cfg.local.model);
    let tiers = Arc::new(RwLock::new(tiers));
    start_local(cfg.clone(), tiers.clone());
    let app = Arc::new(App {
        cfg: cfg.clone(),
        pipeline: Pipeline::new(cfg.clone(), tiers, Arc::new(Mutex::new(store))),
        token: opts.token,
        log: access::AccessLog {
            json: opts.json_logs,
        },
        shutdown: CancellationToken::new(),
    });
    eprintln!(
        "tandem serve: listening on http://{addr}/v1 (models tandem, tandem/local, tandem/cloud; GET /health)"
    );
    accept(listener, app, Duration::from_secs(cfg.serve.grace_secs)).await;
    eprintln!("tandem serve: stopped");
    Ok(())
}

/// Pulls and loads the local model off the request path, then hands it to the shared tiers
/// with its queue bounded; requests meanwhile route to the cloud (or get 503 for tandem/local).
fn start_local(cfg: Config, shared: Arc<RwLock<Tiers>>) {
    tokio::spawn(async move {
        let Ok(mut t) = Tiers::new(&cfg) else { return };
        t.start_local(&cfg, |_| {}).await;
        if let Some(e) = t.local_engine() {
            e.limit_queue(cfg.serve.local_queue);
        }
        let engine = t.local_engine().cloned();
        shared.write().await.adopt_local(t);
        if let Some(e) = engine {
            match e.ready().await {
                Ok(()) => eprintln!("tandem serve: local model {} ready", cfg.local.model),
                Err(err) => eprintln!("tandem serve: local model unavailable: {err}"),
            }
        } else if let Some(why) = shared.read().await.local_problem() {
            eprintln!("tandem serve: local model unavailable: {why}");
        }
    });
}

/// Accepts connections until a stop signal; then stops accepting, lets in-flight requests
/// finish within `grace`, ends the rest, and returns.
async fn accept(listener: TcpListener, app: Arc<App>, grace: Duration) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a sender; when all are gone, every connection has closed.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("tandem serve: cannot watch for signals");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let _ = stream.set_nodelay(true);
                let (app, mut stop, alive) = (app.clone(), stop_rx.clone(), alive_tx.clone());
                tokio::spawn(async move {
                    let _alive = alive;
                    let svc = service_fn(move |req| handle(app.clone(), req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                            // Finish the response under way, then close.
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    eprintln!(
        "tandem serve: stopping; answers in flight have {}s to finish",
        grace.as_secs()
    );
    let _ = stop_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        // Answers still running end now, each with its final event and `[DONE]`.
        app.shutdown.cancel();
        let _ = tokio::time::timeout(LAST_WORDS, alive_rx.recv()).await;
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let t0 = Instant::now();
    let mut entry = access::Entry {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        ..Default::default()
    };
    let open = matches!(req.uri().path(), "/health" | "/healthz");
    if !open && let Some(token) = &app.token {
        let header = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !authorized(header, token) {
            return Ok(logged(&app, entry, t0, &ApiError::Unauthorized));
        }
    }
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            let body = match read_body(req.into_body(), app.cfg.serve.max_body_bytes).await {
                Ok(b) => b,
                Err(e) => return Ok(logged(&app, entry, t0, &e)),
            };
            return Ok(chat::completions(app, body, entry, t0).await);
        }
        (&Method::GET, "/v1/models" | "/models") => {
            let tiers = app.pipeline.tiers().read().await;
            json_response(StatusCode::OK, &info::models(&app.cfg, &tiers))
        }
        (&Method::GET, "/health" | "/healthz") => {
            let (ok, body) = info::health(&*app.pipeline.tiers().read().await);
            let status = match ok {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            // Probes poll this; logging each would drown the requests that matter.
            return Ok(json_response(status, &body));
        }
        (m, p) => {
            let e = ApiError::NotFound {
                method: m.to_string(),
                path: p.to_string(),
            };
            return Ok(logged(&app, entry, t0, &e));
        }
    };
    entry.status = resp.status().as_u16();
    entry.took(t0.elapsed());
    app.log.write(&entry);
    Ok(resp)
}

fn logged(app: &App, mut entry: access::Entry, t0: Instant, e: &ApiError) -> Response<Body> {
    entry.status = e.status();
    entry.error = e.body()["error"]["code"].as_str().map(str::to_string);
    entry.took(t0.elapsed());
    app.log.write(&entry);
    error_response(e)
}

/// The body, up to `limit` bytes; past it the request is refused without reading the rest.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(ApiError::invalid(
            format!("cannot read the body: {e}"),
            None,
        )),
        Err(_) => Err(ApiError::invalid(
            format!(
                "the body took longer than {}s to arrive",
                BODY_TIMEOUT.as_secs()
            ),
            None,
        )),
    }
}

pub(crate) fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(chat::full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, &e.body());
    if let Some(secs) = e.retry_after()
        && let Ok(v) = secs.to_string().parse()
    {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
    }
    if matches!(e, ApiError::Unauthorized)
        && let Ok(v) = "Bearer".parse()
    {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    r
}
