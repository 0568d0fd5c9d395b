//! The `tandem` binary: parse the CLI, load settings, start logging, then dispatch to the chat
//! screen, one-shot mode or a subcommand. Errors end here as one line and an exit status.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tandem::cli::{AuthCmd, Cli, Command, ConfigCmd, HistoryCmd, ModelsCmd, RolesCmd, RouteArg};
use tandem::commands;
use tandem::config::{self, LoadOptions, RouteMode};

/// Exit statuses shared with one-shot mode (documented in the README).
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&clap_one_line(&e)),
    };
    if let Some(Command::Completions { shell }) = &cli.command {
        commands::completions::print(*shell);
        return ExitCode::SUCCESS;
    }
    install_panic_hook();

    let opts = LoadOptions {
        config_file: cli.global.config.clone(),
        env: std::env::vars().collect(),
        route: cli.global.route.map(|r| match r {
            RouteArg::Auto => RouteMode::Auto,
            RouteArg::Local => RouteMode::Local,
            RouteArg::Cloud => RouteMode::Cloud,
        }),
        theme: cli.global.theme.clone(),
        model: cli.global.model.clone(),
        no_pull: cli.global.no_pull,
    };
    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = tandem::tui::theme::load(
        &loaded.config.theme,
        Some(&loaded.config.paths.themes_dir()),
    ) {
        return usage_error(&format!("{}: theme: {e}", loaded.describe_origin("theme")));
    }
    // Checked here, like the theme, so every mode (chat screen, one-shot, `route`) refuses a bad
    // weight the same way: one line, exit 2, before anything starts.
    if let Err(e) = tandem::router::Policy::from_config(&loaded.config.router) {
        return usage_error(&format!("{}: {e}", loaded.describe_origin(&e.key())));
    }
    set_engine_env(loaded.config.local.threads);
    let level = cli
        .global
        .log_level
        .clone()
        .or_else(|| std::env::var("TANDEM_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".into());
    let _log_guard = match tandem::logging::init(&loaded.config.paths.state_dir, &level) {
        Ok(g) => g,
        Err(e) => return usage_error(&e.to_string()),
    };
    tracing::debug!(file = %loaded.config.file.display(), "config loaded");

    match run(cli, loaded) {
        Ok(code) => code,
        // `tandem models list | grep -q NAME` closes the pipe early: the reader's choice.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if is_usage(&e) => usage_error(&one_line(&e)),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tandem: {}", one_line(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(cli: Cli, loaded: config::Loaded) -> anyhow::Result<ExitCode> {
    let cfg = &loaded.config;
    match cli.command {
        Some(Command::Config { cmd }) => match cmd.unwrap_or(ConfigCmd::Show) {
            ConfigCmd::Show => commands::config_cmd::show(&loaded)?,
            ConfigCmd::Path => commands::config_cmd::path(&loaded)?,
            ConfigCmd::Edit => commands::config_cmd::edit(&loaded)?,
        },
        Some(Command::Auth { cmd }) => match cmd.unwrap_or(AuthCmd::Status { provider: None }) {
            AuthCmd::Set { provider } => commands::auth::set(cfg, &provider)?,
            AuthCmd::Remove { provider } => commands::auth::remove(cfg, &provider)?,
            AuthCmd::Status { provider } => commands::auth::status(cfg, provider.as_deref())?,
        },
        Some(Command::Models { cmd }) => {
            let m = cmd.unwrap_or(ModelsCmd::List);
            runtime()?.block_on(commands::models::run(&m, cfg))?
        }
        Some(Command::Roles { cmd }) => {
            return commands::roles::run(&cmd.unwrap_or(RolesCmd::List), cfg);
        }
        Some(Command::Route(args)) => commands::route::run(&args, cfg)?,
        Some(Command::History { cmd }) => {
            let h = cmd.unwrap_or(HistoryCmd::List {
                limit: HistoryCmd::LIST_LIMIT,
            });
            commands::history::run(&h, cfg)?
        }
        Some(Command::Stats(args)) => commands::stats::run(&args, cfg)?,
        Some(Command::Doctor { json }) => {
            runtime()?.block_on(commands::doctor::run(&loaded, json))?
        }
        Some(Command::Serve(args)) => runtime()?.block_on(serve(cfg, args))?,
        Some(Command::Completions { .. }) => unreachable!("handled before config is loaded"),
        None => {
            let one_shot = cli.print.prompt.is_some()
                || !cli.print.files.is_empty()
                || !std::io::stdin().is_terminal();
            if one_shot {
                let opts = tandem::print::PrintOptions {
                    prompt: cli.print.prompt,
                    json: cli.print.json,
                    extract: cli.print.extract,
                    continue_last: cli.print.continue_last,
                    conversation: cli.print.conversation,
                    private: cli.print.private,
                    no_history: cli.print.no_history,
                    quiet: cli.global.quiet,
                    files: cli.print.files,
                    system: cli.print.system,
                    role: cli.print.role,
                    route_given: cli.global.route.is_some(),
                    model_given: cli.global.model.is_some(),
                };
                let code = runtime()?.block_on(tandem::print::run(cfg, opts));
                return Ok(ExitCode::from(code as u8));
            }
            if let Some(flag) = one_shot_only(&cli.print) {
                return Ok(usage_error(&format!(
                    "{flag} is for one-shot mode: give -p TEXT or pipe the prompt in (the chat \
                     screen has /private, /role and its list of conversations)"
                )));
            }
            tandem::tui::run(cfg)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tandem serve`: the token comes from the keyring when asked, else from TANDEM_SERVE_TOKEN.
async fn serve(cfg: &config::Config, args: tandem::cli::ServeCmd) -> anyhow::Result<()> {
    let token = if args.token_from_keyring {
        let t = tandem::secrets::serve_token()?;
        Some(t.ok_or_else(|| {
            anyhow::anyhow!("no token in the keyring: store one with `tandem auth set serve`")
        })?)
    } else {
        std::env::var("TANDEM_SERVE_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(tandem::secrets::Redacted::new)
    };
    let opts = tandem::serve::ServeOptions {
        host: args.host,
        port: args.port,
        token,
        json_logs: args.json,
    };
    tandem::serve::run(cfg, opts).await
}

/// Environment the engine reads once, set from main before any other thread exists (so
/// nothing reads the environment concurrently); an explicit user setting always wins.
/// - candle and its rayon pools size themselves from RAYON_NUM_THREADS.
/// - mistralrs probes dtypes by provoking candle errors, and each error captures a backtrace
///   when RUST_BACKTRACE is set: measured +42 MB peak RSS and ~9% slower loads. Library
///   backtraces are switched off; panics still honour RUST_BACKTRACE.
fn set_engine_env(threads: usize) {
    let n = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    for (var, value) in [
        ("RAYON_NUM_THREADS", n.to_string()),
        ("RUST_LIB_BACKTRACE", "0".to_string()),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: see above; main is still single-threaded here.
            unsafe { std::env::set_var(var, value) };
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("tandem: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// clap's multi-line usage errors, folded into the one-line form every other error uses.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .collect();
    let msg = body.join(" ");
    format!("{}; see `tandem --help`", msg.trim_start_matches("error: "))
}

/// Input refused at the boundary is a usage error (2), as the same mistake in a flag is: stdin
/// over the cap, a bad `serve` setting, a name or file that matches nothing (`tandem history
/// show 99`, `tandem models pull nope`, `route --stats missing.txt`; `--conversation 99` and
/// `--model nope` already exit 2).
fn is_usage(e: &anyhow::Error) -> bool {
    use tandem::models::ModelError as M;
    use tandem::session::SessionError as S;
    e.downcast_ref::<tandem::print::InputError>().is_some()
        || e.downcast_ref::<tandem::serve::ServeError>().is_some()
        || e.downcast_ref::<tandem::attach::AttachError>().is_some()
        || e.downcast_ref::<commands::auth::UnknownProvider>()
            .is_some()
        || matches!(e.downcast_ref::<S>(), Some(S::NotFound(_)))
        || matches!(
            e.downcast_ref::<M>(),
            Some(
                M::Unknown { .. }
                    | M::FileNotFound { .. }
                    | M::NoSuchSource { .. }
                    | M::NotDownloadable { .. }
            )
        )
}

/// Whether the error is a write to a stdout whose reader has gone: an io error the command
/// returned itself (maybe with context), or the one serde_json met writing. Not one deep in
/// another error's sources: a download's broken connection must still fail `models pull`.
fn closed_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == BrokenPipe)
        || e.downcast_ref::<serde_json::Error>()
            .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
}

/// A one-shot flag given where the chat screen opens: it would be dropped without a word, and
/// a dropped `--private` or `--no-history` is a broken promise.
fn one_shot_only(p: &tandem::cli::PrintArgs) -> Option<&'static str> {
    [
        (p.private, "--private"),
        (p.no_history, "--no-history"),
        (p.json, "--json"),
        (p.extract, "-x/--extract"),
        (p.continue_last, "-c/--continue"),
        (p.conversation.is_some(), "--conversation"),
        (p.system.is_some(), "--system"),
        (p.role.is_some(), "--role"),
    ]
    .into_iter()
    .find_map(|(on, flag)| on.then_some(flag))
}

/// The error chain on one line: a user sees what failed and why, never a backtrace. A chain
/// can quote a provider or a file, so it goes through the sanitizer.
fn one_line(e: &anyhow::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    tandem::sanitize::one_line(&chain.join(": "))
}

/// Logs every panic, with its place, instead of printing a backtrace. Only a panic that will
/// end the process (one on the main thread, where the chat screen's loop and one-shot mode
/// run) restores the terminal and prints a line: a panic inside a task or an engine thread is
/// caught there (tokio catches it and the front-end reports the turn as failed), and
/// resetting the terminal under a screen that keeps drawing would wreck it.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let fatal = std::thread::current().name() == Some("main");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!("panic{place}: {msg}");
        if fatal {
            tandem::tui::restore_terminal();
            eprintln!(
                "tandem: internal error: {} (details in the log; please report it)",
                tandem::sanitize::one_line(&msg)
            );
        }
    }));
}

#[allow(dead_code)]
fn _assert_cli_valid() {
    Cli::command().debug_assert();
}
