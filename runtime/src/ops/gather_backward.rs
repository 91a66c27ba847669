//! Backward of [`super::gather`]: the gradient of an `x` of `rows` rows is, for each row, the sum
//! of `dy` over the positions whose id picks it, in position order; rows no id picks get 0.
//!
//! The GPU kernel gets the same sums without float atomics (whose order, and so whose rounding,
//! changes from run to run): one invocation per (position, feature) that is the *first*
//! position of its id sums that id's positions in order and writes the row. The work is
//! `O(positions² · D)`, independent of the number of rows.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;
use crate::tensor::numel;

/// The sizes of one gather backward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// The gradient's shape, `[rows] ++ row shape`.
    pub out_shape: Vec<usize>,
    /// Rows of the gradient (of the forward's `x`).
    pub rows: usize,
    /// Elements per row.
    pub row_len: usize,
    /// Number of ids.
    pub ids: usize,
}

/// Checks `dy` is `ids.shape ++ row shape` and `rows ≥ 1`.
pub fn check(dy: &[usize], ids: &[usize], rows: usize) -> Result<Checked<Dims>> {
    if dy.len() < ids.len() || dy[..ids.len()] != *ids {
        return Err(shape_error(
            "gather_backward",
            format!("dy {dy:?} must be the ids' shape {ids:?} followed by the row shape"),
        ));
    }
    if rows == 0 {
        return Err(shape_error("gather_backward", "x has no rows".into()));
    }
    let mut out_shape = vec![rows];
    out_shape.extend_from_slice(&dy[ids.len()..]);
    Ok(Checked::new(Dims {
        out_shape,
        rows,
        row_len: numel(&dy[ids.len()..]),
        ids: numel(ids),
    }))
}

/// CPU reference (ids already checked against `rows`): rows of `row_len` values.
pub fn cpu(dy: &[f32], row_len: usize, ids: &[u32], rows: usize) -> Vec<f32> {
    let d = row_len;
    let mut out = vec![0.0f32; rows * d];
    for (n, &id) in ids.iter().enumerate() {
        let row = &mut out[id as usize * d..(id as usize + 1) * d];
        for (o, &g) in row.iter_mut().zip(&dy[n * d..(n + 1) * d]) {
            *o += g;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{fd, gather};

    #[test]
    fn matches_finite_differences_with_repeated_ids() {
        let (rows, d) = (6, 5);
        let ids = [3u32, 0, 3, 5, 3, 0, 1];
        let table = fd::normal(rows * d, 11);
        let w = fd::normal(ids.len() * d, 12);
        let out = |dy: &[usize]| check(dy, &[7], rows).unwrap().out_shape.clone();
        assert_eq!(out(&[7, d]), [rows, d]);
        assert_eq!(out(&[7, 2, 3]), [rows, 2, 3]);
        assert_eq!(out(&[7]), [rows]);
        assert_eq!(check(&[7, 2, 3], &[7], rows).unwrap().row_len, 6);
        assert!(check(&[7, d], &[6], rows).is_err());
        assert!(check(&[7, d], &[7], 0).is_err());
        let grad = cpu(&w, d, &ids, rows);
        // Row 2 and 4 are never picked: exactly zero.
        assert!(grad[2 * d..3 * d]
            .iter()
            .chain(&grad[4 * d..5 * d])
            .all(|&g| g == 0.0));
        fd::check("gather", &table, &grad, 1e-2, 1e-4, |t| {
            fd::dot(&w, &gather::cpu(t, d, &ids))
        });
    }
}
