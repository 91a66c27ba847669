//! Row ops on `[B, L, D]` tensors: mean over `L` (GAP pooling), slicing rows (the last
//! position, a window of the position table) and writing rows (the KV cache).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::shape_error;
use crate::error::Result;

fn three(op: &str, s: &[usize]) -> Result<(usize, usize, usize)> {
    match s {
        [b, l, d] => Ok((*b, *l, *d)),
        _ => Err(shape_error(op, format!("expects [B, L, D], got {s:?}"))),
    }
}

/// Output shape of `mean_rows`.
pub fn check_mean(x: &[usize]) -> Result<Vec<usize>> {
    let (b, l, d) = three("mean_rows", x)?;
    if l == 0 {
        return Err(shape_error("mean_rows", "no rows to average".into()));
    }
    Ok(vec![b, d])
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

/// Output shape of `slice_rows`.
pub fn check_slice(x: &[usize], start: usize, len: usize) -> Result<Vec<usize>> {
    let (b, l, d) = three("slice_rows", x)?;
    if len == 0 || start + len > l {
        return Err(shape_error(
            "slice_rows",
            format!("rows {start}..{} outside 0..{l}", start + len),
        ));
    }
    Ok(vec![b, len, d])
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

/// Checks `src` fits into `dst` at `start`.
pub fn check_write(dst: &[usize], src: &[usize], start: usize) -> Result<()> {
    let (bd, ld, dd) = three("write_rows", dst)?;
    let (bs, ls, ds) = three("write_rows", src)?;
    if bd != bs || dd != ds || start + ls > ld {
        return Err(shape_error(
            "write_rows",
            format!("cannot write {src:?} into {dst:?} at row {start}"),
        ));
    }
    Ok(())
}

/// Writes `src` rows into `dst` at `start`.
pub fn cpu_write(dst: &mut [f32], dst_shape: &[usize], src: &[f32], src_len: usize, start: usize) {
    let (b, l, d) = (dst_shape[0], dst_shape[1], dst_shape[2]);
    for n in 0..b {
        dst[(n * l + start) * d..(n * l + start + src_len) * d]
            .copy_from_slice(&src[n * src_len * d..(n + 1) * src_len * d]);
    }
}
