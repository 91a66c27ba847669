//! Reading and writing `.safetensors` files, with every malformation turned into
//! [`Error::MalformedFile`] and every unusable element type into [`Error::UnsupportedDtype`].
//!
//! Parsing borrows the file's bytes; tensors are converted to `f32` (or `i32` for ids) only when
//! asked for.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::error::{Error, Result};
use crate::tensor::{numel, HostTensor};

/// Floating-point element types a model file may store its parameters in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16 (the top 16 bits of an f32).
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The safetensors element type.
    pub(crate) fn to_safetensors(self) -> Dtype {
        match self {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
        }
    }

    /// `v` rounded to the nearest value this type can hold.
    pub fn round(self, v: f32) -> f32 {
        match self {
            DType::F32 => v,
            DType::F16 => half::f16::from_f32(v).to_f32(),
            DType::BF16 => half::bf16::from_f32(v).to_f32(),
        }
    }

    /// Parses `f32`, `f16`, `bf16` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => Err(Error::InvalidInput(format!(
                "unknown dtype `{s}` (expected f32, f16 or bf16)"
            ))),
        }
    }
}

/// One tensor of a parsed file: its element type, shape and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Element type as stored.
    pub dtype: Dtype,
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Raw data.
    pub bytes: &'a [u8],
}

impl Entry<'_> {
    /// The floating-point type of this tensor, or an error naming `name` if it is not one the
    /// model can use.
    pub fn float_dtype(&self, name: &str) -> Result<DType> {
        match self.dtype {
            Dtype::F32 => Ok(DType::F32),
            Dtype::F16 => Ok(DType::F16),
            Dtype::BF16 => Ok(DType::BF16),
            other => Err(Error::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }

    /// The values converted to `f32` (from f32, f16 or bf16).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let b = self.bytes;
        Ok(match self.float_dtype(name)? {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        })
    }

    /// The values as `i32` (from i32 or i64 within range).
    pub fn to_i32(&self, name: &str) -> Result<Vec<i32>> {
        let b = self.bytes;
        match self.dtype {
            Dtype::I32 => Ok(b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| {
                    let v = i64::from_le_bytes(c.try_into().expect("8 bytes"));
                    i32::try_from(v).map_err(|_| {
                        Error::InvalidInput(format!("`{name}` holds {v}, outside the i32 range"))
                    })
                })
                .collect(),
            other => Err(Error::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{other:?} (expected I32 or I64 token ids)"),
            }),
        }
    }
}

/// What a file's first bytes say it is, when it is something people mistake for a model
/// (an `.npz`, an `.npy`, an image).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 6] = [
        (
            b"PK\x03\x04",
            "a zip archive (a big_vision .npz?), not a safetensors model: convert it with \
             `cappa convert IN.npz OUT.safetensors`",
        ),
        (
            b"PK\x05\x06",
            "an empty zip archive (.npz), not a safetensors model",
        ),
        (b"\x93NUMPY", "a numpy .npy array, not a safetensors model"),
        (b"\x89PNG", "a PNG image, not a model"),
        (b"\xff\xd8\xff", "a JPEG image, not a model"),
        (b"RIFF", "a RIFF file (WebP?), not a model"),
    ];
    KINDS
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, what)| *what)
}

/// A parsed safetensors file.
#[derive(Debug, Clone)]
pub struct SafetensorsFile<'a> {
    entries: BTreeMap<String, Entry<'a>>,
    metadata: BTreeMap<String, String>,
}

impl<'a> SafetensorsFile<'a> {
    /// Parses `bytes`; any structural problem is an [`Error::MalformedFile`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if let Some(what) = sniff(bytes) {
            return Err(Error::MalformedFile(format!("this is {what}")));
        }
        if bytes.len() < 8 {
            return Err(Error::MalformedFile(format!(
                "the file is {} bytes long, too short for the 8-byte header length",
                bytes.len()
            )));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if n > (bytes.len() - 8) as u64 {
            return Err(Error::MalformedFile(format!(
                "the header claims {n} bytes but only {} follow the length field \
                 (truncated file?)",
                bytes.len() - 8
            )));
        }
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::MalformedFile(format!("{e} (truncated or corrupt file?)")))?;
        let (_, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::MalformedFile(format!("{e}")))?;
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let entries = st
            .iter()
            .map(|(name, view)| {
                (
                    name.to_string(),
                    Entry {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: view.data(),
                    },
                )
            })
            .collect();
        Ok(SafetensorsFile { entries, metadata })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// All tensors, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One tensor, if present.
    pub fn get(&self, name: &str) -> Option<&Entry<'a>> {
        self.entries.get(name)
    }

    /// A string from `__metadata__`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// A float tensor converted to `f32`; a missing name is an [`Error::MissingTensor`].
    pub fn f32(&self, name: &str) -> Result<HostTensor> {
        let e = self.require(name)?;
        HostTensor::new(&e.shape, e.to_f32(name)?)
    }

    /// An integer tensor as `i32` with its shape.
    pub fn i32(&self, name: &str) -> Result<(Vec<usize>, Vec<i32>)> {
        let e = self.require(name)?;
        Ok((e.shape.clone(), e.to_i32(name)?))
    }

    fn require(&self, name: &str) -> Result<&Entry<'a>> {
        self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            expected: Vec::new(),
        })
    }
}

/// An owned tensor ready to be written.
#[derive(Debug, Clone)]
pub struct OwnedTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl OwnedTensor {
    /// Encodes `f32` values as `dtype` (rounding to nearest for f16/bf16).
    pub fn float(name: &str, shape: &[usize], values: &[f32], dtype: DType) -> Self {
        let mut bytes = Vec::with_capacity(values.len() * dtype.size());
        for &v in values {
            match dtype {
                DType::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
                DType::F16 => bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                DType::BF16 => bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            }
        }
        OwnedTensor {
            name: name.to_string(),
            dtype: dtype.to_safetensors(),
            shape: shape.to_vec(),
            bytes,
        }
    }

    /// A tensor of any element type from its little-endian bytes.
    pub fn raw(name: &str, dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        OwnedTensor {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }

    /// An `f32` tensor.
    pub fn f32(name: &str, t: &HostTensor) -> Self {
        Self::float(name, t.shape(), t.data(), DType::F32)
    }

    /// An `i32` tensor.
    pub fn i32(name: &str, shape: &[usize], values: &[i32]) -> Self {
        debug_assert_eq!(numel(shape), values.len());
        OwnedTensor {
            name: name.to_string(),
            dtype: Dtype::I32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Copies a parsed entry as it is (same element type and bytes).
    pub fn copy_of(name: &str, e: &Entry<'_>) -> Self {
        OwnedTensor {
            name: name.to_string(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            bytes: e.bytes.to_vec(),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> alloc::borrow::Cow<'_, [u8]> {
        alloc::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Serialises tensors (sorted by name in the file) and `__metadata__` strings.
pub fn serialize(tensors: &[OwnedTensor], metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(
            metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    };
    let bytes = safetensors::tensor::serialize(tensors.iter().map(|t| (t.name.as_str(), t)), meta)
        .map_err(|e| Error::InvalidInput(format!("cannot serialise tensors: {e}")))?;
    Ok(canonical_header(bytes))
}

/// The same file with its header's keys in a fixed order (`__metadata__` first, its keys
/// sorted, then the tensors by name): the `safetensors` crate writes the metadata in hash-map
/// order, which differs from process to process, so equal models would give different bytes.
/// The header keeps its length (the same JSON, reordered), so the data does not move.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    use serde_json::Value;
    let Some(n) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + n) else {
        return bytes;
    };
    let json = match core::str::from_utf8(header) {
        Ok(t) => t.trim_end_matches(' '),
        Err(_) => return bytes,
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
        return bytes;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| (k.as_str() != "__metadata__", k.as_str()));
    let mut out = String::from("{");
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&text(key));
        out.push(':');
        match (&map[key], key.as_str()) {
            (Value::Object(meta), "__metadata__") => {
                let mut entries: Vec<(&String, &Value)> = meta.iter().collect();
                entries.sort_by_key(|(k, _)| k.as_str());
                out.push('{');
                for (j, (k, v)) in entries.into_iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(&text(k));
                    out.push(':');
                    out.push_str(&text(v));
                }
                out.push('}');
            }
            (v, _) => out.push_str(&text(v)),
        }
    }
    out.push('}');
    if out.len() == json.len() {
        bytes[8..8 + out.len()].copy_from_slice(out.as_bytes());
    }
    bytes
}

/// Compact JSON text, for [`canonical_header`].
fn text<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trip_all_float_types() {
        let t = HostTensor::new(&[2, 2], vec![1.0, -2.5, 0.125, 3.0]).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let bytes = serialize(
                &[OwnedTensor::float("w", t.shape(), t.data(), dt)],
                &[("k", "v".into())],
            )
            .unwrap();
            let f = SafetensorsFile::parse(&bytes).unwrap();
            assert_eq!(f.f32("w").unwrap(), t, "{dt:?}");
            assert_eq!(f.metadata("k"), Some("v"));
        }
    }

    #[test]
    fn equal_files_are_equal_bytes() {
        // Metadata in several keys: the safetensors crate writes them in hash-map order.
        let t = HostTensor::new(&[2], vec![1.0, 2.0]).unwrap();
        let meta: Vec<(&str, String)> = ["z", "a", "m", "cappa.config", "b"]
            .iter()
            .map(|k| (*k, alloc::format!("value of {k}")))
            .collect();
        let first = serialize(
            &[OwnedTensor::f32("w", &t), OwnedTensor::f32("a", &t)],
            &meta,
        )
        .unwrap();
        for _ in 0..20 {
            let again = serialize(
                &[OwnedTensor::f32("w", &t), OwnedTensor::f32("a", &t)],
                &meta,
            )
            .unwrap();
            assert_eq!(again, first);
        }
        let f = SafetensorsFile::parse(&first).unwrap();
        assert_eq!(f.metadata("m"), Some("value of m"));
        assert_eq!(f.f32("a").unwrap(), t);
    }

    #[test]
    fn truncated_and_lying_headers_are_errors() {
        let t = HostTensor::new(&[3], vec![1.0, 2.0, 3.0]).unwrap();
        let bytes = serialize(&[OwnedTensor::f32("w", &t)], &[]).unwrap();
        for cut in [0, 5, 8, 20, bytes.len() - 1] {
            let err = SafetensorsFile::parse(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, Error::MalformedFile(_)), "cut {cut}: {err}");
        }
        let mut lying = bytes.clone();
        lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = SafetensorsFile::parse(&lying).unwrap_err();
        assert!(alloc::format!("{err}").contains("header claims"), "{err}");
    }
}
