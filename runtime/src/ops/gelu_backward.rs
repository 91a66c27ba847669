//! Backward of [`super::gelu`]: `dx = dy · gelu'(x)` with, for `t = tanh(c·(x + 0.044715·x³))`,
//! `gelu'(x) = ½(1 + t) + ½·x·(1 − t²)·c·(1 + 3·0.044715·x²)`, `c = √(2/π)`.

use alloc::format;
use alloc::vec::Vec;

use super::matmul::Gemm;
use super::{shape_error, Checked};
use crate::error::Result;
use crate::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The derivative of the tanh-GELU at `x`.
#[inline]
pub fn gelu_grad(x: f32) -> f32 {
    let t = math::tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
}

/// [`gelu_grad`] from one vectorisable exponential instead of a tanh (5-10× faster over a
/// slice): with `e = exp(−2u)` and `σ = 1/(1 + e)`, `½(1 + t) = σ` and `½(1 − t²) = 2σ(1 − σ)`.
/// Within 1e-6 of the exact derivative, as [`gelu_grad`].
#[inline]
pub fn gelu_grad_vec(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    let e = math::exp_vec(-2.0 * u);
    let s = 1.0 / (1.0 + e);
    // 1 − σ as e·σ, without cancellation; e = ∞ gives NaN there, whose minimum with 1 is 1.
    let r = (e * s).min(1.0);
    s + 2.0 * x * s * r * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
}

/// The sizes of one GELU backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Elements.
    pub len: usize,
}

/// Checks `x` and `dy` have one shape.
pub fn check(x: &[usize], dy: &[usize]) -> Result<Checked<Dims>> {
    if x != dy {
        return Err(shape_error(
            "gelu_backward",
            format!("x {x:?} and dy {dy:?} differ"),
        ));
    }
    Ok(Checked::new(Dims {
        len: crate::tensor::numel(x),
    }))
}

/// CPU reference: with the plain GEMM (the exact oracle) through [`gelu_grad`], with the fast one
/// through [`gelu_grad_vec`] on every thread.
pub fn cpu(x: &[f32], dy: &[f32], gemm: Gemm) -> Vec<f32> {
    let mut out = dy.to_vec();
    match gemm {
        Gemm::Blocked => {
            for (g, &x) in out.iter_mut().zip(x) {
                *g *= gelu_grad(x);
            }
        }
        #[cfg(feature = "std")]
        Gemm::Fast => crate::threads::for_row_chunks(&mut out, 1, 8, |first, chunk| {
            for (g, &x) in chunk.iter_mut().zip(&x[first..]) {
                *g *= gelu_grad_vec(x);
            }
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fd;

    #[test]
    fn matches_finite_differences() {
        let mut x = fd::normal(64, 9);
        x.extend([0.0, 4.0, -4.0, 9.0, -9.0]);
        let w = fd::normal(x.len(), 10);
        let dx = cpu(&x, &w, Gemm::Blocked);
        fd::check("gelu", &x, &dx, 1e-2, 1e-3, |x| {
            let mut y = x.to_vec();
            crate::ops::gelu::cpu(&mut y);
            fd::dot(&w, &y)
        });
    }

    #[test]
    fn the_vectorised_form_agrees() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let xd = x as f64;
            let c = (2.0 / core::f64::consts::PI).sqrt();
            let t = libm::tanh(c * (xd + 0.044715 * xd * xd * xd));
            let want = 0.5 * (1.0 + t) + 0.5 * xd * (1.0 - t * t) * c * (1.0 + 0.134145 * xd * xd);
            for (form, got) in [("tanh", gelu_grad(x)), ("exp", gelu_grad_vec(x))] {
                let err = (got as f64 - want).abs();
                assert!(err <= 1e-6, "{form} gelu'({x}) = {got}, want {want}");
            }
            x += 0.0037;
        }
        for x in [-1e4, 1e4] {
            assert!(gelu_grad_vec(x).is_finite(), "gelu'({x})");
        }
    }
}
