//! Log-softmax and argmax over the last axis. Argmax is an op ([`crate::Backend::argmax`]);
//! the log-softmax helpers serve the CPU references of the ops that use one (beam candidates,
//! cross-entropy) and host-side scoring.

use alloc::format;
use alloc::vec::Vec;

use super::{rows_and_last, shape_error, Checked};
use crate::error::Result;
use crate::lanes::{max_lanes, sum_lanes};
use crate::math;

/// The sizes of one argmax: `rows` rows of `classes` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argmax {
    /// Rows (every axis but the last).
    pub rows: usize,
    /// Values per row (the last axis).
    pub classes: usize,
    /// The ids' shape: the input's without its last axis.
    pub out_shape: Vec<usize>,
}

/// Checks `x` has a last axis with at least one value.
pub fn check_argmax(x: &[usize]) -> Result<Checked<Argmax>> {
    let (rows, classes) = rows_and_last(x);
    if x.is_empty() || classes == 0 {
        return Err(shape_error("argmax", format!("no classes in {x:?}")));
    }
    Ok(Checked::new(Argmax {
        rows,
        classes,
        out_shape: x[..x.len() - 1].to_vec(),
    }))
}

/// `ln Σ exp(x)` of one row, computed stably as `max + ln Σ exp(x − max)`.
pub fn log_sum_exp(row: &[f32]) -> f32 {
    let m = max_lanes(row);
    m + math::ln(sum_lanes(row, |v| math::exp_vec(v - m)))
}

/// Numerically stable log-softmax of one row: `x − max − ln Σ exp(x − max)`.
pub fn log_softmax_row(row: &[f32], out: &mut [f32]) {
    let lse = log_sum_exp(row);
    for (o, &v) in out.iter_mut().zip(row) {
        *o = v - lse;
    }
}

/// Log-softmax of every row of width `v`.
pub fn cpu_log_softmax(x: &[f32], v: usize) -> Vec<f32> {
    let mut out = alloc::vec![0.0; x.len()];
    for (row, o) in x.chunks_exact(v).zip(out.chunks_exact_mut(v)) {
        log_softmax_row(row, o);
    }
    out
}

/// Index of the first largest value of each row (NaN never wins; a row of NaNs gives its last
/// index). Two passes, the maximum in vector lanes and then its first position, run several
/// times faster than one pass that tracks the index (a Pa caption's 64 × 32k logits: 8 ms).
pub fn cpu_argmax(x: &[f32], v: usize) -> Vec<u32> {
    x.chunks_exact(v)
        .map(|row| {
            let m = max_lanes(row);
            row.iter().position(|&val| val == m).unwrap_or(v - 1) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn argmax_shape_rules() {
        let d = super::check_argmax(&[2, 3, 5]).unwrap();
        assert_eq!(
            (d.rows, d.classes, d.out_shape.as_slice()),
            (6, 5, &[2, 3][..])
        );
        assert!(super::check_argmax(&[4]).unwrap().out_shape.is_empty());
        assert!(super::check_argmax(&[]).is_err());
        assert!(super::check_argmax(&[3, 0]).is_err());
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(super::cpu_argmax(&[1., 3., 3., 0., 5., 5.], 3), [1, 1]);
    }

    #[test]
    fn argmax_skips_nans_and_keeps_infinities() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        let rows = [
            nan, 1.0, 2.0, // NaN first
            -inf, nan, -inf, // only -inf besides NaN
            nan, nan, nan, // all NaN: the last index
            1.0, inf, inf, // first of the infinite ties
        ];
        assert_eq!(super::cpu_argmax(&rows, 3), [2, 0, 2, 1]);
        // Longer than the eight lanes, the largest value in the remainder.
        let mut long = [0.5f32; 19];
        long[18] = 0.75;
        assert_eq!(super::cpu_argmax(&long, 19), [18]);
    }

    #[test]
    fn log_softmax_normalises() {
        let out = super::cpu_log_softmax(&[1000.0, 1001.0, 999.0], 3);
        let s: f32 = out.iter().map(|v| v.exp()).sum();
        assert!((s - 1.0).abs() < 1e-4, "{s}");
    }
}
