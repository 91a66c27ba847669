//! Log-softmax and argmax over the last axis.

use alloc::vec::Vec;

use crate::math;

/// Numerically stable log-softmax of one row: `x − max − ln Σ exp(x − max)`.
pub fn log_softmax_row(row: &[f32], out: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = row.iter().map(|&v| math::exp(v - m)).sum();
    let lse = m + math::ln(s);
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

/// Index of the first largest value of each row (NaN never wins).
pub fn cpu_argmax(x: &[f32], v: usize) -> Vec<u32> {
    x.chunks_exact(v)
        .map(|row| {
            let mut best = 0;
            for (j, &val) in row.iter().enumerate() {
                if val > row[best] || row[best].is_nan() {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(super::cpu_argmax(&[1., 3., 3., 0., 5., 5.], 3), [1, 1]);
    }

    #[test]
    fn log_softmax_normalises() {
        let out = super::cpu_log_softmax(&[1000.0, 1001.0, 999.0], 3);
        let s: f32 = out.iter().map(|v| v.exp()).sum();
        assert!((s - 1.0).abs() < 1e-4, "{s}");
    }
}
