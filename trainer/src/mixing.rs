//! CapPa's task mixing (spec §8): every example independently uses Pa (parallel prediction,
//! all-`[MASK]` input, no mask) with probability `masked_pred_prob`, else Cap (shifted input,
//! causal mask), in one batch through the same kernels.
//!
//! The draws of step `t` come from a SplitMix64 stream seeded with `(seed, t)` — a counter-based
//! generator, so its whole state is the seed and the step, which checkpoints store — and are
//! the same on every backend.

use cappa::rng::Rng;
use cappa::Mode;

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
}
