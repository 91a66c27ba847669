//! Products of a few rows — a decoding step's matmuls — on the CPU backend with the weights in
//! every format (f32, bf16, f16, q8), and this machine's memory read bandwidth, which bounds
//! them: such a product reads each weight once. Throughput is in weight bytes per second; the
//! weights cycle through enough copies that they come from memory, as in a real decoding step
//! (which streams every decoder weight once).
//!
//! `cargo bench -p cappa --bench few_rows` (`CAPPA_BENCH_QUICK=1` takes fewer samples;
//! `CAPPA_SIMD=avx2` or `portable` caps the instruction set, to see what other CPUs run).

use std::time::Duration;

use cappa::backend::Matmul;
use cappa::formats::Channels;
use cappa::{Backend, CpuBackend, HostTensor, Precision, StoredTensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = cappa::rng::Rng::new(seed);
    (0..n).map(|_| rng.normal()).collect()
}

fn quick() -> bool {
    std::env::var("CAPPA_BENCH_QUICK").is_ok()
}

/// Bytes of weights a benchmark cycles through: well beyond the last-level cache.
const STREAM_BYTES: usize = 192 << 20;

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(if quick() { 2 } else { 5 }));
    g
}

/// The B/16 decoder's products for one token: q/k/v/out projections, the MLP, the logits.
fn bench_few_rows(c: &mut Criterion) {
    let be = CpuBackend::new();
    let mut g = group(c, "few_rows");
    for (label, k, n) in [
        ("768x768", 768, 768),
        ("768x3072", 768, 3072),
        ("3072x768", 3072, 768),
        ("768x32000", 768, 32000),
    ] {
        let w = random(k * n, 2);
        let f32_weight = StoredTensor::from_f32(&[k, n], &w).unwrap();
        for p in Precision::ALL {
            let stored = f32_weight
                .clone()
                .convert("w", p, Some(Channels::Columns))
                .unwrap();
            let bytes = stored.byte_len();
            let copies = STREAM_BYTES.div_ceil(bytes).clamp(2, 256);
            let weights: Vec<_> = (0..copies)
                .map(|_| be.upload_weight(&stored).unwrap())
                .collect();
            for m in [1, 4] {
                let a = be
                    .upload(&HostTensor::new(&[m, k], random(m * k, 1)).unwrap())
                    .unwrap();
                g.throughput(Throughput::Bytes(bytes as u64));
                let id = BenchmarkId::new(format!("{label}/rows{m}"), p);
                let mut next = 0;
                g.bench_function(id, |bench| {
                    bench.iter(|| {
                        next = (next + 1) % copies;
                        be.matmul(&a, &weights[next], Matmul::default()).unwrap()
                    })
                });
            }
        }
    }
    g.finish();
}

/// Read bandwidth: the sum of a 512 MiB buffer, split over every core (as the few-row products
/// split theirs; `cappa::streaming_sum`).
fn bench_bandwidth(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = vec![1.0f32; 128 << 20];
    let mut g = group(c, "bandwidth");
    g.throughput(Throughput::Bytes((data.len() * 4) as u64));
    g.bench_function(format!("sum_{threads}_threads"), |bench| {
        bench.iter(|| cappa::streaming_sum(&data))
    });
    g.finish();
}

criterion_group!(benches, bench_bandwidth, bench_few_rows);
criterion_main!(benches);
