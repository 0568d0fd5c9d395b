//! Builds the mistralrs engine for one local GGUF file: CPU, no tokens, tandem's dtype, and the
//! scheduler and prefix-cache sizes tandem's turns need.

use mistralrs::{Device, GgufModelBuilder, Model, ModelDType, TokenSource};

use super::LocalOptions;
use crate::config::LocalDType;

/// Finished conversations whose KV the engine keeps, so a follow-up turn prefills only its new
/// tokens (the chat screen's conversation and one other). Each costs the KV of its context
/// (f16 on a CPU: ~23 KB a token for SmolLM2-135M); the carried engine evicts beyond this.
pub const PREFIX_CACHE_SEQS: usize = 2;

/// Sequences decoded in one batch; more requests wait in the scheduler's queue.
pub(crate) const MAX_SEQS: usize = 4;

/// Malloc arenas glibc may create for this process (its default is eight per core). The engine's
/// threads each allocate KV- and activation-sized blocks; with an arena per thread, a block
/// freed by one thread cannot serve the next allocation of another, and peak RSS over a
/// 1,500-token chat measured ~22 MB higher (docs/local-perf.md). Two keep most of that memory
/// shared without making the threads queue on one lock.
const MALLOC_ARENAS: i32 = 2;

/// Applies [`MALLOC_ARENAS`]; called before the engine's threads start, so arenas they would
/// create count against it.
pub(super) fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

pub(super) async fn build(dir: &str, file: &str, opts: &LocalOptions) -> anyhow::Result<Model> {
    // `Auto` probes BF16 then F16 with a test matmul, which candle's CPU backend passes, so
    // activations would run in F16 on a CPU with no F16 arithmetic.
    let dtype = match opts.dtype {
        LocalDType::F32 => ModelDType::F32,
        LocalDType::Auto => ModelDType::Auto,
    };
    GgufModelBuilder::new(dir, vec![file])
        .with_token_source(TokenSource::None)
        .with_device(Device::Cpu)
        .with_dtype(dtype)
        .with_max_num_seqs(MAX_SEQS)
        .with_prefix_cache_n((opts.prefix_cache > 0).then_some(opts.prefix_cache))
        .build()
        .await
}
