//! Decoding speed of a ViT-B/16-sized CapPa model with random weights (decoder 6 layers, vocab
//! 32,000, max_len 64), CPU and GPU backends side by side in one run: greedy and beam-4
//! ms/token, a whole parallel (Pa) caption, and zero-shot scoring of 10 candidates. The image is
//! encoded once outside the timings.
//!
//! `cargo bench -p cappa --features gpu --bench decoding` (`CAPPA_BENCH_QUICK=1` for fewer
//! samples and 16 tokens; `CAPPA_BENCH_TOKENS=N` sets the caption length; `CAPPA_BENCH_PRESET=s16`
//! for the ViT-S/16-sized model; `CAPPA_BENCH_DEVICE=cpu|gpu` for one backend only).

use std::time::Duration;

use cappa::{
    Backend, Beam, Checkpoint, Classify, Config, CpuBackend, Decode, DecodeOptions, GpuBackend,
    HostTensor, Model, Tokens,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn config() -> Config {
    let small = std::env::var("CAPPA_BENCH_PRESET").is_ok_and(|p| p == "s16");
    let (width, heads) = if small { (384, 6) } else { (768, 12) };
    let mut c = Config::tiny_for_tests();
    c.name = format!("bench-{width}");
    (c.image_size, c.patch_size) = (224, 16);
    (c.enc_width, c.enc_depth, c.enc_heads, c.enc_mlp) = (width, 12, heads, 4 * width);
    (c.dec_width, c.dec_depth, c.dec_heads, c.dec_mlp) = (width, 6, heads, 4 * width);
    (c.vocab_size, c.max_len) = (32_000, 64);
    c
}

fn bench_backend<B: Backend + Clone>(c: &mut Criterion, name: &str, be: &B, ckpt: &Checkpoint<'_>) {
    let model = Model::new(ckpt, be.clone()).unwrap();
    let cfg = model.config().clone();
    let mut rng = cappa::rng::Rng::new(5);
    let n = cfg.image_size * cfg.image_size * 3;
    let image = HostTensor::new(
        &[1, cfg.image_size, cfg.image_size, 3],
        (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect(),
    )
    .unwrap();
    let encoded = model.encode(&image).unwrap();
    let quick = std::env::var("CAPPA_BENCH_QUICK").is_ok();
    let mut g = c.benchmark_group(format!("decode/{name}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(if quick { 5 } else { 20 }));
    // Random weights rarely produce EOS; all steps are run (EOS stops are off via max_len).
    let steps = std::env::var("CAPPA_BENCH_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 16 } else { cfg.max_len })
        .min(cfg.max_len);
    let opts = DecodeOptions {
        max_len: Some(steps),
    };
    for (label, how) in [
        ("greedy", Decode::Greedy),
        (
            "beam4",
            Decode::Beam(Beam {
                width: 4,
                length_penalty: 0.6,
            }),
        ),
        ("parallel", Decode::Parallel),
    ] {
        g.bench_function(BenchmarkId::new(label, format!("{steps}_tokens")), |b| {
            b.iter(|| model.caption_tokens(&encoded, &how, &opts, None).unwrap())
        });
    }
    let ids: Vec<u32> = (0..10u32)
        .flat_map(|k| {
            let mut row = vec![0u32; 8];
            for (i, t) in row.iter_mut().take(7).enumerate() {
                *t = 2 + (k * 7 + i as u32) % 500;
            }
            row[7] = cfg.eos_id;
            row
        })
        .collect();
    let cands = Tokens::new(ids, 10, 8).unwrap();
    g.bench_function(BenchmarkId::new("score", "10x8_tokens"), |b| {
        b.iter(|| {
            model
                .classify_tokens(&encoded, &cands, &Classify::default())
                .unwrap()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let ckpt = Model::random_checkpoint(&config(), 1).unwrap();
    let only = std::env::var("CAPPA_BENCH_DEVICE").unwrap_or_default();
    if only != "gpu" {
        bench_backend(c, "cpu", &CpuBackend::new(), &ckpt);
    }
    if only == "cpu" {
        return;
    }
    match GpuBackend::new() {
        Ok(gpu) => bench_backend(c, "gpu", &gpu, &ckpt),
        Err(e) => eprintln!("no GPU adapter, GPU benchmarks skipped: {e}"),
    }
}

criterion_group!(decoding, benches);
criterion_main!(decoding);
