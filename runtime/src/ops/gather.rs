//! Gathering rows of axis 0 by ids, as `tf.gather(x, ids, axis=0)` (and `jnp.take`, which
//! Flax's `Embed` uses): `out[i, ..] = x[ids[i], ..]`. It looks token ids up in the embedding
//! table (`x` `[vocab, D]`, ids `[B, L]` → `[B, L, D]`), reorders KV caches by parent beam,
//! repeats an image's encoding (or its cross-attention keys and values) for its beams or
//! candidates, and drops finished rows.
//!
//! `x` is `[N, ..]` (at least 1-D); `ids` has any shape `S`, read flat in row-major order; the
//! output is `S ++ x.shape[1..]`. Every id must be below `N` (so `N ≥ 1` unless there are no ids).
//! A table kept as stored (bf16, f16 or q8: the token embedding) is widened row by row as it is
//! read, on the CPU ([`cpu_packed`]) as on the GPU; the rows come out f32.

use alloc::format;
use alloc::vec::Vec;

use super::packed::Packed;
use super::{shape_error, Checked};
use crate::error::{Error, Result};
use crate::tensor::numel;

/// The sizes of one gather.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// The output's shape: the ids' shape, then `x`'s trailing axes.
    pub out_shape: Vec<usize>,
    /// Rows of `x` (`N`).
    pub rows: usize,
    /// Elements per row of `x`.
    pub row_len: usize,
    /// Number of ids.
    pub ids: usize,
}

/// Checks the shapes.
pub fn check(x: &[usize], ids: &[usize]) -> Result<Checked<Dims>> {
    if x.is_empty() || (x[0] == 0 && numel(ids) > 0) {
        return Err(shape_error(
            "gather",
            format!("needs x [N, ..] with rows to pick from, got x {x:?} for ids {ids:?}"),
        ));
    }
    let mut out_shape = ids.to_vec();
    out_shape.extend_from_slice(&x[1..]);
    Ok(Checked::new(Dims {
        out_shape,
        rows: x[0],
        row_len: numel(&x[1..]),
        ids: numel(ids),
    }))
}

/// Checks every id is a row of `x`.
pub fn check_ids(ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().position(|&i| i as usize >= rows) {
        Some(at) => Err(Error::InvalidInput(format!(
            "gather: id {} at position {at} is not below the number of rows {rows}",
            ids[at]
        ))),
        None => Ok(()),
    }
}

/// CPU reference (ids already checked): rows of `row_len` values.
pub fn cpu(x: &[f32], row_len: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * row_len);
    for &i in ids {
        let r = i as usize * row_len;
        out.extend_from_slice(&x[r..r + row_len]);
    }
    out
}

/// [`cpu`] from a table kept as stored: each picked row widened (or dequantised).
pub fn cpu_packed(x: &Packed, row_len: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * row_len);
    for &i in ids {
        let r = i as usize * row_len;
        x.extend_f32(r..r + row_len, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn picks_rows_in_id_order() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [3, 2]
        assert_eq!(
            cpu(&x, 2, &[2, 0, 0, 1]),
            [4.0, 5.0, 0.0, 1.0, 0.0, 1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn shape_rules() {
        // The ids' shape, then x's trailing axes.
        let out = |x: &[usize], ids: &[usize]| check(x, ids).unwrap().out_shape.clone();
        assert_eq!(out(&[3, 2], &[2, 2]), vec![2, 2, 2]);
        assert_eq!(out(&[3, 4, 5], &[1]), vec![1, 4, 5]);
        assert_eq!(out(&[3], &[5]), vec![5]);
        assert_eq!(out(&[3, 4], &[0]), vec![0, 4]);
        assert_eq!(out(&[0, 4], &[2, 0]), vec![2, 0, 4]);
        let d = check(&[7, 2, 3], &[4, 5]).unwrap();
        assert_eq!((d.rows, d.row_len, d.ids), (7, 6, 20));
        assert!(check(&[], &[1]).is_err());
        assert!(check(&[0, 2], &[1]).is_err());
    }

    #[test]
    fn ids_must_be_rows() {
        assert!(check_ids(&[0, 2], 3).is_ok());
        assert!(matches!(
            check_ids(&[0, 3], 3),
            Err(Error::InvalidInput(m)) if m.contains("position 1")
        ));
    }
}
