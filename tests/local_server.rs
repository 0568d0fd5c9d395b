//! A `tier = "local"` server as the local engine and models picked by name, end to end through
//! one-shot mode, against loopback stand-ins (no model is loaded or downloaded).

mod common;
use common::{Sandbox, assert_usage_error, canned_cloud};

fn json(sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    let out = sb
        .cmd()
        .args(args)
        .args(["--json", "--no-pull"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(sb: &Sandbox, server: u16, cloud: u16) {
    sb.write_config(&format!(
        "[local]\nengine = \"llama\"\n\
         [providers.llama]\nbase_url = \"http://127.0.0.1:{server}/v1\"\ntier = \"local\"\nmodels = [{{ name = \"smol\" }}]\n\
         [providers.lab]\nbase_url = \"http://127.0.0.1:{cloud}/v1\"\nmodels = [{{ name = \"tiny\", input_price = 1.0, output_price = 1.0 }}]\n"
    ));
}

#[test]
fn a_local_server_answers_a_private_prompt_as_the_local_tier() {
    let sb = Sandbox::new();
    config(
        &sb,
        canned_cloud("from the server"),
        canned_cloud("from the cloud"),
    );
    let v = json(&sb, &["--private", "-p", "what is 2+2?"]);
    assert_eq!(v["answer"], "from the server", "{v}");
    assert_eq!(v["route"]["target"], "local");
    assert_eq!(v["route"]["provider"], "llama");
    assert_eq!(v["route"]["model"], "smol");
    assert_eq!(v["cost_usd"], 0.0);
}

#[test]
fn model_names_pick_the_provider_and_its_tier() {
    let sb = Sandbox::new();
    config(
        &sb,
        canned_cloud("from the server"),
        canned_cloud("from the cloud"),
    );
    let v = json(&sb, &["--model", "lab/tiny", "-p", "hi"]);
    assert_eq!(v["answer"], "from the cloud", "{v}");
    assert_eq!(v["route"]["target"], "cloud");
    assert_eq!(
        (
            v["route"]["provider"].as_str(),
            v["route"]["model"].as_str()
        ),
        (Some("lab"), Some("tiny"))
    );
    let v = json(&sb, &["--model", "smol", "-p", "hi"]);
    assert_eq!(v["route"]["target"], "local", "{v}");
    assert_eq!(v["route"]["provider"], "llama");
    let out = sb
        .cmd()
        .args(["--model", "huge", "-p", "hi"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(
        err.contains("lab/tiny (cloud)") && err.contains("llama/smol (local server)"),
        "{err}"
    );
}
