//! `cappa convert IN OUT`: big_vision checkpoints (`.npz`) ⇄ cappa model files (`.safetensors`),
//! and cappa model files to another weight format (`--dtype`).
//!
//! big_vision saves parameters with `np.savez` of the flattened tree: one array per parameter,
//! keyed by its path joined with `/` — the names cappa's tensors already have. So converting is
//! mostly copying bytes; what differs is handled here:
//!
//! * The tree may sit under `params/` (checkpoints that also hold optimizer state, which is
//!   skipped) or `opt/target/` (older Flax-optimizer checkpoints), as big_vision's `load_params`
//!   accepts.
//! * A model trained with `scan=True` stacks its blocks: `encoder/Transformer/encoderblock/...`
//!   with the layer axis first, `decoder/EncDecBlock/...` with the layer axis second (spec §6).
//!   They are unstacked into the loop layout (`encoderblock_{i}`, `EncDecBlock{i}`) cappa uses;
//!   `--scan` stacks them again on the way out.
//! * numpy has no bfloat16: numpy writes an `ml_dtypes.bfloat16` array as the 2-byte void `<V2`,
//!   which big_vision's `recover_dtype` reads back as bfloat16. That is what is read, and what
//!   `--dtype bf16` writes; by default bf16 goes to a `.npz` as f32 (exact), which plain numpy
//!   reads.
//! * A `.npz` has no config. It comes from `--config FILE.json`, then flags, and whatever neither
//!   gives is read off the tensor shapes. The converted model is then loaded exactly as
//!   `cappa::Model::new` loads any model, so a config that does not fit the tensors is an error
//!   naming the tensor — and nothing is written. A cappa model is checked the same way before it
//!   is converted to a `.npz`.
//!
//! * `--dtype f32|f16|bf16` writes every tensor in that type; `--dtype q8` quantises the kernels
//!   and the token table (the layout of `cappa::formats`) and leaves the other tensors as they
//!   are. A `.npz` holds floats: a q8 model is dequantised on the way out.
//!
//! f32 in, f32 out copies bytes, so a round trip is bit-exact.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cappa::checkpoint::{metadata, write_atomic};
use cappa::formats;
use cappa::{Checkpoint, Config, CpuBackend, DType, Error, Model, PosEmb, Precision, Result};
use safetensors::tensor::{Dtype, View};
use serde_json::{Map, Value};

use crate::npy::Descr;
use crate::npz;

/// `cappa convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// A big_vision checkpoint (.npz), or a cappa model (.safetensors, or a folder holding
    /// params.safetensors + config.json).
    pub input: PathBuf,
    /// The converted file: .safetensors for a .npz input, .npz or .safetensors for a cappa model.
    pub output: PathBuf,
    /// Format of the written parameters: f32, f16 or bf16 (every tensor), or q8 (the kernels and
    /// the token table quantised to int8 with a scale per output channel; a .safetensors output
    /// only). Default: as stored, except that bf16 goes to a .npz as f32 (numpy has no bfloat16;
    /// `--dtype bf16` writes big_vision's 2-byte void `<V2` encoding) and q8 as f32.
    #[arg(long, value_parser = crate::common::parse_precision)]
    pub dtype: Option<Precision>,
    /// Write the .npz in big_vision's scan layout: encoder blocks stacked on axis 0
    /// (`encoder/Transformer/encoderblock/...`), decoder blocks on axis 1 (`decoder/EncDecBlock/...`).
    #[arg(long)]
    pub scan: bool,
    /// Deflate the .npz entries, as `np.savez_compressed` does.
    #[arg(long)]
    pub compress: bool,
    /// The config of a .npz input as JSON (the keys of cappa's config.json). Flags override its
    /// values; what neither gives is inferred from the tensor shapes.
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Also write the model's config as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub config_out: Option<PathBuf>,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

/// Config values for a .npz input, named as the config's keys; each overrides `--config`.
#[derive(clap::Args, serde::Serialize, Debug, Default)]
#[command(
    next_help_heading = "Config of a .npz input (default: --config, else read off the tensors)"
)]
pub struct ConfigFlags {
    /// Model name [default: the input's file name].
    #[arg(long)]
    name: Option<String>,
    /// Input image side in pixels [inferred from `encoder/pos_embedding`].
    #[arg(long)]
    image_size: Option<usize>,
    /// Patch side in pixels [inferred].
    #[arg(long)]
    patch_size: Option<usize>,
    /// Image channels [inferred].
    #[arg(long)]
    in_channels: Option<usize>,
    /// Encoder width [inferred].
    #[arg(long, visible_alias = "width")]
    enc_width: Option<usize>,
    /// Encoder blocks [inferred].
    #[arg(long, visible_alias = "depth")]
    enc_depth: Option<usize>,
    /// Encoder attention heads [inferred].
    #[arg(long, visible_alias = "heads")]
    enc_heads: Option<usize>,
    /// Encoder MLP hidden size [inferred].
    #[arg(long, visible_alias = "mlp")]
    enc_mlp: Option<usize>,
    /// Decoder width [inferred].
    #[arg(long)]
    dec_width: Option<usize>,
    /// Decoder blocks [inferred].
    #[arg(long)]
    dec_depth: Option<usize>,
    /// Decoder attention heads [inferred].
    #[arg(long)]
    dec_heads: Option<usize>,
    /// Decoder MLP hidden size [inferred].
    #[arg(long)]
    dec_mlp: Option<usize>,
    /// Output classes, without [MASK] [inferred].
    #[arg(long, visible_alias = "vocab")]
    vocab_size: Option<usize>,
    /// Maximum caption length [inferred from `pos_embedding_decoder`].
    #[arg(long, visible_alias = "seq-len")]
    max_len: Option<usize>,
    /// Biases in the decoder blocks' LayerNorms and MLPs [inferred].
    #[arg(long, value_name = "BOOL")]
    decoder_bias: Option<bool>,
    /// Pa probability in training; > 0 means the embedding has the [MASK] row [inferred: 0.75
    /// with that row, else 0].
    #[arg(long)]
    masked_pred_prob: Option<f32>,
    /// Fraction of positions masked in a Pa example [default 1].
    #[arg(long)]
    masking_ratio: Option<f32>,
    /// Padding id [default 0].
    #[arg(long)]
    pad_id: Option<u32>,
    /// End-of-sequence id [default 1].
    #[arg(long)]
    eos_id: Option<u32>,
    /// Start id [default 0].
    #[arg(long)]
    bos_id: Option<u32>,
    /// Unknown-token id [default 2].
    #[arg(long)]
    unk_id: Option<u32>,
    /// LayerNorm epsilon [default 1e-6].
    #[arg(long)]
    layernorm_eps: Option<f32>,
    /// Label smoothing of the training loss [default 0].
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Position embeddings [inferred: learn if the tables are there, else sincos2d].
    #[arg(long, visible_alias = "posemb", value_parser = ["learn", "sincos2d"])]
    posemb_type: Option<String>,
}

impl ConfigFlags {
    /// The values given, under the config's keys.
    fn given(&self) -> Map<String, Value> {
        match serde_json::to_value(self).expect("flags serialise") {
            Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => unreachable!("a struct serialises to an object"),
        }
    }
}

/// An error about `path`, on one line.
fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {msg}", path.display()))
}

/// `e` with `path` in front (once).
fn at(path: &Path, e: Error) -> Error {
    match e {
        Error::Io(ref m) if m.starts_with(&path.display().to_string()) => e,
        e => e.in_file(path.display().to_string()),
    }
}

fn extension(p: &Path) -> Option<String> {
    p.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Runs `cappa convert`; the direction follows from the file names.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    match (
        extension(input).as_deref(),
        extension(output).as_deref(),
        input.is_dir(),
    ) {
        (Some("npz"), Some("safetensors"), false) => npz_to_safetensors(args),
        (Some("npz"), ..) => Err(bad(
            output,
            "a .npz converts to a .safetensors file; name the output *.safetensors",
        )),
        (Some("safetensors"), Some("npz"), _) | (_, Some("npz"), true) => safetensors_to_npz(args),
        (Some("safetensors"), Some("safetensors"), _) | (_, Some("safetensors"), true) => {
            safetensors_to_safetensors(args)
        }
        (Some("safetensors"), ..) | (_, _, true) => Err(bad(
            output,
            "a cappa model converts to a .npz file, or with --dtype to a .safetensors file; \
             name the output *.npz or *.safetensors",
        )),
        _ => Err(bad(
            input,
            "cannot tell what to convert: give IN.npz OUT.safetensors, or IN.safetensors \
             (or a model folder) OUT.npz",
        )),
    }
}

/// One parameter: element type, shape, little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Tensor {
    fn from_f32(shape: Vec<usize>, values: impl Iterator<Item = f32>, dtype: DType) -> Self {
        let mut bytes = Vec::with_capacity(shape.iter().product::<usize>() * dtype.size());
        for v in values {
            match dtype {
                DType::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
                DType::F16 => bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                DType::BF16 => bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            }
        }
        Tensor {
            dtype,
            shape,
            bytes,
        }
    }

    /// An array of a `.npz`; f64 is rounded and integers converted to f32.
    fn from_npy(a: npz::Array) -> Self {
        let words = |n: usize| a.data.chunks_exact(n);
        let dtype = match a.descr {
            Descr::F32 => DType::F32,
            Descr::F16 => DType::F16,
            Descr::BF16 => DType::BF16,
            Descr::F64 => {
                let v = words(8).map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32);
                return Tensor::from_f32(a.shape, v, DType::F32);
            }
            Descr::I32 => {
                let v = words(4).map(|c| i32::from_le_bytes(c.try_into().expect("4")) as f32);
                return Tensor::from_f32(a.shape, v, DType::F32);
            }
            Descr::I64 => {
                let v = words(8).map(|c| i64::from_le_bytes(c.try_into().expect("8")) as f32);
                return Tensor::from_f32(a.shape, v, DType::F32);
            }
        };
        Tensor {
            dtype,
            shape: a.shape,
            bytes: a.data,
        }
    }

    fn values(&self) -> Vec<f32> {
        let b = &self.bytes;
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }

    /// The tensor in `dtype` (rounded to nearest), and how many finite values became infinite.
    fn cast(self, dtype: DType) -> (Tensor, usize) {
        if dtype == self.dtype {
            return (self, 0);
        }
        let values = self.values();
        let overflowed = values
            .iter()
            .filter(|v| v.is_finite() && !dtype.round(**v).is_finite())
            .count();
        (
            Tensor::from_f32(self.shape, values.into_iter(), dtype),
            overflowed,
        )
    }

    fn descr(&self) -> Descr {
        match self.dtype {
            DType::F32 => Descr::F32,
            DType::F16 => Descr::F16,
            DType::BF16 => Descr::BF16,
        }
    }
}

impl View for &Tensor {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

type Tensors = BTreeMap<String, Tensor>;

/// Casts every tensor to `dtype` (if given); notes values that overflowed.
fn cast_all(tensors: Tensors, dtype: Option<DType>, notes: &mut Vec<String>) -> Tensors {
    let Some(dtype) = dtype else {
        return tensors;
    };
    let mut overflowed = 0;
    let out = tensors
        .into_iter()
        .map(|(name, t)| {
            let (t, n) = t.cast(dtype);
            overflowed += n;
            (name, t)
        })
        .collect();
    if overflowed > 0 {
        notes.push(format!(
            "{overflowed} values are beyond the {dtype:?} range and became infinite"
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// .npz → .safetensors

fn npz_to_safetensors(args: &ConvertArgs) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    if args.scan || args.compress {
        return Err(bad(
            output,
            "--scan and --compress shape a .npz output; this output is .safetensors",
        ));
    }
    let mut notes = Vec::new();
    let tensors = params_of(npz::read(input)?, &mut notes).map_err(|m| bad(input, m))?;
    let arrays = tensors.len();
    let (tensors, scanned) = unstack(tensors).map_err(|m| bad(input, m))?;
    let config = config_for(args, &tensors)?;
    let tensors = cast_all(tensors, args.dtype.and_then(Precision::float), &mut notes);
    let meta: HashMap<String, String> = metadata(&config, None)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let bytes =
        safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
            .map_err(|e| bad(output, format_args!("cannot serialise: {e}")))?;
    // Load the result as any model is loaded: every tensor against the config.
    let ckpt = Checkpoint::from_bytes(&bytes).map_err(|e| bad(input, e))?;
    Model::new(&ckpt, CpuBackend::new()).map_err(|e| bad(input, e))?;
    let bytes = match args.dtype {
        Some(Precision::Q8) => Model::convert(&ckpt, Precision::Q8).map_err(|e| bad(input, e))?,
        _ => bytes,
    };
    write_atomic(output, &bytes)?;
    if let Some(path) = &args.config_out {
        write_config(path, &config)?;
    }
    for note in notes {
        note!("cappa: note: {}: {note}", input.display());
    }
    let formats = match args.dtype {
        Some(Precision::Q8) => "q8 kernels and table".to_string(),
        _ => dtypes(&tensors),
    };
    note!(
        "cappa: converted {} ({arrays} arrays{}) to {} ({formats}): {}",
        input.display(),
        if scanned { ", scan layout" } else { "" },
        output.display(),
        describe(&config)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// .safetensors → .safetensors

/// A cappa model in another weight format: every tensor in a float type, or the kernels and
/// the token table quantised to q8.
fn safetensors_to_safetensors(args: &ConvertArgs) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    if args.scan || args.compress || args.config.is_some() || !args.flags.given().is_empty() {
        return Err(bad(
            input,
            "--scan, --compress, --config and the config flags concern .npz files",
        ));
    }
    let Some(precision) = args.dtype else {
        return Err(bad(
            output,
            "converting a cappa model to .safetensors changes its weight format; give --dtype \
             f32, f16, bf16 or q8",
        ));
    };
    let ckpt = Checkpoint::load(input).map_err(|e| at(input, e))?;
    Model::new(&ckpt, CpuBackend::new()).map_err(|e| at(input, e))?;
    let bytes = match precision.float() {
        Some(dtype) => ckpt.to_single_file(Some(dtype)),
        None => Model::convert(&ckpt, precision),
    }
    .map_err(|e| at(input, e))?;
    Model::new(&Checkpoint::from_bytes(&bytes)?, CpuBackend::new()).map_err(|e| at(input, e))?;
    write_atomic(output, &bytes)?;
    if let Some(path) = &args.config_out {
        write_config(path, ckpt.config())?;
    }
    note!(
        "cappa: converted {} ({:.1} MB) to {} ({:.1} MB, {}): {}",
        input.display(),
        ckpt.byte_len() as f64 / 1e6,
        output.display(),
        bytes.len() as f64 / 1e6,
        match precision {
            Precision::Q8 => "q8 kernels and table".to_string(),
            p => format!("every tensor {p}"),
        },
        describe(ckpt.config())
    );
    Ok(())
}

/// The parameter arrays of a checkpoint's arrays, with any `params/` or `opt/target/` prefix
/// stripped (and the arrays outside it skipped).
fn params_of(
    arrays: Vec<(String, npz::Array)>,
    notes: &mut Vec<String>,
) -> std::result::Result<Tensors, String> {
    let prefix = ["params/", "opt/target/"]
        .into_iter()
        .find(|p| arrays.iter().any(|(k, _)| k.starts_with(p)));
    let (mut skipped, mut widened) = (0, BTreeMap::<Descr, usize>::new());
    let mut tensors = Tensors::new();
    for (key, array) in arrays {
        let name = match prefix {
            Some(p) => match key.strip_prefix(p) {
                Some(name) => name.to_string(),
                None => {
                    skipped += 1;
                    continue;
                }
            },
            None => key,
        };
        if matches!(array.descr, Descr::F64 | Descr::I32 | Descr::I64) {
            *widened.entry(array.descr).or_default() += 1;
        }
        tensors.insert(name, Tensor::from_npy(array));
    }
    if tensors.is_empty() {
        return Err("holds no arrays".into());
    }
    if let (Some(p), true) = (prefix, skipped > 0) {
        notes.push(format!(
            "read the parameters under `{p}`; skipped {skipped} other arrays (optimizer state \
             and the like)"
        ));
    }
    for (descr, n) in widened {
        notes.push(format!(
            "{n} arrays stored as {descr} were converted to f32"
        ));
    }
    Ok(tensors)
}

/// The element types of `tensors`: "f32", or "bf16 and f32".
fn dtypes(tensors: &Tensors) -> String {
    let mut names: Vec<&str> = tensors
        .values()
        .map(|t| match t.dtype {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(" and ")
}

/// A one-line summary of `c`.
fn describe(c: &Config) -> String {
    format!(
        "image {} patch {}, encoder {}x{} (heads {}, mlp {}), decoder {}x{} (heads {}, mlp {}), \
         vocab {}{}, max_len {}, decoder biases {}, {} position embeddings",
        c.image_size,
        c.patch_size,
        c.enc_depth,
        c.enc_width,
        c.enc_heads,
        c.enc_mlp,
        c.dec_depth,
        c.dec_width,
        c.dec_heads,
        c.dec_mlp,
        c.vocab_size,
        if c.has_mask_token() { " + [MASK]" } else { "" },
        c.max_len,
        if c.decoder_bias { "on" } else { "off" },
        match c.posemb_type {
            PosEmb::Learn => "learned",
            PosEmb::Sincos2d => "sincos2d",
        }
    )
}

fn write_config(path: &Path, config: &Config) -> Result<()> {
    let mut json = serde_json::to_string_pretty(config).expect("config serialises");
    json.push('\n');
    write_atomic(path, json.as_bytes())
}

/// Keys the config cannot do without, and the tensor each is read from.
const REQUIRED: [(&str, &str); 8] = [
    ("image_size", "encoder/pos_embedding"),
    ("patch_size", "encoder/embedding/kernel"),
    ("enc_width", "encoder/embedding/kernel"),
    ("enc_depth", "encoder/Transformer/encoderblock_{i}"),
    (
        "enc_heads",
        "encoder/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel",
    ),
    (
        "enc_mlp",
        "encoder/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel",
    ),
    ("vocab_size", "decoder/LogitsDense/kernel"),
    ("max_len", "pos_embedding_decoder"),
];

/// The config of a `.npz`: inferred from the tensors, overridden by `--config`, overridden by
/// flags.
fn config_for(args: &ConvertArgs, tensors: &Tensors) -> Result<Config> {
    let mut merged = infer(tensors);
    if let Some(stem) = args.input.file_stem() {
        merged.insert("name".into(), stem.to_string_lossy().into());
    }
    if let Some(path) = &args.config {
        let bytes = cappa::files::read_regular(path, 16 << 20).map_err(|e| at(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| bad(path, "the config is not UTF-8"))?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(given)) => merged.extend(given),
            Ok(_) => return Err(bad(path, "the config is not a JSON object")),
            Err(e) => return Err(bad(path, format_args!("the config is not JSON: {e}"))),
        }
    }
    merged.extend(args.flags.given());
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(key, _)| !merged.contains_key(*key))
        .map(|(key, tensor)| format!("{key} (read off `{tensor}`, absent or unusable here)"))
        .collect();
    if !missing.is_empty() {
        let flags: Vec<String> = REQUIRED
            .iter()
            .filter(|(key, _)| !merged.contains_key(*key))
            .map(|(key, _)| format!("--{}", key.replace('_', "-")))
            .collect();
        return Err(bad(
            &args.input,
            format_args!(
                "cannot infer {}; give {} or --config FILE.json",
                missing.join(", "),
                flags.join(", ")
            ),
        ));
    }
    let source = args.config.as_deref().unwrap_or(&args.input);
    Config::from_json(&Value::Object(merged).to_string()).map_err(|e| bad(source, e))
}

/// The config values that converting `tensors` (loop layout) back from a `.npz` without
/// `--config` would not restore, as `key value`.
fn lost_in_npz(tensors: &Tensors, config: &Config) -> Vec<String> {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(&config.to_json()) else {
        return Vec::new();
    };
    let mut back = infer(tensors);
    let mut lost = Vec::new();
    for (key, _) in REQUIRED {
        if !back.contains_key(key) {
            if let Some(v) = want.get(key) {
                lost.push(format!("{key} {v}"));
                back.insert(key.into(), v.clone());
            }
        }
    }
    back.insert("name".into(), want.get("name").cloned().unwrap_or_default());
    let Ok(read_back) = Config::from_json(&Value::Object(back).to_string()) else {
        return lost;
    };
    let Ok(Value::Object(got)) = serde_json::from_str::<Value>(&read_back.to_json()) else {
        return lost;
    };
    for (key, v) in &want {
        let counted = lost
            .iter()
            .any(|l| l.split(' ').next() == Some(key.as_str()));
        // An explicit mask_id can only be vocab_size, which is what an absent one means.
        let implied = key == "mask_id" && want.get("vocab_size") == Some(v);
        if got.get(key) != Some(v) && !counted && !implied {
            lost.push(format!("{key} {v}"));
        }
    }
    lost
}

/// What the tensor shapes (loop layout) say about the config, under the config's keys.
fn infer(t: &Tensors) -> Map<String, Value> {
    let shape = |name: &str| t.get(name).map(|x| x.shape.as_slice());
    // Blocks are numbered from 0; the highest number found sets the depth, so a gap shows up
    // later as the missing block's tensors.
    let depth = |prefix: &str| {
        t.keys()
            .filter_map(|k| {
                k.strip_prefix(prefix)?
                    .split_once('/')?
                    .0
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map(|m| m + 1)
    };
    let mut c = Map::new();
    let mut patch = None;
    if let Some(&[p, q, channels, width]) = shape("encoder/embedding/kernel") {
        if p == q {
            patch = Some(p);
            c.insert("patch_size".into(), p.into());
        }
        c.insert("in_channels".into(), channels.into());
        c.insert("enc_width".into(), width.into());
    }
    match shape("encoder/pos_embedding") {
        Some(&[1, n, _]) => {
            c.insert("posemb_type".into(), "learn".into());
            let side = n.isqrt();
            if let (Some(p), true) = (patch, side * side == n) {
                c.insert("image_size".into(), (side * p).into());
            }
        }
        None => {
            c.insert("posemb_type".into(), "sincos2d".into());
        }
        Some(_) => {}
    }
    if let Some(d) = depth("encoder/Transformer/encoderblock_") {
        c.insert("enc_depth".into(), d.into());
    }
    let block = "encoder/Transformer/encoderblock_0";
    if let Some(&[_, heads, _]) = shape(&format!(
        "{block}/MultiHeadDotProductAttention_0/query/kernel"
    )) {
        c.insert("enc_heads".into(), heads.into());
    }
    if let Some(&[_, mlp]) = shape(&format!("{block}/MlpBlock_0/Dense_0/kernel")) {
        c.insert("enc_mlp".into(), mlp.into());
    }
    let rows = match shape("decoder/EmbedTargets/embedding") {
        Some(&[rows, width]) => {
            c.insert("dec_width".into(), width.into());
            Some(rows)
        }
        _ => None,
    };
    let vocab = match (
        shape("decoder/LogitsDense/kernel"),
        shape("decoder/LogitsDense/bias"),
    ) {
        (Some(&[_, v]), _) | (None, Some(&[v])) => Some(v),
        _ => None,
    };
    if let Some(v) = vocab {
        c.insert("vocab_size".into(), v.into());
    }
    // The [MASK] row exists exactly when Pa was trained (masked_pred_prob > 0); its value only
    // matters to training, where CapPa's is 0.75.
    match (rows, vocab) {
        (Some(r), Some(v)) if r == v + 1 => {
            c.insert("masked_pred_prob".into(), 0.75.into());
        }
        (Some(r), Some(v)) if r == v => {
            c.insert("masked_pred_prob".into(), 0.0.into());
        }
        _ => {}
    }
    if let Some(d) = depth("decoder/EncDecBlock") {
        c.insert("dec_depth".into(), d.into());
        c.insert(
            "decoder_bias".into(),
            t.contains_key("decoder/EncDecBlock0/LayerNorm1/bias")
                .into(),
        );
    }
    if let Some(&[_, heads, _]) = shape("decoder/EncDecBlock0/SelfAttn/query/kernel") {
        c.insert("dec_heads".into(), heads.into());
    }
    if let Some(&[_, mlp]) = shape("decoder/EncDecBlock0/MLP/Dense_0/kernel") {
        c.insert("dec_mlp".into(), mlp.into());
    }
    if let Some(&[1, len, _]) = shape("pos_embedding_decoder") {
        c.insert("max_len".into(), len.into());
    }
    c
}

// ---------------------------------------------------------------------------------------------
// .safetensors → .npz

fn safetensors_to_npz(args: &ConvertArgs) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    if args.config.is_some() || !args.flags.given().is_empty() {
        return Err(bad(
            input,
            "--config and the config flags describe a .npz input; a cappa model carries its \
             own config",
        ));
    }
    if args.dtype == Some(Precision::Q8) {
        return Err(bad(
            output,
            "a .npz holds floats; q8 is for .safetensors outputs",
        ));
    }
    let ckpt = Checkpoint::load(input).map_err(|e| at(input, e))?;
    Model::new(&ckpt, CpuBackend::new()).map_err(|e| at(input, e))?;
    let file = ckpt.file().map_err(|e| at(input, e))?;
    let mut notes = Vec::new();
    let (mut widened, mut dequantised) = (0, 0);
    let mut tensors = Tensors::new();
    for (name, e) in file.entries() {
        if formats::is_scale(&file, name) {
            continue;
        }
        let t = if e.dtype == Dtype::I8 {
            dequantised += 1;
            let (values, _) =
                formats::dequantize_entry(&file, name, e).map_err(|e| at(input, e))?;
            Tensor::from_f32(e.shape.clone(), values.into_iter(), DType::F32)
        } else {
            Tensor {
                dtype: e.float_dtype(name).map_err(|e| at(input, e))?,
                shape: e.shape.clone(),
                bytes: e.bytes.to_vec(),
            }
        };
        let stored = t.dtype;
        // numpy cannot hold bf16 without ml_dtypes: f32 holds every bf16 value exactly.
        let dtype = match (args.dtype.and_then(Precision::float), stored) {
            (Some(d), _) => d,
            (None, DType::BF16) => {
                widened += 1;
                DType::F32
            }
            (None, d) => d,
        };
        let (t, overflowed) = t.cast(dtype);
        if overflowed > 0 {
            notes.push(format!(
                "`{name}`: {overflowed} values are beyond the {dtype:?} range and became infinite"
            ));
        }
        tensors.insert(name.to_string(), t);
    }
    if widened > 0 {
        notes.push(format!(
            "{widened} bf16 tensors are written as f32 (exactly): numpy has no bfloat16; \
             --dtype bf16 writes them as big_vision does (2-byte void `<V2`)"
        ));
    }
    if dequantised > 0 {
        notes.push(format!(
            "{dequantised} q8 tensors are written dequantised (value × scale)"
        ));
    }
    if ckpt.tokenizer().is_some() {
        notes.push("its tokenizer is not written: a .npz has no place for it".into());
    }
    let lost = lost_in_npz(&tensors, ckpt.config());
    if args.config_out.is_none() && !lost.is_empty() {
        notes.push(format!(
            "a .npz holds no config, and converting it back cannot read {} off the tensors: \
             keep the config with --config-out FILE.json and give it back with --config \
             FILE.json",
            lost.join(", ")
        ));
    }
    let tensors = if args.scan {
        stack(tensors).map_err(|m| bad(input, m))?
    } else {
        tensors
    };
    npz::write(
        output,
        tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.descr(), &t.shape[..], &t.bytes[..])),
        args.compress,
    )?;
    if let Some(path) = &args.config_out {
        write_config(path, ckpt.config())?;
    }
    for note in notes {
        note!("cappa: note: {}: {note}", input.display());
    }
    note!(
        "cappa: converted {} to {} ({} arrays, {}{}{})",
        input.display(),
        output.display(),
        tensors.len(),
        dtypes(&tensors),
        if args.scan { ", scan layout" } else { "" },
        if args.compress { ", deflated" } else { "" },
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scan layout ⇄ loop layout

/// Blocks that the scan layout stacks.
struct ScanGroup {
    /// Prefix of the stacked tensors' names.
    stacked: &'static str,
    /// Prefix of the loop layout's names, followed by the block number and `/`.
    looped: &'static str,
    /// The layer axis of the stacked tensors.
    axis: usize,
}

/// The encoder stacks on axis 0 (vit.py), the decoder on axis 1 (cappa.py `param_scan_axis`).
const SCAN: [ScanGroup; 2] = [
    ScanGroup {
        stacked: "encoder/Transformer/encoderblock/",
        looped: "encoder/Transformer/encoderblock_",
        axis: 0,
    },
    ScanGroup {
        stacked: "decoder/EncDecBlock/",
        looped: "decoder/EncDecBlock",
        axis: 1,
    },
];

impl ScanGroup {
    /// `(block, rest)` of a loop-layout name of this group.
    fn block_of<'n>(&self, name: &'n str) -> Option<(usize, &'n str)> {
        let (digits, rest) = name.strip_prefix(self.looped)?.split_once('/')?;
        let i: usize = digits.parse().ok()?;
        (i.to_string() == digits).then_some((i, rest))
    }
}

/// Element `i` of `t` along `axis`.
fn take(t: &Tensor, axis: usize, i: usize) -> Tensor {
    let n = t.shape[axis];
    let outer: usize = t.shape[..axis].iter().product();
    let inner = t.shape[axis + 1..].iter().product::<usize>() * t.dtype.size();
    let mut bytes = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        let start = (o * n + i) * inner;
        bytes.extend_from_slice(&t.bytes[start..start + inner]);
    }
    let mut shape = t.shape.clone();
    shape.remove(axis);
    Tensor {
        dtype: t.dtype,
        shape,
        bytes,
    }
}

/// `parts` (same shape and type) stacked along a new `axis`.
fn stack_along(parts: &[Tensor], axis: usize) -> Tensor {
    let first = &parts[0];
    let outer: usize = first.shape[..axis].iter().product();
    let inner = first.shape[axis..].iter().product::<usize>() * first.dtype.size();
    let mut bytes = Vec::with_capacity(outer * inner * parts.len());
    for o in 0..outer {
        for p in parts {
            bytes.extend_from_slice(&p.bytes[o * inner..(o + 1) * inner]);
        }
    }
    let mut shape = first.shape.clone();
    shape.insert(axis, parts.len());
    Tensor {
        dtype: first.dtype,
        shape,
        bytes,
    }
}

/// The loop layout of `tensors`, and whether any group was in the scan layout.
fn unstack(mut tensors: Tensors) -> std::result::Result<(Tensors, bool), String> {
    let mut scanned = false;
    for g in &SCAN {
        let names: Vec<String> = tensors
            .keys()
            .filter(|k| k.starts_with(g.stacked))
            .cloned()
            .collect();
        let Some(first) = names.first() else {
            continue;
        };
        if let Some(looped) = tensors.keys().find(|k| g.block_of(k).is_some()) {
            return Err(format!(
                "holds both the scan layout (`{first}`) and the loop layout (`{looped}`)"
            ));
        }
        scanned = true;
        let mut depth: Option<(usize, String)> = None;
        for name in names {
            let t = tensors.remove(&name).expect("listed");
            if t.shape.len() <= g.axis {
                return Err(format!(
                    "`{name}` has shape {:?}; in the scan layout it needs a layer axis {}",
                    t.shape, g.axis
                ));
            }
            let n = t.shape[g.axis];
            match &depth {
                Some((d, other)) if *d != n => {
                    return Err(format!(
                        "`{name}` stacks {n} layers on axis {} but `{other}` stacks {d}",
                        g.axis
                    ))
                }
                Some(_) => {}
                None => depth = Some((n, name.clone())),
            }
            let rest = &name[g.stacked.len()..];
            for i in 0..n {
                tensors.insert(format!("{}{i}/{rest}", g.looped), take(&t, g.axis, i));
            }
        }
    }
    Ok((tensors, scanned))
}

/// The scan layout of loop-layout `tensors`.
fn stack(mut tensors: Tensors) -> std::result::Result<Tensors, String> {
    for g in &SCAN {
        // rest of the name → block → tensor
        let mut groups: BTreeMap<String, BTreeMap<usize, Tensor>> = BTreeMap::new();
        let names: Vec<String> = tensors
            .keys()
            .filter(|k| g.block_of(k).is_some())
            .cloned()
            .collect();
        for name in names {
            let (i, rest) = g.block_of(&name).expect("filtered");
            let rest = rest.to_string();
            let t = tensors.remove(&name).expect("listed");
            groups.entry(rest).or_default().insert(i, t);
        }
        let depth = groups.values().map(BTreeMap::len).max().unwrap_or(0);
        for (rest, blocks) in groups {
            if blocks.len() != depth || blocks.keys().copied().ne(0..depth) {
                return Err(format!(
                    "`{}{{i}}/{rest}` is not there for every one of the {depth} blocks",
                    g.looped
                ));
            }
            let mut parts: Vec<Tensor> = blocks.into_values().collect();
            if parts.iter().any(|p| p.shape != parts[0].shape) {
                return Err(format!(
                    "`{}{{i}}/{rest}` differs in shape from block to block",
                    g.looped
                ));
            }
            if parts.iter().any(|p| p.dtype != parts[0].dtype) {
                parts = parts.into_iter().map(|p| p.cast(DType::F32).0).collect();
            }
            let stacked = stack_along(&parts, g.axis);
            tensors.insert(format!("{}{rest}", g.stacked), stacked);
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors_of(ckpt: &Checkpoint<'_>) -> Tensors {
        let file = ckpt.file().unwrap();
        file.entries()
            .map(|(n, e)| {
                (
                    n.to_string(),
                    Tensor {
                        dtype: e.float_dtype(n).unwrap(),
                        shape: e.shape.clone(),
                        bytes: e.bytes.to_vec(),
                    },
                )
            })
            .collect()
    }

    fn f32_tensor(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), values.iter().copied(), DType::F32)
    }

    #[test]
    fn take_and_stack_move_the_right_elements() {
        // Two layers of [2, 3] stacked on axis 1: [2, 2, 3], element [a, l, b] = 100l + 10a + b.
        let layer = |l: usize| {
            let v: Vec<f32> = (0..6)
                .map(|k| (100 * l + 10 * (k / 3) + k % 3) as f32)
                .collect();
            f32_tensor(&[2, 3], &v)
        };
        let stacked = stack_along(&[layer(0), layer(1)], 1);
        assert_eq!(stacked.shape, [2, 2, 3]);
        assert_eq!(
            stacked.values(),
            [0., 1., 2., 100., 101., 102., 10., 11., 12., 110., 111., 112.]
        );
        assert_eq!(take(&stacked, 1, 1), layer(1));
        let on_axis0 = stack_along(&[layer(0), layer(1)], 0);
        assert_eq!(on_axis0.values()[6..], layer(1).values()[..]);
        assert_eq!(take(&on_axis0, 0, 0), layer(0));
    }

    #[test]
    fn scan_layout_round_trips_and_uses_the_reference_axes() {
        let mut cfg = Config::tiny_for_tests();
        cfg.enc_depth = 3;
        cfg.dec_depth = 2;
        cfg.decoder_bias = true;
        let looped = tensors_of(&Model::random_checkpoint(&cfg, 5).unwrap());
        let scanned = stack(looped.clone()).unwrap();
        let ln = &scanned["encoder/Transformer/encoderblock/LayerNorm_0/scale"];
        assert_eq!(ln.shape, [3, 16]);
        let q = &scanned["decoder/EncDecBlock/SelfAttn/query/kernel"];
        assert_eq!(q.shape, [16, 2, 2, 8]);
        assert_eq!(
            scanned["decoder/EncDecBlock/LayerNorm1/bias"].shape,
            [16, 2]
        );
        assert!(!scanned
            .keys()
            .any(|k| k.contains("block_0") || k.contains("Block0")));
        assert!(scanned.contains_key("decoder/LogitsDense/kernel"));
        assert_eq!(
            take(q, 1, 1),
            looped["decoder/EncDecBlock1/SelfAttn/query/kernel"]
        );
        let (back, was_scanned) = unstack(scanned).unwrap();
        assert!(was_scanned);
        assert_eq!(back, looped);
        let (same, was_scanned) = unstack(looped.clone()).unwrap();
        assert!(!was_scanned);
        assert_eq!(same, looped);
    }

    #[test]
    fn inconsistent_scan_layouts_are_errors() {
        let mut t = Tensors::new();
        let name = "encoder/Transformer/encoderblock/LayerNorm_0/scale";
        t.insert(name.into(), f32_tensor(&[2, 1], &[1., 2.]));
        t.insert(
            "encoder/Transformer/encoderblock/LayerNorm_0/bias".into(),
            f32_tensor(&[3, 1], &[1., 2., 3.]),
        );
        let err = unstack(t.clone()).unwrap_err();
        assert!(err.contains("stacks 2 layers on axis 0"), "{err}");
        t.insert(
            "encoder/Transformer/encoderblock_0/LayerNorm_0/scale".into(),
            f32_tensor(&[1], &[1.]),
        );
        let err = unstack(t).unwrap_err();
        assert!(err.contains("both the scan layout"), "{err}");
        let mut t = Tensors::new();
        t.insert(
            "decoder/EncDecBlock/LayerNorm1/scale".into(),
            f32_tensor(&[3], &[1., 2., 3.]),
        );
        let err = unstack(t).unwrap_err();
        assert!(err.contains("needs a layer axis 1"), "{err}");
    }

    #[test]
    fn infers_every_size_from_the_tensors() {
        let mut wide = Config::tiny_for_tests();
        wide.enc_width = 24;
        wide.enc_heads = 3;
        wide.enc_mlp = 40;
        wide.enc_depth = 2;
        wide.dec_depth = 3;
        wide.dec_heads = 4;
        wide.max_len = 9;
        wide.patch_size = 4;
        wide.decoder_bias = true;
        let mut cap_only = Config::tiny_for_tests();
        cap_only.masked_pred_prob = 0.0;
        for cfg in [Config::tiny_for_tests(), wide, cap_only] {
            let tensors = tensors_of(&Model::random_checkpoint(&cfg, 3).unwrap());
            let mut got = infer(&tensors);
            got.insert("name".into(), cfg.name.clone().into());
            let got = Config::from_json(&Value::Object(got).to_string()).unwrap();
            assert_eq!(got, cfg);
        }
    }

    #[test]
    fn sincos_models_need_the_sizes_their_tables_would_give() {
        let mut cfg = Config::tiny_for_tests();
        cfg.posemb_type = PosEmb::Sincos2d;
        let tensors = tensors_of(&Model::random_checkpoint(&cfg, 3).unwrap());
        let got = infer(&tensors);
        assert_eq!(got["posemb_type"], "sincos2d");
        assert!(!got.contains_key("image_size") && !got.contains_key("max_len"));
        assert_eq!(got["patch_size"], 8);
    }

    #[test]
    fn npy_arrays_become_tensors() {
        let a = |descr, data: Vec<u8>| npz::Array {
            descr,
            shape: vec![2],
            data,
        };
        let f64s = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(Tensor::from_npy(a(Descr::F64, f64s)).values(), [1.5, -2.0]);
        let i64s = [7i64, -3].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Tensor::from_npy(a(Descr::I64, i64s)).values(), [7.0, -3.0]);
        let i32s = [7i32, -3].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Tensor::from_npy(a(Descr::I32, i32s)).values(), [7.0, -3.0]);
        // bf16 1.0 = 0x3F80, -2.0 = 0xC000.
        let bf = Tensor::from_npy(a(Descr::BF16, vec![0x80, 0x3F, 0x00, 0xC0]));
        assert_eq!((bf.dtype, bf.values()), (DType::BF16, vec![1.0, -2.0]));
        let (h, overflowed) = f32_tensor(&[3], &[1e5, 0.5, f32::INFINITY]).cast(DType::F16);
        assert_eq!(overflowed, 1);
        assert_eq!(h.values(), [f32::INFINITY, 0.5, f32::INFINITY]);
    }

    #[test]
    fn prefixes_are_stripped_and_the_rest_skipped() {
        let arr = || npz::Array {
            descr: Descr::F32,
            shape: vec![],
            data: vec![0; 4],
        };
        let mut notes = Vec::new();
        let got = params_of(
            vec![
                ("opt/state/count".into(), arr()),
                ("params/decoder/LogitsDense/bias".into(), arr()),
            ],
            &mut notes,
        )
        .unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["decoder/LogitsDense/bias"]);
        assert!(notes[0].contains("skipped 1"), "{notes:?}");
        let got = params_of(vec![("opt/target/a/b".into(), arr())], &mut notes).unwrap();
        assert!(got.contains_key("a/b"));
        assert!(params_of(vec![], &mut notes).is_err());
    }
}
