//! The trainable parameters: every tensor the config implies, by its reference path and shape,
//! on a backend. The list is the one the runtime's model loads (it is found by building a
//! `cappa::Model` from a source that records what it is asked for), so a trained model always
//! loads in `cappa`.

use std::cell::RefCell;

use cappa::checkpoint::{CONFIG_KEY, TOKENIZER_KEY};
use cappa::rng::Rng;
use cappa::safetensors_io::{serialize, OwnedTensor};
use cappa::weights::{ParamSource, Scope};
use cappa::{Backend, Checkpoint, Config, CpuBackend, Error, Gemm, HostTensor, Model, Result};

/// One named parameter.
#[derive(Debug, Clone)]
pub struct Param<B: Backend> {
    /// Reference path, e.g. `decoder/EncDecBlock0/SelfAttn/query/kernel`.
    pub name: String,
    /// Reference shape (kernels keep their `[in, heads, head_dim]` form).
    pub shape: Vec<usize>,
    /// The values.
    pub tensor: B::Tensor,
}

/// Every parameter of a model, in a fixed order (the order the runtime loads them in).
#[derive(Debug, Clone)]
pub struct Params<B: Backend> {
    list: Vec<Param<B>>,
}

/// Records which parameters a model asks for, handing out zeros.
struct Recorder(RefCell<Vec<(String, Vec<usize>)>>);

impl ParamSource for Recorder {
    fn get(&self, path: &str, shape: &[usize]) -> Result<HostTensor> {
        self.0.borrow_mut().push((path.to_string(), shape.to_vec()));
        Ok(HostTensor::zeros(shape))
    }
}

/// The name and shape of every parameter `config` implies, in load order.
pub fn layout(config: &Config) -> Result<Vec<(String, Vec<usize>)>> {
    let mut config = config.clone();
    config.resolve();
    let rec = Recorder(RefCell::new(Vec::new()));
    Model::from_source(&config, &rec, CpuBackend::with_gemm(Gemm::Blocked))?;
    Ok(rec.0.into_inner())
}

/// Whether AdamW's decoupled weight decay applies to the parameter `name`: the reference decays
/// exactly the tensors whose path ends in `/kernel` (big_vision `wd_mults` default `.*/kernel$`).
pub fn decays(name: &str) -> bool {
    name.ends_with("/kernel")
}

impl<B: Backend> Params<B> {
    /// Uploads host tensors given in [`layout`] order.
    pub fn from_host(be: &B, config: &Config, tensors: Vec<HostTensor>) -> Result<Self> {
        let names = layout(config)?;
        if names.len() != tensors.len() {
            return Err(Error::InvalidInput(format!(
                "{} tensors for {} parameters",
                tensors.len(),
                names.len()
            )));
        }
        let list = names
            .into_iter()
            .zip(tensors)
            .map(|((name, shape), t)| {
                if t.shape() != shape.as_slice() {
                    return Err(Error::ShapeMismatch {
                        name,
                        expected: shape,
                        found: t.shape().to_vec(),
                    });
                }
                Ok(Param {
                    tensor: be.upload(&t)?,
                    name,
                    shape,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params { list })
    }

    /// Every parameter of `ckpt` (checked as the runtime checks a model file: nothing missing,
    /// misshapen or unexpected), as f32 on `be`.
    pub fn from_checkpoint(be: &B, ckpt: &Checkpoint<'_>) -> Result<Self> {
        let file = ckpt.file()?;
        let params = cappa::weights::FileParams::new(&file);
        let names = layout(ckpt.config())?;
        let root = Scope::new(&params);
        let tensors = names
            .iter()
            .map(|(n, s)| root.get(n, s))
            .collect::<Result<Vec<_>>>()?;
        Self::from_host(be, ckpt.config(), tensors)
    }

    /// Fresh parameters drawn with the reference initialisers (spec §6), seeded.
    pub fn init(be: &B, config: &Config, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let tensors = layout(config)?
            .into_iter()
            .map(|(name, shape)| init_one(&name, &shape, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        Self::from_host(be, config, tensors)
    }

    /// The parameters in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Param<B>> {
        self.list.iter()
    }

    /// Mutable access, in load order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param<B>> {
        self.list.iter_mut()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Total number of values.
    pub fn count(&self) -> usize {
        self.list
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    /// The parameter `name`.
    pub fn get(&self, name: &str) -> Result<&B::Tensor> {
        self.list
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.tensor)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                expected: Vec::new(),
            })
    }

    /// Whether `name` is a parameter.
    pub fn has(&self, name: &str) -> bool {
        self.list.iter().any(|p| p.name == name)
    }

    /// Every parameter downloaded, in load order.
    pub fn to_host(&self, be: &B) -> Result<Vec<(String, HostTensor)>> {
        self.list
            .iter()
            .map(|p| Ok((p.name.clone(), be.download(&p.tensor)?)))
            .collect()
    }

    /// The model file (single-file form: f32 tensors, the config and the tokenizer metadata in
    /// `__metadata__`), loadable by `cappa::Checkpoint::from_bytes`.
    pub fn model_file(&self, be: &B, config: &Config, tokenizer: Option<&str>) -> Result<Vec<u8>> {
        let tensors: Vec<OwnedTensor> = self
            .to_host(be)?
            .iter()
            .map(|(n, t)| OwnedTensor::f32(n, t))
            .collect();
        let mut meta = vec![(CONFIG_KEY, config.to_json())];
        if let Some(t) = tokenizer {
            meta.push((TOKENIZER_KEY, t.to_string()));
        }
        serialize(&tensors, &meta)
    }
}

/// One parameter drawn with the reference's initialiser for it (spec §6). Flax initialises a
/// `[in, H, D]` kernel as the matrix `[in, H·D]` (and `[H, D, out]` as `[H·D, out]`), so fans
/// are those of the matrix.
fn init_one(name: &str, shape: &[usize], rng: &mut Rng) -> Result<HostTensor> {
    let n: usize = shape.iter().product();
    let leaf = name.rsplit('/').next().unwrap_or(name);
    let in_axes = if name.ends_with("embedding/kernel") && name.starts_with("encoder/") {
        3 // the patch-embedding convolution [p, p, C, width]
    } else if name.ends_with("out/kernel") {
        2
    } else {
        1
    };
    let fan_in: usize = shape[..in_axes.min(shape.len())].iter().product();
    let fan_out: usize = shape[in_axes.min(shape.len())..].iter().product();
    let normal = |rng: &mut Rng, std: f32| (0..n).map(|_| std * rng.normal()).collect::<Vec<_>>();
    // Flax's lecun_normal: a normal truncated at ±2 std, rescaled to keep the variance 1/fan_in.
    let lecun = |rng: &mut Rng| {
        let std = (1.0 / fan_in.max(1) as f32).sqrt() / 0.879_625_7;
        (0..n)
            .map(|_| loop {
                let z = rng.normal();
                if z.abs() <= 2.0 {
                    break std * z;
                }
            })
            .collect::<Vec<_>>()
    };
    let xavier = |rng: &mut Rng| {
        let limit = (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
        (0..n)
            .map(|_| (rng.uniform() * 2.0 - 1.0) * limit)
            .collect::<Vec<_>>()
    };
    let data = match leaf {
        "scale" => vec![1.0; n],
        "pos_embedding" | "pos_embedding_decoder" => {
            normal(rng, 1.0 / (*shape.last().unwrap_or(&1) as f32).sqrt())
        }
        "embedding" if name.starts_with("decoder/") => normal(rng, 1.0),
        "bias" if name.contains("Dense_") => normal(rng, 1e-6),
        "bias" => vec![0.0; n],
        "kernel" if name.starts_with("decoder/LogitsDense") => vec![0.0; n],
        "kernel" if name.starts_with("encoder/embedding") => lecun(rng),
        "kernel" if name.contains("MultiHeadDotProductAttention") || name.contains("Dense_") => {
            xavier(rng)
        }
        "kernel" => lecun(rng),
        _ => {
            return Err(Error::InvalidInput(format!(
                "no initialiser for parameter {name}"
            )))
        }
    };
    HostTensor::new(shape, data)
}
