//! Backward of [`super::layer_norm`] (Flax's LayerNorm with the `E[x²] − E[x]²` variance).
//!
//! With `x̂ = (x − μ)·r`, `r = (var + eps)^(-1/2)` and `g = dy·scale` per row of width `D`:
//! `dx = r·(g − mean(g) − x̂·mean(g·x̂))`; where the variance was clamped to 0 it is a constant,
//! so the last term drops. `dscale = Σ_rows dy·x̂`, `dbias = Σ_rows dy`, summed in row order.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;
use crate::math;

/// The sizes of one LayerNorm backward (those of its forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// The forward's sizes.
    pub forward: super::layer_norm::Dims,
}

/// Checks `x`, `scale` and `dy` (the shape of `x`).
pub fn check(x: &[usize], scale: &[usize], dy: &[usize]) -> Result<Checked<Dims>> {
    let forward = *super::layer_norm::check(x, scale, None)?;
    if x != dy {
        return Err(shape_error(
            "layer_norm_backward",
            format!("dy {dy:?} must have the shape of x {x:?}"),
        ));
    }
    Ok(Checked::new(Dims { forward }))
}

/// Mean, `1/√(var + eps)` and whether the variance was clamped at 0, exactly as the forward.
pub fn row_stats(row: &[f32], eps: f32) -> (f32, f32, bool) {
    let d = row.len() as f32;
    let (mut s, mut s2) = (0.0f32, 0.0f32);
    for &v in row {
        s += v;
        s2 += v * v;
    }
    let mean = s / d;
    let raw = s2 / d - mean * mean;
    (mean, 1.0 / math::sqrt(raw.max(0.0) + eps), raw < 0.0)
}

/// CPU reference: `(dx, dscale, dbias)`.
pub fn cpu(x: &[f32], scale: &[f32], dy: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = scale.len();
    let mut dx = vec![0.0f32; x.len()];
    let mut dscale = vec![0.0f32; d];
    let mut dbias = vec![0.0f32; d];
    if d == 0 {
        return (dx, dscale, dbias);
    }
    for ((row, g_row), dx_row) in x
        .chunks_exact(d)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let (mean, inv, clamped) = row_stats(row, eps);
        let (mut sg, mut sgx) = (0.0f32, 0.0f32);
        for j in 0..d {
            let xh = (row[j] - mean) * inv;
            let g = g_row[j] * scale[j];
            sg += g;
            sgx += g * xh;
            dscale[j] += g_row[j] * xh;
            dbias[j] += g_row[j];
        }
        let (mg, mgx) = (sg / d as f32, if clamped { 0.0 } else { sgx / d as f32 });
        for j in 0..d {
            let xh = (row[j] - mean) * inv;
            dx_row[j] = inv * (g_row[j] * scale[j] - mg - xh * mgx);
        }
    }
    (dx, dscale, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fd;

    #[test]
    fn matches_finite_differences() {
        for (rows, d, clamp) in [(3, 7, false), (2, 16, false), (2, 5, true)] {
            let mut x = fd::normal(rows * d, 1);
            if clamp {
                // A constant row: the variance is (about) zero and may be clamped.
                x[..d].fill(0.75);
            }
            let scale = fd::normal(d, 2);
            let bias = fd::normal(d, 3);
            let w = fd::normal(rows * d, 4);
            // A large eps keeps the constant row's normalisation smooth under the differences.
            let eps = if clamp { 1e-1 } else { 1e-6 };
            let (dx, ds, db) = cpu(&x, &scale, &w, eps);
            let f = |x: &[f32], s: &[f32], b: &[f32]| {
                fd::dot(&w, &crate::ops::layer_norm::cpu(x, s, Some(b), eps))
            };
            fd::check("dx", &x, &dx, 1e-2, 2e-3, |x| f(x, &scale, &bias));
            fd::check("dscale", &scale, &ds, 1e-2, 2e-3, |s| f(&x, s, &bias));
            fd::check("dbias", &bias, &db, 1e-2, 2e-3, |b| f(&x, &scale, b));
        }
    }
}
