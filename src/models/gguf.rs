//! GGUF header reader: magic, version, metadata and tensor infos, never the tensor data.
//! Every length read from the file is checked against the file's size before it is used, so a
//! truncated or hostile file yields a `GgufError` (naming the path), never a panic or a huge
//! allocation. It knows nothing about which models the engine can run; see `models::check_supported`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

mod cursor;
mod types;

use cursor::Cursor;

use types::scalar_size;
pub use types::{GgmlType, MetaValue, file_type_name};

/// Metadata strings longer than this are skipped rather than kept (chat templates are a few KB;
/// nothing we read is larger).
const MAX_KEPT_STRING: u64 = 1 << 20;
/// Real models have a few hundred tensors and a few dozen keys; the caps stop a hostile count
/// from turning into millions of loop iterations over a file that claims them.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KVS: u64 = 1 << 20;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays nest in principle; real files use one level.
const MAX_ARRAY_DEPTH: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{} is not a GGUF file (it starts with {found}); give tandem a .gguf model file", path.display())]
    NotGguf { path: PathBuf, found: String },
    #[error("{} is GGUF version {version}, which tandem cannot read; use a file converted for GGUF v2 or v3", path.display())]
    Version { path: PathBuf, version: u32 },
    #[error("{} is truncated: {what} at byte {at} runs past its end ({size} bytes); download it again", path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        at: u64,
        size: u64,
    },
    #[error("{} is corrupt: {what}; download it again", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{} has no general.architecture key, so it is not a model tandem can load", path.display())]
    NoArchitecture { path: PathBuf },
}

/// What the header says about a model file.
#[derive(Debug, Clone)]
pub struct GgufInfo {
    pub path: PathBuf,
    pub file_size: u64,
    pub version: u32,
    /// `general.architecture`, as written (compare lowercased).
    pub architecture: String,
    pub name: Option<String>,
    /// `general.file_type` (llama.cpp's LLAMA_FTYPE).
    pub file_type: Option<u32>,
    /// `<arch>.context_length`: the context window the model was trained for.
    pub context_length: Option<u64>,
    pub tensor_count: u64,
    pub parameter_count: u64,
    /// Element count per tensor type, largest first.
    pub tensor_types: Vec<(GgmlType, u64)>,
    /// Every scalar and string key (arrays summarised), for the engine's own lookups.
    pub metadata: BTreeMap<String, MetaValue>,
}

impl GgufInfo {
    /// The tensor type holding most of the weights.
    pub fn main_type(&self) -> Option<GgmlType> {
        self.tensor_types.first().map(|(t, _)| *t)
    }

    /// A short label such as "Q4_1": the file type when the file names a known one, else the
    /// type of the majority of weights.
    pub fn quant_label(&self) -> String {
        if let Some(name) = self.file_type.and_then(file_type_name) {
            return name.to_string();
        }
        self.main_type()
            .map(GgmlType::name)
            .unwrap_or_else(|| "-".into())
    }
}

/// Reads the header of the GGUF file at `path`.
pub fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    let io = |err| GgufError::Io {
        path: path.to_path_buf(),
        err,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut r = Cursor {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        size,
        path,
    };
    r.header()
}

impl<R: Read + Seek> Cursor<'_, R> {
    fn header(&mut self) -> Result<GgufInfo, GgufError> {
        let mut magic = [0u8; 4];
        let got = self.read_up_to(&mut magic)?;
        if &magic[..got] != b"GGUF" || got < 4 {
            let found = if got == 0 {
                "nothing: it is empty".to_string()
            } else {
                format!("{:?}", String::from_utf8_lossy(&magic[..got]))
            };
            return Err(GgufError::NotGguf {
                path: self.path.to_path_buf(),
                found,
            });
        }
        let version = self.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version {
                path: self.path.to_path_buf(),
                version,
            });
        }
        let tensor_count = self.u64("tensor count")?;
        let kv_count = self.u64("metadata count")?;
        // Each key-value needs at least 13 bytes and each tensor info 24, which bounds honest counts.
        if kv_count > MAX_KVS || kv_count.saturating_mul(13) > self.remaining() {
            return Err(self.corrupt(format!("it claims {kv_count} metadata entries")));
        }
        if tensor_count > MAX_TENSORS || tensor_count.saturating_mul(24) > self.remaining() {
            return Err(self.corrupt(format!("it claims {tensor_count} tensors")));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = self.string("metadata key")?.unwrap_or_default();
            let ty = self.u32("metadata type")?;
            let value = self.value(ty, &key, 0)?;
            if let Some(v) = value {
                metadata.insert(key, v);
            }
        }
        let alignment = match metadata
            .get("general.alignment")
            .and_then(MetaValue::as_u64)
        {
            None => 32,
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 16 => a,
            Some(a) => {
                return Err(self.corrupt(format!("general.alignment {a} is not a power of two")));
            }
        };
        let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
        let mut parameter_count = 0u64;
        let mut extents = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = self.string("tensor name")?.unwrap_or_default();
            let n_dims = self.u32("tensor dimensions")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(self.corrupt(format!("tensor {name:?} has {n_dims} dimensions")));
            }
            let mut elems = 1u64;
            for _ in 0..n_dims {
                let d = self.u64("tensor shape")?;
                elems = elems.checked_mul(d).ok_or_else(|| {
                    self.corrupt(format!("tensor {name:?} has an impossible shape"))
                })?;
            }
            let ty = GgmlType::from_u32(self.u32("tensor type")?);
            let offset = self.u64("tensor offset")?;
            let bytes = match ty.layout() {
                Some((block, block_bytes)) if elems.is_multiple_of(block) => {
                    (elems / block).checked_mul(block_bytes)
                }
                Some(_) => {
                    return Err(self.corrupt(format!(
                        "tensor {name:?} does not fill whole {} blocks",
                        ty.name()
                    )));
                }
                None => Some(0),
            };
            let bytes = bytes
                .ok_or_else(|| self.corrupt(format!("tensor {name:?} is impossibly large")))?;
            if !offset.is_multiple_of(alignment) {
                return Err(self.corrupt(format!("tensor {name:?} is not aligned")));
            }
            extents.push((name, offset, bytes));
            *by_type.entry(ty).or_default() += elems;
            parameter_count = parameter_count.saturating_add(elems);
        }
        let data_start = self.pos.div_ceil(alignment) * alignment;
        for (name, offset, bytes) in extents {
            let end = data_start
                .checked_add(offset)
                .and_then(|s| s.checked_add(bytes));
            match end {
                Some(end) if end <= self.size => {}
                _ => {
                    return Err(GgufError::Truncated {
                        path: self.path.to_path_buf(),
                        what: format!("the data of tensor {name:?}"),
                        at: data_start.saturating_add(offset),
                        size: self.size,
                    });
                }
            }
        }
        let architecture = match metadata
            .get("general.architecture")
            .and_then(MetaValue::as_str)
        {
            Some(a) if !a.is_empty() => a.to_string(),
            _ => {
                return Err(GgufError::NoArchitecture {
                    path: self.path.to_path_buf(),
                });
            }
        };
        let context_length = metadata
            .get(&format!("{architecture}.context_length"))
            .and_then(MetaValue::as_u64);
        let mut tensor_types: Vec<_> = by_type.into_iter().collect();
        tensor_types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(GgufInfo {
            path: self.path.to_path_buf(),
            file_size: self.size,
            version,
            name: metadata
                .get("general.name")
                .and_then(MetaValue::as_str)
                .map(str::to_string),
            file_type: metadata
                .get("general.file_type")
                .and_then(MetaValue::as_u64)
                .and_then(|v| u32::try_from(v).ok()),
            architecture,
            context_length,
            tensor_count,
            parameter_count,
            tensor_types,
            metadata,
        })
    }

    /// Reads one value of GGUF type `ty`; `None` for values only skipped (nested arrays).
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Option<MetaValue>, GgufError> {
        let v = match ty {
            0 => MetaValue::UInt(self.array::<1>(key)?[0] as u64),
            1 => MetaValue::Int(self.array::<1>(key)?[0] as i8 as i64),
            2 => MetaValue::UInt(u16::from_le_bytes(self.array(key)?) as u64),
            3 => MetaValue::Int(i16::from_le_bytes(self.array(key)?) as i64),
            4 => MetaValue::UInt(u32::from_le_bytes(self.array(key)?) as u64),
            5 => MetaValue::Int(i32::from_le_bytes(self.array(key)?) as i64),
            6 => MetaValue::Float(f32::from_le_bytes(self.array(key)?) as f64),
            7 => MetaValue::Bool(self.array::<1>(key)?[0] != 0),
            8 => {
                let at = self.pos;
                match self.string(key)? {
                    Some(s) => MetaValue::Str(s),
                    None => MetaValue::LongStr(self.pos - at - 8),
                }
            }
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.corrupt(format!("{key:?} nests arrays too deeply")));
                }
                let elem_type = self.u32(key)?;
                let len = self.u64(key)?;
                match scalar_size(elem_type) {
                    Some(sz) => {
                        let total = len.checked_mul(sz).ok_or_else(|| {
                            self.corrupt(format!("{key:?} claims {len} elements"))
                        })?;
                        self.skip(total, key)?;
                    }
                    None => {
                        // Strings and nested arrays have their own lengths; each is checked as read,
                        // and every element takes at least 8 bytes, which bounds the loop.
                        if len.saturating_mul(8) > self.remaining() {
                            return Err(self.truncated(key));
                        }
                        for _ in 0..len {
                            if elem_type == 8 {
                                let n = self.u64(key)?;
                                self.skip(n, key)?;
                            } else {
                                self.value(elem_type, key, depth + 1)?;
                            }
                        }
                    }
                }
                MetaValue::Array { elem_type, len }
            }
            10 => MetaValue::UInt(self.u64(key)?),
            11 => MetaValue::Int(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.corrupt(format!("{key:?} has unknown value type {other}"))),
        };
        Ok(Some(v))
    }
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
mod tests;
