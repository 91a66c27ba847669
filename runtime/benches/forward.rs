//! Speed of the pieces of a forward pass on the CPU and GPU backends, side by side in one run:
//! matmul GFLOP/s at square sizes and at the ViT-B/16 encoder's shapes, and the encoder forward
//! of a ViT-B/16-sized model with random weights (plus ViT-S/16).
//!
//! `cargo bench -p cappa --features gpu --bench forward` (set `CAPPA_BENCH_QUICK=1` for fewer
//! samples). The GPU half needs an adapter (lavapipe here: see `.ci/run` for the setup).

use std::time::Duration;

use cappa::backend::Matmul;
use cappa::{Backend, Config, CpuBackend, GpuBackend, HostTensor, Model};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn random(shape: &[usize], seed: u64) -> HostTensor {
    let mut rng = cappa::rng::Rng::new(seed);
    let n: usize = shape.iter().product();
    HostTensor::new(shape, (0..n).map(|_| rng.normal()).collect()).unwrap()
}

/// The B/16 (or S/16) encoder, batch 1: patch embedding, q/k/v/out projections and the MLP.
fn vit_shapes(width: usize) -> Vec<(&'static str, usize, usize, usize)> {
    vec![
        ("patch_embed", 196, width, 768),
        ("qkv_proj", 196, width, width),
        ("attn_out", 196, width, width),
        ("mlp_up", 196, 4 * width, width),
        ("mlp_down", 196, width, 4 * width),
    ]
}

fn vit_config(width: usize, heads: usize) -> Config {
    let mut c = Config::tiny_for_tests();
    c.name = format!("vit-{width}");
    (c.image_size, c.patch_size) = (224, 16);
    (c.enc_width, c.enc_depth, c.enc_heads, c.enc_mlp) = (width, 12, heads, 4 * width);
    (c.dec_width, c.dec_depth, c.dec_heads, c.dec_mlp) = (width, 1, heads, 4 * width);
    (c.vocab_size, c.max_len) = (64, 8);
    c
}

fn quick() -> bool {
    std::env::var("CAPPA_BENCH_QUICK").is_ok()
}

fn bench_matmul<B: Backend>(c: &mut Criterion, name: &str, be: &B) {
    let mut g = c.benchmark_group(format!("matmul/{name}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(if quick() { 2 } else { 6 }));
    let mut cases: Vec<(String, usize, usize, usize)> = [256, 512, 1024]
        .iter()
        .map(|&s| (format!("{s}³"), s, s, s))
        .collect();
    cases.extend(
        vit_shapes(768)
            .into_iter()
            .map(|(n, m, nn, k)| (format!("b16_{n}"), m, nn, k)),
    );
    for (label, m, n, k) in cases {
        let a = be.upload(&random(&[m, k], 1)).unwrap();
        let b = be.upload(&random(&[k, n], 2)).unwrap();
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::from_parameter(&label), |bench| {
            bench.iter(|| {
                let c = be.matmul(&a, &b, Matmul::default()).unwrap();
                // Read one element back so the GPU work is finished inside the timing.
                be.download(
                    &be.slice_rows(&be.reshape(&c, &[1, m, n]).unwrap(), 0, 1)
                        .unwrap(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn bench_encoder<B: Backend + Clone>(c: &mut Criterion, name: &str, be: &B) {
    let mut g = c.benchmark_group(format!("encoder/{name}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(if quick() { 5 } else { 30 }));
    for (label, width, heads) in [("vit_s16", 384, 6), ("vit_b16", 768, 12)] {
        let cfg = vit_config(width, heads);
        let model = Model::random(&cfg, 1, be.clone()).unwrap();
        let images = random(&[1, 224, 224, 3], 3);
        g.bench_function(BenchmarkId::new(label, "batch1"), |bench| {
            bench.iter(|| {
                let enc = model.encode(&images).unwrap();
                be.download(&model.gap(&enc).unwrap()).unwrap()
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let cpu = CpuBackend::new();
    bench_matmul(c, "cpu", &cpu);
    match GpuBackend::new() {
        Ok(gpu) => {
            bench_matmul(c, "gpu", &gpu);
            bench_encoder(c, "gpu", &gpu);
        }
        Err(e) => eprintln!("no GPU adapter, GPU benchmarks skipped: {e}"),
    }
    bench_encoder(c, "cpu", &cpu);
}

criterion_group!(forward, benches);
criterion_main!(forward);
