//! Backward of [`super::embed`]: the gradient of a `[rows, D]` table is, for each row, the sum
//! of `dy` over the positions whose id picks it, in position order; rows no id picks get 0.
//!
//! The GPU kernel gets the same sums without float atomics (whose order, and so whose rounding,
//! changes from run to run): one invocation per (position, feature) that is the *first*
//! position of its id sums that id's positions in order and writes the row. The work is
//! `O(positions² · D)`, independent of the vocabulary size.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::shape_error;
use crate::error::Result;

/// Checks `dy` is `ids.shape ++ [D]` and returns the table gradient's shape `[rows, D]`.
pub fn check(dy: &[usize], ids: &[usize], rows: usize) -> Result<Vec<usize>> {
    if dy.len() != ids.len() + 1 || dy[..ids.len()] != *ids {
        return Err(shape_error(
            "embed_backward",
            format!("dy {dy:?} must be the ids' shape {ids:?} plus one feature axis"),
        ));
    }
    if rows == 0 {
        return Err(shape_error(
            "embed_backward",
            "the table has no rows".into(),
        ));
    }
    Ok(vec![rows, dy[ids.len()]])
}

/// CPU reference (ids already checked against `rows`).
pub fn cpu(dy: &[f32], d: usize, ids: &[u32], rows: usize) -> Vec<f32> {
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
    use crate::ops::{embed, fd};

    #[test]
    fn matches_finite_differences_with_repeated_ids() {
        let (rows, d) = (6, 5);
        let ids = [3u32, 0, 3, 5, 3, 0, 1];
        let table = fd::normal(rows * d, 11);
        let w = fd::normal(ids.len() * d, 12);
        assert_eq!(check(&[7, d], &[7], rows).unwrap(), [rows, d]);
        assert!(check(&[7, d], &[6], rows).is_err());
        let grad = cpu(&w, d, &ids, rows);
        // Row 2 and 4 are never picked: exactly zero.
        assert!(grad[2 * d..3 * d]
            .iter()
            .chain(&grad[4 * d..5 * d])
            .all(|&g| g == 0.0));
        fd::check("embed", &table, &grad, 1e-2, 1e-4, |t| {
            fd::dot(&w, &embed::cpu(t, d, &ids))
        });
    }
}
