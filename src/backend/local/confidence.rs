//! Token confidence for escalation: the mean probability of the top token at each step,
//! measured in a logits processor because 0.8.1's own logprobs are wrong under greedy sampling.

use std::sync::{Arc, Mutex};

use mistralrs::{CustomLogitsProcessor, Tensor};

use super::lock;

#[derive(Clone, Default)]
pub struct Confidence {
    steps: Arc<Mutex<(f64, usize)>>,
}

impl Confidence {
    /// The mean top-token probability so far, in 0..1; `None` before the first token.
    pub fn mean(&self) -> Option<f64> {
        let (sum, n) = *lock(&self.steps);
        (n > 0).then(|| sum / n as f64)
    }

    pub(super) fn processor(&self) -> Arc<dyn CustomLogitsProcessor> {
        let steps = self.steps.clone();
        Arc::new(
            move |logits: &Tensor, _ctx: &[u32]| -> mistralrs::Result<Tensor> {
                if let Ok(v) = logits
                    .flatten_all()
                    .and_then(|t| t.to_dtype(mistralrs::DType::F32))
                    .and_then(|t| t.to_vec1::<f32>())
                    && let Some(p) = top_probability(&v)
                {
                    let mut s = lock(&steps);
                    s.0 += p;
                    s.1 += 1;
                }
                Ok(logits.clone())
            },
        )
    }
}

/// Softmax probability of the largest logit, computed stably.
pub fn top_probability(logits: &[f32]) -> Option<f64> {
    let max = logits
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let denom: f64 = logits
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| ((x - max) as f64).exp())
        .sum();
    Some(1.0 / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_probability_is_a_softmax() {
        assert!((top_probability(&[0.0, 0.0]).unwrap() - 0.5).abs() < 1e-9);
        assert!(top_probability(&[10.0, 0.0, 0.0]).unwrap() > 0.99);
        assert_eq!(top_probability(&[f32::NEG_INFINITY]), None);
    }
}
