//! Embedding gather: ids of any shape `S` pick rows of a `[rows, D]` table, giving `S ++ [D]`.

use alloc::format;
use alloc::vec::Vec;

use super::shape_error;
use crate::error::{Error, Result};

/// Checks the table is 2-D and returns the output shape.
pub fn check(table: &[usize], ids: &[usize]) -> Result<Vec<usize>> {
    if table.len() != 2 {
        return Err(shape_error(
            "embed",
            format!("table must be [rows, D], got {table:?}"),
        ));
    }
    let mut out = ids.to_vec();
    out.push(table[1]);
    Ok(out)
}

/// Checks every id is a row of the table.
pub fn check_ids(ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().position(|&t| t as usize >= rows) {
        Some(index) => Err(Error::TokenOutOfRange {
            token: ids[index] as i64,
            index,
            limit: rows as u32,
        }),
        None => Ok(()),
    }
}

/// CPU reference (ids already checked).
pub fn cpu(table: &[f32], d: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * d);
    for &t in ids {
        let r = t as usize * d;
        out.extend_from_slice(&table[r..r + d]);
    }
    out
}

/// GPU dispatch (`wgsl/embed.wgsl`); a table larger than one binding is read in row windows,
/// one dispatch each.
#[cfg(feature = "gpu")]
pub(crate) fn gpu(
    be: &crate::gpu::GpuBackend,
    table: &crate::gpu::GpuTensor,
    ids: &crate::gpu::GpuIds,
    shape: &[usize],
) -> Result<crate::gpu::GpuTensor> {
    use crate::gpu::{grid_1d, shaders, Kernel};
    let out = be.alloc(shape)?;
    let ctx = be.ctx();
    let (rows, d) = (table.shape[0], table.shape[1]);
    let n = crate::tensor::numel(&ids.shape);
    if n == 0 || d == 0 {
        return Ok(out);
    }
    if rows == 0 {
        return Err(shape_error("embed", "empty table".into()));
    }
    let room = (ctx.max_binding.saturating_sub(256) / table.format.size()) as usize;
    let step = (room / d).min(rows);
    if step == 0 {
        return Err(shape_error(
            "embed",
            format!("a table row of {d} values exceeds one binding"),
        ));
    }
    let constants = [("FORMAT", table.format.code())];
    let kernel = Kernel {
        shader: &shaders::EMBED,
        entry: "main",
        constants: &constants,
    };
    for r0 in (0..rows).step_by(step) {
        let r1 = (r0 + step).min(rows);
        let (t_arg, t_off) = table.window(r0 * d, r1 * d);
        let params = [
            n as u32,
            d as u32,
            r0 as u32,
            (r1 - r0) as u32,
            rows as u32,
            t_off,
            0,
            0,
        ];
        ctx.dispatch(
            &kernel,
            &params,
            &[ids.arg(), t_arg, out.arg()],
            grid_1d(n * d, 64),
        )?;
    }
    Ok(out)
}
