//! Gathering along the batch axis: `out[i, ..] = x[index[i], ..]`. Reorders KV caches by parent
//! beam, repeats an image's encoding (or its cross-attention keys and values) for its beams or
//! candidates, and drops finished rows.
//!
//! `x` is `[N, ..]` (at least 1-D); `index` holds `M ≥ 1` ids of any shape, read flat in row-major
//! order; the output is `[M, ..]` (`x`'s trailing axes). Every id must be below `N`.

use alloc::format;
use alloc::vec::Vec;

use super::shape_error;
use crate::error::{Error, Result};
use crate::tensor::numel;

/// Checks shapes and returns the output shape.
pub fn check(x: &[usize], index: &[usize]) -> Result<Vec<usize>> {
    let m = numel(index);
    if x.is_empty() || x[0] == 0 || m == 0 {
        return Err(shape_error(
            "gather_batch",
            format!("needs x [N ≥ 1, ..] and at least one index, got x {x:?}, index {index:?}"),
        ));
    }
    let mut out = x.to_vec();
    out[0] = m;
    Ok(out)
}

/// Checks every index is a row of `x`.
pub fn check_index(index: &[u32], rows: usize) -> Result<()> {
    match index.iter().position(|&i| i as usize >= rows) {
        Some(at) => Err(Error::InvalidInput(format!(
            "gather_batch: index {} at position {at} is not below the batch size {rows}",
            index[at]
        ))),
        None => Ok(()),
    }
}

/// CPU reference (indices already checked): rows of `row_len` values.
pub fn cpu(x: &[f32], row_len: usize, index: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(index.len() * row_len);
    for &i in index {
        let r = i as usize * row_len;
        out.extend_from_slice(&x[r..r + row_len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn picks_rows_in_index_order() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [3, 2]
        assert_eq!(check(&[3, 2], &[2, 2]).unwrap(), vec![4, 2]);
        assert_eq!(
            cpu(&x, 2, &[2, 0, 0, 1]),
            [4.0, 5.0, 0.0, 1.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(check(&[3, 4, 5], &[1]).unwrap(), vec![1, 4, 5]);
        assert_eq!(check(&[3], &[5]).unwrap(), vec![5]);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(check(&[], &[1]).is_err());
        assert!(check(&[0, 2], &[1]).is_err());
        assert!(check(&[3, 2], &[0]).is_err());
        assert!(check_index(&[0, 2], 3).is_ok());
        assert!(matches!(
            check_index(&[0, 3], 3),
            Err(Error::InvalidInput(m)) if m.contains("position 1")
        ));
    }
}
