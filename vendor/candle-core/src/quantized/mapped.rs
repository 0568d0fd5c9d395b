//! Quantized blocks read in place from a memory-mapped model file (tandem patch,
//! vendor/PATCHES.md). Loading a GGUF used to copy every tensor out of the mapping into a heap
//! `Vec`: the copy cost time at load, and the process then held the weights twice (the mapped
//! pages it had read, and the copy). Here a tensor keeps a reference to the mapping and
//! borrows its bytes; only a tensor that is written to (re-quantized in place) gets a copy.

use super::{k_quants::GgmlType, Blocks, GgmlDType};
use crate::Result;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

/// What keeps the mapped bytes alive (a `memmap2::Mmap`, for instance).
pub type Owner = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Checks that `owner[range]` holds whole, aligned blocks of `dtype`.
pub(crate) fn check(owner: &Owner, range: &Range<usize>, dtype: GgmlDType) -> Result<()> {
    let bytes = (**owner).as_ref();
    if range.end > bytes.len() || range.start > range.end {
        crate::bail!(
            "mapped tensor {range:?} is outside its {} bytes",
            bytes.len()
        )
    }
    let (size, align) = layout(dtype);
    let data = &bytes[range.clone()];
    if !data.len().is_multiple_of(size) {
        crate::bail!(
            "mapped {dtype:?} tensor of {} bytes is not whole blocks",
            data.len()
        )
    }
    if !(data.as_ptr() as usize).is_multiple_of(align) {
        crate::bail!("mapped {dtype:?} tensor is not aligned to {align} bytes")
    }
    Ok(())
}

fn layout(dtype: GgmlDType) -> (usize, usize) {
    use super::k_quants::*;
    use half::{bf16, f16};
    fn of<T>() -> (usize, usize) {
        (std::mem::size_of::<T>(), std::mem::align_of::<T>())
    }
    match dtype {
        GgmlDType::F32 => of::<f32>(),
        GgmlDType::F16 => of::<f16>(),
        GgmlDType::BF16 => of::<bf16>(),
        GgmlDType::Q4_0 => of::<BlockQ4_0>(),
        GgmlDType::Q4_1 => of::<BlockQ4_1>(),
        GgmlDType::Q5_0 => of::<BlockQ5_0>(),
        GgmlDType::Q5_1 => of::<BlockQ5_1>(),
        GgmlDType::Q8_0 => of::<BlockQ8_0>(),
        GgmlDType::Q8_1 => of::<BlockQ8_1>(),
        GgmlDType::Q2K => of::<BlockQ2K>(),
        GgmlDType::Q3K => of::<BlockQ3K>(),
        GgmlDType::Q4K => of::<BlockQ4K>(),
        GgmlDType::Q5K => of::<BlockQ5K>(),
        GgmlDType::Q6K => of::<BlockQ6K>(),
        GgmlDType::Q8K => of::<BlockQ8K>(),
    }
}

pub(crate) struct MappedBlocks<T> {
    owner: Owner,
    range: Range<usize>,
    /// Set once the blocks are written to; from then on they are read from here.
    owned: Option<Vec<T>>,
    _blocks: PhantomData<T>,
}

impl<T: GgmlType> MappedBlocks<T> {
    /// `owner[range]` must have passed `check` for `T`'s dtype.
    pub(crate) fn new(owner: Owner, range: Range<usize>) -> Self {
        Self {
            owner,
            range,
            owned: None,
            _blocks: PhantomData,
        }
    }

    fn mapped(&self) -> &[T] {
        let bytes = &(*self.owner).as_ref()[self.range.clone()];
        let len = bytes.len() / std::mem::size_of::<T>();
        // SAFETY: `check` verified the range is in bounds, whole blocks and aligned; the
        // block types are plain old data, and `owner` keeps the bytes alive and unchanged.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, len) }
    }
}

impl<T: GgmlType + Send + Sync> Blocks for MappedBlocks<T> {
    type T = T;

    fn blocks(&self) -> &[T] {
        match &self.owned {
            Some(v) => v,
            None => self.mapped(),
        }
    }

    fn blocks_mut(&mut self) -> &mut [T] {
        if self.owned.is_none() {
            self.owned = Some(self.mapped().to_vec());
        }
        self.owned.as_mut().expect("just set")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantized::{QStorage, QTensor};
    use crate::{Device, Tensor};

    #[test]
    fn a_mapped_tensor_reads_like_a_copied_one() -> Result<()> {
        let w = Tensor::arange(0f32, 64. * 4., &Device::Cpu)?.reshape((4, 64))?;
        let q = QTensor::quantize(&w, GgmlDType::Q8_0)?;
        let bytes = q.data()?.to_vec();
        // An offset like a tensor's place in a file (GGUF aligns tensors to 32 bytes).
        let mut file = vec![0u8; 32];
        file.extend_from_slice(&bytes);
        let owner: Owner = Arc::new(file);
        let mapped =
            QStorage::from_mapped(owner, 32..32 + bytes.len(), &Device::Cpu, GgmlDType::Q8_0)?;
        let mapped = QTensor::new(mapped, (4, 64))?;
        let (a, b) = (
            q.dequantize(&Device::Cpu)?,
            mapped.dequantize(&Device::Cpu)?,
        );
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn a_misaligned_or_partial_range_is_refused() {
        let owner: Owner = Arc::new(vec![0u8; 100]);
        assert!(check(&owner, &(1..35), GgmlDType::Q8_0).is_err());
        assert!(check(&owner, &(0..33), GgmlDType::Q8_0).is_err());
        assert!(check(&owner, &(0..200), GgmlDType::Q8_0).is_err());
        assert!(check(&owner, &(0..34), GgmlDType::Q8_0).is_ok());
    }
}
