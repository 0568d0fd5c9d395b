//! The scripted fault server for `tests/cloud_faults.rs`: hyper on 127.0.0.1, a free port, one
//! scripted `Reply` per request, and a record of every request it saw (to count retries and to
//! check where the key travelled). Dropping it stops accepting; its tasks die with the test.

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub enum Reply {
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// SSE `data:` payloads in order; with `cut`, the connection is then aborted mid-body
    /// instead of ending cleanly.
    Sse { events: Vec<String>, cut: bool },
    /// Wait before sending anything at all (not even headers).
    Delay(Duration, Box<Reply>),
}

impl Reply {
    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Status {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply::status(
            status,
            json!({"error": {"message": message, "type": "server_error", "code": null}}),
        )
    }

    /// A complete answer streamed word by word, with a usage chunk when `usage` is given.
    pub fn answer(words: &[&str], usage: Option<(u32, u32)>) -> Reply {
        let mut events: Vec<String> = vec![chunk(json!({"role": "assistant"}), None)];
        events.extend(words.iter().map(|w| chunk(json!({"content": w}), None)));
        events.push(chunk(json!({}), Some("stop")));
        if let Some((p, c)) = usage {
            events.push(usage_chunk(p, c));
        }
        events.push("[DONE]".into());
        Reply::Sse { events, cut: false }
    }
}

pub fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
    .to_string()
}

pub fn usage_chunk(prompt: u32, completion: u32) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
    .to_string()
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub uri: String,
    pub authorization: Option<String>,
    /// Every header except Authorization, as "name: value" lines.
    pub other_headers: String,
    pub body: String,
    pub model: Option<String>,
}

type Script = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

pub struct FaultServer {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultServer {
    /// `script(n, request)` decides the reply to the n-th request (0-based).
    pub async fn start(
        script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> FaultServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (seen, script) = (state.clone(), script.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, seen.clone(), script.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        FaultServer {
            base_url: format!("http://{addr}/v1"),
            seen,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type Body = BoxBody<Bytes, io::Error>;

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
) -> Result<Response<Body>, Infallible> {
    let uri = req.uri().to_string();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let model = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["model"].as_str().map(str::to_string));
    let other_headers = headers
        .iter()
        .filter(|(k, _)| *k != hyper::header::AUTHORIZATION)
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let authorization = headers
        .get(hyper::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let request = Seen {
        uri,
        authorization,
        other_headers,
        body,
        model,
    };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(request.clone());
        s.len() - 1
    };
    Ok(respond(script(n, &request)).await)
}

async fn respond(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Delay(d, inner) => {
            tokio::time::sleep(d).await;
            Box::pin(respond(*inner)).await
        }
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut b = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b.body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .unwrap()
        }
        Reply::Sse { events, cut } => {
            let frames = futures::stream::unfold(
                (events.into_iter(), false),
                move |(mut it, over)| async move {
                    if over {
                        return None;
                    }
                    // Small pauses so each event leaves as its own write, like a real server.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    match it.next() {
                        Some(e) => Some((
                            Ok(Frame::data(Bytes::from(format!("data: {e}\n\n")))),
                            (it, false),
                        )),
                        None if cut => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Some((Err(io::Error::other("cut mid-stream")), (it, true)))
                        }
                        None => None,
                    }
                },
            );
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
    }
}
