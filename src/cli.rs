//! The command line: clap derive types only. This is also the single source for `completions/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "A terminal chat client that routes each prompt to a local model or the cloud, and says why",
    after_help = "With no argument on a terminal, tandem opens the chat screen.\n\
                  With piped stdin or -p, it answers once and exits:\n  \
                  echo \"question\" | tandem\n  tandem -p \"question\"\n  git diff | tandem -p \"write a commit message\""
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub print: PrintArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that apply to every subcommand and override config and environment.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where prompts go: decided per prompt, or pinned to one tier
    #[arg(long, global = true, value_enum)]
    pub route: Option<RouteArg>,

    /// Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model's
    /// name when one provider lists it; pins the route to its tier unless --route is given
    #[arg(long, global = true, value_name = "NAME")]
    pub model: Option<String>,

    /// Colour theme (a file in themes/ or the user's themes directory)
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,

    /// Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Print nothing on stderr but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Never download the local model, even when it is missing
    #[arg(long, global = true)]
    pub no_pull: bool,
}

/// One-shot mode: chosen by -p or by piped stdin.
#[derive(Debug, Args, Clone, Default)]
pub struct PrintArgs {
    /// Answer TEXT once and exit; piped stdin is appended as context
    #[arg(short = 'p', long = "print", value_name = "TEXT")]
    pub prompt: Option<String>,

    /// Print one JSON object with the answer, route, usage and cost
    #[arg(long)]
    pub json: bool,

    /// Print only the answer's first code block, without its fences (the whole answer when it
    /// has none), once it is complete: `$(tandem -x --role shell -p "...")`
    #[arg(short = 'x', long, conflicts_with = "json")]
    pub extract: bool,

    /// Continue the last conversation
    #[arg(short = 'c', long = "continue")]
    pub continue_last: bool,

    /// Continue a given conversation (id or title)
    #[arg(long, value_name = "ID|NAME")]
    pub conversation: Option<String>,

    /// Keep this conversation on this machine: never routed to the cloud
    #[arg(long)]
    pub private: bool,

    /// Keep this exchange out of the history (nothing is written but its cost to the spend
    /// ledger, so budgets still hold); for scripts that ask many one-off questions
    #[arg(long, conflicts_with_all = ["continue_last", "conversation"])]
    pub no_history: bool,

    /// Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is
    /// stdin; repeatable
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// A system prompt for this turn (after the role's, with --role)
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,

    /// Answer as this role: its system prompt and settings (`tandem roles list`); saved with
    /// the conversation, so -c keeps it
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteArg {
    Auto,
    Local,
    Cloud,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Each group alone does its read-only listing, as `llm models` does: `tandem models` is
    // `tandem models list`, `tandem config` is `config show`, `tandem auth` is `auth status`.
    /// Show or edit settings (alone: show)
    Config {
        #[command(subcommand)]
        cmd: Option<ConfigCmd>,
    },
    /// Manage provider API keys in the OS keyring (alone: status)
    Auth {
        #[command(subcommand)]
        cmd: Option<AuthCmd>,
    },
    /// Manage local models (alone: list)
    Models {
        #[command(subcommand)]
        cmd: Option<ModelsCmd>,
    },
    /// List, show and edit roles: system prompts with their own settings (alone: list)
    Roles {
        #[command(subcommand)]
        cmd: Option<RolesCmd>,
    },
    /// Explain where a prompt would go, without calling any model
    Route(RouteCmd),
    /// Browse, search, export and delete saved conversations (alone: list)
    History {
        #[command(subcommand)]
        cmd: Option<HistoryCmd>,
    },
    /// Turns, spend, savings and speed per tier for a day, a week or a month (UTC)
    Stats(StatsCmd),
    /// Check config, keys, provider reachability and the local model
    Doctor {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts
    Serve(ServeCmd),
    /// Print a shell completion script
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective settings, each value with the layer it came from
    Show,
    /// Print the config file's path
    Path,
    /// Open the config file in $EDITOR (created from the defaults when missing)
    Edit,
}

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Store PROVIDER's key in the keyring (prompted without echo, or read from stdin)
    Set { provider: String },
    /// Delete PROVIDER's key from the keyring
    Remove { provider: String },
    /// Show where each provider's key comes from (never the key)
    Status { provider: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// List catalog and configured models, installed or not
    List,
    /// Download, verify and install a model
    Pull {
        name: String,
        /// Force one download source
        #[arg(long, value_enum)]
        source: Option<SourceArg>,
    },
    /// Print the installed file's path
    Path { name: String },
    /// Delete an installed model
    Rm { name: String },
    /// Check an installed model's checksum and header
    Verify { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RolesCmd {
    /// List the built-in and user roles
    List,
    /// Print a role's file: front matter and prompt
    Show { name: String },
    /// Open the user's role file in $EDITOR (started from the built-in or a template)
    Edit { name: String },
}

#[derive(Debug, Subcommand)]
pub enum HistoryCmd {
    /// List conversations, newest first
    List {
        /// How many to show
        #[arg(short = 'n', long, default_value_t = HistoryCmd::LIST_LIMIT)]
        limit: usize,
    },
    /// Print a conversation's turns (by id or title)
    Show { conversation: String },
    /// Full-text search over every turn
    Search { text: String },
    /// Write a conversation as Markdown or JSON to stdout
    Export {
        conversation: String,
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
    },
    /// Delete a conversation and its turns
    Rm { conversation: String },
}

impl HistoryCmd {
    /// How many conversations `history list` shows unless told.
    pub const LIST_LIMIT: usize = 30;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Md,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Hf,
    Pypi,
}

#[derive(Debug, Args)]
pub struct RouteCmd {
    /// The prompt to route
    pub prompt: Option<String>,
    /// Read JSON lines {"id","prompt"} on stdin, write {"id","target","score","reasons"} per line
    #[arg(long, conflicts_with = "prompt")]
    pub batch: bool,
    /// Summarise a file of prompts (JSON lines with "prompt", or one per line; - is stdin): the
    /// share each preset keeps local, and how the scores spread
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "batch"])]
    pub stats: Option<PathBuf>,
    /// Print the decision as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsCmd {
    /// Today (the default)
    #[arg(long, conflicts_with_all = ["week", "month"])]
    pub day: bool,
    /// The last seven days, today included
    #[arg(long, conflicts_with = "month")]
    pub week: bool,
    /// This calendar month
    #[arg(long)]
    pub month: bool,
    /// Print the figures as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeCmd {
    /// Address to listen on (default: serve.host, 127.0.0.1); any but loopback needs a token
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,
    /// Port to listen on (default: serve.port, 8080)
    #[arg(long)]
    pub port: Option<u16>,
    /// Require the bearer token stored with `tandem auth set serve` (TANDEM_SERVE_TOKEN also works)
    #[arg(long)]
    pub token_from_keyring: bool,
    /// Log each request as one JSON object on stderr
    #[arg(long)]
    pub json: bool,
}
