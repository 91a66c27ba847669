//! `cappa info`: what a model file holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cappa::tokenizer::Vocab;
use cappa::{Checkpoint, CpuBackend, Error, Model, Result};
use clap::Args;

use crate::common::{model_path, with_file};

/// Arguments of `cappa info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model file or folder (default: the committed shapes model).
    model: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the config, parameter count, element types, tokenizer and file size.
pub fn info(args: &InfoArgs) -> Result<()> {
    let path = model_path(args.model.as_deref())?;
    let ckpt = Checkpoint::load(&path)?;
    // Everything loading checks (tensors against the config, element types, finite weights,
    // the tokenizer, the limits): a file `info` describes is a file that loads.
    Model::new(&ckpt, CpuBackend::new()).map_err(|e| with_file(&path, e))?;
    let file = ckpt.file()?;
    let (mut params, mut dtypes) = (0usize, BTreeMap::<String, usize>::new());
    for (name, e) in file.entries() {
        params += e.shape.iter().product::<usize>();
        let dt = e
            .float_dtype(name)
            .map_or_else(|_| format!("{:?}", e.dtype), |d| format!("{d:?}"));
        *dtypes.entry(dt).or_default() += 1;
    }
    let tokenizer = ckpt.load_tokenizer().map_err(|e| with_file(&path, e))?;
    let tok = tokenizer.as_ref().map(|t| {
        let kind = match t.vocab() {
            Vocab::SentencePiece(_) => "sentencepiece",
            Vocab::Words(_) => "words",
        };
        (kind, t.vocab_size(), t.lowercase())
    });
    // A folder's size is its parameter file's.
    let size = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m.len(),
        _ => ckpt.byte_len() as u64,
    };
    let cfg = ckpt.config();
    if args.json {
        let mut v = serde_json::json!({
            "path": path.display().to_string(),
            "file_bytes": size,
            "parameters": params,
            "tensors": file.entries().count(),
            "dtypes": dtypes,
            "config": serde_json::from_str::<serde_json::Value>(&cfg.to_json()).map_err(|e| Error::Config(e.to_string()))?,
        });
        if let Some((kind, n, lower)) = tok {
            v["tokenizer"] = serde_json::json!({"type": kind, "vocab_size": n, "lowercase": lower});
        }
        outln!("{v}")?;
        return Ok(());
    }
    outln!("{} ({})", path.display(), cfg.name)?;
    outln!(
        "  file          {:.1} MB, {} tensors, {}",
        size as f64 / 1e6,
        file.entries().count(),
        dtypes
            .iter()
            .map(|(d, n)| format!("{n} {d}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    outln!("  parameters    {params} ({:.1} M)", params as f64 / 1e6)?;
    outln!(
        "  image         {0}×{0}×{1}, patch {2} ({3} tokens)",
        cfg.image_size,
        cfg.in_channels,
        cfg.patch_size,
        cfg.num_patches()
    )?;
    outln!(
        "  encoder       width {}, {} blocks, {} heads, MLP {}",
        cfg.enc_width,
        cfg.enc_depth,
        cfg.enc_heads,
        cfg.enc_mlp
    )?;
    outln!(
        "  decoder       width {}, {} blocks, {} heads, MLP {}, biases {}",
        cfg.dec_width,
        cfg.dec_depth,
        cfg.dec_heads,
        cfg.dec_mlp,
        cfg.decoder_bias
    )?;
    outln!(
        "  text          vocabulary {}, max {} tokens, PAD {} EOS {} BOS {}",
        cfg.vocab_size,
        cfg.max_len,
        cfg.pad_id,
        cfg.eos_id,
        cfg.bos_id
    )?;
    outln!(
        "  training      Pa probability {} ({})",
        cfg.masked_pred_prob,
        if cfg.has_mask_token() {
            "CapPa: parallel decoding available"
        } else {
            "Cap-only"
        }
    )?;
    match tok {
        Some((kind, n, lower)) => {
            outln!("  tokenizer     {kind}, {n} entries, lower-case {lower}")?
        }
        None => outln!("  tokenizer     none (token ids only)")?,
    }
    Ok(())
}
