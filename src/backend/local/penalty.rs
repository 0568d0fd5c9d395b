//! A repetition penalty over the answer's own last `WINDOW` tokens, as llama.cpp applies it.
//! mistralrs 0.8.1 penalises every token of the context, the chat template and the user's own
//! words included, which pushes a small model away from the very words a question asks it to
//! repeat ("what is my favourite fruit?" stops getting "mango").

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mistralrs::{CustomLogitsProcessor, Tensor};

/// llama.cpp's default `repeat_last_n`.
pub const WINDOW: usize = 64;

/// One per request. Each call samples one token, so the calls so far say how long the answer
/// is: the context a call sees cannot, since after a prefix-cache hit the first call is shown
/// only the part of the prompt that was not cached.
pub fn processor(penalty: f32) -> Arc<dyn CustomLogitsProcessor> {
    let calls = AtomicUsize::new(0);
    Arc::new(
        move |logits: &Tensor, ctx: &[u32]| -> mistralrs::Result<Tensor> {
            let answered = calls.fetch_add(1, Ordering::Relaxed);
            let recent = answer_window(ctx, answered);
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

/// The last `WINDOW` tokens of the answer, which is the last `answered` tokens of `ctx`.
fn answer_window(ctx: &[u32], answered: usize) -> HashSet<u32> {
    let take = answered.min(WINDOW).min(ctx.len());
    ctx[ctx.len() - take..].iter().copied().collect()
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

    #[test]
    fn the_window_is_the_answer_whatever_part_of_the_prompt_is_shown() {
        // Nothing answered yet: nothing is penalised, even the prompt's own words.
        assert!(answer_window(&[5, 6, 7], 0).is_empty());
        // Two answered tokens at the end of the whole prompt.
        assert_eq!(answer_window(&[1, 2, 3, 8, 9], 2), HashSet::from([8, 9]));
        // A long answer: only the last WINDOW tokens.
        let ctx: Vec<u32> = (0..200).collect();
        let w = answer_window(&ctx, 150);
        assert_eq!(w.len(), WINDOW);
        assert!(w.contains(&199) && !w.contains(&(199 - WINDOW as u32)));
    }
}
