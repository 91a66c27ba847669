//! Softmax cross-entropy per row with label smoothing, as the reference
//! (`big_vision.utils.weighted_softmax_xent` with `onehot(..., on=1-ls, off=ls/(V-1))`):
//! `loss = −[(1 − ls)·logp[t] + ls/(V − 1)·Σ_{c≠t} logp[c]]`.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::softmax::{log_softmax_row, log_sum_exp};
use super::{rows_and_last, shape_error, Checked};
use crate::error::{Error, Result};

/// The sizes of one cross-entropy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// Rows (one loss each).
    pub rows: usize,
    /// Classes (the logits' last axis).
    pub classes: usize,
    /// The losses' shape: the logits' without the last axis (the targets').
    pub out_shape: Vec<usize>,
}

/// Checks `targets` has `logits`' leading shape.
pub fn check(logits: &[usize], targets: &[usize]) -> Result<Checked<Dims>> {
    let lead = &logits[..logits.len().saturating_sub(1)];
    if logits.len() < 2 || lead != targets {
        return Err(shape_error(
            "cross_entropy",
            format!("logits {logits:?} need targets of shape {lead:?}, got {targets:?}"),
        ));
    }
    let (rows, classes) = rows_and_last(logits);
    Ok(Checked::new(Dims {
        rows,
        classes,
        out_shape: lead.to_vec(),
    }))
}

/// Checks every target is a class.
pub fn check_targets(targets: &[u32], classes: usize) -> Result<()> {
    match targets.iter().position(|&t| t as usize >= classes) {
        Some(index) => Err(Error::TokenOutOfRange {
            token: targets[index] as i64,
            index,
            limit: classes as u32,
        }),
        None => Ok(()),
    }
}

/// CPU reference: one loss per row, rows split over threads. Without label smoothing the loss
/// is `ln Σ exp(x) − x[t]`, the same number as `−logp[t]` without writing out the log-softmax.
pub fn cpu(logits: &[f32], shape: &[usize], targets: &[u32], ls: f32) -> Vec<f32> {
    let (rows, v) = rows_and_last(shape);
    let off = if v > 1 { ls / (v - 1) as f32 } else { 0.0 };
    let mut out = vec![0.0f32; rows];
    crate::threads::for_row_chunks(&mut out, 1, v, |first, chunk| {
        let mut lp = vec![0.0f32; if ls == 0.0 { 0 } else { v }];
        for (r, o) in (first..).zip(chunk.iter_mut()) {
            let (row, t) = (&logits[r * v..(r + 1) * v], targets[r] as usize);
            *o = if ls == 0.0 {
                log_sum_exp(row) - row[t]
            } else {
                log_softmax_row(row, &mut lp);
                let true_lp = lp[t];
                let others: f32 = lp.iter().sum::<f32>() - true_lp;
                -((1.0 - ls) * true_lp + off * others)
            };
        }
    });
    out
}
