//! One-shot mode: a prompt from `-p` and/or stdin, handed to the turn pipeline, its events
//! rendered: the answer on stdout as it streams (sanitized), route and usage on stderr (only on
//! a terminal, and not with -q), or one JSON object with `--json`. Exit statuses are part of
//! the interface (see the README).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sanitize::{for_terminal, one_line};
use crate::session::Store;
use crate::tiers::Tiers;
use crate::turn::{
    Ask, Failure, Finish, Pipeline, RouteRequest, Seam, Thread, TurnEvent, TurnRequest,
};

mod input;
mod prepare;
mod report;
pub use input::{InputError, read_capped, read_input};
use report::{Report, pull_reporter};

/// Exit statuses of one-shot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    ModelFailed = 1,
    Usage = 2,
    NoTier = 3,
    /// 128 + the signal that stopped the answer: SIGHUP, SIGINT, SIGTERM.
    Hangup = 129,
    Interrupted = 130,
    Terminated = 143,
}

#[derive(Debug, Clone, Default)]
pub struct PrintOptions {
    pub prompt: Option<String>,
    pub json: bool,
    /// `-x`: hold the answer back and print its first code block (or all of it) at the end.
    pub extract: bool,
    pub continue_last: bool,
    pub conversation: Option<String>,
    pub private: bool,
    /// `--no-history`: the turn runs on supplied (empty) history, as `tandem serve`'s do.
    pub no_history: bool,
    pub quiet: bool,
    /// `-f` paths, in order; `-` is stdin.
    pub files: Vec<std::path::PathBuf>,
    pub system: Option<String>,
    pub role: Option<String>,
    /// `--route` and `--model` were given, so a role's settings do not replace them.
    pub route_given: bool,
    pub model_given: bool,
}

fn fail(code: Exit, msg: impl std::fmt::Display) -> Exit {
    eprintln!("tandem: {}", one_line(&msg.to_string()));
    code
}

pub async fn run(cfg: &Config, opts: PrintOptions) -> Exit {
    // Attachments are read first and whole: a bad one stops the run before anything is sent.
    let attachments = match crate::attach::load(&opts.files, (&cfg.attach).into()) {
        Ok(a) => a,
        Err(e) => return fail(Exit::Usage, e),
    };
    let stdin = std::io::stdin();
    let piped = !stdin.is_terminal() && !opts.files.iter().any(|f| f.as_os_str() == "-");
    let prompt = match read_input(
        opts.prompt.as_deref(),
        piped.then_some(stdin.lock()),
        cfg.print.max_stdin_bytes,
    ) {
        Ok(p) => p,
        // Attachments alone are a question too ("-f notes.md" answers about the file).
        Err(InputError::Empty) if !attachments.is_empty() => String::new(),
        Err(e) => return fail(Exit::Usage, e),
    };
    let status = std::io::stderr().is_terminal() && !opts.quiet;
    let store = match Store::open(&cfg.paths.history_db()) {
        Ok(s) => s,
        Err(e) => return fail(Exit::ModelFailed, e),
    };
    let thread = if opts.no_history {
        Thread::Supplied(Vec::new())
    } else if opts.continue_last {
        match store.last_conversation() {
            Ok(Some(c)) => Thread::Stored(c.id),
            Ok(None) => {
                return fail(
                    Exit::Usage,
                    "no earlier conversation to continue; drop -c to start one",
                );
            }
            Err(e) => return fail(Exit::ModelFailed, e),
        }
    } else if let Some(key) = &opts.conversation {
        match store.find(key) {
            Ok(c) => Thread::Stored(c.id),
            Err(e) => return fail(Exit::Usage, e),
        }
    } else {
        Thread::New
    };
    // A continued conversation keeps its role unless --role names another.
    let saved_role = match &thread {
        Thread::Stored(id) => store.conversation(*id).ok().and_then(|c| c.role),
        _ => None,
    };
    let prepared = match prepare::with_role(
        cfg,
        opts.role.as_deref().or(saved_role.as_deref()),
        opts.system.as_deref(),
        opts.route_given,
        opts.model_given,
    ) {
        Ok(p) => p,
        Err(e) => return fail(Exit::Usage, e),
    };
    let cfg = &prepared.cfg;
    let tiers = match Tiers::new(cfg) {
        Ok(t) => t,
        Err(e) => return fail(Exit::Usage, e),
    };
    let pipeline = Pipeline::starting_local(
        cfg.clone(),
        Arc::new(RwLock::new(tiers)),
        Arc::new(Mutex::new(store)),
        pull_reporter(status),
    );
    let mut request = TurnRequest::new(thread, Ask::Prompt(prompt), RouteRequest::Mode(cfg.route));
    request.private = opts.private;
    if status {
        for a in &attachments {
            eprintln!("+ {}", one_line(&a.summary()));
        }
    }
    let summaries = attachments.iter().map(|a| a.summary()).collect();
    request.attachments = attachments;
    request.system = prepared.system;
    request.role = prepared.role;
    request.temperature = prepared.temperature;
    request.max_tokens = prepared.max_tokens;
    let cancel = CancellationToken::new();
    let events = pipeline.start(request, cancel.clone());
    let report = Report {
        attachments: summaries,
        ..Report::default()
    };
    render(
        events,
        cancel,
        &opts,
        status,
        report,
        &mut std::io::stdout().lock(),
    )
    .await
}

/// Renders the turn's events until `Done`. A signal or a closed stdout cancels the answer;
/// the pipeline still saves what came, marked interrupted, before `Done`.
async fn render(
    mut events: crate::turn::TurnStream,
    cancel: CancellationToken,
    opts: &PrintOptions,
    status: bool,
    mut report: Report,
    out: &mut dyn Write,
) -> Exit {
    let echo = !opts.json && !opts.extract;
    let (mut stopped_by, mut reader_gone, mut open_line) = (None, false, false);
    let (mut term, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        _ => return fail(Exit::ModelFailed, "cannot watch for signals"),
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let ev = tokio::select! {
            _ = &mut ctrl_c, if stopped_by.is_none() => { stopped_by = Some(Exit::Interrupted); cancel.cancel(); continue; }
            _ = term.recv(), if stopped_by.is_none() => { stopped_by = Some(Exit::Terminated); cancel.cancel(); continue; }
            _ = hup.recv(), if stopped_by.is_none() => { stopped_by = Some(Exit::Hangup); cancel.cancel(); continue; }
            ev = events.next() => ev,
        };
        let Some(ev) = ev else {
            // The pipeline's task ended without `Done`: a bug, already logged by the panic hook.
            return fail(
                Exit::ModelFailed,
                "internal error: the answer stopped unexpectedly (details in the log)",
            );
        };
        match ev {
            TurnEvent::Routed(d) => {
                if status {
                    let why = d.reasons.first().map(|r| r.message.as_str()).unwrap_or("");
                    eprintln!("→ {} ({why})", d.target.as_str());
                }
                report.decision = Some(d);
            }
            TurnEvent::Refused(r) => eprintln!("tandem: {r}"),
            TurnEvent::Opened { conversation, .. } => report.conversation = conversation,
            TurnEvent::Started { provider, .. } => report.provider = provider,
            TurnEvent::Delta(d) => {
                if !d.is_empty() {
                    open_line = !d.ends_with('\n');
                }
                if echo && !reader_gone && write_now(out, &for_terminal(&d)).is_err() {
                    // The reader went away (`| head`): stop generating and leave quietly.
                    reader_gone = true;
                    cancel.cancel();
                }
            }
            TurnEvent::Failed(e) => {
                let lead = if echo && open_line { "\n" } else { "" };
                eprintln!("{lead}tandem: {}", one_line(&e.to_string()));
                open_line = false;
            }
            TurnEvent::Answered(a) => {
                if echo && !reader_gone && open_line {
                    let _ = write_now(out, "\n");
                }
                open_line = false;
                report.answers.push(a);
            }
            TurnEvent::Escalated(esc) => {
                let seam = Seam::Escalated(esc.message.clone()).words();
                if echo && !reader_gone && write_now(out, &format!("\n--- {seam} ---\n")).is_err() {
                    reader_gone = true;
                    cancel.cancel();
                }
                report.escalation = Some(esc);
            }
            TurnEvent::Trimmed(t) => {
                if !opts.quiet {
                    eprintln!("tandem: {}", one_line(&t.words()));
                }
                report.trim = Some(t);
            }
            TurnEvent::Notice(n) => {
                if !opts.quiet {
                    eprintln!("tandem: {}", one_line(&n));
                }
            }
            TurnEvent::Done(done) => {
                // Only a whole answer: half a command is worse than none in `$(tandem -x ...)`.
                if opts.extract && done.finish == Finish::Answered {
                    let text = report.answers.last().map_or("", |a| a.text.as_str());
                    let code = extracted(text);
                    let nl = if code.is_empty() || code.ends_with('\n') {
                        ""
                    } else {
                        "\n"
                    };
                    reader_gone = write_now(out, &format!("{}{nl}", for_terminal(&code))).is_err();
                }
                let _ = out.flush();
                if !reader_gone {
                    report.print(opts.json, status);
                }
                return match done.finish {
                    Finish::Answered => Exit::Ok,
                    Finish::Interrupted if reader_gone => Exit::Ok,
                    Finish::Interrupted => stopped_by.unwrap_or(Exit::Interrupted),
                    Finish::Refused => Exit::Usage,
                    Finish::Failed(Failure::NoTier) => Exit::NoTier,
                    Finish::Failed(Failure::Model) => Exit::ModelFailed,
                };
            }
        }
    }
}

/// What `-x` prints: the first code block with something in it (a fence the model opened last
/// and never closed is an empty block), else the whole answer.
fn extracted(text: &str) -> String {
    crate::chat::code_blocks(text)
        .into_iter()
        .find(|b| !b.trim().is_empty())
        .unwrap_or_else(|| text.to_string())
}

/// Writes and flushes at once, so the answer appears as it streams; an error means the reader
/// is gone. Never `println!`, which panics on a closed pipe.
fn write_now(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests;
