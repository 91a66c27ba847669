//! Walking a checkpoint by the reference's parameter paths.
//!
//! Model code asks for each parameter by its path and the shape the config implies
//! (`scope.pp("encoder").get("embedding/kernel", &[p, p, 3, width])`, as candle's `VarBuilder`),
//! so the code and the weight file name the same things. A [`FileParams`] source checks every
//! request against the file (presence, shape, element type) and, once the model is built,
//! [`FileParams::finish`] reports any tensor nobody asked for.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::safetensors_io::{DType, SafetensorsFile};
use crate::tensor::{numel, HostTensor};

/// Where parameters come from.
pub trait ParamSource {
    /// The parameter at `path`, which must have `shape`.
    fn get(&self, path: &str, shape: &[usize]) -> Result<HostTensor>;

    /// [`ParamSource::get`], plus the element type the parameter is stored in.
    fn get_stored(&self, path: &str, shape: &[usize]) -> Result<(HostTensor, DType)> {
        Ok((self.get(path, shape)?, DType::F32))
    }
}

/// A position in the parameter tree: a path prefix over a source.
#[derive(Clone)]
pub struct Scope<'s> {
    source: &'s dyn ParamSource,
    prefix: String,
}

impl<'s> Scope<'s> {
    /// The root of `source`.
    pub fn new(source: &'s dyn ParamSource) -> Self {
        Scope {
            source,
            prefix: String::new(),
        }
    }

    /// A sub-scope (`encoder` → `encoder/Transformer`).
    pub fn pp(&self, name: &str) -> Scope<'s> {
        Scope {
            source: self.source,
            prefix: self.path(name),
        }
    }

    /// The full path of `name` in this scope.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The parameter `name` of this scope, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        self.source.get(&self.path(name), shape)
    }

    /// [`Scope::get`] and the element type the file stores it in.
    pub fn get_stored(&self, name: &str, shape: &[usize]) -> Result<(HostTensor, DType)> {
        self.source.get_stored(&self.path(name), shape)
    }
}

/// Parameters read from a safetensors file, checked against the shapes the model asks for.
pub struct FileParams<'f, 'a> {
    file: &'f SafetensorsFile<'a>,
    used: RefCell<BTreeSet<String>>,
}

impl<'f, 'a> FileParams<'f, 'a> {
    /// Wraps a parsed file.
    pub fn new(file: &'f SafetensorsFile<'a>) -> Self {
        FileParams {
            file,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Fails on the first tensor in the file that was never asked for.
    pub fn finish(&self) -> Result<()> {
        let used = self.used.borrow();
        match self.file.entries().find(|(n, _)| !used.contains(*n)) {
            Some((name, e)) => Err(Error::UnexpectedTensor {
                name: name.to_string(),
                shape: e.shape.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl ParamSource for FileParams<'_, '_> {
    fn get(&self, path: &str, shape: &[usize]) -> Result<HostTensor> {
        Ok(self.get_stored(path, shape)?.0)
    }

    fn get_stored(&self, path: &str, shape: &[usize]) -> Result<(HostTensor, DType)> {
        let e = self.file.get(path).ok_or_else(|| Error::MissingTensor {
            name: path.to_string(),
            expected: shape.to_vec(),
        })?;
        if e.shape != shape {
            return Err(Error::ShapeMismatch {
                name: path.to_string(),
                expected: shape.to_vec(),
                found: e.shape.clone(),
            });
        }
        let values = e.to_f32(path)?;
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                name: path.to_string(),
                index,
            });
        }
        self.used.borrow_mut().insert(path.to_string());
        Ok((HostTensor::new(shape, values)?, e.float_dtype(path)?))
    }
}

/// Random parameters for tests and demos (not the reference initialisers): LayerNorm scales
/// near 1, everything else normal with std `1/sqrt(fan_in)`. Records what it produced.
pub struct RandomParams {
    rng: RefCell<Rng>,
    made: RefCell<Vec<(String, HostTensor)>>,
}

impl RandomParams {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        RandomParams {
            rng: RefCell::new(Rng::new(seed)),
            made: RefCell::new(Vec::new()),
        }
    }

    /// Everything produced so far, in request order.
    pub fn into_tensors(self) -> Vec<(String, HostTensor)> {
        self.made.into_inner()
    }
}

impl ParamSource for RandomParams {
    fn get(&self, path: &str, shape: &[usize]) -> Result<HostTensor> {
        let n = numel(shape);
        let last = *shape.last().unwrap_or(&1);
        let fan_in = (n / last.max(1)).max(1);
        let mut rng = self.rng.borrow_mut();
        let (mean, std) = if path.ends_with("scale") {
            (1.0, 0.1)
        } else if path.ends_with("bias") {
            (0.0, 0.1)
        } else if fan_in == 1 || path.contains("pos_embedding") || path.contains("Embed") {
            (0.0, 0.5)
        } else {
            (0.0, 1.0 / libm::sqrtf(fan_in as f32))
        };
        let data = (0..n).map(|_| mean + std * rng.normal()).collect();
        let t = HostTensor::new(shape, data)?;
        self.made.borrow_mut().push((path.to_string(), t.clone()));
        Ok(t)
    }
}
