//! One module per op: its shape rules (checked once, shared by every backend) and its CPU
//! reference implementation, with tests beside them. The WGSL kernel of an op lives in
//! `wgsl/<op>.wgsl` at the repository root.

pub mod add;
pub mod attention;
pub mod beam;
pub mod cross_entropy;
pub mod embed;
pub mod gather;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod patchify;
pub mod rows;
pub mod sample;
pub mod softmax;

use alloc::format;
use alloc::string::String;

use crate::error::Error;

/// A shape error for op `op`.
pub(crate) fn shape_error(op: &str, msg: String) -> Error {
    Error::InvalidInput(format!("{op}: {msg}"))
}

/// Splits `[.., last]` into (rows, last).
pub(crate) fn rows_and_last(shape: &[usize]) -> (usize, usize) {
    let last = *shape.last().unwrap_or(&1);
    let rows = shape[..shape.len().saturating_sub(1)].iter().product();
    (rows, last)
}
