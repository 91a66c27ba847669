//! CapPa's task mixing (spec §8): every example independently uses Pa (parallel prediction,
//! all-`[MASK]` input, no mask) with probability `masked_pred_prob`, else Cap (shifted input,
//! causal mask), in one batch through the same kernels.
//!
//! The draws of step `t` come from a SplitMix64 stream seeded with `(seed, t)` — a counter-based
//! generator, so its whole state is the seed and the step, which checkpoints store — and are
//! the same on every backend. Token dropout's draws (which tokens of each image the decoder
//! sees, where a run asks for it) come from the same kind of stream.

use cappa::model::KeptTokens;
use cappa::rng::Rng;
use cappa::{Error, Mode, Result};
use serde::{Deserialize, Serialize};

/// A schedule of the Pa probability over a run (`[run.pa_schedule]` in a run file): `start` at
/// step 0, moving linearly to the model's `masked_pred_prob` at step `ramp_steps`, constant
/// after. Without one every step uses `masked_pred_prob`, as the paper's CapPa does.
///
/// ```
/// use cappa_trainer::mixing::PaSchedule;
/// let s = PaSchedule { start: 0.0, ramp_steps: 100 };
/// assert_eq!(s.probability(0.75, 0), 0.0);
/// assert_eq!(s.probability(0.75, 50), 0.375);
/// assert_eq!(s.probability(0.75, 1000), 0.75);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaSchedule {
    /// The Pa probability of the first step.
    pub start: f32,
    /// Steps over which it moves to the model's `masked_pred_prob`.
    pub ramp_steps: u64,
}

impl PaSchedule {
    /// Checks `start` is a probability, and that a model without a `[MASK]` token (Cap only,
    /// `masked_pred_prob` = 0) is not asked for Pa.
    pub fn validate(&self, masked_pred_prob: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&self.start) {
            return Err(Error::Config(format!(
                "pa_schedule.start must be in [0, 1], not {}",
                self.start
            )));
        }
        if self.start > 0.0 && masked_pred_prob == 0.0 {
            return Err(Error::Config(
                "pa_schedule.start > 0 needs a model with Pa (masked_pred_prob > 0: its [MASK] token)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The Pa probability of step `step` (0-based) when the model's is `end`.
    pub fn probability(&self, end: f32, step: u64) -> f32 {
        if step >= self.ramp_steps {
            return end;
        }
        let t = step as f32 / self.ramp_steps as f32;
        self.start + (end - self.start) * t
    }
}

/// The generator of step `step` of a run seeded with `seed`.
pub fn step_rng(seed: u64, step: u64, stream: u64) -> Rng {
    // Distinct, well-mixed seeds per (seed, step, stream): SplitMix64 of each part in turn.
    let mut r = Rng::new(seed);
    let a = r.next_u64() ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut r = Rng::new(a);
    Rng::new(r.next_u64() ^ stream.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
}

/// The mode of each of `batch` examples at step `step`: Pa where a uniform draw is below
/// `masked_pred_prob` (the reference's `u < masked_pred_prob`).
pub fn choose_modes(seed: u64, step: u64, batch: usize, masked_pred_prob: f32) -> Vec<Mode> {
    let mut rng = step_rng(seed, step, 1);
    (0..batch)
        .map(|_| {
            if rng.uniform() < masked_pred_prob {
                Mode::Pa
            } else {
                Mode::Cap
            }
        })
        .collect()
}

/// Token dropout of step `step` (`token_keep` in a run file): for each of `batch` images of
/// `tokens` encoded tokens, `round(keep * tokens)` of them (at least one) drawn without
/// replacement, in increasing order, for the decoder to see. `None` when `keep` is 1 (every
/// token, as in the paper).
pub fn choose_tokens(
    seed: u64,
    step: u64,
    batch: usize,
    tokens: usize,
    keep: f32,
) -> Option<KeptTokens> {
    let per_example = ((keep * tokens as f32).round() as usize).clamp(1, tokens);
    if keep >= 1.0 || per_example == tokens {
        return None;
    }
    let mut rng = step_rng(seed, step, 3);
    let mut order: Vec<u32> = (0..tokens as u32).collect();
    let mut index = Vec::with_capacity(batch * per_example);
    for _ in 0..batch {
        // A partial Fisher–Yates shuffle: the first `per_example` places are the draw.
        for i in 0..per_example {
            let j = i + (rng.next_u64() % (tokens - i) as u64) as usize;
            order.swap(i, j);
        }
        let start = index.len();
        index.extend_from_slice(&order[..per_example]);
        index[start..].sort_unstable();
    }
    Some(KeptTokens { per_example, index })
}

/// Checks `token_keep` is a fraction in (0, 1].
pub fn validate_token_keep(keep: f32) -> Result<()> {
    if keep > 0.0 && keep <= 1.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "token_keep must be in (0, 1] (the fraction of tokens the decoder sees), not {keep}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_about_the_right_fraction() {
        assert_eq!(choose_modes(3, 7, 64, 0.75), choose_modes(3, 7, 64, 0.75));
        assert_ne!(choose_modes(3, 7, 64, 0.75), choose_modes(3, 8, 64, 0.75));
        let pa: usize = (0..200)
            .map(|s| {
                choose_modes(1, s, 50, 0.75)
                    .iter()
                    .filter(|m| **m == Mode::Pa)
                    .count()
            })
            .sum();
        let frac = pa as f64 / 10_000.0;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
        assert!(choose_modes(1, 1, 20, 0.0).iter().all(|m| *m == Mode::Cap));
        assert!(choose_modes(1, 1, 20, 1.0).iter().all(|m| *m == Mode::Pa));
    }

    #[test]
    fn schedule_ramps_both_ways_and_is_checked() {
        let up = PaSchedule {
            start: 0.25,
            ramp_steps: 4,
        };
        let got: Vec<f32> = (0..6).map(|t| up.probability(0.75, t)).collect();
        assert_eq!(got, [0.25, 0.375, 0.5, 0.625, 0.75, 0.75]);
        let down = PaSchedule {
            start: 1.0,
            ramp_steps: 2,
        };
        assert_eq!(down.probability(0.5, 1), 0.75);
        let none = PaSchedule {
            start: 0.0,
            ramp_steps: 0,
        };
        assert_eq!(none.probability(0.75, 0), 0.75);
        assert!(up.validate(0.75).is_ok());
        assert!(up.validate(0.0).is_err(), "a Cap-only model has no [MASK]");
        for bad in [-0.1, 1.5, f32::NAN] {
            let s = PaSchedule {
                start: bad,
                ramp_steps: 1,
            };
            assert!(s.validate(0.75).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_draws_are_seeded_distinct_and_cover_every_token() {
        assert_eq!(choose_tokens(1, 2, 4, 64, 1.0), None);
        assert_eq!(
            choose_tokens(1, 2, 4, 3, 0.9),
            None,
            "rounds to every token"
        );
        let k = choose_tokens(1, 2, 8, 64, 0.5).unwrap();
        assert_eq!(k, choose_tokens(1, 2, 8, 64, 0.5).unwrap());
        assert_ne!(k, choose_tokens(1, 3, 8, 64, 0.5).unwrap());
        assert_eq!((k.per_example, k.index.len()), (32, 8 * 32));
        for row in k.index.chunks(32) {
            assert!(
                row.windows(2).all(|w| w[0] < w[1]),
                "distinct, sorted: {row:?}"
            );
            assert!(row.iter().all(|&t| t < 64));
        }
        assert_ne!(k.index[..32], k.index[32..64], "each example draws its own");
        assert_eq!(choose_tokens(1, 2, 2, 64, 0.001).unwrap().per_example, 1);
        // Over many draws every token is kept about half the time.
        let mut seen = [0usize; 16];
        for step in 0..400 {
            for &t in &choose_tokens(5, step, 4, 16, 0.5).unwrap().index {
                seen[t as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| (700..900).contains(&n)), "{seen:?}");
        assert!(validate_token_keep(0.5).is_ok() && validate_token_keep(1.0).is_ok());
        for bad in [0.0, -0.5, 1.01, f32::NAN] {
            assert!(validate_token_keep(bad).is_err(), "{bad}");
        }
    }
}
