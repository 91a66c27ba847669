//! Shared helpers of the cross-crate tests: finding the golden fixtures, and one comparison
//! harness with named tolerances that reports the worst element.

use std::path::{Path, PathBuf};

use cappa::safetensors_io::SafetensorsFile;
use cappa::{HostTensor, Precision, Tokens};

/// A tolerance: `|got − want| ≤ abs + rel·|want|`.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// Absolute part.
    pub abs: f32,
    /// Relative part.
    pub rel: f32,
}

impl Tol {
    /// f32 activations and logits (the fixture README's "about 1e-4 absolute").
    pub const ACTIVATIONS: Tol = Tol {
        abs: 1e-4,
        rel: 0.0,
    };
    /// f32 losses and zero-shot scores (the fixture README's "1e-5").
    pub const LOSSES: Tol = Tol {
        abs: 1e-5,
        rel: 0.0,
    };
    /// Two CPU GEMMs on the same f32 inputs: rounding differences only.
    pub const SAME_MATH: Tol = Tol {
        abs: 1e-5,
        rel: 1e-5,
    };
}

/// The folder holding fixture folders: `$CAPPA_FIXTURES`, else the workspace's sibling
/// `../shared/fixtures`, else the copy committed under `tests/fixtures`.
pub fn fixtures_root() -> PathBuf {
    if let Ok(p) = std::env::var("CAPPA_FIXTURES") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = here.join("../../shared/fixtures");
    if shared.is_dir() {
        return shared;
    }
    here.join("fixtures")
}

/// Every fixture folder (one with `config.json`, `params.safetensors`, `inputs.safetensors`,
/// `expected.safetensors`). Panics — failing the test, never skipping it — when there is none.
pub fn fixture_dirs() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixture folder {} is missing: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.safetensors").is_file() && p.join("config.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures found in {}", root.display());
    dirs
}

/// A fixture folder's files.
pub struct Fixture {
    /// The folder.
    pub dir: PathBuf,
    inputs: Vec<u8>,
    expected: Vec<u8>,
}

impl Fixture {
    /// Reads a fixture folder.
    pub fn open(dir: &Path) -> Self {
        let read = |n: &str| {
            std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(n).display()))
        };
        Fixture {
            dir: dir.to_path_buf(),
            inputs: read("inputs.safetensors"),
            expected: read("expected.safetensors"),
        }
    }

    /// The parsed `inputs.safetensors`.
    pub fn inputs(&self) -> SafetensorsFile<'_> {
        SafetensorsFile::parse(&self.inputs).expect("inputs parse")
    }

    /// The parsed `expected.safetensors`.
    pub fn expected(&self) -> SafetensorsFile<'_> {
        SafetensorsFile::parse(&self.expected).expect("expected parse")
    }

    /// `images`.
    pub fn images(&self) -> HostTensor {
        self.inputs().f32("images").expect("images")
    }

    /// An int32 `[B, L]` input as tokens.
    pub fn tokens(&self, name: &str) -> Tokens {
        let (shape, ids) = self.inputs().i32(name).expect(name);
        Tokens::from_i32(&ids, shape[0], shape[1]).expect(name)
    }

    /// An expected float tensor.
    pub fn want(&self, name: &str) -> HostTensor {
        self.expected()
            .f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// An expected int tensor.
    pub fn want_ids(&self, name: &str) -> Vec<i32> {
        self.expected()
            .i32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .1
    }
}

/// Asserts `got` matches `want` in shape and within `tol`, naming the worst element.
pub fn assert_close(what: &str, got: &HostTensor, want: &HostTensor, tol: Tol) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_close_slice(what, got.data(), want.data(), tol);
}

/// [`assert_close`] on slices.
pub fn assert_close_slice(what: &str, got: &[f32], want: &[f32], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (tol.abs + tol.rel * w.abs());
        let bad = excess > 0.0 || excess.is_nan();
        if bad && worst.is_none_or(|(_, e)| excess > e || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but should be {} (|diff| {:e}, tolerance {:?}); max |diff| {:e}",
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            tol,
            max_abs_diff(got, want)
        );
    }
}

/// Largest `|a − b|`.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The unit roundoff of a weight format: the largest error of one stored weight relative to
/// the weight (bf16 2⁻⁹, f16 2⁻¹²) or, for q8, relative to the largest magnitude of its channel
/// (half a quantisation step of `max / 127`: 1/254). `None` for f32.
pub fn weight_roundoff(p: Precision) -> Option<f32> {
    match p {
        Precision::F32 => None,
        Precision::BF16 => Some(2f32.powi(-9)),
        Precision::F16 => Some(2f32.powi(-12)),
        Precision::Q8 => Some(1.0 / 254.0),
    }
}

/// How many [`weight_roundoff`]s of the largest magnitude of an output tensor that output may
/// move by when the weights are kept in a narrower format (the stated tolerance of every format;
/// the measured figures are in `docs/benchmarks.md`, "Weight formats").
pub const WEIGHT_STEPS: f32 = 16.0;

/// The absolute tolerance weights in format `p` add to an output whose reference values are
/// `want`: [`WEIGHT_STEPS`] roundoffs of its largest magnitude (0 for f32).
pub fn weight_tolerance(p: Precision, want: &[f32]) -> f32 {
    let max = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    weight_roundoff(p).map_or(0.0, |u| WEIGHT_STEPS * u * max)
}

/// `|got − want|` at its largest, in [`weight_roundoff`]s of `want`'s largest magnitude.
pub fn roundoffs(p: Precision, got: &[f32], want: &[f32]) -> f32 {
    let max = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let u = weight_roundoff(p).unwrap_or(f32::EPSILON);
    max_abs_diff(got, want) / (u * max)
}

/// Top-1 minus top-2 of each row of `[.., V]` logits: how far a token decision is from a tie.
pub fn margins(logits: &HostTensor) -> Vec<f32> {
    let v = *logits.shape().last().unwrap();
    logits
        .data()
        .chunks(v)
        .map(|row| {
            let mut s = row.to_vec();
            s.sort_by(|a, b| b.total_cmp(a));
            s[0] - s[1]
        })
        .collect()
}

/// Token ids as i32 (for comparing with int32 fixtures).
pub fn as_i32(ids: &[u32]) -> Vec<i32> {
    ids.iter().map(|&t| t as i32).collect()
}

/// The shared GPU backend for tests, or `None` (with the reason printed) where no adapter
/// exists. With `CAPPA_REQUIRE_GPU=1` (set by `.ci/run`) a missing adapter fails the test.
#[cfg(feature = "gpu")]
pub fn gpu() -> Option<cappa::GpuBackend> {
    use std::sync::OnceLock;
    static GPU: OnceLock<Result<cappa::GpuBackend, String>> = OnceLock::new();
    let made = GPU.get_or_init(|| cappa::GpuBackend::new().map_err(|e| e.to_string()));
    match made {
        Ok(g) => Some(g.clone()),
        Err(e) => no_gpu(e),
    }
}

/// A fresh GPU backend with `options` (for tests that count what the backend does).
#[cfg(feature = "gpu")]
pub fn gpu_with(options: cappa::GpuOptions) -> Option<cappa::GpuBackend> {
    match cappa::GpuBackend::with_options(options) {
        Ok(g) => Some(g),
        Err(e) => no_gpu(&e.to_string()),
    }
}

#[cfg(feature = "gpu")]
fn no_gpu(reason: &str) -> Option<cappa::GpuBackend> {
    if std::env::var("CAPPA_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("CAPPA_REQUIRE_GPU=1 but no GPU adapter: {reason}");
    }
    // Once per test program, past the harness's capture (which would show it only on a
    // failure), so that a run without a GPU says why its GPU tests pass without running.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: GPU tests skip here: no GPU adapter ({reason}); CAPPA_REQUIRE_GPU=1 makes \
             that a failure"
        );
    });
    None
}

/// Random models and inputs of several shapes, for properties that hold for any configuration.
pub mod random {
    use cappa::{Config, CpuBackend, Gemm, HostTensor, Model, PosEmb, Tokens};

    /// Tiny configs covering decoder biases on and off, sin-cos position tables, encoder and
    /// decoder of different widths, and a Cap-only checkpoint.
    pub fn configs() -> Vec<Config> {
        let base = Config::tiny_for_tests();
        let mut with_bias = base.clone();
        with_bias.decoder_bias = true;
        with_bias.dec_depth = 2;
        let mut sincos = base.clone();
        sincos.posemb_type = PosEmb::Sincos2d;
        sincos.image_size = 24;
        let mut wide = base.clone();
        wide.enc_width = 24;
        wide.enc_heads = 3;
        wide.enc_mlp = 40;
        wide.dec_heads = 4;
        wide.max_len = 9;
        wide.patch_size = 4;
        let mut cap_only = base.clone();
        cap_only.masked_pred_prob = 0.0;
        let mut all = vec![base, with_bias, sincos, wide, cap_only];
        // Named, so that a failure says which one.
        for (cfg, name) in all
            .iter_mut()
            .zip(["base", "bias", "sincos", "wide", "cap-only"])
        {
            cfg.name = format!("tiny-{name}");
        }
        all
    }

    /// `batch` images with values uniform in [-1, 1).
    pub fn images(cfg: &Config, batch: usize, seed: u64) -> HostTensor {
        let mut rng = cappa::rng::Rng::new(seed);
        let n = batch * cfg.image_size * cfg.image_size * cfg.in_channels;
        let data = (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        HostTensor::new(
            &[batch, cfg.image_size, cfg.image_size, cfg.in_channels],
            data,
        )
        .unwrap()
    }

    /// `batch` captions of `max_len` ids: content ids (never PAD or EOS), EOS, PAD, with
    /// content lengths cycling through `1..max_len`.
    pub fn captions(cfg: &Config, batch: usize, seed: u64) -> Tokens {
        let mut rng = cappa::rng::Rng::new(seed);
        let l = cfg.max_len;
        let mut ids = Vec::new();
        for b in 0..batch {
            let content = 1 + (b + seed as usize) % (l - 1);
            for i in 0..l {
                ids.push(match i {
                    i if i < content => 2 + (rng.next_u64() % (cfg.vocab_size as u64 - 2)) as u32,
                    i if i == content => cfg.eos_id,
                    _ => cfg.pad_id,
                });
            }
        }
        Tokens::new(ids, batch, l).unwrap()
    }

    /// A random model of `cfg` on the CPU with `gemm`.
    pub fn model(cfg: &Config, gemm: Gemm) -> Model {
        Model::random(cfg, 11, CpuBackend::with_gemm(gemm)).unwrap()
    }
}

/// Model files that load (or almost) but say something hostile: built from a tiny random model
/// with a word tokenizer, so that every command that captions can run on them.
pub mod hostile {
    use cappa::checkpoint::{CONFIG_KEY, TOKENIZER_KEY};
    use cappa::safetensors_io::{serialize, OwnedTensor, SafetensorsFile};
    use cappa::tokenizer::SpecialIds;
    use cappa::{Config, Model, PosEmb, Tokenizer};

    /// The tiny test config with sin-cos position tables (no tensor pins `image_size` or
    /// `max_len`).
    pub fn sincos_config() -> Config {
        let mut c = Config::tiny_for_tests();
        c.posemb_type = PosEmb::Sincos2d;
        c.name = "tiny-sincos".into();
        c
    }

    /// A word list for `config`'s vocabulary.
    pub fn words(config: &Config) -> Tokenizer {
        let words = (0..config.vocab_size)
            .map(|i| match i {
                0 => "<pad>".to_string(),
                1 => "</s>".to_string(),
                2 => "<unk>".to_string(),
                i => format!("w{i}"),
            })
            .collect();
        Tokenizer::words(words, SpecialIds::from_config(config), true).unwrap()
    }

    /// A single-file model of `config` with random weights and a word tokenizer, whose stored
    /// config JSON is then edited by `edit` (unchecked: what a hand-edited file says), and
    /// whose tensors are edited by `tensors`.
    pub fn model_file(
        config: &Config,
        edit: impl FnOnce(&mut serde_json::Value),
        tensors: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
    ) -> Vec<u8> {
        let bytes = Model::random_checkpoint(config, 11)
            .unwrap()
            .to_single_file(None)
            .unwrap();
        let file = SafetensorsFile::parse(&bytes).unwrap();
        let mut list: Vec<(String, Vec<usize>, Vec<f32>)> = file
            .entries()
            .map(|(n, e)| (n.to_string(), e.shape.clone(), e.to_f32(n).unwrap()))
            .collect();
        tensors(&mut list);
        let owned: Vec<OwnedTensor> = list
            .iter()
            .map(|(n, s, v)| OwnedTensor::float(n, s, v, cappa::DType::F32))
            .collect();
        let mut json: serde_json::Value = serde_json::from_str(&config.to_json()).unwrap();
        edit(&mut json);
        serialize(
            &owned,
            &[
                (CONFIG_KEY, json.to_string()),
                (TOKENIZER_KEY, words(config).to_metadata()),
            ],
        )
        .unwrap()
    }

    /// A sin-cos model whose config claims `image_size` (and nothing else changed): it loads
    /// on every check that looks at tensors alone (issue 18: 4096 aborted the first caption on
    /// a 256 GiB allocation).
    pub fn sincos_claiming(key: &str, value: usize) -> Vec<u8> {
        model_file(&sincos_config(), |j| j[key] = value.into(), |_| {})
    }

    /// A model with one weight set to `value` (NaN, infinite, or a huge finite number).
    pub fn with_weight(value: f32) -> Vec<u8> {
        model_file(
            &Config::tiny_for_tests(),
            |_| {},
            |t| {
                let w = t
                    .iter_mut()
                    .find(|(n, _, _)| n == "decoder/LogitsDense/kernel")
                    .unwrap();
                w.2[3] = value;
            },
        )
    }

    /// A model whose output projection is scaled so far that its logits overflow to infinity
    /// (every weight finite): no caption has a finite probability.
    pub fn overflowing() -> Vec<u8> {
        model_file(
            &Config::tiny_for_tests(),
            |_| {},
            |t| {
                for (n, _, v) in t.iter_mut() {
                    if n.starts_with("decoder/LogitsDense/") {
                        for x in v.iter_mut() {
                            *x = if *x >= 0.0 { 3e38 } else { -3e38 };
                        }
                    }
                }
            },
        )
    }
}
