//! `GET /v1/models` (the names a request may use) and `GET /health` (each tier's state: the
//! local model loading, ready or failed, with how many answers run and wait; each cloud
//! provider ready, without a key, or with its circuit open). Read-only views of the tiers.

use serde_json::{Value, json};

use super::pick;
use crate::backend::cloud::CircuitState;
use crate::config::{Config, Tier};
use crate::router::LocalState;
use crate::tiers::Tiers;

pub fn models(cfg: &Config, tiers: &Tiers) -> Value {
    let data: Vec<Value> = pick::names(cfg, &tiers.local_name)
        .into_iter()
        .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
        .collect();
    json!({ "object": "list", "data": data })
}

/// The health report, and whether any tier can answer now (200) or none can (503).
pub fn health(tiers: &Tiers) -> (bool, Value) {
    let local_state = tiers.local_state();
    let load = tiers.local_engine().map(|e| e.load()).unwrap_or_default();
    let slots = tiers.local_engine().map(|e| e.slots());
    let providers: Vec<Value> = tiers
        .cloud
        .health()
        .providers
        .iter()
        .map(|p| {
            let state = match (p.has_key, p.circuit) {
                (false, _) => "no_key",
                (true, CircuitState::Open { .. }) => "circuit_open",
                (true, CircuitState::HalfOpen) => "half_open",
                (true, CircuitState::Closed) => "ready",
            };
            let tier = match p.tier {
                Tier::Local => "local",
                Tier::Cloud => "cloud",
            };
            json!({ "name": p.name, "tier": tier, "state": state })
        })
        .collect();
    let cloud_online = tiers.cloud_online();
    let local_ready = local_state == LocalState::Ready;
    let body = json!({
        "status": if local_ready || cloud_online { "ok" } else { "unavailable" },
        "local": {
            "state": local_state,
            "model": tiers.local_name,
            "engine": if tiers.local_is_server() { "server" } else { "in-process" },
            "running": load.running,
            "slots": slots,
            "waiting": load.waiting,
            "problem": tiers.local_problem().filter(|_| !local_ready),
        },
        "cloud": {
            "state": if cloud_online { "ready" } else { "offline" },
            "providers": providers,
        },
    });
    (local_ready || cloud_online, body)
}
