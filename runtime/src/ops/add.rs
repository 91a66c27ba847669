//! Elementwise add with the second operand repeated over leading axes (residuals; position
//! tables added to every batch row).

use alloc::format;
use alloc::vec::Vec;

use super::shape_error;
use crate::error::Result;

/// Checks that `b` (leading 1s ignored) equals the trailing axes of `a`. Returns `a`'s shape.
pub fn check(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let first_real = b.iter().position(|&d| d != 1).unwrap_or(b.len());
    let b_core = &b[first_real..];
    if b_core.len() > a.len() || a[a.len() - b_core.len()..] != *b_core {
        return Err(shape_error(
            "add",
            format!("cannot add {b:?} to {a:?} (must match its trailing axes)"),
        ));
    }
    Ok(a.to_vec())
}

/// `out[i] = a[i] + b[i mod len(b)]`.
pub fn cpu(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.chunks(b.len())
        .flat_map(|chunk| chunk.iter().zip(b).map(|(x, y)| x + y))
        .collect()
}

/// GPU dispatch (`wgsl/elementwise.wgsl`, `OP = 0`).
#[cfg(feature = "gpu")]
pub(crate) fn gpu(
    be: &crate::gpu::GpuBackend,
    a: &crate::gpu::GpuTensor,
    b: &crate::gpu::GpuTensor,
) -> Result<crate::gpu::GpuTensor> {
    gpu_elementwise(be, 0, a, Some(b))
}

/// Runs elementwise op `op` of `wgsl/elementwise.wgsl` over `a` (and `b`).
#[cfg(feature = "gpu")]
pub(crate) fn gpu_elementwise(
    be: &crate::gpu::GpuBackend,
    op: u32,
    a: &crate::gpu::GpuTensor,
    b: Option<&crate::gpu::GpuTensor>,
) -> Result<crate::gpu::GpuTensor> {
    use crate::gpu::{grid_1d, shaders, Kernel};
    let out = be.alloc(&a.shape)?;
    let ctx = be.ctx();
    let n = a.numel();
    let (b_arg, b_len) = match b {
        Some(b) => (b.f32("add")?.arg(), b.numel().max(1)),
        None => (ctx.dummy(), 1),
    };
    let constants = [("OP", op as f64)];
    let kernel = Kernel {
        shader: &shaders::ELEMENTWISE,
        entry: "main",
        constants: &constants,
    };
    let params = [n as u32, b_len as u32, 0, 0];
    ctx.dispatch(
        &kernel,
        &params,
        &[a.f32("elementwise")?.arg(), b_arg, out.arg()],
        grid_1d(n, 64),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn broadcast_rules() {
        assert!(check(&[2, 3, 4], &[1, 3, 4]).is_ok());
        assert!(check(&[2, 3, 4], &[4]).is_ok());
        assert!(check(&[2, 3, 4], &[2, 3, 4]).is_ok());
        assert!(check(&[2, 3, 4], &[3, 3, 4]).is_err());
        assert!(check(&[2, 3, 4], &[2, 4]).is_err());
        assert_eq!(cpu(&[1., 2., 3., 4.], &[10., 20.]), [11., 22., 13., 24.]);
    }
}
