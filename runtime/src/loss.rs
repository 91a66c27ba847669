//! The training loss, as the reference (`generative.py` + `utils.weighted_softmax_xent`):
//! softmax cross-entropy per position (with optional label smoothing), weight 0 on PAD targets,
//! per caption the weighted sum divided by its number of non-PAD targets, then the batch mean —
//! every caption counts the same whatever its length.

use alloc::vec::Vec;

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tokens;

/// A loss and its per-caption parts.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// Mean over the batch.
    pub mean: f32,
    /// One value per caption.
    pub per_example: Vec<f32>,
}

/// Per-position cross-entropy of `logits [B, L, V]` against `targets [B, L]`, downloaded.
pub fn token_losses<B: Backend>(
    be: &B,
    logits: &B::Tensor,
    targets: &Tokens,
    label_smoothing: f32,
) -> Result<Vec<f32>> {
    let ids = be.upload_ids(&[targets.batch(), targets.len()], targets.ids())?;
    let ce = be.cross_entropy(logits, &ids, label_smoothing)?;
    Ok(be.download(&ce)?.into_data())
}

/// The reference's loss weights: 1 where the target is not PAD (EOS counts), 0 at PAD.
pub fn loss_weights(targets: &Tokens, pad_id: u32) -> Vec<f32> {
    targets
        .ids()
        .iter()
        .map(|&t| if t != pad_id { 1.0 } else { 0.0 })
        .collect()
}

/// The reference loss of `logits [B, L, V]` for `targets [B, L]`.
pub fn caption_loss<B: Backend>(
    be: &B,
    logits: &B::Tensor,
    targets: &Tokens,
    pad_id: u32,
    label_smoothing: f32,
) -> Result<LossOutput> {
    let ce = token_losses(be, logits, targets, label_smoothing)?;
    let w = loss_weights(targets, pad_id);
    let l = targets.len();
    let per_example: Vec<f32> = (0..targets.batch())
        .map(|b| {
            let rows = b * l..(b + 1) * l;
            let sum: f32 = ce[rows.clone()]
                .iter()
                .zip(&w[rows.clone()])
                .map(|(c, w)| c * w)
                .sum();
            sum / w[rows].iter().sum::<f32>().max(2e-38)
        })
        .collect();
    let mean = per_example.iter().sum::<f32>() / per_example.len() as f32;
    Ok(LossOutput { mean, per_example })
}
