//! Walking a checkpoint by the reference's parameter paths.
//!
//! Model code asks for each parameter by its path, the shape the config implies and the
//! reference's initialiser for it (`scope.pp("encoder").get("embedding/kernel", &[p, p, 3,
//! width], init)`, as candle's `VarBuilder`), so the code and the weight file name the same
//! things, once. A [`FileParams`] source checks every request against the file (presence, shape,
//! element type, q8 scales) and hands out the stored bytes as they are
//! ([`crate::formats::StoredTensor`]), so each backend keeps them in the file's format where it
//! can; once the model is built, [`FileParams::finish`] reports any tensor nobody asked for; an [`InitParams`] source draws fresh parameters the way the reference initialises
//! them (training from scratch).

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::error::{Error, Result};
use crate::formats::{self, Precision, Role, StoredTensor};
use crate::rng::Rng;
use crate::safetensors_io::SafetensorsFile;
use crate::tensor::numel;

/// How the reference initialises a parameter (spec §6; Flax's initialisers), for a model
/// trained from scratch. Sources that read parameters ignore it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones (LayerNorm scales).
    Ones,
    /// Normal with mean 0 and this standard deviation.
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// Flax's `lecun_normal`: a normal truncated at ±2 standard deviations, rescaled so that
    /// the variance is `1 / fan_in`.
    LecunNormal {
        /// Input size of the kernel seen as a matrix.
        fan_in: usize,
    },
    /// Flax's `xavier_uniform`: uniform in `±√(6 / (fan_in + fan_out))`.
    XavierUniform {
        /// Input size of the kernel seen as a matrix.
        fan_in: usize,
        /// Output size of the kernel seen as a matrix.
        fan_out: usize,
    },
}

impl Init {
    /// `n` values drawn from `rng` (nothing is drawn for constants).
    pub fn draw(self, n: usize, rng: &mut Rng) -> Vec<f32> {
        match self {
            Init::Zeros => alloc::vec![0.0; n],
            Init::Ones => alloc::vec![1.0; n],
            Init::Normal { std } => (0..n).map(|_| std * rng.normal()).collect(),
            Init::LecunNormal { fan_in } => {
                // 0.8796… is the standard deviation of a unit normal truncated at ±2.
                let std = libm::sqrtf(1.0 / fan_in.max(1) as f32) / 0.879_625_7;
                (0..n)
                    .map(|_| loop {
                        let z = rng.normal();
                        if z.abs() <= 2.0 {
                            break std * z;
                        }
                    })
                    .collect()
            }
            Init::XavierUniform { fan_in, fan_out } => {
                let limit = libm::sqrtf(6.0 / (fan_in + fan_out).max(1) as f32);
                (0..n)
                    .map(|_| (rng.uniform() * 2.0 - 1.0) * limit)
                    .collect()
            }
        }
    }
}

/// Where parameters come from.
pub trait ParamSource {
    /// The parameter at `path`, which must have `shape`, as stored (f32 values for sources
    /// that make them): `role` says what it is to the model, and so which formats it may be in;
    /// `init` is how the reference initialises it.
    fn get(&self, path: &str, shape: &[usize], init: Init, role: Role) -> Result<StoredTensor<'_>>;
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

    /// The parameter `name` of this scope as stored, checked to have `shape`, initialised (by
    /// sources that make parameters) as `init`; `role` says what it is to the model.
    pub fn get(
        &self,
        name: &str,
        shape: &[usize],
        init: Init,
        role: Role,
    ) -> Result<StoredTensor<'s>> {
        self.source.get(&self.path(name), shape, init, role)
    }
}

/// Parameters read from a safetensors file, checked against the shapes the model asks for,
/// handed out as the file stores them (borrowed, not converted) or, with
/// [`FileParams::with_precision`], with the large matrices converted to one format.
pub struct FileParams<'f, 'a> {
    file: &'f SafetensorsFile<'a>,
    precision: Option<Precision>,
    used: RefCell<BTreeSet<String>>,
}

impl<'f, 'a> FileParams<'f, 'a> {
    /// Wraps a parsed file; parameters come as stored.
    pub fn new(file: &'f SafetensorsFile<'a>) -> Self {
        FileParams {
            file,
            precision: None,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Converts every kernel and table ([`Role::Kernel`], [`Role::Table`]) to `precision` as it
    /// is handed out, whatever the file stores (`None`: as stored). Other parameters come as
    /// stored.
    pub fn with_precision(mut self, precision: Option<Precision>) -> Self {
        self.precision = precision;
        self
    }

    /// Fails on the first tensor in the file that was never asked for (or on a quantisation
    /// scheme this version does not read).
    pub fn finish(&self) -> Result<()> {
        formats::check_file_scheme(self.file)?;
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
    fn get(
        &self,
        path: &str,
        shape: &[usize],
        _init: Init,
        role: Role,
    ) -> Result<StoredTensor<'_>> {
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
        let (stored, scales) = formats::read(self.file, path, e, role)?;
        if let Some(index) = stored.first_non_finite() {
            return Err(Error::NonFiniteWeight {
                name: path.to_string(),
                index,
            });
        }
        let stored = match (self.precision, role.matrix(shape)) {
            (Some(p), Some(matrix)) => {
                stored.reshape(&matrix)?.convert(path, p, role.channels())?
            }
            _ => stored,
        };
        let mut used = self.used.borrow_mut();
        used.insert(path.to_string());
        used.extend(scales);
        Ok(stored)
    }
}

/// Random parameters for tests and demos (not the reference initialisers): LayerNorm scales
/// near 1, everything else normal with std `1/sqrt(fan_in)`.
pub struct RandomParams {
    rng: RefCell<Rng>,
}

impl RandomParams {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        RandomParams {
            rng: RefCell::new(Rng::new(seed)),
        }
    }
}

impl ParamSource for RandomParams {
    fn get(&self, path: &str, shape: &[usize], _init: Init, _: Role) -> Result<StoredTensor<'_>> {
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
        let data: Vec<f32> = (0..n).map(|_| mean + std * rng.normal()).collect();
        StoredTensor::from_f32(shape, &data)
    }
}

/// Fresh parameters drawn as the reference initialises them ([`Init`]), in the order the model
/// asks for them, from one seeded generator: the same seed gives the same model.
pub struct InitParams {
    rng: RefCell<Rng>,
}

impl InitParams {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        InitParams {
            rng: RefCell::new(Rng::new(seed)),
        }
    }
}

impl ParamSource for InitParams {
    fn get(&self, _path: &str, shape: &[usize], init: Init, _: Role) -> Result<StoredTensor<'_>> {
        let values = init.draw(numel(shape), &mut self.rng.borrow_mut());
        StoredTensor::from_f32(shape, &values)
    }
}
