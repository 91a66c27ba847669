//! Row ops on `[B, L, D]` tensors: mean over `L` (GAP pooling), slicing rows (the last
//! position, a window of the position table) and writing rows (the KV cache).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;

fn three(op: &str, s: &[usize]) -> Result<(usize, usize, usize)> {
    match s {
        [b, l, d] => Ok((*b, *l, *d)),
        _ => Err(shape_error(op, format!("expects [B, L, D], got {s:?}"))),
    }
}

/// The sizes of a `[B, L, D]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    /// Batch.
    pub b: usize,
    /// Rows per batch entry.
    pub l: usize,
    /// Features per row.
    pub d: usize,
}

/// The sizes of one `mean_rows`: `[B, L, D]` → `[B, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mean {
    /// The input's sizes.
    pub x: Rows,
}

impl Mean {
    /// The output's shape.
    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.x.b, self.x.d]
    }
}

/// Checks `mean_rows`: `x` is `[B, L, D]` with `L ≥ 1`.
pub fn check_mean(x: &[usize]) -> Result<Checked<Mean>> {
    let (b, l, d) = three("mean_rows", x)?;
    if l == 0 {
        return Err(shape_error("mean_rows", "no rows to average".into()));
    }
    Ok(Checked::new(Mean {
        x: Rows { b, l, d },
    }))
}

/// Mean over the middle axis.
pub fn cpu_mean(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let (b, l, d) = (shape[0], shape[1], shape[2]);
    let mut out = vec![0.0f32; b * d];
    for n in 0..b {
        let o = &mut out[n * d..(n + 1) * d];
        for r in 0..l {
            let row = &x[(n * l + r) * d..(n * l + r + 1) * d];
            for (a, v) in o.iter_mut().zip(row) {
                *a += v;
            }
        }
        for a in o {
            *a /= l as f32;
        }
    }
    out
}

/// The sizes of one `slice_rows`: rows `start..start + len` of `[B, L, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// The input's sizes.
    pub x: Rows,
    /// First row taken.
    pub start: usize,
    /// Rows taken.
    pub len: usize,
}

impl Slice {
    /// The output's shape.
    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.x.b, self.len, self.x.d]
    }
}

/// Checks `slice_rows`: `x` is `[B, L, D]` and `start..start + len` a non-empty range of rows.
pub fn check_slice(x: &[usize], start: usize, len: usize) -> Result<Checked<Slice>> {
    let (b, l, d) = three("slice_rows", x)?;
    if len == 0 || start.checked_add(len).is_none_or(|end| end > l) {
        return Err(shape_error(
            "slice_rows",
            format!("rows {start}..{} outside 0..{l}", start.saturating_add(len)),
        ));
    }
    Ok(Checked::new(Slice {
        x: Rows { b, l, d },
        start,
        len,
    }))
}

/// Copies rows `start..start+len` of every batch entry.
pub fn cpu_slice(x: &[f32], shape: &[usize], start: usize, len: usize) -> Vec<f32> {
    let (b, l, d) = (shape[0], shape[1], shape[2]);
    let mut out = Vec::with_capacity(b * len * d);
    for n in 0..b {
        out.extend_from_slice(&x[(n * l + start) * d..(n * l + start + len) * d]);
    }
    out
}

/// The sizes of one `write_rows`: `src [B, Ls, D]` into rows `start..start + Ls` of
/// `dst [B, Ld, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// The destination's sizes.
    pub dst: Rows,
    /// The source's sizes.
    pub src: Rows,
    /// First row written.
    pub start: usize,
}

/// Checks `src` fits into `dst` at `start`.
pub fn check_write(dst: &[usize], src: &[usize], start: usize) -> Result<Checked<Write>> {
    let (bd, ld, dd) = three("write_rows", dst)?;
    let (bs, ls, ds) = three("write_rows", src)?;
    if bd != bs || dd != ds || start.checked_add(ls).is_none_or(|end| end > ld) {
        return Err(shape_error(
            "write_rows",
            format!("cannot write {src:?} into {dst:?} at row {start}"),
        ));
    }
    Ok(Checked::new(Write {
        dst: Rows {
            b: bd,
            l: ld,
            d: dd,
        },
        src: Rows {
            b: bs,
            l: ls,
            d: ds,
        },
        start,
    }))
}

/// Writes `src` rows into `dst` at `start`.
pub fn cpu_write(dst: &mut [f32], dst_shape: &[usize], src: &[f32], src_len: usize, start: usize) {
    let (b, l, d) = (dst_shape[0], dst_shape[1], dst_shape[2]);
    for n in 0..b {
        dst[(n * l + start) * d..(n * l + start + src_len) * d]
            .copy_from_slice(&src[n * src_len * d..(n + 1) * src_len * d]);
    }
}
