//! One module per op: its shape rules (checked once, shared by every backend) and its CPU
//! reference implementation, with tests beside them. The WGSL kernel of an op lives in
//! `wgsl/<op>.wgsl` at the repository root. The trainer's backward ops have modules of their own
//! (`<op>_backward`, `sums`, `adamw`) beside their forwards, with kernels of the same names.

pub mod adamw;
pub mod add;
pub mod attention;
pub mod attention_backward;
pub mod beam;
pub mod cross_entropy;
pub mod cross_entropy_backward;
pub mod gather;
pub mod gather_backward;
pub mod gelu;
pub mod gelu_backward;
pub mod layer_norm;
pub mod layer_norm_backward;
pub mod matmul;
pub mod patchify;
pub mod rows;
pub mod sample;
pub mod softmax;
pub mod sums;

use alloc::format;
use alloc::string::String;

use crate::error::Error;

/// A shape error for op `op`.
pub(crate) fn shape_error(op: &str, msg: String) -> Error {
    Error::InvalidInput(format!("{op}: {msg}"))
}

/// Splits `[.., last]` into (rows, last).
pub(crate) fn rows_and_last(shape: &[usize]) -> (usize, usize) {
    let last = *shape.last().unwrap_or(&1);
    let rows = shape[..shape.len().saturating_sub(1)].iter().product();
    (rows, last)
}

/// Finite-difference checks of the backward ops' CPU references.
#[cfg(test)]
pub(crate) mod fd {
    use alloc::vec::Vec;

    use crate::rng::Rng;

    /// `n` standard normal values from `seed`.
    pub fn normal(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.normal()).collect()
    }

    /// `Σ w·y` in f64: a scalar objective whose gradient with respect to `y` is `w`.
    pub fn dot(w: &[f32], y: &[f32]) -> f64 {
        w.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    /// Asserts `grad` is the gradient of `f` at `x`: every element against a central difference
    /// with step `h`, within `tol` relative to the largest gradient magnitude (plus `tol`).
    pub fn check(what: &str, x: &[f32], grad: &[f32], h: f32, tol: f64, f: impl Fn(&[f32]) -> f64) {
        assert_eq!(x.len(), grad.len(), "{what}: gradient length");
        let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs() as f64));
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            xp[i] = x[i] + h;
            let (hi, lp) = (xp[i], f(&xp));
            xp[i] = x[i] - h;
            let (lo, lm) = (xp[i], f(&xp));
            xp[i] = x[i];
            let numeric = (lp - lm) / (hi as f64 - lo as f64);
            let err = (numeric - grad[i] as f64).abs();
            assert!(
                err <= tol * (1.0 + scale),
                "{what}: element {i}: analytic {} vs numeric {numeric} (|diff| {err:e}, scale {scale:e})",
                grad[i]
            );
        }
    }
}
