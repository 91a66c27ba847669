//! Drawing one token per row of logits `[N, V]` (or `[N, 1, V]`), with temperature, top-k and
//! top-p (nucleus) filtering, from a counter-based random number so that a GPU kernel can draw
//! exactly the same token without any state. Output: ids of the logits' shape without its last
//! axis (`[N]` or `[N, 1]`).
//!
//! Semantics, per row `x` of width `V` (every value `f32`, every sum accumulated in `f32` in
//! increasing token index, one term at a time):
//!
//! 1. `temperature == 0`: the argmax of `x` (first maximum; NaN never wins). Nothing else applies.
//! 2. `z_i = x_i / temperature`, with a NaN `x_i` counted as `−∞`.
//! 3. If `1 ≤ top_k < V`: keep the tokens with `z_i ≥ t_k`, where `t_k` is the `top_k`-th largest
//!    value of `z` (duplicates counted: the largest `t` among the `z` with
//!    `#{j : z_j ≥ t} ≥ top_k`). Ties at `t_k` are all kept. Otherwise every token is kept.
//! 4. `m = max z`. If `m` is not finite (every `z` is `−∞`, or some `z` is `+∞`), the result is
//!    the first token with `z_i == m`. Otherwise `p_i = exp(z_i − m)` for kept tokens (so the
//!    largest `p` is exactly 1), and `S = Σ_kept p_i`.
//! 5. If `0 < top_p < 1`: with `mass(t) = Σ_{kept j : p_j ≥ t} p_j`, let `t*` be the largest
//!    kept `p` value with `mass(t*) ≥ top_p · S` (one `f32` product). Keep only the kept tokens
//!    with `p_i ≥ t*` (the nucleus; ties at `t*` kept). `t*` always exists: `mass` of the
//!    smallest kept `p` is `S`.
//! 6. `u = `[`uniform`]`(seed, row, step)` in `[0, 1)`; `target = u · S'` with `S'` the sum of
//!    the kept `p_i`; walk the kept tokens in increasing index accumulating `acc += p_i`, and
//!    pick the first token with `acc > target`. If rounding leaves none, pick the last (highest
//!    index) kept token.
//!
//! `row` is the row's index in the logits (`0..N`), so the rows of one call draw independent
//! numbers; `step` is the caller's counter (the decoding position).

use alloc::format;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::backend::Sampling;
use crate::error::{Error, Result};
use crate::math;

/// The PCG output hash (`pcg-rxs-m-xs`, 32 bits) of one word, with wrapping `u32` arithmetic
/// only, so that WGSL (which has no 64-bit integers) computes the same bits.
#[inline]
pub fn pcg(x: u32) -> u32 {
    let s = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// The random number of `(seed, row, step)`, uniform in `[0, 1)` on a grid of `2⁻²⁴`:
/// `h = pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ row) ^ step)`, `u = (h >> 8) / 2²⁴`, where
/// `seed_lo`/`seed_hi` are the low/high 32 bits of `seed`. The only source of randomness of
/// sampling: the same inputs give the same number on every backend and platform.
#[inline]
pub fn uniform(seed: u64, row: u32, step: u32) -> f32 {
    let h = pcg(pcg(pcg(pcg(seed as u32) ^ (seed >> 32) as u32) ^ row) ^ step);
    (h >> 8) as f32 / 16_777_216.0
}

/// Checks the options: `temperature` finite and `≥ 0`, `top_p` in `(0, 1]`.
pub fn check_op(op: &Sampling) -> Result<()> {
    if !(op.temperature.is_finite() && op.temperature >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "sampling temperature {} must be finite and >= 0",
            op.temperature
        )));
    }
    if !(op.top_p > 0.0 && op.top_p <= 1.0) {
        return Err(Error::InvalidInput(format!(
            "sampling top_p {} must be in (0, 1]",
            op.top_p
        )));
    }
    Ok(())
}

/// The sizes and options of one sampling call.
#[derive(Debug, Clone, PartialEq)]
pub struct Dims {
    /// Rows (`N`).
    pub rows: usize,
    /// Classes (`V`).
    pub vocab: usize,
    /// The ids' shape (`[N]` or `[N, 1]`).
    pub out_shape: Vec<usize>,
    /// The options, checked by [`check_op`].
    pub sampling: Sampling,
}

/// Checks the logits are `[N, V]` or `[N, 1, V]` with `N, V ≥ 1` and `N` rows addressable by a
/// `u32`, and the options ([`check_op`]).
pub fn check(logits: &[usize], sampling: &Sampling) -> Result<Checked<Dims>> {
    let ok = match logits {
        [n, v] | [n, 1, v] => *n > 0 && *v > 0 && *n as u64 <= u32::MAX as u64 + 1,
        _ => false,
    };
    if !ok {
        return Err(shape_error(
            "sample",
            format!("logits must be [N, V] or [N, 1, V] with N, V >= 1, got {logits:?}"),
        ));
    }
    check_op(sampling)?;
    Ok(Checked::new(Dims {
        rows: logits[0],
        vocab: logits[logits.len() - 1],
        out_shape: logits[..logits.len() - 1].to_vec(),
        sampling: *sampling,
    }))
}

/// CPU reference: one token per row of width `v` (options already checked).
pub fn cpu(logits: &[f32], v: usize, op: &Sampling, seed: u64, step: u32) -> Vec<u32> {
    let mut scratch = Scratch::default();
    logits
        .chunks_exact(v)
        .enumerate()
        .map(|(row, x)| sample_row(x, op, uniform(seed, row as u32, step), &mut scratch))
        .collect()
}

/// Buffers reused across rows.
#[derive(Default)]
struct Scratch {
    z: Vec<f32>,
    p: Vec<f32>,
    sorted: Vec<f32>,
}

/// Σ of `p_i` over kept tokens with `p_i ≥ t`, in increasing index (`kept` = `p_i ≥ 0`; filtered
/// tokens hold `−1`).
fn mass(p: &[f32], t: f32) -> f32 {
    let mut s = 0.0f32;
    for &pi in p {
        if pi >= 0.0 && pi >= t {
            s += pi;
        }
    }
    s
}

/// Steps 1–6 of the module documentation for one row, given its uniform number `u`.
fn sample_row(x: &[f32], op: &Sampling, u: f32, sc: &mut Scratch) -> u32 {
    let v = x.len();
    if op.temperature == 0.0 {
        return super::softmax::cpu_argmax(x, v)[0];
    }
    // Step 2.
    sc.z.clear();
    sc.z.extend(x.iter().map(|&xi| match xi.is_nan() {
        true => f32::NEG_INFINITY,
        false => xi / op.temperature,
    }));
    let z = &sc.z;
    // Step 3: the k-th largest value (order statistics; ties counted).
    let t_k = if op.top_k >= 1 && op.top_k < v {
        sc.sorted.clear();
        sc.sorted.extend_from_slice(z);
        let (_, kth, _) = sc
            .sorted
            .select_nth_unstable_by(op.top_k - 1, |a, b| b.total_cmp(a));
        *kth
    } else {
        f32::NEG_INFINITY
    };
    // Step 4.
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return z.iter().position(|&zi| zi == m).unwrap_or(0) as u32;
    }
    // Filtered tokens are marked with −1 (every real weight is in [0, 1]).
    sc.p.clear();
    sc.p.extend(z.iter().map(|&zi| match zi >= t_k {
        true => math::exp(zi - m),
        false => -1.0,
    }));
    // Step 5: binary search over the distinct kept weights, largest first; `mass` only grows
    // as the threshold falls, so the kept-or-not answer is monotone.
    if op.top_p > 0.0 && op.top_p < 1.0 {
        let need = op.top_p * mass(&sc.p, 0.0);
        sc.sorted.clear();
        sc.sorted
            .extend(sc.p.iter().copied().filter(|&pi| pi >= 0.0));
        sc.sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        sc.sorted.dedup();
        // First index (in descending order) whose mass reaches `need`; the last one always does.
        let (mut lo, mut hi) = (0, sc.sorted.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if mass(&sc.p, sc.sorted[mid]) >= need {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let t = sc.sorted[lo];
        for pi in &mut sc.p {
            if *pi < t {
                *pi = -1.0;
            }
        }
    }
    // Step 6.
    let target = u * mass(&sc.p, 0.0);
    let mut acc = 0.0f32;
    let mut last = 0;
    for (i, &pi) in sc.p.iter().enumerate() {
        if pi < 0.0 {
            continue;
        }
        acc += pi;
        if acc > target {
            return i as u32;
        }
        last = i;
    }
    last as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn op(temperature: f32, top_k: usize, top_p: f32) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
        }
    }

    #[test]
    fn hash_known_values() {
        // Computed independently (Python, 32-bit masked arithmetic).
        assert_eq!(pcg(0), 129_708_002);
        assert_eq!(pcg(1), 2_831_084_092);
        assert_eq!(pcg(u32::MAX), 3_861_530_882);
        assert_eq!(pcg(123_456_789), 4_272_394_698);
        assert_eq!(uniform(0, 0, 0), 9_253_448.0 / 16_777_216.0);
        assert_eq!(uniform(1, 0, 0), 2_169_020.0 / 16_777_216.0);
        assert_eq!(uniform(0, 1, 0), 2_099_426.0 / 16_777_216.0);
        assert_eq!(uniform(0, 0, 1), 83_003.0 / 16_777_216.0);
        assert_eq!(
            uniform(0x1234_5678_9abc_def0, 7, 42),
            9_268_813.0 / 16_777_216.0
        );
        assert_eq!(
            uniform(u64::MAX, u32::MAX, u32::MAX),
            7_941_414.0 / 16_777_216.0
        );
    }

    /// The row drawn when `u` takes a given value (bypasses the hash).
    fn draw(x: &[f32], o: Sampling, u: f32) -> u32 {
        sample_row(x, &o, u, &mut Scratch::default())
    }

    #[test]
    fn temperature_zero_is_argmax() {
        assert_eq!(draw(&[1.0, 3.0, 3.0, f32::NAN], op(0.0, 0, 1.0), 0.99), 1);
    }

    #[test]
    fn walk_is_in_index_order_over_kept_tokens() {
        // z = ln(1, 2, 1) + c: p = (0.5, 1, 0.5), S = 2.
        let x = [0.5f32.ln(), 0.0, 0.5f32.ln()];
        let o = op(1.0, 0, 1.0);
        assert_eq!(draw(&x, o, 0.0), 0);
        assert_eq!(draw(&x, o, 0.24), 0);
        assert_eq!(draw(&x, o, 0.26), 1);
        assert_eq!(draw(&x, o, 0.74), 1);
        assert_eq!(draw(&x, o, 0.76), 2);
        // `acc > target` never holds when target rounds up to S: the last kept token.
        assert_eq!(draw(&x, o, 1.0), 2);
    }

    #[test]
    fn top_k_keeps_ties_at_the_threshold() {
        let x = [1.0, 3.0, 2.0, 3.0, 2.0];
        // k = 1: both 3s. Their weights are equal, so u < 0.5 picks index 1, else index 3.
        assert_eq!(draw(&x, op(1.0, 1, 1.0), 0.49), 1);
        assert_eq!(draw(&x, op(1.0, 1, 1.0), 0.51), 3);
        // k = 3: the third largest is 2, so both 2s are kept too; index 0 never appears.
        for i in 0..100 {
            let t = draw(&x, op(1.0, 3, 1.0), i as f32 / 100.0);
            assert!(t != 0, "u = {i}/100 drew a filtered token");
        }
        // k >= V is off.
        assert_eq!(draw(&x, op(1.0, 5, 1.0), 0.0), 0);
        assert_eq!(draw(&x, op(1.0, 99, 1.0), 0.0), 0);
    }

    #[test]
    fn top_p_keeps_the_nucleus_with_ties() {
        // p = (1, 0.5, 0.5, 0.25), S = 2.25.
        let x = [0.0, 0.5f32.ln(), 0.5f32.ln(), 0.25f32.ln()];
        // top_p·S = 0.9: mass(1) = 1 ≥ 0.9, nucleus {0}.
        assert_eq!(draw(&x, op(1.0, 0, 0.4), 0.999), 0);
        // top_p·S = 1.8: mass(1) = 1 < 1.8, mass(0.5) = 2 ≥ 1.8: {0, 1, 2} (tie kept).
        let o = op(1.0, 0, 0.8);
        assert_eq!(draw(&x, o, 0.999), 2);
        assert_eq!(draw(&x, o, 0.6), 1);
        // top_p = 1 keeps everything.
        assert_eq!(draw(&x, op(1.0, 0, 1.0), 0.999), 3);
    }

    #[test]
    fn top_k_then_top_p_then_temperature() {
        // Temperature 0.5 doubles the gaps: p = (1, 0.25, 0.0625, ...).
        let x = [0.0, 0.5f32.ln() * 0.5, 0.25f32.ln() * 0.5, -100.0];
        let o = op(0.5, 3, 1.0);
        assert_eq!(draw(&x, o, 0.999), 2);
        let s = 1.0 + 0.5 + 0.25;
        assert_eq!(draw(&x, o, (1.0 + 0.5) / s - 0.01), 1);
        assert_eq!(draw(&x, op(0.5, 3, 0.7), 0.999), 1);
    }

    #[test]
    fn degenerate_rows_pick_the_first_extreme() {
        let inf = f32::INFINITY;
        assert_eq!(draw(&[-inf, f32::NAN, -inf], op(1.0, 0, 1.0), 0.5), 0);
        assert_eq!(draw(&[0.0, inf, inf], op(1.0, 0, 0.5), 0.5), 1);
        // A NaN logit is −∞: never drawn while a finite one exists.
        for i in 0..50 {
            let t = draw(&[f32::NAN, 0.0, 0.0], op(1.0, 0, 1.0), i as f32 / 50.0);
            assert_ne!(t, 0);
        }
    }

    #[test]
    fn shape_and_option_rules() {
        let plain = op(1.0, 0, 1.0);
        let sizes = |s: &[usize]| {
            let d = check(s, &plain).unwrap();
            (d.rows, d.vocab, d.out_shape.clone())
        };
        assert_eq!(sizes(&[3, 7]), (3, 7, vec![3]));
        assert_eq!(sizes(&[3, 1, 7]), (3, 7, vec![3, 1]));
        for bad in [&[7][..], &[3, 2, 7], &[0, 7], &[3, 0], &[]] {
            assert!(check(bad, &plain).is_err(), "{bad:?}");
        }
        assert!(
            check(&[3, 7], &op(-1.0, 0, 1.0)).is_err(),
            "the options are checked too"
        );
        assert!(check_op(&op(0.0, 0, 1.0)).is_ok());
        assert!(check_op(&op(2.0, 7, 0.1)).is_ok());
        for bad in [
            op(-0.1, 0, 1.0),
            op(f32::NAN, 0, 1.0),
            op(f32::INFINITY, 0, 1.0),
            op(1.0, 0, 0.0),
            op(1.0, 0, 1.5),
            op(1.0, 0, f32::NAN),
        ] {
            assert!(
                matches!(check_op(&bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rows_draw_independent_numbers() {
        // Four equal logits: each row's token is floor(4u) for its own u.
        let x = vec![0.0f32; 4 * 64];
        let out = cpu(&x, 4, &op(1.0, 0, 1.0), 5, 3);
        for (row, &t) in out.iter().enumerate() {
            let u = uniform(5, row as u32, 3);
            assert_eq!(t, (u * 4.0) as u32, "row {row}");
        }
        let distinct = (0..4).filter(|t| out.contains(t)).count();
        assert_eq!(distinct, 4);
    }
}
