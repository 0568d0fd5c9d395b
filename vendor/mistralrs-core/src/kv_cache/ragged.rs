//! Ragged decode batches (tandem patch): sequences of different lengths decode in one forward
//! pass, each row attending over its own KV cache, while the weight products are shared.
//!
//! Upstream's CPU decode batches only sequences of one length: the working cache is a single
//! batched tensor with one length, so requests of different lengths took turns, one step each,
//! and concurrent requests decoded no faster in total than one at a time. Decode is bound by
//! reading the weights, so sharing those reads across rows is where batching pays; attention
//! per row reads only that row's own cache, so the rows need no padding or mask, and each row
//! computes exactly what it computes alone.

use candle_core::{Result, Tensor};

use super::{is_working_cache, KvCache, SingleCache};
use crate::sequence::Sequence;

/// The per-row caches of a ragged decode step, kept by the pipeline's [`super::NormalCache`].
#[derive(Debug, Clone, Default)]
pub struct RaggedRows {
    /// Set by a model whose attention reads `rows` in a decode step (only such models get
    /// mixed-length batches from the scheduler).
    pub supported: bool,
    /// While a ragged batch runs: per layer, one cache per row, in batch order.
    pub rows: Option<Vec<Vec<KvCache>>>,
    /// The sequence ids of those rows.
    ids: Vec<usize>,
}

impl RaggedRows {
    /// Drop the rows: the next decode step is a normal one (or a prompt step).
    pub fn clear(&mut self) {
        self.rows = None;
        self.ids.clear();
    }

    /// Take these sequences' own caches as the rows of the next steps. A sequence's cache is
    /// written in place only when nothing else can read it: it is the working cache of the
    /// step that made it (a lone sequence's step, or the previous ragged step). Anything else,
    /// a cache restored from the prefix cache or a slice of a batched prompt step, is copied
    /// first, as upstream's normal path copies every cache into its working tensors.
    ///
    /// Returns false, leaving everything as it was, when a layer is not a plain KV cache.
    pub fn clone_in(&mut self, working: &mut [KvCache], seqs: &mut [&mut Sequence]) -> bool {
        let layers = working.len();
        let all_normal = seqs.iter().all(|seq| {
            let cache = seq.normal_cache_ref();
            cache.len() == layers
                && cache
                    .iter()
                    .all(|c| matches!(c, Some(KvCache::Normal { .. })))
        });
        if !self.supported || seqs.len() < 2 || !all_normal {
            return false;
        }
        let mut rows: Vec<Vec<KvCache>> = (0..layers).map(|_| Vec::new()).collect();
        let mut ids = Vec::with_capacity(seqs.len());
        for seq in seqs.iter_mut() {
            let id = *seq.id();
            let previous_row = self.ids.iter().position(|&x| x == id);
            let cache = seq.normal_cache();
            let private = is_working_cache(cache, working)
                || previous_row.is_some_and(|row| {
                    let prev: Vec<KvCache> = self.row_caches(row);
                    is_working_cache(cache, &prev)
                });
            for (layer, c) in cache.iter().enumerate() {
                let c = c.as_ref().expect("checked above");
                rows[layer].push(if private { c.clone() } else { private_copy(c) });
            }
            ids.push(id);
        }
        // the working cache may alias a row now; nothing reads it during a ragged step
        for layer in working.iter_mut() {
            layer.reset();
        }
        self.rows = Some(rows);
        self.ids = ids;
        true
    }

    /// Hand each sequence its row back. The rows stay: a following step over the same batch
    /// skips `clone_in` and appends to them again.
    pub fn clone_out(&self, seqs: &mut [&mut Sequence]) -> bool {
        let Some(rows) = &self.rows else {
            return false;
        };
        debug_assert_eq!(self.ids.len(), seqs.len());
        for (i, seq) in seqs.iter_mut().enumerate() {
            let cache = seq.normal_cache();
            for (layer, row) in rows.iter().enumerate() {
                cache[layer] = Some(row[i].clone());
            }
        }
        metrics::counter!("mistralrs_ragged_decode_steps_total").increment(1);
        metrics::counter!("mistralrs_ragged_decode_rows_total").increment(seqs.len() as u64);
        true
    }

    fn row_caches(&self, row: usize) -> Vec<KvCache> {
        self.rows
            .as_ref()
            .map(|rows| rows.iter().map(|layer| layer[row].clone()).collect())
            .unwrap_or_default()
    }
}

fn private_copy(cache: &KvCache) -> KvCache {
    fn copy(c: &SingleCache) -> SingleCache {
        let mut out = c.clone();
        out.all_data = c
            .all_data
            .as_ref()
            .map(|t| t.force_contiguous().expect("KV copy"));
        out
    }
    match cache {
        KvCache::Normal { k, v } => KvCache::Normal {
            k: copy(k),
            v: copy(v),
        },
        other => other.clone(),
    }
}

/// One decode step of attention over ragged rows: row `i` of `q`, `k`, `v` (each
/// `(batch, heads, 1, head_dim)`) appends to `rows[i]` and attends over it alone; the rows'
/// outputs are stacked back into a batch.
pub fn attend_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rows: &mut [KvCache],
    mut attend: impl FnMut(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let b_sz = q.dim(0)?;
    if rows.len() != b_sz || q.dim(2)? != 1 {
        candle_core::bail!(
            "ragged decode: {} rows for a batch of {b_sz} with {} query tokens",
            rows.len(),
            q.dim(2)?
        );
    }
    let mut ys = Vec::with_capacity(b_sz);
    for (i, row) in rows.iter_mut().enumerate() {
        // fresh offset-0 tensors, so each row reaches the kernels exactly as a lone sequence's
        let q_i = q.narrow(0, i, 1)?.force_contiguous()?;
        let k_i = k.narrow(0, i, 1)?.force_contiguous()?;
        let v_i = v.narrow(0, i, 1)?.force_contiguous()?;
        let (k_all, v_all) = row.append(&k_i, &v_i)?;
        ys.push(attend(&q_i, &k_all, &v_all)?);
    }
    Tensor::cat(&ys, 0)
}
