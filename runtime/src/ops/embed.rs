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
