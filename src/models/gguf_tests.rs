//! Unit tests for the GGUF header reader, on synthetic files built here byte by byte.

use super::*;

/// A tiny GGUF v3 writer: enough to build headers with chosen keys and tensors.
struct Builder {
    kvs: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32)>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            kvs: Vec::new(),
            n_kv: 0,
            tensors: Vec::new(),
        }
    }

    fn key(&mut self, k: &str, ty: u32) {
        self.kvs.extend((k.len() as u64).to_le_bytes());
        self.kvs.extend(k.as_bytes());
        self.kvs.extend(ty.to_le_bytes());
        self.n_kv += 1;
    }

    fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k, 8);
        self.kvs.extend((v.len() as u64).to_le_bytes());
        self.kvs.extend(v.as_bytes());
        self
    }

    fn u32(mut self, k: &str, v: u32) -> Self {
        self.key(k, 4);
        self.kvs.extend(v.to_le_bytes());
        self
    }

    fn str_array(mut self, k: &str, items: &[&str]) -> Self {
        self.key(k, 9);
        self.kvs.extend(8u32.to_le_bytes());
        self.kvs.extend((items.len() as u64).to_le_bytes());
        for s in items {
            self.kvs.extend((s.len() as u64).to_le_bytes());
            self.kvs.extend(s.as_bytes());
        }
        self
    }

    fn f32_array(mut self, k: &str, n: u64) -> Self {
        self.key(k, 9);
        self.kvs.extend(6u32.to_le_bytes());
        self.kvs.extend(n.to_le_bytes());
        for i in 0..n {
            self.kvs.extend((i as f32).to_le_bytes());
        }
        self
    }

    fn tensor(mut self, name: &str, dims: &[u64], ty: u32) -> Self {
        self.tensors.push((name.into(), dims.to_vec(), ty));
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kvs);
        let mut offset = 0u64;
        let mut sizes = Vec::new();
        for (name, dims, ty) in &self.tensors {
            out.extend((name.len() as u64).to_le_bytes());
            out.extend(name.as_bytes());
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            let (block, bytes) = GgmlType::from_u32(*ty).layout().unwrap();
            let size = dims.iter().product::<u64>() / block * bytes;
            sizes.push(size);
            offset += size.div_ceil(32) * 32;
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.resize(out.len() + offset as usize, 0);
        out
    }
}

fn llama() -> Builder {
    Builder::new()
        .str("general.architecture", "llama")
        .str("general.name", "Tiny")
        .u32("general.file_type", 3)
        .u32("llama.context_length", 2048)
        .str_array("tokenizer.ggml.tokens", &["<s>", "</s>", "hello"])
        .f32_array("tokenizer.ggml.scores", 3)
        .tensor("token_embd.weight", &[64, 8], 3)
        .tensor("blk.0.attn_q.weight", &[64, 64], 3)
        .tensor("output_norm.weight", &[64], 0)
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn reads_a_well_formed_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "m.gguf", &llama().build());
    let info = inspect(&p).unwrap();
    assert_eq!(info.version, 3);
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.name.as_deref(), Some("Tiny"));
    assert_eq!(info.context_length, Some(2048));
    assert_eq!(info.tensor_count, 3);
    assert_eq!(info.parameter_count, 64 * 8 + 64 * 64 + 64);
    assert_eq!(info.main_type(), Some(GgmlType::Q4_1));
    assert_eq!(info.quant_label(), "Q4_1");
    assert_eq!(
        info.metadata["tokenizer.ggml.tokens"],
        MetaValue::Array {
            elem_type: 8,
            len: 3
        }
    );
}

#[test]
fn quant_label_falls_back_to_the_majority_type() {
    let dir = tempfile::tempdir().unwrap();
    let b = Builder::new()
        .str("general.architecture", "qwen2")
        .tensor("a", &[256, 4], 8)
        .tensor("b", &[32], 0);
    let info = inspect(&write(&dir, "m.gguf", &b.build())).unwrap();
    assert_eq!(info.quant_label(), "Q8_0");
    assert_eq!(info.context_length, None);
}

#[test]
fn text_file_is_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "notes.gguf", b"hello, this is a text file\n");
    let e = inspect(&p).unwrap_err();
    assert!(matches!(e, GgufError::NotGguf { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("notes.gguf") && msg.contains("not a GGUF file"),
        "{msg}"
    );
    let empty = write(&dir, "empty.gguf", b"");
    assert!(inspect(&empty).unwrap_err().to_string().contains("empty"));
}

#[test]
fn old_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = llama().build();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    let e = inspect(&write(&dir, "v1.gguf", &bytes)).unwrap_err();
    assert!(matches!(e, GgufError::Version { version: 1, .. }), "{e}");
}

#[test]
fn missing_architecture_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = Builder::new()
        .str("general.name", "x")
        .tensor("a", &[32], 0);
    let e = inspect(&write(&dir, "m.gguf", &b.build())).unwrap_err();
    assert!(matches!(e, GgufError::NoArchitecture { .. }), "{e}");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = llama().build();
    for cut in 0..bytes.len() {
        let p = write(&dir, "cut.gguf", &bytes[..cut]);
        assert!(
            inspect(&p).is_err(),
            "a file cut at {cut} of {} bytes was accepted",
            bytes.len()
        );
    }
}

#[test]
fn huge_lengths_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let good = llama().build();
    // Overwrite each 8-byte window in the header with u64::MAX and with a large-but-plausible value:
    // every length field gets hit, and none may panic or allocate what it claims.
    for at in 4..good.len() - 8 {
        for v in [u64::MAX, 1 << 40, 0x7fff_ffff] {
            let mut bytes = good.clone();
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            let _ = inspect(&write(&dir, "bad.gguf", &bytes));
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = llama().build();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % bytes.len() as u64) as usize;
            bytes[i] ^= (seed >> 32) as u8 | 1;
        }
        let _ = inspect(&write(&dir, "flip.gguf", &bytes));
    }
}

#[test]
fn tensor_data_past_the_end_is_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = llama().build();
    let e = inspect(&write(&dir, "short.gguf", &bytes[..bytes.len() - 100])).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("download it again"));
}

#[test]
fn unknown_tensor_types_are_reported_not_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new()
        .str("general.architecture", "llama")
        .tensor("a", &[32], 0);
    // An IQ2_XXS tensor: the reader cannot size it, but must still describe the file.
    b.tensors.push(("b".into(), vec![256], 0));
    let mut bytes = b.build();
    let needle = b"\x01\x00\x00\x00\x00\x00\x00\x00b"; // u64 length 1, then the name "b"
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len();
    let ty_at = pos + 4 + 8;
    bytes[ty_at..ty_at + 4].copy_from_slice(&16u32.to_le_bytes());
    let info = inspect(&write(&dir, "iq.gguf", &bytes)).unwrap();
    assert!(
        info.tensor_types
            .iter()
            .any(|(t, _)| *t == GgmlType::Other(16))
    );
    assert_eq!(GgmlType::Other(16).name(), "IQ2_XXS");
}
