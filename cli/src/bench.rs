//! `cappa bench`: how fast a model runs here — encoder images/s, greedy ms/token, a parallel
//! caption, zero-shot scoring, and the process's peak memory — with its weights in the format
//! `--dtype` asks for; and, for the greedy step, the bytes of weights it streams and the time
//! this machine's memory bandwidth allows for them.

use std::path::PathBuf;
use std::time::Instant;

use cappa::layers::Parameters;
use cappa::{
    Backend, Checkpoint, Classify, Config, Decode, DecodeOptions, Device, Greedy, HostTensor,
    Model, Precision, Result, Tokens,
};
use clap::Args;

use crate::common::{load_model, progress};
use crate::DeviceArg;

/// Arguments of `cappa bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A model file to measure.
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// A model of this size with random weights: tiny, s16 or b16 (the paper's B/16 config).
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Images per encoder batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// The format of the weights (the kernels and the token table): f32, bf16, f16 or q8,
    /// converted as the model loads [default: as the file stores them; f32 for a preset].
    #[arg(long, value_parser = crate::common::parse_precision)]
    dtype: Option<Precision>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process in bytes (Linux), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Times a first call of `f`, then `repeat` more; returns the median of the later calls and the
/// first call's time, in seconds. The first is kept apart: on a GPU it builds the kernels it meets.
fn time<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, f64)> {
    let s = Instant::now();
    f()?;
    let first = s.elapsed().as_secs_f64();
    let mut t = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok((median(t), first))
}

/// Runs the measurements and prints them.
pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.batch == 0 {
        return Err(cappa::Error::InvalidInput(
            "--batch must be at least 1".into(),
        ));
    }
    let model: Model<Device> = match &args.model {
        Some(p) => load_model(p, args.device, args.dtype)?,
        None => {
            let cfg = Config::preset(&args.preset)?;
            let bar = progress(None, &format!("making a random {} model", cfg.name));
            let ckpt: Checkpoint<'static> = Model::random_checkpoint(&cfg, 0)?;
            let device = args.device.open()?;
            let m = match args.dtype {
                Some(p) => Model::new_as(&ckpt, device, p)?,
                None => Model::new(&ckpt, device)?,
            };
            bar.finish_and_clear();
            m
        }
    };
    let step_bytes = greedy_step_bytes(&model);
    let bandwidth = read_bandwidth();
    let cfg = model.config().clone();
    let be = model.backend();
    let mut rng = cappa::rng::Rng::new(1);
    let n = args.batch * cfg.image_size * cfg.image_size * cfg.in_channels;
    let images = HostTensor::new(
        &[args.batch, cfg.image_size, cfg.image_size, cfg.in_channels],
        (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect(),
    )?;
    let bar = progress(Some(4), "measuring");
    let (encode, encode_first) = time(args.repeat, || {
        let enc = model.encode(&images)?;
        be.download(&model.gap(&enc)?)
    })?;
    bar.inc(1);
    let one = HostTensor::new(
        &[1, cfg.image_size, cfg.image_size, cfg.in_channels],
        images.data()[..n / args.batch].to_vec(),
    )?;
    let enc = model.encode(&one)?;
    // Every step runs (EOS does not stop it), so ms/token is over max_len tokens.
    let greedy_opts = Greedy {
        stop_at_eos: false,
        ..Greedy::default()
    };
    let greedy = time(args.repeat, || model.greedy(&enc, &greedy_opts))?.0 / cfg.max_len as f64;
    bar.inc(1);
    let parallel = if cfg.has_mask_token() {
        Some(
            time(args.repeat, || {
                model.caption_tokens(&enc, &Decode::Parallel, &DecodeOptions::default(), None)
            })?
            .0,
        )
    } else {
        None
    };
    bar.inc(1);
    let len = cfg.max_len.min(8);
    let ids: Vec<u32> = (0..10u32)
        .flat_map(|k| {
            (0..len as u32).map(move |i| {
                if i + 1 == len as u32 {
                    cfg.eos_id
                } else {
                    2 + (k * 7 + i) % (cfg.vocab_size as u32 - 2)
                }
            })
        })
        .collect();
    let cands = Tokens::new(ids, 10, len)?;
    let scoring = time(args.repeat, || {
        model.classify_tokens(&enc, &cands, &Classify::default())
    })?
    .0;
    bar.finish_and_clear();
    let peak = peak_rss();
    let dtype = args.dtype.map_or("as stored".into(), |p| p.to_string());
    let bound = step_bytes as f64 / bandwidth;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "model": cfg.name,
                "device": be.name(),
                "dtype": dtype,
                "batch": args.batch,
                "encoder_images_per_s": args.batch as f64 / encode,
                "encoder_ms_per_batch": encode * 1e3,
                "encoder_first_call_ms": encode_first * 1e3,
                "greedy_ms_per_token": greedy * 1e3,
                "greedy_step_weight_bytes": step_bytes,
                "read_bandwidth_bytes_per_s": bandwidth,
                "greedy_bound_ms_per_token": bound * 1e3,
                "parallel_caption_ms": parallel.map(|p| p * 1e3),
                "scoring_10_candidates_ms": scoring * 1e3,
                "peak_memory_bytes": peak,
            })
        )?;
        return Ok(());
    }
    outln!(
        "{} on {}, weights {dtype} (median of {} runs)",
        cfg.name,
        be.name(),
        args.repeat.max(1)
    )?;
    outln!(
        "  encoder            {:>9.2} images/s  ({:.1} ms per batch of {}; the first call {:.1} ms)",
        args.batch as f64 / encode,
        encode * 1e3,
        args.batch,
        encode_first * 1e3
    )?;
    outln!(
        "  greedy             {:>9.2} ms/token  ({} tokens)",
        greedy * 1e3,
        cfg.max_len
    )?;
    outln!(
        "    bound            {:>9.2} ms/token  ({:.1} MB of weights per step at {:.1} GB/s, \
         this machine's read bandwidth)",
        bound * 1e3,
        step_bytes as f64 / 1e6,
        bandwidth / 1e9
    )?;
    match parallel {
        Some(p) => outln!(
            "  parallel caption   {:>9.2} ms        ({} tokens in one pass)",
            p * 1e3,
            cfg.max_len
        )?,
        None => outln!("  parallel caption         n/a        (Cap-only model)")?,
    }
    outln!(
        "  scoring            {:>9.2} ms        (10 candidates of {len} tokens)",
        scoring * 1e3
    )?;
    match peak {
        Some(b) => outln!("  peak memory        {:>9.1} MB", b as f64 / 1e6)?,
        None => outln!("  peak memory              n/a")?,
    }
    Ok(())
}

/// Bytes of weights a greedy step reads once: every decoder parameter as the device holds it,
/// except the token table, of which a step reads one row.
fn greedy_step_bytes(model: &Model<Device>) -> usize {
    let mut bytes = 0;
    model.decoder().visit(&mut |p| {
        if !p.name.ends_with("EmbedTargets/embedding") {
            bytes += p.tensor.byte_len();
        }
    });
    bytes
}

/// This machine's read bandwidth in bytes/s: the best of three sums of a 512 MiB buffer split
/// over every thread (as a greedy step's products split theirs).
fn read_bandwidth() -> f64 {
    let data = vec![1.0f32; 128 << 20];
    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(cappa::streaming_sum(&data));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (data.len() * 4) as f64 / best
}
