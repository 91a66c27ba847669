//! The AdamW update of the trainer, elementwise and in place (see [`AdamW`] for the order of
//! operations, which is the reference's):
//! `g ← clip·g; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;`
//! `u ← lr·(m/c₁) / (√(v/c₂) + ε) + wd·param; param ← param − schedule·u`.

use alloc::format;

use super::{shape_error, Checked};
#[cfg(doc)]
use crate::backend::TrainBackend;
use crate::error::Result;
use crate::math;

/// The argument of one [`TrainBackend::adamw_update`] on one tensor: its hyperparameters, all
/// already resolved for this step and tensor by the caller (the trainer, whose `OptimConfig`
/// holds the run's settings), so every backend does the same f32 arithmetic.
///
/// The update follows the reference's order (big_vision `optax.make`, spec §2): the gradient is
/// scaled by `clip` (global-norm clipping), Adam's direction `m̂ / (√v̂ + eps)` is taken, scaled by
/// `lr`, `weight_decay · param` is added (zero for tensors that are not `*/kernel`), the sum is
/// scaled by `schedule`, and subtracted from the parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// Peak learning rate (multiplies the direction only).
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to `√v̂`.
    pub eps: f32,
    /// Decoupled weight decay of this tensor (0 for tensors that are not `*/kernel`).
    pub weight_decay: f32,
    /// Schedule value of this step (warm-up × cosine, in [0, 1]); scales direction and decay.
    pub schedule: f32,
    /// Gradient scale from global-norm clipping (1 when the norm is under the threshold).
    pub clip: f32,
    /// `1 − beta1^t` for the 1-based step `t` (Adam's bias correction).
    pub bias_correction1: f32,
    /// `1 − beta2^t`.
    pub bias_correction2: f32,
}

/// The sizes of one AdamW update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Elements of each of the four tensors.
    pub len: usize,
}

/// Checks the four tensors have one shape.
pub fn check(param: &[usize], m: &[usize], v: &[usize], grad: &[usize]) -> Result<Checked<Dims>> {
    if param != m || param != v || param != grad {
        return Err(shape_error(
            "adamw_update",
            format!("param {param:?}, m {m:?}, v {v:?} and grad {grad:?} must have one shape"),
        ));
    }
    Ok(Checked::new(Dims {
        len: crate::tensor::numel(param),
    }))
}

/// One element.
#[inline]
pub fn step(p: &mut f32, m: &mut f32, v: &mut f32, g: f32, op: &AdamW) {
    let g = g * op.clip;
    *m = op.beta1 * *m + (1.0 - op.beta1) * g;
    *v = op.beta2 * *v + (1.0 - op.beta2) * (g * g);
    let dir = (*m / op.bias_correction1) / (math::sqrt(*v / op.bias_correction2) + op.eps);
    let u = dir * op.lr + op.weight_decay * *p;
    *p -= op.schedule * u;
}

/// CPU reference, in place.
pub fn cpu(param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], op: &AdamW) {
    for (((p, m), v), &g) in param
        .iter_mut()
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(grad)
    {
        step(p, m, v, g, op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_by_hand() {
        let op = AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.5,
            schedule: 0.25,
            clip: 0.5,
            bias_correction1: 0.1,
            bias_correction2: 0.01,
        };
        let (mut p, mut m, mut v) = ([2.0f32], [0.0f32], [0.0f32]);
        cpu(&mut p, &mut m, &mut v, &[4.0], &op);
        // g = 2; m = 0.2; v = 0.04; direction = (0.2/0.1)/(sqrt(0.04/0.01)) = 1;
        // u = 1·0.1 + 0.5·2 = 1.1; p = 2 − 0.25·1.1.
        assert!((m[0] - 0.2).abs() < 1e-6 && (v[0] - 0.04).abs() < 1e-6);
        assert!((p[0] - (2.0 - 0.275)).abs() < 1e-6, "{}", p[0]);
        // Without decay the parameter moves by lr·schedule·direction only.
        let (mut p, mut m, mut v) = ([2.0f32], [0.0f32], [0.0f32]);
        cpu(
            &mut p,
            &mut m,
            &mut v,
            &[4.0],
            &AdamW {
                weight_decay: 0.0,
                ..op
            },
        );
        assert!((p[0] - (2.0 - 0.025)).abs() < 1e-6, "{}", p[0]);
        assert!(check(&[2], &[2], &[2], &[3]).is_err());
    }
}
