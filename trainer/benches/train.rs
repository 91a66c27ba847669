//! Training speed: steps per second of a small CapPa model (the golden fixture's size: 32×32
//! images, width 64, two encoder and two decoder blocks, batch 8), forward + reverse pass +
//! AdamW, on the CPU and GPU backends side by side in one run; and a ViT-S/16-sized model
//! (224×224, width 384, 12 + 2 blocks, batch 2) on the CPU.
//!
//! `cargo bench -p cappa-trainer --bench train` (`CAPPA_BENCH_QUICK=1` takes fewer samples; the
//! GPU half needs an adapter: lavapipe here, see `.ci/gpu-env.sh`).

use std::sync::Arc;
use std::time::Duration;

use cappa::tokenizer::SpecialIds;
use cappa::weights::InitParams;
use cappa::{Config, CpuBackend, Model, Tokenizer, TrainBackend};
use cappa_trainer::data::{Batch, Dataset, Loader, LoaderOptions, Prep};
use cappa_trainer::shapes::{self, ShapesWorld, Split};
use cappa_trainer::{RunConfig, Trainer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn quick() -> bool {
    std::env::var("CAPPA_BENCH_QUICK").is_ok()
}

fn small() -> Config {
    let mut c = Config::tiny_for_tests();
    c.name = "small".into();
    (c.image_size, c.patch_size) = (32, 8);
    (c.enc_width, c.enc_depth, c.enc_heads, c.enc_mlp) = (64, 2, 4, 128);
    (c.dec_width, c.dec_depth, c.dec_heads, c.dec_mlp) = (64, 2, 4, 128);
    (c.vocab_size, c.max_len) = (shapes::vocabulary().len(), 10);
    c
}

fn vit_s16() -> Config {
    let mut c = small();
    c.name = "vit-s16".into();
    (c.image_size, c.patch_size) = (224, 16);
    (c.enc_width, c.enc_depth, c.enc_heads, c.enc_mlp) = (384, 12, 6, 1536);
    (c.dec_width, c.dec_depth, c.dec_heads, c.dec_mlp) = (384, 2, 6, 1536);
    c
}

/// One batch of shapes scenes for `config`.
fn batch(config: &Config, size: usize) -> Batch {
    let tok =
        Tokenizer::words(shapes::vocabulary(), SpecialIds::from_config(config), true).unwrap();
    let prep = Prep {
        image_size: config.image_size,
        max_len: config.max_len,
        eos_id: config.eos_id,
        pad_id: config.pad_id,
        tokenizer: Arc::new(tok),
    };
    let ds = Arc::new(Dataset::shapes(
        &ShapesWorld::new(1),
        Split::Train,
        size,
        config.image_size,
    ));
    let opts = LoaderOptions {
        batch_size: size,
        seed: 0,
        shuffle: true,
        start: 0,
        one_pass: false,
        workers: 1,
        prefetch: 1,
    };
    Loader::new(ds, prep, opts)
        .unwrap()
        .next_batch()
        .unwrap()
        .unwrap()
}

fn bench_steps<B: TrainBackend>(
    c: &mut Criterion,
    config: &Config,
    batch_size: usize,
    name: &str,
    be: B,
) {
    let run = RunConfig {
        steps: 1_000_000,
        batch_size,
        ..RunConfig::default()
    };
    let model = Model::from_source(config, &InitParams::new(0), be).unwrap();
    let mut trainer = Trainer::new(model, run).unwrap();
    let b = batch(config, batch_size);
    trainer.train_step(&b).unwrap(); // compile pipelines, fill the buffer pool
    let mut g = c.benchmark_group(format!("train_step/{}", config.name));
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(if quick() { 3 } else { 10 }));
    g.throughput(Throughput::Elements(1)); // elements/s = steps/s
    g.bench_function(name, |bench| {
        bench.iter(|| trainer.train_step(&b).unwrap());
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let small = small();
    bench_steps(c, &small, 8, "cpu", CpuBackend::new());
    #[cfg(feature = "gpu")]
    match cappa::GpuBackend::new() {
        Ok(g) => bench_steps(c, &small, 8, "gpu", g),
        Err(e) => eprintln!("no GPU adapter, GPU half skipped: {e}"),
    }
    bench_steps(c, &vit_s16(), 2, "cpu", CpuBackend::new());
}

criterion_group!(train, benches);
criterion_main!(train);
