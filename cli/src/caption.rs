//! `cappa caption`, `cappa classify` and `cappa embed`: images in, text or features out.

use std::path::{Path, PathBuf};

use cappa::checkpoint::write_atomic;
use cappa::safetensors_io::{serialize, OwnedTensor};
use cappa::{
    Beam, Caption, ClassifyText, Decode, DecodeOptions, Error, Pool, Precision, Result, Sample,
    Sampling,
};
use clap::{Args, ValueEnum};

use crate::common::{
    json_path, load_image, load_model, model_path, parse_precision, progress, shown, with_file,
};
use crate::DeviceArg;

/// How captions are decoded.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ModeArg {
    /// One parallel (Pa) pass: every token at once.
    Parallel,
    /// Autoregressive, the most likely token each step.
    Greedy,
    /// Autoregressive beam search (`--beam` hypotheses).
    Beam,
    /// Autoregressive sampling (`--temperature`, `--top-k`, `--top-p`, `--seed`).
    Sample,
}

/// Arguments of `cappa caption`.
#[derive(Args, Debug)]
pub struct CaptionArgs {
    /// Image files (PNG, JPEG, WebP or PPM), any size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file (default: the committed shapes model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Decoding strategy.
    #[arg(long, value_enum, default_value_t = ModeArg::Greedy)]
    mode: ModeArg,
    /// Beam width for `--mode beam`.
    #[arg(long, default_value_t = 4)]
    beam: usize,
    /// Most tokens per caption (default: the model's maximum).
    #[arg(long)]
    max_len: Option<usize>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample within the smallest set of tokens holding this probability mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// The format of the weights (the kernels and the token table), converted as the model
    /// loads: f32, f16, bf16 or q8 [default: as the file stores them].
    #[arg(long, value_parser = parse_precision)]
    dtype: Option<Precision>,
    /// Print JSON (one array) instead of one line per image.
    #[arg(long)]
    json: bool,
    /// Go on past images that cannot be read or captioned: each is reported (a line on stderr,
    /// or an `error` entry in the JSON) and the exit status is 1 at the end.
    #[arg(long)]
    skip_errors: bool,
}

impl CaptionArgs {
    fn decode(&self) -> Result<Decode> {
        Ok(match self.mode {
            ModeArg::Parallel => Decode::Parallel,
            ModeArg::Greedy => Decode::Greedy,
            ModeArg::Beam => Decode::Beam(Beam {
                width: self.beam,
                ..Beam::default()
            }),
            ModeArg::Sample => Decode::Sample(Sample {
                sampling: Sampling {
                    temperature: self.temperature,
                    top_k: self.top_k,
                    top_p: self.top_p,
                },
                seed: self.seed,
            }),
        })
    }
}

/// Why an image has no caption although decoding succeeded.
const NO_FINITE_CAPTION: &str = "no caption: every continuation has a non-finite probability \
     (the model's outputs are not finite numbers)";

/// Captions every image, in batches, printing as it goes. With `--skip-errors` an image that
/// cannot be read or captioned is reported and the others go on.
pub fn caption(args: &CaptionArgs) -> Result<()> {
    if args.batch == 0 {
        return Err(Error::InvalidInput("--batch must be at least 1".into()));
    }
    let decode = args.decode()?;
    let model = load_model(&model_path(args.model.as_deref())?, args.device, args.dtype)?;
    let opts = DecodeOptions {
        max_len: args.max_len,
    };
    let bar = progress(Some(args.images.len() as u64), "captioning");
    let mut json = Vec::new();
    let mut failed = 0usize;
    // One image's outcome: printed at once in text mode, collected for the JSON array.
    let mut report = |index: usize, path: &Path, outcome: std::result::Result<&Caption, String>| {
        if args.json {
            let mut obj = serde_json::Map::new();
            obj.insert("index".into(), index.into());
            json_path(path, "image", &mut obj);
            match outcome {
                Ok(best) => {
                    obj.insert("caption".into(), best.text.clone().into());
                    obj.insert("tokens".into(), serde_json::json!(best.tokens));
                    obj.insert("log_prob".into(), serde_json::json!(best.log_prob));
                }
                Err(e) => {
                    obj.insert("error".into(), e.into());
                }
            }
            json.push(serde_json::Value::Object(obj));
            return Ok(());
        }
        match outcome {
            Ok(best) => bar.suspend(|| outln!("{}: {}", shown(path), best.text)),
            Err(e) => {
                bar.suspend(|| note!("cappa: {}: {e}", shown(path)));
                Ok(())
            }
        }
    };
    let mut index = 0;
    for paths in args.images.chunks(args.batch) {
        let mut images = Vec::new();
        let mut kept = Vec::new();
        for path in paths {
            match load_image(&model, path) {
                Ok(image) => {
                    images.push(image);
                    kept.push((index, path));
                }
                Err(e) if args.skip_errors => {
                    failed += 1;
                    report(index, path, Err(root_message(&e)))?;
                }
                Err(e) => return Err(e),
            }
            index += 1;
        }
        if !images.is_empty() {
            let captions = model.caption_with(&images, &decode, &opts, None)?;
            for ((i, path), caps) in kept.into_iter().zip(captions) {
                match caps.first() {
                    Some(best) => report(i, path, Ok(best))?,
                    None if args.skip_errors => {
                        failed += 1;
                        report(i, path, Err(NO_FINITE_CAPTION.into()))?;
                    }
                    None => {
                        return Err(Error::InvalidInput(format!(
                            "{}: {NO_FINITE_CAPTION}",
                            shown(path)
                        )))
                    }
                }
            }
        }
        bar.inc(paths.len() as u64);
    }
    bar.finish_and_clear();
    if args.json {
        // Unreadable images were reported as they were met, captions batch by batch: in the
        // order given.
        json.sort_by_key(|item| item["index"].as_u64());
        outln!("{}", serde_json::Value::Array(json))?;
    }
    if failed > 0 {
        return Err(Error::InvalidInput(format!(
            "{failed} of {} images could not be captioned (reported above)",
            args.images.len()
        )));
    }
    Ok(())
}

/// An error's message without the file name (which the report already shows).
fn root_message(e: &Error) -> String {
    e.root().to_string()
}

/// Arguments of `cappa classify`.
#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Image file.
    image: PathBuf,
    /// Comma-separated labels.
    #[arg(
        long,
        conflicts_with = "labels_file",
        required_unless_present = "labels_file"
    )]
    labels: Option<String>,
    /// A file with one label per line.
    #[arg(long)]
    labels_file: Option<PathBuf>,
    /// Text put before every label, e.g. "a photo of a".
    #[arg(long)]
    prompt: Option<String>,
    /// Score per token instead of per caption.
    #[arg(long)]
    normalize: bool,
    /// Model file (default: the committed shapes model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// The format of the weights (the kernels and the token table), converted as the model
    /// loads: f32, f16, bf16 or q8 [default: as the file stores them].
    #[arg(long, value_parser = parse_precision)]
    dtype: Option<Precision>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn read_labels(args: &ClassifyArgs) -> Result<Vec<String>> {
    let text = match (&args.labels, &args.labels_file) {
        (Some(l), _) => {
            return Ok(l
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect())
        }
        (None, Some(f)) => {
            let bytes = cappa::files::read_regular(f, 64 << 20).map_err(|e| with_file(f, e))?;
            String::from_utf8(bytes)
                .map_err(|_| Error::InvalidInput(format!("{}: not UTF-8 text", f.display())))?
        }
        (None, None) => String::new(),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// Zero-shot classification of one image against labels.
pub fn classify(args: &ClassifyArgs) -> Result<()> {
    let labels = read_labels(args)?;
    if labels.is_empty() {
        return Err(Error::InvalidInput("no labels given".into()));
    }
    let model = load_model(&model_path(args.model.as_deref())?, args.device, args.dtype)?;
    let image = load_image(&model, &args.image)?;
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let opts = ClassifyText {
        prompt: args.prompt.clone(),
        normalize: args.normalize,
    };
    let c = model.classify_with(&[image], &refs, &opts)?;
    let mut rows: Vec<(usize, f32, f32)> = (0..labels.len())
        .map(|k| (k, c.probabilities.data()[k], c.scores.data()[k]))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|&(k, p, s)| serde_json::json!({"label": labels[k], "probability": p, "score": s}))
            .collect();
        let mut obj = serde_json::Map::new();
        json_path(&args.image, "image", &mut obj);
        obj.insert("labels".into(), list.into());
        outln!("{}", serde_json::Value::Object(obj))?;
    } else {
        outln!("{:>11}  {:>9}  label", "probability", "score")?;
        for (k, p, s) in rows {
            outln!("{p:>11.4}  {s:>9.3}  {}", labels[k])?;
        }
    }
    Ok(())
}

/// Arguments of `cappa embed`.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Output file: `.safetensors` (tensor `embeddings`, image paths in the metadata) or `.npy`
    /// (the `[images, width]` f32 array, in the order given).
    #[arg(long)]
    out: PathBuf,
    /// Model file (default: the committed shapes model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// The format of the weights (the kernels and the token table), converted as the model
    /// loads: f32, f16, bf16 or q8 [default: as the file stores them].
    #[arg(long, value_parser = parse_precision)]
    dtype: Option<Precision>,
}

/// Pooled encoder features of every image.
pub fn embed(args: &EmbedArgs) -> Result<()> {
    if args.batch == 0 {
        return Err(Error::InvalidInput("--batch must be at least 1".into()));
    }
    let ext = args.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "safetensors" && ext != "npy" {
        return Err(Error::InvalidInput(format!(
            "{}: the output must end in .safetensors or .npy",
            args.out.display()
        )));
    }
    let model = load_model(&model_path(args.model.as_deref())?, args.device, args.dtype)?;
    let bar = progress(Some(args.images.len() as u64), "embedding");
    let mut data = Vec::new();
    for paths in args.images.chunks(args.batch) {
        let images = paths
            .iter()
            .map(|p| load_image(&model, p))
            .collect::<Result<Vec<_>>>()?;
        data.extend_from_slice(model.embed(&images, Pool::Gap)?.data());
        bar.inc(paths.len() as u64);
    }
    bar.finish_and_clear();
    let d = model.config().enc_width;
    let names: Vec<String> = args.images.iter().map(|p| shown(p)).collect();
    if ext == "npy" {
        let mut bytes = crate::npy::header_bytes(crate::npy::Descr::F32, &[names.len(), d]);
        bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        write_atomic(&args.out, &bytes)?;
        note!(
            "cappa: wrote {} embeddings of {d} values to {}",
            names.len(),
            args.out.display()
        );
        return Ok(());
    }
    let bytes = serialize(
        &[OwnedTensor::float(
            "embeddings",
            &[args.images.len(), d],
            &data,
            cappa::DType::F32,
        )],
        &[(
            "images",
            serde_json::to_string(&names).expect("strings serialise"),
        )],
    )?;
    write_atomic(&args.out, &bytes)?;
    note!(
        "cappa: wrote {} embeddings of {d} values to {}",
        names.len(),
        args.out.display()
    );
    Ok(())
}
