//! How parameters are stored: the formats a model's large matrices may be kept in — in the
//! model file, in memory on the CPU and on a GPU — and the conversions between them.
//!
//! A parameter reaches a backend as a [`StoredTensor`]: its shape, its element format and the
//! file's own bytes (borrowed, not converted), so a bf16 kernel stays bf16 from the file to the
//! backend's memory and is widened to f32 only in registers, inside the kernels.
//!
//! # Formats ([`Precision`])
//!
//! * `f32`, `f16`, `bf16`: IEEE single and half precision and bfloat16, for any parameter.
//! * `q8`: symmetric 8-bit integers with one `f32` scale per channel, for the large matrices
//!   only ([`Role::Kernel`]: every Dense kernel, a channel per output column; [`Role::Table`]:
//!   the token embedding table, a channel per row). An element is `q · scale` with `q` in
//!   `-127..=127`; quantising a channel sets `scale = max |w| / 127` (0 for a channel of zeros)
//!   and `q = round(w / scale)`, so no element moves by more than `scale / 2`. LayerNorm
//!   parameters, biases and position tables stay float.
//!
//! # q8 in a model file
//!
//! The single-file safetensors form, with
//!
//! * `__metadata__["cappa.quantization"] = "q8"` ([`QUANTIZATION_KEY`], [`Q8_SCHEME`]), which
//!   names the scheme above;
//! * each quantised parameter under its reference name, dtype `I8`, with its reference shape;
//! * its scales beside it under `<name>_scale` ([`SCALE_SUFFIX`]), dtype `F32`, with the
//!   parameter's rank: the channel axes keep their sizes and the other axes are 1, so that
//!   `w ≈ q * scale` broadcasts in numpy or JAX. A Dense kernel `[in.., out..]` (the query
//!   kernel `[768, 12, 64]`) has scales `[1.., out..]` (`[1, 12, 64]`); the token table
//!   `[rows, width]` has `[rows, 1]`.
//!
//! Every other tensor is stored as in a float file. The loader checks all of it and rejects a
//! file that breaks a rule with [`Error::Quantization`] naming the tensor: `I8` tensors without
//! the metadata key, an unknown scheme, a missing or misshapen scale tensor, a scale that is
//! negative or not finite, the value `-128` (outside the symmetric range), or an `I8` tensor
//! where the model wants a float (a LayerNorm scale, a bias, a position table).

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use half::{bf16, f16};
use safetensors::tensor::Dtype;

use crate::error::{Error, Result};
use crate::safetensors_io::{DType, Entry, OwnedTensor, SafetensorsFile};
use crate::tensor::{numel, HostTensor};

/// `__metadata__` key naming the quantisation scheme of a model file's `I8` tensors.
pub const QUANTIZATION_KEY: &str = "cappa.quantization";
/// The value of [`QUANTIZATION_KEY`] for the q8 scheme of this module.
pub const Q8_SCHEME: &str = "q8";
/// Suffix of the name of a quantised tensor's scales (`<name>_scale`).
pub const SCALE_SUFFIX: &str = "_scale";

/// The format a model's large matrices are kept in (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Symmetric int8 with an f32 scale per output channel (kernels) or per row (tables).
    Q8,
}

impl Precision {
    /// Every format, widest first.
    pub const ALL: [Precision; 4] = [
        Precision::F32,
        Precision::BF16,
        Precision::F16,
        Precision::Q8,
    ];

    /// Parses `f32`, `f16`, `bf16` or `q8` (any case; also `float32`, `float16`, `bfloat16`,
    /// `int8`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "q8" | "int8" => Ok(Precision::Q8),
            _ => DType::parse(s).map(Precision::from).map_err(|_| {
                Error::InvalidInput(format!(
                    "unknown precision `{s}` (expected f32, f16, bf16 or q8)"
                ))
            }),
        }
    }

    /// The name `parse` reads: `f32`, `f16`, `bf16` or `q8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::Q8 => "q8",
        }
    }

    /// The float element type, unless this is q8.
    pub fn float(self) -> Option<DType> {
        match self {
            Precision::F32 => Some(DType::F32),
            Precision::F16 => Some(DType::F16),
            Precision::BF16 => Some(DType::BF16),
            Precision::Q8 => None,
        }
    }

    /// Bytes per element (q8: the int8 values, not counting the scales).
    pub fn size(self) -> usize {
        self.float().map_or(1, DType::size)
    }
}

impl From<DType> for Precision {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => Precision::F32,
            DType::F16 => Precision::F16,
            DType::BF16 => Precision::BF16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a parameter is to the model, which decides the formats it may be kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// LayerNorm parameters, biases, position tables: always computed with as f32.
    Plain,
    /// A Dense kernel whose first `in_axes` axes are its input: a matrix `[in, out]` (the
    /// right operand of a matmul); q8 keeps a scale per output column.
    Kernel {
        /// How many leading axes are the input.
        in_axes: usize,
    },
    /// A table whose rows are picked by id (the token embedding): a matrix `[rows, width]`;
    /// q8 keeps a scale per row.
    Table,
}

impl Role {
    /// The matrix `[rows, cols]` a parameter of file shape `shape` is kept as; `None` for
    /// [`Role::Plain`].
    pub fn matrix(self, shape: &[usize]) -> Option<[usize; 2]> {
        let split = match self {
            Role::Plain => return None,
            Role::Kernel { in_axes } => in_axes.min(shape.len()),
            Role::Table => shape.len().min(1),
        };
        Some([numel(&shape[..split]), numel(&shape[split..])])
    }

    /// Which way the q8 scales of such a matrix run.
    pub fn channels(self) -> Option<Channels> {
        match self {
            Role::Plain => None,
            Role::Kernel { .. } => Some(Channels::Columns),
            Role::Table => Some(Channels::Rows),
        }
    }

    /// The shape of the scale tensor of a q8 parameter of file shape `shape`: the channel axes
    /// kept, the others 1.
    pub fn scale_shape(self, shape: &[usize]) -> Option<Vec<usize>> {
        let keep = |keep: &dyn Fn(usize) -> bool| {
            let dims = shape.iter().enumerate();
            dims.map(|(i, &d)| if keep(i) { d } else { 1 }).collect()
        };
        match self {
            Role::Plain => None,
            Role::Kernel { in_axes } => Some(keep(&|i| i >= in_axes)),
            Role::Table => Some(keep(&|i| i == 0)),
        }
    }
}

/// Which way the scales of a q8 matrix `[rows, cols]` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One scale per column (a Dense kernel's output channels).
    Columns,
    /// One scale per row (a table's entries).
    Rows,
}

impl Channels {
    /// The index of the scale of element `(row, col)`.
    #[inline]
    pub fn index(self, row: usize, col: usize) -> usize {
        match self {
            Channels::Columns => col,
            Channels::Rows => row,
        }
    }

    /// How many scales a `[rows, cols]` matrix has.
    pub fn count(self, [rows, cols]: [usize; 2]) -> usize {
        match self {
            Channels::Columns => cols,
            Channels::Rows => rows,
        }
    }
}

/// The elements of a [`StoredTensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<'a> {
    /// f32, f16 or bf16 elements, little-endian.
    Float(DType, Cow<'a, [u8]>),
    /// A q8 matrix: one int8 value per element (as bytes) and one scale per channel.
    Q8 {
        /// The values, `i8` bit patterns, row-major.
        values: Cow<'a, [u8]>,
        /// One per channel.
        scales: Vec<f32>,
        /// Which way the channels run.
        channels: Channels,
    },
}

/// A parameter as stored: its shape, its element format and its bytes, borrowed from the model
/// file where it can be. Backends keep it in its format where they can
/// ([`crate::Backend::upload_weight`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor<'a> {
    shape: Vec<usize>,
    stored: Stored<'a>,
}

impl<'a> StoredTensor<'a> {
    /// f32 values.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Result<StoredTensor<'static>> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        StoredTensor::float(shape, DType::F32, Cow::Owned(bytes))
    }

    /// Little-endian elements of a float type.
    pub fn float(shape: &[usize], dtype: DType, bytes: Cow<'a, [u8]>) -> Result<Self> {
        if bytes.len() != numel(shape) * dtype.size() {
            return Err(Error::InvalidInput(format!(
                "{} bytes cannot hold {dtype:?} values of shape {shape:?}",
                bytes.len()
            )));
        }
        Ok(StoredTensor {
            shape: shape.to_vec(),
            stored: Stored::Float(dtype, bytes),
        })
    }

    /// A q8 matrix `shape = [rows, cols]`: `values` holds `i8` bit patterns, row-major, and
    /// `scales` one scale per channel. Checks the sizes, the symmetric range (no `-128`) and the
    /// scales (finite, not negative); an error names the tensor as `name`.
    pub fn q8(
        name: &str,
        shape: [usize; 2],
        values: Cow<'a, [u8]>,
        scales: Vec<f32>,
        channels: Channels,
    ) -> Result<Self> {
        let bad = |problem: String| Error::Quantization {
            name: name.to_string(),
            problem,
        };
        if values.len() != shape[0] * shape[1] {
            return Err(bad(format!(
                "{} values for a {}×{} matrix",
                values.len(),
                shape[0],
                shape[1]
            )));
        }
        if scales.len() != channels.count(shape) {
            return Err(bad(format!(
                "{} scales for {} channels",
                scales.len(),
                channels.count(shape)
            )));
        }
        if let Some(i) = values.iter().position(|&v| v == 0x80) {
            return Err(bad(format!(
                "value -128 at element {i} is outside the symmetric range -127..=127"
            )));
        }
        if let Some(i) = scales.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(bad(format!(
                "scale {i} is {}; scales must be finite and not negative",
                scales[i]
            )));
        }
        Ok(StoredTensor {
            shape: shape.to_vec(),
            stored: Stored::Q8 {
                values,
                scales,
                channels,
            },
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements as stored.
    pub fn stored(&self) -> &Stored<'a> {
        &self.stored
    }

    /// The format.
    pub fn precision(&self) -> Precision {
        match &self.stored {
            Stored::Float(d, _) => Precision::from(*d),
            Stored::Q8 { .. } => Precision::Q8,
        }
    }

    /// Bytes the elements take as stored (q8: values and scales).
    pub fn byte_len(&self) -> usize {
        match &self.stored {
            Stored::Float(_, b) => b.len(),
            Stored::Q8 { values, scales, .. } => values.len() + 4 * scales.len(),
        }
    }

    /// The same elements with another shape of equal size. A q8 matrix keeps its shape (its
    /// scales belong to its rows or columns).
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let ok = match self.stored {
            Stored::Float(..) => numel(shape) == numel(&self.shape),
            Stored::Q8 { .. } => shape == self.shape.as_slice(),
        };
        if !ok {
            return Err(Error::InvalidInput(format!(
                "cannot reshape a {} tensor {:?} to {shape:?}",
                self.precision(),
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// The index of the first element that is NaN or infinite, if any (read in the stored
    /// format, without widening the tensor; a q8 tensor's scales are checked when it is made).
    pub fn first_non_finite(&self) -> Option<usize> {
        match &self.stored {
            Stored::Float(DType::F32, b) => b
                .chunks_exact(4)
                .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
            Stored::Float(DType::F16, b) => b
                .chunks_exact(2)
                .position(|c| !f16::from_le_bytes([c[0], c[1]]).is_finite()),
            Stored::Float(DType::BF16, b) => b
                .chunks_exact(2)
                .position(|c| !bf16::from_le_bytes([c[0], c[1]]).is_finite()),
            Stored::Q8 { .. } => None,
        }
    }

    /// The values as f32: widened, or dequantised (`q · scale`).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.stored {
            Stored::Float(dtype, bytes) => widen_bytes(*dtype, bytes),
            Stored::Q8 {
                values,
                scales,
                channels,
            } => {
                let cols = self.shape[1];
                let q8 = values.iter().map(|&v| v as i8);
                q8.enumerate()
                    .map(|(i, q)| q as f32 * scales[channels.index(i / cols.max(1), i % cols)])
                    .collect()
            }
        }
    }

    /// The values as an f32 host tensor.
    pub fn to_host(&self) -> Result<HostTensor> {
        HostTensor::new(&self.shape, self.to_f32())
    }

    /// The same parameter in format `to`: floats rounded to nearest (even), or quantised per
    /// channel for q8 (which needs a matrix and its `channels`). Converting to the format it
    /// already has changes nothing.
    pub fn convert(
        self,
        name: &str,
        to: Precision,
        channels: Option<Channels>,
    ) -> Result<StoredTensor<'a>> {
        if self.precision() == to {
            return Ok(self);
        }
        let values = self.to_f32();
        match to.float() {
            Some(dtype) => {
                StoredTensor::float(&self.shape, dtype, Cow::Owned(encode(&values, dtype)))
            }
            None => {
                let (Some(channels), &[rows, cols]) = (channels, self.shape.as_slice()) else {
                    return Err(Error::InvalidInput(format!(
                        "`{name}` {:?} cannot be q8: only kernels and tables are quantised",
                        self.shape
                    )));
                };
                let (q, scales) = quantize([rows, cols], &values, channels).map_err(|problem| {
                    Error::Quantization {
                        name: name.to_string(),
                        problem,
                    }
                })?;
                StoredTensor::q8(name, [rows, cols], Cow::Owned(q), scales, channels)
            }
        }
    }

    /// A view of the same tensor borrowing its bytes.
    pub fn borrow(&self) -> StoredTensor<'_> {
        let stored = match &self.stored {
            Stored::Float(d, b) => Stored::Float(*d, Cow::Borrowed(b.as_ref())),
            Stored::Q8 {
                values,
                scales,
                channels,
            } => Stored::Q8 {
                values: Cow::Borrowed(values.as_ref()),
                scales: scales.clone(),
                channels: *channels,
            },
        };
        StoredTensor {
            shape: self.shape.clone(),
            stored,
        }
    }

    /// The tensors a model file stores this parameter as, under `name` with the file shape
    /// `file_shape` (same size): one float tensor, or for q8 the `I8` values and their
    /// `<name>_scale` in the broadcast shape of `role`.
    pub fn file_tensors(
        &self,
        name: &str,
        file_shape: &[usize],
        role: Role,
    ) -> Result<Vec<OwnedTensor>> {
        if numel(file_shape) != numel(&self.shape) {
            return Err(Error::InvalidInput(format!(
                "`{name}`: {:?} is not the file shape {file_shape:?}",
                self.shape
            )));
        }
        Ok(match &self.stored {
            Stored::Float(dtype, bytes) => {
                vec![OwnedTensor::raw(
                    name,
                    dtype.to_safetensors(),
                    file_shape,
                    bytes.to_vec(),
                )]
            }
            Stored::Q8 { values, scales, .. } => {
                let scale_shape = role.scale_shape(file_shape).ok_or_else(|| {
                    Error::InvalidInput(format!("`{name}`: q8 is for kernels and tables only"))
                })?;
                let scale_bytes = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
                vec![
                    OwnedTensor::raw(name, Dtype::I8, file_shape, values.to_vec()),
                    OwnedTensor::raw(&scale_name(name), Dtype::F32, &scale_shape, scale_bytes),
                ]
            }
        })
    }
}

/// The name of the scale tensor of the q8 tensor `name`.
pub fn scale_name(name: &str) -> String {
    format!("{name}{SCALE_SUFFIX}")
}

/// Whether tensor `name` of `file` is the scales of a q8 tensor (not a parameter of its own).
pub fn is_scale(file: &SafetensorsFile<'_>, name: &str) -> bool {
    name.strip_suffix(SCALE_SUFFIX)
        .and_then(|base| file.get(base))
        .is_some_and(|e| e.dtype == Dtype::I8)
}

/// Little-endian float bytes to f32 values.
pub(crate) fn widen_bytes(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// f32 values as little-endian `dtype` bytes, rounded to nearest (even).
pub(crate) fn encode(values: &[f32], dtype: DType) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
            DType::F16 => bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
            DType::BF16 => bytes.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
        }
    }
    bytes
}

/// Quantises a row-major `[rows, cols]` matrix per channel: `(values as i8 bit patterns,
/// scales)`. Fails on values that are not finite.
pub fn quantize(
    [rows, cols]: [usize; 2],
    w: &[f32],
    channels: Channels,
) -> core::result::Result<(Vec<u8>, Vec<f32>), String> {
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(format!("element {i} is {}, which q8 cannot hold", w[i]));
    }
    let mut max = vec![0.0f32; channels.count([rows, cols])];
    for (i, v) in w.iter().enumerate() {
        let m = &mut max[channels.index(i / cols, i % cols)];
        *m = m.max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|m| m / 127.0).collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[channels.index(i / cols, i % cols)];
            let q = if s > 0.0 { libm::roundf(v / s) } else { 0.0 };
            q.clamp(-127.0, 127.0) as i8 as u8
        })
        .collect();
    Ok((q, scales))
}

/// Reads parameter `name` of a model file for a request of `role`: a float tensor as it is, or a
/// q8 one with its scales, checked as the [module documentation](self) says and shaped as the
/// matrix of `role`. Returns the tensor and the name of its scale tensor, if it has one.
pub(crate) fn read<'a>(
    file: &SafetensorsFile<'a>,
    name: &str,
    e: &Entry<'a>,
    role: Role,
) -> Result<(StoredTensor<'a>, Option<String>)> {
    if e.dtype != Dtype::I8 {
        let dtype = e.float_dtype(name)?;
        return Ok((
            StoredTensor::float(&e.shape, dtype, Cow::Borrowed(e.bytes))?,
            None,
        ));
    }
    let bad = |problem: String| Error::Quantization {
        name: name.to_string(),
        problem,
    };
    check_scheme(file, name)?;
    let (Some(matrix), Some(want), Some(channels)) = (
        role.matrix(&e.shape),
        role.scale_shape(&e.shape),
        role.channels(),
    ) else {
        return Err(bad(
            "is I8, but only kernels and the token table may be quantised; this parameter must \
             be F32, F16 or BF16"
                .into(),
        ));
    };
    let sname = scale_name(name);
    let s = file
        .get(&sname)
        .ok_or_else(|| bad(format!("its scales `{sname}` are missing")))?;
    if s.dtype != Dtype::F32 || s.shape != want {
        return Err(bad(format!(
            "its scales `{sname}` are {:?} {:?}; expected F32 {want:?}",
            s.dtype, s.shape
        )));
    }
    let scales = widen_bytes(DType::F32, s.bytes);
    let t = StoredTensor::q8(name, matrix, Cow::Borrowed(e.bytes), scales, channels)?;
    Ok((t, Some(sname)))
}

/// Checks that the file declares the q8 scheme (called for a file holding `I8` tensor `name`).
fn check_scheme(file: &SafetensorsFile<'_>, name: &str) -> Result<()> {
    match file.metadata(QUANTIZATION_KEY) {
        Some(Q8_SCHEME) => Ok(()),
        Some(other) => Err(Error::Quantization {
            name: name.to_string(),
            problem: format!(
                "the file's {QUANTIZATION_KEY} is `{other}`; this version reads `{Q8_SCHEME}`"
            ),
        }),
        None => Err(Error::Quantization {
            name: name.to_string(),
            problem: format!(
                "is I8, but the file's __metadata__ has no {QUANTIZATION_KEY} naming its scheme"
            ),
        }),
    }
}

/// Checks the file's quantisation key, if it has one, names a scheme this version reads.
pub fn check_file_scheme(file: &SafetensorsFile<'_>) -> Result<()> {
    match file.metadata(QUANTIZATION_KEY) {
        None => Ok(()),
        Some(_) => check_scheme(file, QUANTIZATION_KEY),
    }
}

/// The values of an `I8` tensor of a q8 file, dequantised by broadcasting its scale tensor
/// (whatever the parameter; for tools that want floats), and the scale tensor's name.
pub fn dequantize_entry(
    file: &SafetensorsFile<'_>,
    name: &str,
    e: &Entry<'_>,
) -> Result<(Vec<f32>, String)> {
    check_scheme(file, name)?;
    let bad = |problem: String| Error::Quantization {
        name: name.to_string(),
        problem,
    };
    let sname = scale_name(name);
    let s = file
        .get(&sname)
        .ok_or_else(|| bad(format!("its scales `{sname}` are missing")))?;
    let broadcasts = s.shape.len() == e.shape.len()
        && s.shape
            .iter()
            .zip(&e.shape)
            .all(|(&a, &b)| a == b || a == 1);
    if s.dtype != Dtype::F32 || !broadcasts {
        return Err(bad(format!(
            "its scales `{sname}` are {:?} {:?}, which do not broadcast to {:?}",
            s.dtype, s.shape, e.shape
        )));
    }
    let scales = widen_bytes(DType::F32, s.bytes);
    // Strides of the scale tensor over the values' index space (0 along its axes of size 1).
    let mut strides = vec![0usize; e.shape.len()];
    let mut step = 1;
    for (axis, &d) in s.shape.iter().enumerate().rev() {
        if d != 1 {
            strides[axis] = step;
        }
        step *= d;
    }
    let mut values = Vec::with_capacity(e.bytes.len());
    for (i, &q) in e.bytes.iter().enumerate() {
        let (mut rest, mut at) = (i, 0);
        for (axis, &d) in e.shape.iter().enumerate().rev() {
            at += (rest % d) * strides[axis];
            rest /= d;
        }
        values.push(q as i8 as f32 * scales[at]);
    }
    Ok((values, sname))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn normal(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.normal()).collect()
    }

    #[test]
    fn quantising_moves_no_element_by_more_than_half_a_step() {
        for channels in [Channels::Columns, Channels::Rows] {
            let w = normal(7 * 13, 1);
            let (q, s) = quantize([7, 13], &w, channels).unwrap();
            let t = StoredTensor::q8("w", [7, 13], Cow::Owned(q), s.clone(), channels).unwrap();
            for (i, (got, want)) in t.to_f32().iter().zip(&w).enumerate() {
                let scale = s[channels.index(i / 13, i % 13)];
                assert!((got - want).abs() <= scale * 0.5 + 1e-7, "{channels:?} {i}");
            }
            // Every channel reaches ±127 (its largest magnitude).
            let mut hit = vec![false; s.len()];
            for (i, &v) in t.stored_values().iter().enumerate() {
                if (v as i8).unsigned_abs() == 127 {
                    hit[channels.index(i / 13, i % 13)] = true;
                }
            }
            assert!(hit.iter().all(|&h| h), "{channels:?}");
        }
    }

    impl StoredTensor<'_> {
        fn stored_values(&self) -> &[u8] {
            match &self.stored {
                Stored::Q8 { values, .. } => values,
                Stored::Float(_, b) => b,
            }
        }
    }

    #[test]
    fn zero_channels_and_bad_values() {
        let (q, s) = quantize([2, 2], &[0.0, 1.0, 0.0, -2.0], Channels::Columns).unwrap();
        assert_eq!(s, [0.0, 2.0 / 127.0]);
        assert_eq!(
            q.iter().map(|&v| v as i8).collect::<Vec<_>>(),
            [0, 64, 0, -127]
        );
        assert!(quantize([1, 2], &[1.0, f32::NAN], Channels::Rows).is_err());
        let q8 = |v: Vec<u8>, s: Vec<f32>| {
            StoredTensor::q8("w", [1, 2], Cow::Owned(v), s, Channels::Columns)
        };
        assert!(matches!(
            q8(vec![0x80, 0], vec![1.0, 1.0]),
            Err(Error::Quantization { .. })
        ));
        assert!(q8(vec![0, 0], vec![1.0, -1.0]).is_err());
        assert!(q8(vec![0, 0], vec![1.0]).is_err());
        assert!(q8(vec![0, 0, 0], vec![1.0, 1.0]).is_err());
        assert!(q8(vec![1, 255], vec![0.5, 0.25]).is_ok());
    }

    #[test]
    fn conversions_round_to_nearest_and_keep_what_they_can() {
        let w = normal(4 * 6, 2);
        let t = StoredTensor::from_f32(&[4, 6], &w).unwrap();
        for to in Precision::ALL {
            let c = t.clone().convert("w", to, Some(Channels::Columns)).unwrap();
            assert_eq!((c.precision(), c.shape()), (to, &[4, 6][..]));
            if let Some(d) = to.float() {
                let want: Vec<f32> = w.iter().map(|&v| d.round(v)).collect();
                assert_eq!(c.to_f32(), want, "{to}");
            }
        }
        // A vector cannot be q8; a conversion to the same format keeps the borrowed bytes.
        let v = StoredTensor::from_f32(&[6], &w[..6]).unwrap();
        assert!(v.convert("b", Precision::Q8, None).is_err());
        let same = t.borrow().convert("w", Precision::F32, None).unwrap();
        assert!(matches!(same.stored(), Stored::Float(_, Cow::Borrowed(_))));
        // q8 keeps its matrix shape; floats reshape freely.
        let q = t
            .clone()
            .convert("w", Precision::Q8, Some(Channels::Rows))
            .unwrap();
        assert!(q.clone().reshape(&[24]).is_err());
        assert!(q.reshape(&[4, 6]).is_ok());
        assert!(t.reshape(&[2, 12]).is_ok());
    }

    #[test]
    fn roles_shape_their_matrices_and_scales() {
        let kernel = Role::Kernel { in_axes: 1 };
        assert_eq!(kernel.matrix(&[8, 2, 4]), Some([8, 8]));
        assert_eq!(kernel.scale_shape(&[8, 2, 4]), Some(vec![1, 2, 4]));
        let out = Role::Kernel { in_axes: 2 };
        assert_eq!(out.matrix(&[2, 4, 8]), Some([8, 8]));
        assert_eq!(out.scale_shape(&[2, 4, 8]), Some(vec![1, 1, 8]));
        assert_eq!(Role::Table.matrix(&[5, 3]), Some([5, 3]));
        assert_eq!(Role::Table.scale_shape(&[5, 3]), Some(vec![5, 1]));
        assert_eq!(Role::Plain.matrix(&[3]), None);
        assert_eq!(Precision::parse("Q8").unwrap(), Precision::Q8);
        assert_eq!(Precision::parse("bfloat16").unwrap(), Precision::BF16);
        assert!(Precision::parse("q4").is_err());
    }

    #[test]
    fn file_tensors_read_back_and_dequantise_by_broadcasting() {
        use crate::safetensors_io::serialize;
        let role = Role::Kernel { in_axes: 1 };
        let w = normal(3 * 2 * 2, 3);
        let t = StoredTensor::from_f32(&[3, 4], &w).unwrap();
        let q = t.convert("k", Precision::Q8, role.channels()).unwrap();
        let tensors = q.file_tensors("k", &[3, 2, 2], role).unwrap();
        assert_eq!(tensors.len(), 2);
        let meta = [(QUANTIZATION_KEY, Q8_SCHEME.to_string())];
        let bytes = serialize(&tensors, &meta).unwrap();
        let file = SafetensorsFile::parse(&bytes).unwrap();
        let e = file.get("k").unwrap();
        let (back, sname) = read(&file, "k", e, role).unwrap();
        assert_eq!(
            (back.clone(), sname.as_deref()),
            (q.clone(), Some("k_scale"))
        );
        let (values, _) = dequantize_entry(&file, "k", e).unwrap();
        assert_eq!(values, q.to_f32());
        // A plain parameter may not be I8; a file without the key, or with another scheme, is
        // rejected.
        assert!(matches!(
            read(&file, "k", e, Role::Plain),
            Err(Error::Quantization { .. })
        ));
        for meta in [vec![], vec![(QUANTIZATION_KEY, "q4".to_string())]] {
            let bytes = serialize(&tensors, &meta).unwrap();
            let file = SafetensorsFile::parse(&bytes).unwrap();
            let err = read(&file, "k", file.get("k").unwrap(), role).unwrap_err();
            assert!(matches!(err, Error::Quantization { .. }), "{err}");
        }
        // Scales of the wrong shape (per row where the kernel wants per column), or missing.
        let per_row = OwnedTensor::raw("k_scale", Dtype::F32, &[3, 1, 1], vec![0; 12]);
        for scales in [vec![per_row], vec![]] {
            let tensors = [vec![tensors[0].clone()], scales].concat();
            let bytes = serialize(&tensors, &meta).unwrap();
            let file = SafetensorsFile::parse(&bytes).unwrap();
            let err = read(&file, "k", file.get("k").unwrap(), role).unwrap_err();
            assert!(err.to_string().contains("k_scale"), "{err}");
        }
    }
}
