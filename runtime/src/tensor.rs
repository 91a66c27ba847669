//! Host-side data: `f32` tensors and token batches.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};

/// A dense row-major `f32` tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl HostTensor {
    /// Wraps `data` with `shape`; their sizes must agree.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n = numel(shape);
        if n != data.len() {
            return Err(Error::InvalidInput(alloc::format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            )));
        }
        Ok(HostTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        HostTensor {
            shape: shape.to_vec(),
            data: vec![0.0; numel(shape)],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Takes the values out.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Same values, another shape of the same size.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.data.len() {
            return Err(Error::InvalidInput(alloc::format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}

/// An empty vector with room for `n` values, or [`Error::OutOfMemory`] naming `what` when the
/// memory is not there (for sizes that come from input; they are checked against
/// [`crate::limits`] first).
pub fn try_vec<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        what: what.into(),
        bytes: (n as u64).saturating_mul(core::mem::size_of::<T>() as u64),
    })?;
    Ok(v)
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A batch of token sequences, `[batch, len]`, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    ids: Vec<u32>,
    batch: usize,
    len: usize,
}

impl Tokens {
    /// Wraps `ids` as `batch` rows of `len` tokens.
    pub fn new(ids: Vec<u32>, batch: usize, len: usize) -> Result<Self> {
        if ids.len() != batch * len || batch == 0 || len == 0 {
            return Err(Error::InputShape {
                what: "tokens".into(),
                expected: vec![batch, len],
                found: vec![ids.len()],
            });
        }
        Ok(Tokens { ids, batch, len })
    }

    /// Builds a batch from signed ids (e.g. int32 tensors); negative ids are errors.
    pub fn from_i32(ids: &[i32], batch: usize, len: usize) -> Result<Self> {
        let ids = ids
            .iter()
            .enumerate()
            .map(|(index, &t)| {
                u32::try_from(t).map_err(|_| Error::TokenOutOfRange {
                    token: t as i64,
                    index,
                    limit: u32::MAX,
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        Tokens::new(ids, batch, len)
    }

    /// Rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens per row.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no tokens (never true for a constructed batch).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// All ids, row-major.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// One row.
    pub fn row(&self, b: usize) -> &[u32] {
        &self.ids[b * self.len..(b + 1) * self.len]
    }

    /// Checks every id is below `limit`.
    pub fn check_below(&self, limit: u32) -> Result<()> {
        match self.ids.iter().position(|&t| t >= limit) {
            Some(index) => Err(Error::TokenOutOfRange {
                token: self.ids[index] as i64,
                index,
                limit,
            }),
            None => Ok(()),
        }
    }
}
