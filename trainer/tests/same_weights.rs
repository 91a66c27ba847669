//! Same seed, same backend ⇒ the same weights, bit for bit, across changes to the code: 20
//! training steps of the fixture's config (reference initialisation, CapPa task mixing, label
//! smoothing, warm-up, clipping, weight decay) end in exactly the parameters stored in
//! `tests/data/train20-<backend>.safetensors`.
//!
//! `cpu-blocked` and `gpu` were written by the code before the one-network refactor (issue 15),
//! which had to reproduce them, and the plain path is the oracle: they never move. `cpu-fast`
//! follows the fast CPU kernels, whose rounding may change for speed in a commit that says so
//! and re-blesses that file alone (it last did when the attention and GELU backward passes
//! became matrix products and a vectorised exponential, then when the many-row GEMM moved from
//! `matrixmultiply` to the `gemm` crate). Never re-bless a file to make an
//! unexplained difference pass. `CAPPA_BLESS=1` writes the files.
//!
//! The CPU backend's plain blocked GEMM uses no instruction that differs between x86-64 CPUs, so
//! its file is compared on every machine. The fast GEMM (the `gemm` crate picks a kernel per CPU)
//! and the GPU (lavapipe compiles shaders for the host CPU) are compared where the machine
//! matches the one that wrote their files, and otherwise report that they were not compared.

use std::path::PathBuf;

use cappa::safetensors_io::{OwnedTensor, SafetensorsFile};
use cappa::weights::InitParams;
use cappa::{Checkpoint, CpuBackend, Gemm, HostTensor, Model, Tokens, TrainBackend};
use cappa_tests::{fixture_dirs, Fixture};
use cappa_trainer::data::Batch;
use cappa_trainer::optim::OptimConfig;
use cappa_trainer::{RunConfig, Trainer};

const STEPS: u64 = 20;
const FINGERPRINT_KEY: &str = "cappa.test.fingerprint";

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("train20-{name}.safetensors"))
}

/// Where the numerics of a backend may depend on the machine: the CPU's SIMD features.
fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let f = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
        ];
        let on: Vec<&str> = f.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        format!("x86_64 {}", on.join(","))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

/// Runs 20 steps on `be` and returns every parameter, by name.
fn train20<B: TrainBackend>(be: B) -> Vec<(String, HostTensor)> {
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let mut config = Checkpoint::load(dir).unwrap().config().clone();
    // Exercise the smoothing path of the loss gradient too (the fixture's is 0).
    config.label_smoothing = 0.1;
    let model = Model::from_source(&config, &InitParams::new(3), be).unwrap();
    let run = RunConfig {
        steps: STEPS,
        batch_size: 4,
        seed: 5,
        optimizer: OptimConfig {
            lr: 3e-3,
            weight_decay: 1e-2,
            warmup_steps: 4,
            clip_norm: 0.5,
            ..OptimConfig::default()
        },
        ..RunConfig::default()
    };
    // Four examples: the fixture's two, then the same two in the other order.
    let images = fix.images();
    let tokens = fix.tokens("tokens");
    let per_image: usize = images.shape()[1..].iter().product();
    let order = [0usize, 1, 1, 0];
    let mut pixels = Vec::new();
    let mut ids = Vec::new();
    for &i in &order {
        pixels.extend_from_slice(&images.data()[i * per_image..(i + 1) * per_image]);
        ids.extend_from_slice(tokens.row(i));
    }
    let mut shape = images.shape().to_vec();
    shape[0] = order.len();
    let batch = Batch {
        images: HostTensor::new(&shape, pixels).unwrap(),
        targets: Tokens::new(ids, order.len(), tokens.len()).unwrap(),
        next: 0,
        warnings: Vec::new(),
    };
    let mut trainer = Trainer::new(model, run).unwrap();
    let mut pa = 0;
    for _ in 0..STEPS {
        pa += trainer.train_step(&batch).unwrap().pa_examples;
    }
    // Both tasks, and batches that mix them, are part of the run (seed 5 gives all three).
    assert!(
        pa > 0 && pa < STEPS as usize * order.len(),
        "Pa examples: {pa}"
    );
    let bytes = trainer.checkpoint_file().unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    // The parameters (the moments only ever reach the weights through them).
    let mut names: Vec<String> = file
        .names()
        .filter(|n| !n.starts_with("optimizer/"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let t = file.f32(&n).unwrap();
            (n, t)
        })
        .collect()
}

/// Compares with the golden file of `name` (or writes it with `CAPPA_BLESS=1`). Returns whether
/// the comparison ran.
fn check(name: &str, got: Vec<(String, HostTensor)>, fingerprint: &str, always: bool) -> bool {
    let path = golden(name);
    if std::env::var("CAPPA_BLESS").is_ok_and(|v| v == "1") {
        let tensors: Vec<OwnedTensor> = got.iter().map(|(n, t)| OwnedTensor::f32(n, t)).collect();
        let bytes =
            cappa::safetensors_io::serialize(&tensors, &[(FINGERPRINT_KEY, fingerprint.into())])
                .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        eprintln!("wrote {}", path.display());
        return true;
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = SafetensorsFile::parse(&bytes).unwrap();
    let recorded = file.metadata(FINGERPRINT_KEY).unwrap_or("");
    if !always && recorded != fingerprint {
        eprintln!(
            "{name}: not compared: its golden file was written on `{recorded}`, this machine is \
             `{fingerprint}`"
        );
        return false;
    }
    let want: Vec<String> = file.names().map(str::to_string).collect();
    assert_eq!(got.len(), want.len(), "{name}: number of tensors");
    for (n, t) in &got {
        let w = file
            .f32(n)
            .unwrap_or_else(|e| panic!("{name}: {n} missing: {e}"));
        assert_eq!(t.shape(), w.shape(), "{name}: shape of {n}");
        if let Some(i) =
            (0..t.data().len()).find(|&i| t.data()[i].to_bits() != w.data()[i].to_bits())
        {
            panic!(
                "{name}: {n}[{i}] = {:e}, the golden file has {:e} (first of the differing bits)",
                t.data()[i],
                w.data()[i]
            );
        }
    }
    true
}

#[test]
fn twenty_steps_on_the_cpu_blocked_gemm_give_the_same_bits() {
    let got = train20(CpuBackend::with_gemm(Gemm::Blocked));
    assert!(check("cpu-blocked", got, &cpu_features(), true));
}

#[test]
fn twenty_steps_on_the_cpu_fast_gemm_give_the_same_bits() {
    let got = train20(CpuBackend::with_gemm(Gemm::Fast));
    check("cpu-fast", got, &cpu_features(), false);
}

#[cfg(feature = "gpu")]
#[test]
fn twenty_steps_on_the_gpu_give_the_same_bits() {
    let Some(g) = cappa_tests::gpu() else { return };
    let info = g.adapter_info();
    let fingerprint = format!(
        "{} / {} {} / {}",
        info.name,
        info.driver,
        info.driver_info,
        cpu_features()
    );
    let got = train20(g);
    check("gpu", got, &fingerprint, false);
}
