//! The client side of `GET /health`, for `tandem doctor`: whether a `tandem serve` answers at
//! the configured address, and what it says about its tiers. Only reads.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;

/// How long doctor waits for a server that may not be running.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub url: String,
    pub running: bool,
    /// "ok" or "unavailable", as the server reports it.
    pub status: Option<String>,
    pub local_state: Option<String>,
    pub local_model: Option<String>,
    pub cloud_state: Option<String>,
}

/// Probes `[serve]`'s address; a server on every interface is asked on loopback.
pub async fn probe(cfg: &Config) -> ServerReport {
    let host = match cfg.serve.host.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    let url = format!("http://{host}:{}/health", cfg.serve.port);
    let mut report = ServerReport {
        url: url.clone(),
        running: false,
        status: None,
        local_state: None,
        local_model: None,
        cloud_state: None,
    };
    let Ok(client) = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .no_proxy()
        .build()
    else {
        return report;
    };
    let Ok(resp) = client.get(&url).send().await else {
        return report;
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return report;
    };
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
    report.running = true;
    report.status = s("/status");
    report.local_state = s("/local/state");
    report.local_model = s("/local/model");
    report.cloud_state = s("/cloud/state");
    report
}

impl ServerReport {
    /// One line for doctor's text report.
    pub fn line(&self) -> String {
        let base = self.url.trim_end_matches("/health");
        if !self.running {
            return format!("{base}: not running (start it with `tandem serve`)");
        }
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
        format!(
            "{base}: running ({}); local {} {}, cloud {}",
            opt(&self.status),
            opt(&self.local_model),
            opt(&self.local_state),
            opt(&self.cloud_state)
        )
    }
}
