//! Reductions of the trainer: the sum over the first axis (bias and position-table gradients)
//! and the sum of squares of whole tensors (global-norm gradient clipping).
//!
//! Both sum in a fixed order on every backend. The sum of squares uses the order of the GPU's
//! one-workgroup reduction — [`LANES`] strided partial sums, then a pairwise tree — which keeps
//! the rounding error of large tensors small and makes the two backends agree closely.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;

/// Lanes of the sum of squares (the GPU workgroup size).
pub const LANES: usize = 256;

/// The sizes of one sum over the first axis: `[n, ..]` → `[..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis0 {
    /// Rows summed (the first axis).
    pub n: usize,
    /// Elements per row.
    pub m: usize,
    /// The sum's shape: the input's without the first axis.
    pub out_shape: Vec<usize>,
}

/// Checks `x` has at least two axes.
pub fn check_axis0(x: &[usize]) -> Result<Checked<Axis0>> {
    if x.len() < 2 {
        return Err(shape_error(
            "sum_axis0",
            format!("needs at least two axes, got {x:?}"),
        ));
    }
    Ok(Checked::new(Axis0 {
        n: x[0],
        m: crate::tensor::numel(&x[1..]),
        out_shape: x[1..].to_vec(),
    }))
}

/// The sizes of one `sum_squares` call: any tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squares {
    /// Elements of each tensor.
    pub lens: Vec<usize>,
}

/// The sizes of the tensors `xs` (every shape is valid; the sum of each is one output element).
pub fn check_squares<'a>(xs: impl Iterator<Item = &'a [usize]>) -> Checked<Squares> {
    Checked::new(Squares {
        lens: xs.map(crate::tensor::numel).collect(),
    })
}

/// CPU reference of the sum over the first axis: `x [N, M]` (flattened) → `[M]`, rows in order.
pub fn cpu_axis0(x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m];
    if m == 0 {
        return out;
    }
    for row in x.chunks_exact(m) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// CPU reference of the sum of squares of `x`, in the GPU kernel's order.
pub fn cpu_squares(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for (i, &v) in x.iter().enumerate() {
        lanes[i % LANES] += v * v;
    }
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fd;

    #[test]
    fn axis0_is_the_gradient_of_a_broadcast_add() {
        // y = x + b (b repeated over rows): dL/db = Σ_rows dL/dy.
        let (n, m) = (5, 7);
        let x = fd::normal(n * m, 13);
        let b = fd::normal(m, 14);
        let w = fd::normal(n * m, 15);
        let d = check_axis0(&[n, 1, m]).unwrap();
        assert_eq!((d.n, d.m, d.out_shape.as_slice()), (n, m, &[1, m][..]));
        assert!(check_axis0(&[m]).is_err());
        let grad = cpu_axis0(&w, m);
        fd::check("sum_axis0", &b, &grad, 1e-2, 1e-4, |b| {
            fd::dot(&w, &crate::ops::add::cpu(&x, b))
        });
    }

    #[test]
    fn squares_are_accurate_for_long_tensors() {
        for n in [0, 1, 255, 256, 257, 100_003] {
            let x = fd::normal(n, 16);
            let exact: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let got = cpu_squares(&x) as f64;
            assert!(
                (got - exact).abs() <= 1e-6 * exact.max(1.0),
                "{n}: {got} vs {exact}"
            );
        }
    }
}
