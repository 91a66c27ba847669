//! One module per op: its shape rules (checked once, shared by every backend) and its CPU
//! reference implementation, with tests beside them. Nothing here knows of the GPU: the WGSL
//! kernel of an op is `wgsl/<op>.wgsl` at the repository root and its launcher is in
//! `crate::gpu::kernels` (feature `gpu`). The trainer's backward ops have modules of their own
//! (`<op>_backward`, `sums`, `adamw`) beside their forwards, with kernels of the same names.
//!
//! An op's rules are a `check` function that returns the op's sizes wrapped in [`Checked`]; the
//! kernel methods of [`crate::Backend`] take that value, and only the `check` functions here can
//! make one, so no kernel runs on shapes its op's rules have not accepted (see
//! [`crate::backend`]).

pub mod add;
pub mod attention;
pub mod beam;
pub mod cross_entropy;
pub mod gather;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod packed;
pub mod patchify;
pub mod rows;
pub mod sample;
pub mod softmax;

// The trainer's ops (feature `train`).
#[cfg(feature = "train")]
pub mod adamw;
#[cfg(feature = "train")]
pub mod attention_backward;
#[cfg(feature = "train")]
pub mod cross_entropy_backward;
#[cfg(feature = "train")]
pub mod gather_backward;
#[cfg(feature = "train")]
pub mod gelu_backward;
#[cfg(feature = "train")]
pub mod layer_norm_backward;
#[cfg(feature = "train")]
pub mod sums;

use alloc::format;
use alloc::string::String;
use core::ops::Deref;

use crate::error::Error;

/// An op's sizes, accepted by its shape rules. Only the `check` functions of this module's op
/// modules construct one; it is read through `Deref` and never changed, so a backend's kernel
/// method, which takes one, runs only on checked shapes. Each op has its own sizes type (the
/// backward ops too), so one op's checked value cannot stand in for another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// Marks `sizes` as accepted by an op's rules (for the `check` functions of `ops`).
    pub(in crate::ops) fn new(sizes: T) -> Self {
        Checked(sizes)
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

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
#[cfg(all(test, feature = "train"))]
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
