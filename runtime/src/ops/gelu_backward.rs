//! Backward of [`super::gelu`]: `dx = dy · gelu'(x)` with, for `t = tanh(c·(x + 0.044715·x³))`,
//! `gelu'(x) = ½(1 + t) + ½·x·(1 − t²)·c·(1 + 3·0.044715·x²)`, `c = √(2/π)`.

use alloc::format;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;
use crate::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The derivative of the tanh-GELU at `x`.
#[inline]
pub fn gelu_grad(x: f32) -> f32 {
    let t = math::tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
}

/// The sizes of one GELU backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Elements.
    pub len: usize,
}

/// Checks `x` and `dy` have one shape.
pub fn check(x: &[usize], dy: &[usize]) -> Result<Checked<Dims>> {
    if x != dy {
        return Err(shape_error(
            "gelu_backward",
            format!("x {x:?} and dy {dy:?} differ"),
        ));
    }
    Ok(Checked::new(Dims {
        len: crate::tensor::numel(x),
    }))
}

/// CPU reference.
pub fn cpu(x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.iter().zip(dy).map(|(&x, &g)| g * gelu_grad(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fd;

    #[test]
    fn matches_finite_differences() {
        let mut x = fd::normal(64, 9);
        x.extend([0.0, 4.0, -4.0, 9.0, -9.0]);
        let w = fd::normal(x.len(), 10);
        let dx = cpu(&x, &w);
        fd::check("gelu", &x, &dx, 1e-2, 1e-3, |x| {
            let mut y = x.to_vec();
            crate::ops::gelu::cpu(&mut y);
            fd::dot(&w, &y)
        });
    }
}
