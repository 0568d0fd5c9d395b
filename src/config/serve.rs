//! `[serve]`: where `tandem serve` listens and how much it takes in. Flags override the
//! address; the caps come from here alone. No IO.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    /// Request bodies past this are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    /// Local answers that may wait while one is generated; more get 429 and Retry-After.
    pub local_queue: usize,
    /// After SIGTERM/SIGINT, how long answers in flight may run before they are ended.
    pub grace_secs: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 1_048_576,
            local_queue: 16,
            grace_secs: 10,
        }
    }
}
