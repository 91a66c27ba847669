//! GELU, tanh approximation, as `jax.nn.gelu` with its default `approximate=True`.

use crate::math;

/// The sizes of the standalone GELU (the trainer's op; inference fuses GELU into the matmul):
/// any shape is valid.
#[cfg(feature = "train")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Elements.
    pub len: usize,
}

/// The sizes of `x` (GELU takes every shape).
#[cfg(feature = "train")]
pub fn check(x: &[usize]) -> super::Checked<Dims> {
    super::Checked::new(Dims {
        len: crate::tensor::numel(x),
    })
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `0.5 x (1 + tanh(u))` with `u = √(2/π) (x + 0.044715 x³)`, computed as the equal
/// `x / (1 + e⁻²ᵘ)` with [`math::exp_vec`] so that a loop over many values vectorises.
#[inline]
pub fn gelu(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    x / (1.0 + math::exp_vec(-2.0 * u))
}

/// Applies [`gelu`] in place.
pub fn cpu(x: &mut [f32]) {
    // A tanh per element: in a large MLP this is worth spreading over the threads.
    crate::threads::for_row_chunks(x, 1, 32, |_, chunk| {
        for v in chunk {
            *v = gelu(*v);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        // jax.nn.gelu(approximate=True) at these points.
        for (x, y) in [
            (0.0, 0.0),
            (1.0, 0.841_192),
            (-1.0, -0.158_808),
            (3.0, 2.996_363),
            (-10.0, -0.0),
            (10.0, 10.0),
        ] {
            assert!((super::gelu(x) - y).abs() < 1e-5, "gelu({x})");
        }
    }

    #[test]
    fn matches_f64() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let xd = x as f64;
            let u = 0.797_884_560_802_865_4 * (xd + 0.044715 * xd.powi(3));
            // ½(1 + tanh u) = 1 / (1 + e⁻²ᵘ), which keeps its precision where tanh u ≈ -1.
            let want = xd / (1.0 + (-2.0 * u).exp());
            let got = super::gelu(x) as f64;
            // Relative 1e-6, absolute in the far negative tail (where f32's rounding of u, not
            // the exponential, sets the error).
            assert!(
                (got - want).abs() <= 1e-6 * (want.abs() + 1e-3),
                "gelu({x}) = {got}, want {want}"
            );
            x += 0.001_3;
        }
    }
}
