//! Install-time requantisation of Q4_1 weights to Q8_0. candle 0.10 has AVX2 kernels for Q8_0
//! matmuls but none for Q4_1, so the same weights decode faster as Q8_0. Dequantising and
//! requantising loses nothing beyond Q8 rounding of values that were already 4-bit.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("cannot transcode {path}: {reason}")]
    Failed { path: PathBuf, reason: String },
}

/// Where the Q8_0 copy of `src` lives: the cache dir, keyed by name and size, so a user's own
/// file is never written beside and a replaced model gets a new copy.
pub fn q8_path(cache_dir: &Path, src: &Path) -> PathBuf {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = std::fs::metadata(src).map(|m| m.len()).unwrap_or(0);
    cache_dir
        .join("transcoded")
        .join(format!("{stem}-{size}.q8_0.gguf"))
}

/// Writes a Q8_0 copy of every Q4_0/Q4_1 tensor (others are copied as they are) to `dst`,
/// through a temporary file and a rename, so a half-written copy never looks usable.
pub fn to_q8(src: &Path, dst: &Path) -> Result<(), TranscodeError> {
    let fail = |reason: String| TranscodeError::Failed {
        path: src.to_path_buf(),
        reason,
    };
    let mut reader = BufReader::new(File::open(src).map_err(|e| fail(e.to_string()))?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| fail(e.to_string()))?;
    let dev = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let q = content
            .tensor(&mut reader, name, &dev)
            .map_err(|e| fail(format!("{name}: {e}")))?;
        let q = match q.dtype() {
            GgmlDType::Q4_0 | GgmlDType::Q4_1 => {
                let f = q
                    .dequantize(&dev)
                    .map_err(|e| fail(format!("{name}: {e}")))?;
                QTensor::quantize(&f, GgmlDType::Q8_0).map_err(|e| fail(format!("{name}: {e}")))?
            }
            _ => q,
        };
        tensors.push((name.clone(), q));
    }
    let mut meta: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    meta.sort_by_key(|(k, _)| *k);
    // The header's file type would still claim Q4_1; readers use the per-tensor types.
    let q8_type = gguf_file::Value::U32(7);
    if let Some(slot) = meta.iter_mut().find(|(k, _)| *k == "general.file_type") {
        slot.1 = &q8_type;
    }
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let tmp = dst.with_extension("gguf.part");
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp).map_err(|e| fail(e.to_string()))?);
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        gguf_file::write(&mut w, &meta, &refs).map_err(|e| fail(e.to_string()))?;
        w.into_inner()
            .map_err(|e| fail(e.to_string()))?
            .sync_all()
            .map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, dst).map_err(|e| fail(e.to_string()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
