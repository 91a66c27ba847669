//! The optimizer: AdamW with the reference's conventions (spec §2) — global-norm clipping,
//! then Adam's direction, times the peak learning rate, plus decoupled weight decay on
//! `*/kernel` tensors only, all times the schedule (linear warm-up, then cosine to 0).

use cappa::layers::Grads;
use cappa::ops::adamw::AdamW;
use cappa::{Error, Model, Result, TrainBackend};
use serde::{Deserialize, Serialize};

/// Optimizer hyperparameters (defaults: the CapPa pretraining config's, with AdamW's usual
/// moments in place of its Adafactor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to `√v̂`.
    pub eps: f32,
    /// Decoupled weight decay of `*/kernel` tensors (applied as `wd · schedule · param`, not
    /// multiplied by the learning rate, as the reference).
    pub weight_decay: f32,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Clip the gradient to this global norm (0: no clipping).
    pub clip_norm: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
            warmup_steps: 0,
            clip_norm: 1.0,
        }
    }
}

impl OptimConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0
            && self.clip_norm.is_finite()
            && self.clip_norm >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!("bad optimizer settings: {self:?}")))
        }
    }

    /// The schedule at update `step` (0-based: the number of updates before this one) of
    /// `total` (big_vision `create_learning_rate_schedule` with base 1, cosine decay): a linear
    /// warm-up `min(1, step / warmup)`, times `½(1 + cos(π·progress))` with
    /// `progress = clip((step − warmup) / (total − warmup), 0, 1)`. Like the reference, the very
    /// first update of a warm-up is 0.
    pub fn schedule(&self, step: u64, total: u64) -> f32 {
        let warm = self.warmup_steps;
        let span = total.saturating_sub(warm).max(1) as f64;
        let progress = ((step as f64 - warm as f64) / span).clamp(0.0, 1.0);
        let mut s = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        if warm > 0 {
            s *= (step as f64 / warm as f64).min(1.0);
        }
        s as f32
    }
}

/// Whether AdamW's decoupled weight decay applies to the parameter `name`: the reference decays
/// exactly the tensors whose path ends in `/kernel` (big_vision `wd_mults` default `.*/kernel$`).
pub fn decays(name: &str) -> bool {
    name.ends_with("/kernel")
}

/// Adam's moments for every parameter of a model, and the number of updates done.
#[derive(Debug, Clone)]
pub struct AdamState<B: TrainBackend> {
    /// First moments, in parameter order ([`Model::params`]), each shaped as its parameter's
    /// tensor.
    pub m: Vec<B::Tensor>,
    /// Second moments, in parameter order.
    pub v: Vec<B::Tensor>,
    /// Updates done so far.
    pub step: u64,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Schedule value used.
    pub schedule: f32,
}

impl<B: TrainBackend> AdamState<B> {
    /// Zero moments for the parameters of `model`.
    pub fn new(model: &Model<B>) -> Result<Self> {
        let be = model.backend();
        let zeros = || {
            model
                .params()
                .iter()
                .map(|p| be.zeros(&be.shape(&p.tensor)))
                .collect::<Result<Vec<_>>>()
        };
        Ok(AdamState {
            m: zeros()?,
            v: zeros()?,
            step: 0,
        })
    }

    /// The global norm of `grads` over the parameters of `model` (one device round trip for all
    /// of them).
    pub fn grad_norm(model: &Model<B>, grads: &Grads<B>) -> Result<f32> {
        let be = model.backend();
        let gs = model
            .params()
            .into_iter()
            .map(|p| grads.of(p))
            .collect::<Result<Vec<_>>>()?;
        let sums = be.download(&be.sum_squares(&gs)?)?;
        // Added in f64, in parameter order, so every backend adds the same numbers the same way.
        Ok(sums.data().iter().map(|&s| s as f64).sum::<f64>().sqrt() as f32)
    }

    /// One AdamW update of every parameter of `model` with `grads` at schedule position
    /// `self.step` of `total_steps`.
    pub fn update(
        &mut self,
        cfg: &OptimConfig,
        model: &mut Model<B>,
        grads: &Grads<B>,
        total_steps: u64,
    ) -> Result<UpdateStats> {
        let grad_norm = Self::grad_norm(model, grads)?;
        if !grad_norm.is_finite() {
            return Err(Error::Backend(format!(
                "the gradient norm is {grad_norm} at step {}: training diverged",
                self.step
            )));
        }
        let clip = if cfg.clip_norm > 0.0 && grad_norm > cfg.clip_norm {
            cfg.clip_norm / grad_norm
        } else {
            1.0
        };
        let schedule = cfg.schedule(self.step, total_steps);
        let t = self.step as i32 + 1;
        let base = AdamW {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: 0.0,
            schedule,
            clip,
            bias_correction1: (1.0 - (cfg.beta1 as f64).powi(t)) as f32,
            bias_correction2: (1.0 - (cfg.beta2 as f64).powi(t)) as f32,
        };
        let mut moments = self.m.iter_mut().zip(&mut self.v);
        let mut result = Ok(());
        model.update_params(&mut |be, p| {
            let mut step = || -> Result<()> {
                let (m, v) = moments.next().ok_or_else(|| {
                    Error::InvalidInput(
                        "the optimizer state has fewer tensors than the model".into(),
                    )
                })?;
                let op = AdamW {
                    weight_decay: if decays(&p.name) {
                        cfg.weight_decay
                    } else {
                        0.0
                    },
                    ..base
                };
                let g = grads.of(p)?.clone();
                be.adamw_update(&mut p.tensor, m, v, &g, &op)
            };
            if result.is_ok() {
                result = step();
            }
        });
        result?;
        self.step += 1;
        Ok(UpdateStats {
            grad_norm,
            schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        let cfg = OptimConfig {
            warmup_steps: 10,
            ..OptimConfig::default()
        };
        assert_eq!(cfg.schedule(0, 110), 0.0);
        assert!((cfg.schedule(5, 110) - 0.5).abs() < 1e-6);
        assert!((cfg.schedule(10, 110) - 1.0).abs() < 1e-6);
        assert!((cfg.schedule(60, 110) - 0.5).abs() < 1e-6);
        assert!(cfg.schedule(110, 110).abs() < 1e-6);
        assert!(cfg.schedule(500, 110).abs() < 1e-6);
        let no_warmup = OptimConfig::default();
        assert_eq!(no_warmup.schedule(0, 100), 1.0);
    }
}
