//! Zero-shot classification by scoring, as the reference (`predict_fn_score`): each candidate
//! caption's score for an image is the sum of its tokens' log-probabilities in Cap mode over
//! non-PAD positions (EOS included), not normalised by length. Higher is better.

use alloc::vec;
use alloc::vec::Vec;

use crate::backend::Backend;
use crate::error::Result;
use crate::loss::token_losses;
use crate::model::{Mode, Model};
use crate::tensor::{HostTensor, Tokens};

impl<B: Backend> Model<B> {
    /// Scores `[B, K]` of `K` candidate captions (`[K, L]`, content + EOS + PAD) for every image
    /// of `encoded [B, patches, E]`.
    pub fn score(&self, encoded: &B::Tensor, candidates: &Tokens) -> Result<HostTensor> {
        let batch = self.check_encoded(encoded, None)?;
        self.check_targets(candidates)?;
        let (k, l) = (candidates.batch(), candidates.len());
        let pad = self.config().pad_id;
        let mut scores = vec![0.0f32; batch * k];
        for c in 0..k {
            let row = candidates.row(c);
            let targets = Tokens::new(row.repeat(batch), batch, l)?;
            let logits = self.logits(encoded, &targets, Mode::Cap)?;
            let nll = token_losses(self.backend(), &logits, &targets, 0.0)?;
            for b in 0..batch {
                let s: f32 = row
                    .iter()
                    .zip(&nll[b * l..(b + 1) * l])
                    .filter(|(&t, _)| t != pad)
                    .map(|(_, &v)| v)
                    .sum();
                scores[b * k + c] = -s;
            }
        }
        HostTensor::new(&[batch, k], scores)
    }

    /// Softmax over candidates of [`Model::score`]'s scores, per image.
    pub fn probabilities(scores: &HostTensor) -> Vec<f32> {
        let k = *scores.shape().last().unwrap_or(&1);
        crate::ops::softmax::cpu_log_softmax(scores.data(), k)
            .into_iter()
            .map(crate::math::exp)
            .collect()
    }
}
