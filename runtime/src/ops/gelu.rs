//! GELU, tanh approximation, as `jax.nn.gelu` with its default `approximate=True`.

use crate::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
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

/// GPU dispatch (`wgsl/elementwise.wgsl`, `OP = 1`).
#[cfg(feature = "gpu")]
pub(crate) fn gpu(
    be: &crate::gpu::GpuBackend,
    x: &crate::gpu::GpuTensor,
) -> crate::error::Result<crate::gpu::GpuTensor> {
    super::add::gpu_elementwise(be, 1, x, None)
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
        ] {
            assert!((super::gelu(x) - y).abs() < 1e-5, "gelu({x})");
        }
    }
}
