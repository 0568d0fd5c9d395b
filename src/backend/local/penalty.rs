//! A repetition penalty over the answer's own last `WINDOW` tokens, as llama.cpp applies it.
//! mistralrs 0.8.1 penalises every token of the context, the chat template and the user's own
//! words included, which pushes a small model away from the very words a question asks it to
//! repeat ("what is my favourite fruit?" stops getting "mango").

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use mistralrs::{CustomLogitsProcessor, Tensor};

/// llama.cpp's default `repeat_last_n`.
pub const WINDOW: usize = 64;

/// One per request: the first call sees exactly the prompt, which marks where the answer begins.
pub fn processor(penalty: f32) -> Arc<dyn CustomLogitsProcessor> {
    let prompt_len = OnceLock::new();
    Arc::new(
        move |logits: &Tensor, ctx: &[u32]| -> mistralrs::Result<Tensor> {
            let start =
                (*prompt_len.get_or_init(|| ctx.len())).max(ctx.len().saturating_sub(WINDOW));
            let recent: HashSet<u32> = ctx.get(start..).unwrap_or(&[]).iter().copied().collect();
            if recent.is_empty() || penalty == 1.0 {
                return Ok(logits.clone());
            }
            let shape = logits.shape().clone();
            let mut v = logits
                .flatten_all()?
                .to_dtype(mistralrs::DType::F32)?
                .to_vec1::<f32>()?;
            apply(&mut v, &recent, penalty);
            Tensor::from_vec(v, shape, logits.device())?.to_dtype(logits.dtype())
        },
    )
}

/// Divides positive logits and multiplies negative ones, so a penalised token always loses.
pub fn apply(logits: &mut [f32], recent: &HashSet<u32>, penalty: f32) {
    for &t in recent {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalises_only_recent_tokens_and_keeps_sign_order() {
        let mut l = vec![2.0, -1.0, 3.0];
        apply(&mut l, &HashSet::from([0, 1, 9]), 2.0);
        assert_eq!(l, vec![1.0, -2.0, 3.0]);
    }
}
