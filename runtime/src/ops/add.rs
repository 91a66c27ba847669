//! Elementwise add with the second operand repeated over leading axes (residuals; position
//! tables added to every batch row).

use alloc::format;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;

/// The sizes of one add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// The output's shape (`a`'s).
    pub out_shape: Vec<usize>,
    /// Elements of `b`, repeated over `a`.
    pub b_len: usize,
}

/// Checks that `b` (leading 1s ignored) equals the trailing axes of `a`.
pub fn check(a: &[usize], b: &[usize]) -> Result<Checked<Dims>> {
    let first_real = b.iter().position(|&d| d != 1).unwrap_or(b.len());
    let b_core = &b[first_real..];
    if b_core.len() > a.len() || a[a.len() - b_core.len()..] != *b_core {
        return Err(shape_error(
            "add",
            format!("cannot add {b:?} to {a:?} (must match its trailing axes)"),
        ));
    }
    Ok(Checked::new(Dims {
        out_shape: a.to_vec(),
        b_len: b_core.iter().product(),
    }))
}

/// `out[i] = a[i] + b[i mod len(b)]`.
pub fn cpu(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = a.to_vec();
    for chunk in out.chunks_mut(b.len().max(1)) {
        for (x, y) in chunk.iter_mut().zip(b) {
            *x += y;
        }
    }
    out
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
