//! LayerNorm as Flax's default: statistics over the last axis in f32, variance
//! `max(0, E[x²] − E[x]²)`, `y = (x − μ)·rsqrt(var + eps)·scale (+ bias)`.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{rows_and_last, shape_error, Checked};
use crate::error::Result;
use crate::lanes::sum_lanes;
use crate::math;

/// The sizes of one LayerNorm: `rows` rows of `d` features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Rows (every axis of `x` but the last).
    pub rows: usize,
    /// Features (the last axis).
    pub d: usize,
}

/// Checks `scale` and `bias` have the width of `x`'s last axis.
pub fn check(x: &[usize], scale: &[usize], bias: Option<&[usize]>) -> Result<Checked<Dims>> {
    let (rows, d) = rows_and_last(x);
    if scale != [d] || bias.is_some_and(|b| b != [d]) {
        return Err(shape_error(
            "layer_norm",
            format!("x {x:?} needs scale and bias of shape [{d}], got {scale:?} and {bias:?}"),
        ));
    }
    Ok(Checked::new(Dims { rows, d }))
}

/// CPU reference; rows split over threads, each row's sums in vectorised lanes.
pub fn cpu(x: &[f32], scale: &[f32], bias: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let d = scale.len();
    let mut out = vec![0.0f32; x.len()];
    if d == 0 {
        return out;
    }
    crate::threads::for_row_chunks(&mut out, d, 4 * d, |first, chunk| {
        for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
            let row = &x[(first + r) * d..][..d];
            let mean = sum_lanes(row, |v| v) / d as f32;
            let var = (sum_lanes(row, |v| v * v) / d as f32 - mean * mean).max(0.0);
            let inv = 1.0 / math::sqrt(var + eps);
            for ((o, &v), &g) in o.iter_mut().zip(row).zip(scale) {
                *o = (v - mean) * inv * g;
            }
            if let Some(bias) = bias {
                for (o, &b) in o.iter_mut().zip(bias) {
                    *o += b;
                }
            }
        }
    });
    out
}
