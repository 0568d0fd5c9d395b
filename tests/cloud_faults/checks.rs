//! What surrounds the requests: keys kept out of errors and the log file, and the reachability
//! report of `tandem doctor`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::server::{FaultServer, Reply};
use super::{BOUND, KEY, ask, one};

#[tokio::test]
async fn keys_never_reach_errors_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = tandem::logging::init(dir.path(), "trace").unwrap();
    let echo = format!("bad key {KEY} (Bearer {KEY})");
    let s = FaultServer::start(move |n, _| match n {
        0 => Reply::error(401, &echo),
        _ => Reply::Status {
            status: 500,
            headers: vec![],
            body: format!("upstream says {KEY}"),
        },
    })
    .await;
    let b = one(&s);
    let first = ask(&b).await;
    let second = ask(&b).await;
    for e in first.iter().chain(&second) {
        assert!(!format!("{e:?}").contains(KEY));
        if let Err(err) = e {
            assert!(!err.to_string().contains(KEY));
        }
    }
    let marker = format!("scrub-marker-{}", std::process::id());
    tracing::info!("{marker}");
    let log = dir.path().join("tandem.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains(&marker) || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains(&marker), "the log was never flushed");
    assert!(
        text.contains("cloud request failed"),
        "the failures were logged"
    );
    assert!(!text.contains(KEY), "the key leaked into the log");
}

#[tokio::test]
async fn doctor_reports_each_providers_reachability() {
    let s =
        FaultServer::start(|_, _| Reply::status(200, json!({"object": "list", "data": []}))).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let toml = format!(
        "[providers.up]\nbase_url = \"{}\"\nmodels = [{{ name = \"m\" }}]\n\n\
         [providers.down]\nbase_url = \"http://127.0.0.1:{closed}/v1\"\nmodels = [{{ name = \"m\" }}]\n",
        s.base_url
    );
    std::fs::write(&file, toml).unwrap();
    let opts = tandem::config::LoadOptions {
        config_file: Some(file.clone()),
        ..Default::default()
    };
    let loaded = tandem::config::load(&opts).unwrap();
    let report = tokio::time::timeout(BOUND, tandem::commands::doctor::collect(&loaded))
        .await
        .expect("doctor hung");
    assert!(report.config.exists && report.config.valid);
    let by_name = |n: &str| report.providers.iter().find(|p| p.name == n).unwrap();
    let up = &by_name("up").reachability;
    assert!(
        up.ok && up.status == Some(200) && up.error.is_none(),
        "{up:?}"
    );
    assert_eq!(s.seen()[0].uri, "/v1/models");
    let down = &by_name("down").reachability;
    assert!(
        !down.ok
            && down
                .error
                .as_deref()
                .is_some_and(|e| e.contains("cannot connect")),
        "{down:?}"
    );
    assert!(down.latency_ms < 2500);
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["providers"].as_array().map(Vec::len), Some(2));
    assert!(v["local_model"]["state"].is_string());
}
