//! Settings: the raw file shape (serde, unknown keys rejected) and the resolved, typed `Config`.
//! Loading and layering live in `config/load.rs`; this module does no IO.

mod defaults;
pub mod load;
pub mod paths;
mod resolve;
mod serve;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, Layer, LoadOptions, Loaded, load};
pub use paths::Paths;
pub use resolve::is_loopback;
pub(crate) use resolve::resolve;
pub use serve::ServeConfig;

/// The built-in defaults, which double as the documented reference.
pub const DEFAULT_TOML: &str = include_str!("config/default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    #[default]
    Auto,
    Local,
    Cloud,
}

impl RouteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMode::Auto => "auto",
            RouteMode::Local => "local",
            RouteMode::Cloud => "cloud",
        }
    }
}

/// Whether a provider runs elsewhere (costs money, needs the network) or on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Cloud,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Frugal,
    #[default]
    Balanced,
    Quality,
}

/// The whole file, exactly as written. Every section is optional in a user's file because the
/// embedded defaults are merged underneath it before this is deserialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub route: RouteMode,
    pub theme: String,
    pub local: LocalConfig,
    pub router: RouterConfig,
    pub budget: BudgetConfig,
    pub print: PrintConfig,
    pub attach: AttachConfig,
    pub serve: ServeConfig,
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    /// User additions to the local model catalog.
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntryFile>,
}

/// A user's own local model: a file on disk, or a Hugging Face repo + file + sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntryFile {
    pub path: Option<String>,
    pub repo: Option<String>,
    pub file: Option<String>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    pub model: String,
    pub threads: usize,
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub repeat_penalty: f32,
    pub auto_pull: bool,
    /// Weight format the engine runs: a Q8_0 copy of 4-bit weights, or the file as it is.
    pub quant: LocalQuant,
    /// Width of activations, KV cache and attention.
    pub dtype: LocalDType,
    /// Who answers local turns: "in-process", or the name of a `tier = "local"` provider
    /// ("PROVIDER" or "PROVIDER/MODEL"); read into `Config::engine` at load.
    pub engine: String,
}

/// `f32` computes in the CPU's native width; `auto` is mistralrs's own pick, which on a CPU is
/// F16: half the KV cache memory, but every value is converted on each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LocalDType {
    #[default]
    F32,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LocalQuant {
    #[default]
    Q8_0,
    Original,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    pub preset: Preset,
    pub threshold: Option<f64>,
    pub escalate: bool,
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub daily_usd: f64,
    pub monthly_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrintConfig {
    pub max_stdin_bytes: u64,
}

/// Caps on what one turn may attach (`-f PATH`, `@path`): all attachments together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachConfig {
    pub max_bytes: u64,
    pub max_files: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub base_url: String,
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// A `tier = "local"` provider on another host: the user vouches that it is theirs, so
    /// private turns may go there.
    #[serde(default)]
    pub trusted: bool,
    /// Cap on the tokens of one answer, sent with every request (lowered to fit the window).
    #[serde(default = "default_answer_tokens")]
    pub max_tokens: usize,
}

/// The longest `timeout_secs` accepted: one day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

fn default_timeout() -> u64 {
    60
}

fn default_answer_tokens() -> usize {
    4096
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default = "default_context")]
    pub context_window: usize,
    /// US dollars per million input tokens.
    #[serde(default)]
    pub input_price: f64,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub output_price: f64,
}

/// A provider model's window when its `models` entry does not say.
pub const DEFAULT_CONTEXT_WINDOW: usize = 8192;

fn default_context() -> usize {
    DEFAULT_CONTEXT_WINDOW
}

/// A provider after validation: the URL parsed and checked against the insecure-http rule.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub base_url: url::Url,
    pub api_key_env: Option<String>,
    pub models: Vec<ModelSpec>,
    pub tier: Tier,
    pub timeout_secs: u64,
    pub trusted: bool,
    pub max_tokens: usize,
}

/// A model a configured provider serves, named as `PROVIDER/MODEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    pub provider: String,
    pub model: String,
}

impl std::fmt::Display for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Who answers local turns (`local.engine`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// The `local.model` GGUF, run by mistralrs in this process.
    #[default]
    InProcess,
    /// An OpenAI-compatible server with `tier = "local"` (Ollama, llama.cpp, LM Studio).
    Server(ServedModel),
}

/// The effective settings after every layer is merged and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub route: RouteMode,
    pub theme: String,
    pub local: LocalConfig,
    pub router: RouterConfig,
    pub budget: BudgetConfig,
    pub print: PrintConfig,
    pub attach: AttachConfig,
    pub serve: ServeConfig,
    pub keys: BTreeMap<String, String>,
    pub providers: Vec<Provider>,
    pub models: BTreeMap<String, ModelEntryFile>,
    /// `local.engine`, checked against the providers.
    pub engine: Engine,
    /// A cloud model picked by `--model`: tried first whenever a turn goes to the cloud.
    pub cloud_model: Option<ServedModel>,
    /// The user file that was (or would be) read.
    pub file: PathBuf,
    pub paths: Paths,
    /// Set by `--no-pull`: the local model is never downloaded implicitly.
    pub no_pull: bool,
}

impl Config {
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// What the config says about a model a provider serves (its window, its prices).
    pub fn served(&self, m: &ServedModel) -> Option<&ModelSpec> {
        self.provider(&m.provider)?
            .models
            .iter()
            .find(|s| s.name == m.model)
    }

    /// Whether the default model may be fetched without being asked.
    pub fn may_auto_pull(&self) -> bool {
        self.local.auto_pull && !self.no_pull
    }
}
