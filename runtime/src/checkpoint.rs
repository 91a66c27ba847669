//! Model files. A checkpoint is ONE `.safetensors` file whose tensor names are the reference's
//! parameter paths and whose `__metadata__` carries the config as JSON under `cappa.config`
//! (and, optionally, the tokenizer under `cappa.tokenizer`). The reference fixtures' folder
//! form — `params.safetensors` + `config.json` — loads too, and [`Checkpoint::to_single_file`]
//! turns either into the single-file form.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use safetensors::tensor::Dtype;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::formats;
use crate::safetensors_io::{serialize, DType, OwnedTensor, SafetensorsFile};
use crate::tokenizer::Tokenizer;

/// `__metadata__` key holding the config JSON.
pub const CONFIG_KEY: &str = "cappa.config";
/// `__metadata__` key holding the tokenizer.
pub const TOKENIZER_KEY: &str = "cappa.tokenizer";

/// The `__metadata__` of a model file: the config, and the tokenizer if there is one.
pub fn metadata(config: &Config, tokenizer: Option<&str>) -> Vec<(&'static str, String)> {
    let mut meta = alloc::vec![(CONFIG_KEY, config.to_json())];
    if let Some(t) = tokenizer {
        meta.push((TOKENIZER_KEY, t.to_string()));
    }
    meta
}

/// A model file: config plus parameter tensors (parsed lazily from the file's bytes).
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    config: Config,
    bytes: Cow<'a, [u8]>,
    tokenizer: Option<String>,
}

impl<'a> Checkpoint<'a> {
    /// A single-file checkpoint (config in `__metadata__`), borrowing `bytes`.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        Self::single_file(Cow::Borrowed(bytes))
    }

    /// The folder form: parameter file bytes plus the `config.json` text. A `cappa.config` in
    /// the file's metadata is ignored in favour of `config_json`.
    pub fn from_parts(params: &'a [u8], config_json: &str) -> Result<Self> {
        Self::with_config(Cow::Borrowed(params), config_json)
    }

    fn with_config(bytes: Cow<'a, [u8]>, config_json: &str) -> Result<Self> {
        let config = Config::from_json(config_json)?;
        let tokenizer = SafetensorsFile::parse(&bytes)?
            .metadata(TOKENIZER_KEY)
            .map(str::to_string);
        Ok(Checkpoint {
            config,
            bytes,
            tokenizer,
        })
    }

    fn single_file(bytes: Cow<'a, [u8]>) -> Result<Self> {
        let file = SafetensorsFile::parse(&bytes)?;
        let json = file.metadata(CONFIG_KEY).ok_or_else(|| {
            Error::Config(format!(
                "the file has no `{CONFIG_KEY}` in its __metadata__ (for the folder form, \
                 give params.safetensors with a config.json beside it)"
            ))
        })?;
        let config = Config::from_json(json)?;
        let tokenizer = file.metadata(TOKENIZER_KEY).map(str::to_string);
        drop(file);
        Ok(Checkpoint {
            config,
            bytes,
            tokenizer,
        })
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tokenizer text stored with the model, if any.
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// The stored tokenizer, parsed and checked against the config (see
    /// [`Tokenizer::check_config`]); `None` when the file has none.
    pub fn load_tokenizer(&self) -> Result<Option<Tokenizer>> {
        let Some(json) = self.tokenizer() else {
            return Ok(None);
        };
        let tokenizer = Tokenizer::from_metadata(json)?;
        tokenizer.check_config(&self.config)?;
        Ok(Some(tokenizer))
    }

    /// The parsed tensors.
    pub fn file(&self) -> Result<SafetensorsFile<'_>> {
        SafetensorsFile::parse(&self.bytes)
    }

    /// Total size of the parameters in bytes as stored.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes the single-file form: every tensor converted to the float type `dtype` if given
    /// (q8 tensors dequantised, their scales dropped), else as stored (with the file's
    /// quantisation scheme), with the config (and tokenizer) in `__metadata__`.
    pub fn to_single_file(&self, dtype: Option<DType>) -> Result<Vec<u8>> {
        let file = self.file()?;
        let mut meta = metadata(&self.config, self.tokenizer());
        let Some(dt) = dtype else {
            let tensors: Vec<_> = file
                .entries()
                .map(|(n, e)| OwnedTensor::copy_of(n, e))
                .collect();
            if let Some(scheme) = file.metadata(formats::QUANTIZATION_KEY) {
                meta.push((formats::QUANTIZATION_KEY, scheme.to_string()));
            }
            return serialize(&tensors, &meta);
        };
        let mut scales = Vec::new();
        let mut tensors = Vec::new();
        for (name, e) in file.entries() {
            let values = match e.dtype {
                Dtype::I8 => {
                    let (values, scale) = formats::dequantize_entry(&file, name, e)?;
                    scales.push(scale);
                    values
                }
                _ => e.to_f32(name)?,
            };
            tensors.push(OwnedTensor::float(name, &e.shape, &values, dt));
        }
        tensors.retain(|t| !scales.iter().any(|s| s == t.name()));
        serialize(&tensors, &meta)
    }

    /// Owns a single-file checkpoint's bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Checkpoint<'static>> {
        Checkpoint::single_file(Cow::Owned(bytes))
    }

    /// Sets the tokenizer text written by [`Checkpoint::to_single_file`].
    pub fn set_tokenizer(&mut self, tokenizer: Option<String>) {
        self.tokenizer = tokenizer;
    }
}

#[cfg(feature = "std")]
impl Checkpoint<'static> {
    /// Loads a model from `path`: a single `.safetensors` file, or a folder holding
    /// `params.safetensors` and `config.json` (the fixtures' layout). The file must be a
    /// regular file of exactly the size its header declares (see
    /// [`crate::files::read_model_file`]); errors are [`Error::File`] with the path.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let params_path = path.join("params.safetensors");
            let params = crate::files::read_model_file(&params_path)
                .map_err(|e| in_file(e, &params_path))?;
            let cfg_path = path.join("config.json");
            let json = read_config(&cfg_path).map_err(|e| in_file(e, &cfg_path))?;
            Checkpoint::with_config(Cow::Owned(params), &json).map_err(|e| in_file(e, path))
        } else {
            let bytes = crate::files::read_model_file(path).map_err(|e| in_file(e, path))?;
            Checkpoint::from_vec(bytes).map_err(|e| in_file(e, path))
        }
    }

    /// Writes the single-file form to `path` atomically (temporary file, fsync, rename), so a
    /// crash never leaves a half-written model.
    pub fn save(&self, path: impl AsRef<std::path::Path>, dtype: Option<DType>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_single_file(dtype)?)
    }
}

#[cfg(feature = "std")]
fn in_file(e: Error, path: &std::path::Path) -> Error {
    e.in_file(path.display().to_string())
}

/// A `config.json`: a regular file of at most 16 MiB of UTF-8.
#[cfg(feature = "std")]
fn read_config(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    const MAX: u64 = 16 << 20;
    let file = std::fs::File::open(path).map_err(|e| Error::Io(e.to_string()))?;
    let meta = file.metadata().map_err(|e| Error::Io(e.to_string()))?;
    if !meta.is_file() || meta.len() > MAX {
        return Err(Error::Config(format!(
            "not a regular file of at most {MAX} bytes"
        )));
    }
    let mut text = String::new();
    file.take(MAX)
        .read_to_string(&mut text)
        .map_err(|_| Error::Config("not UTF-8".into()))?;
    Ok(text)
}

/// Writes `bytes` to `path` through a temporary file in the same folder, fsynced and renamed
/// (the one atomic write of the workspace: [`crate::files::write_atomic`]).
#[cfg(feature = "std")]
pub use crate::files::write_atomic;
