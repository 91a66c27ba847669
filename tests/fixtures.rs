//! The CPU oracle against the reference implementation's golden tensors: every non-gradient
//! tensor of `expected.safetensors`, for every fixture folder found, through both CPU GEMMs,
//! the single-file form, and with the weights kept as bf16, f16 or q8 (in the file, or
//! converted as the model loads).

use cappa::{
    Backend, Checkpoint, Classify, CpuBackend, Gemm, Greedy, HostTensor, Mode, Model, Precision,
    Tokens,
};
use cappa_tests::{
    as_i32, assert_close, fixture_dirs, margins, roundoffs, weight_tolerance, Fixture, Tol,
};

/// Tolerances for one way of loading the model.
#[derive(Clone, Copy, Debug)]
struct Tolerances {
    activations: Tol,
    losses: Tol,
    /// The format the weights are kept in: narrower than f32, every output may move by a
    /// further [`cappa_tests::WEIGHT_STEPS`] unit roundoffs of the format, of its tensor's
    /// largest magnitude ([`weight_tolerance`]; each comparison prints its measured figure).
    weights: Precision,
}

const F32: Tolerances = Tolerances {
    activations: Tol::ACTIVATIONS,
    losses: Tol::LOSSES,
    weights: Precision::F32,
};

impl Tolerances {
    /// The tolerance for comparing against `want`, starting from `base`.
    fn widen(&self, base: Tol, want: &HostTensor) -> Tol {
        Tol {
            abs: base.abs + weight_tolerance(self.weights, want.data()),
            rel: base.rel,
        }
    }

    fn narrowed(&self) -> bool {
        self.weights != Precision::F32
    }
}

/// The fixture folder as a checkpoint (through the runtime's own folder loader with `std`).
#[cfg(feature = "std")]
fn folder(dir: &std::path::Path) -> Checkpoint<'static> {
    Checkpoint::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The fixture folder as a checkpoint, from its two files (the runtime has no file access).
#[cfg(not(feature = "std"))]
fn folder(dir: &std::path::Path) -> Checkpoint<'static> {
    let params: &'static [u8] = std::fs::read(dir.join("params.safetensors"))
        .unwrap()
        .leak();
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    Checkpoint::from_parts(params, &json).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Runs every comparison of the fixture on `model`.
fn check_all<B: Backend>(fix: &Fixture, model: &Model<B>, tol: Tolerances, label: &str) {
    let be = model.backend();
    let cfg = model.config();
    let images = fix.images();
    let tokens = fix.tokens("tokens");
    let expect = fix.expected();
    let d = |t: &B::Tensor| be.download(t).unwrap();
    let what = |n: &str| format!("{label}: {n}");
    let close = |n: &str, got: &HostTensor, key: &str, base: Tol| {
        let want = fix.want(key);
        if tol.narrowed() {
            let r = roundoffs(tol.weights, got.data(), want.data());
            eprintln!("{}: {r:.2} roundoffs of the largest value", what(n));
        }
        assert_close(&what(n), got, &want, tol.widen(base, &want));
    };

    // Encoder, with its intermediates.
    let mut seen = Vec::new();
    let mut tap = |name: &str, t: &B::Tensor| {
        seen.push(name.to_string());
        if expect.get(name).is_some() {
            close(name, &d(t), name, tol.activations);
        }
        Ok(())
    };
    let encoded = model.encode_with_tap(&images, Some(&mut tap)).unwrap();
    for i in 0..cfg.enc_depth {
        assert!(
            seen.contains(&format!("encoder/block_{i}")),
            "block {i} not tapped"
        );
    }
    assert!(
        seen.iter().any(|s| s == "encoder/stem") && seen.iter().any(|s| s == "encoder/with_posemb")
    );
    close("encoder_out", &d(&encoded), "encoder_out", tol.activations);
    close(
        "encoder_gap",
        &d(&model.gap(&encoded).unwrap()),
        "encoder_gap",
        tol.activations,
    );

    // Logits in both modes; Pa logits ignore the caption.
    let logits_cap = d(&model.logits(&encoded, &tokens, Mode::Cap).unwrap());
    close("logits_cap", &logits_cap, "logits_cap", tol.activations);
    let logits_pa = d(&model.logits(&encoded, &tokens, Mode::Pa).unwrap());
    close("logits_pa", &logits_pa, "logits_pa", tol.activations);
    let zeros = Tokens::new(vec![0; tokens.ids().len()], tokens.batch(), tokens.len()).unwrap();
    let logits_pa0 = d(&model.logits(&encoded, &zeros, Mode::Pa).unwrap());
    close(
        "logits_pa_zero_tokens",
        &logits_pa0,
        "logits_pa_zero_tokens",
        tol.activations,
    );

    // Decoder inputs of both modes.
    let b = tokens.batch();
    let cap_in = model.decoder_inputs(&tokens, &vec![Mode::Cap; b]).unwrap();
    assert_eq!(
        as_i32(cap_in.ids()),
        fix.want_ids("decoder_input_cap"),
        "{label}: decoder_input_cap"
    );
    let pa_in = model.decoder_inputs(&tokens, &vec![Mode::Pa; b]).unwrap();
    assert_eq!(
        as_i32(pa_in.ids()),
        fix.want_ids("decoder_input_pa"),
        "{label}: decoder_input_pa"
    );

    // Losses.
    let weights = cappa::loss::loss_weights(&tokens, cfg.pad_id);
    let weights = HostTensor::new(&[tokens.batch(), tokens.len()], weights).unwrap();
    assert_eq!(weights, fix.want("loss_weights"), "{label}: loss_weights");
    let scalar = |x: f32| HostTensor::new(&[1], vec![x]).unwrap();
    let per = |v: Vec<f32>| HostTensor::new(&[v.len()], v).unwrap();
    for (mode, name) in [(Mode::Cap, "cap"), (Mode::Pa, "pa")] {
        let l = model.loss(&encoded, &tokens, mode, 0.0).unwrap();
        let key = format!("loss_{name}");
        close(&key, &scalar(l.mean), &key, tol.losses);
        let key = format!("loss_{name}_per_example");
        close(&key, &per(l.per_example), &key, tol.losses);
        let l = model.loss(&encoded, &tokens, mode, 0.1).unwrap();
        let key = format!("loss_{name}_ls01");
        close(&key, &scalar(l.mean), &key, tol.losses);
    }
    let (_, is_pa) = fix.inputs().i32("mixed_is_pa").unwrap();
    let modes: Vec<Mode> = is_pa
        .iter()
        .map(|&p| if p != 0 { Mode::Pa } else { Mode::Cap })
        .collect();
    let mixed = model.loss_per_row(&encoded, &tokens, &modes, 0.0).unwrap();
    close("loss_mixed", &scalar(mixed.mean), "loss_mixed", tol.losses);

    // Greedy decoding through the KV cache, all max_len steps, with the logits of each step.
    // A token is compared while the reference's decision margin exceeds twice the logits
    // tolerance; past a closer call, rounded weights may legitimately choose otherwise and the
    // rest of that row follows another prefix. In f32 every token must be compared.
    let greedy = model
        .greedy(
            &encoded,
            &Greedy {
                stop_at_eos: false,
                keep_logits: true,
                ..Greedy::default()
            },
        )
        .unwrap();
    let want_logits = fix.want("greedy_logits");
    let logit_tol = tol.widen(tol.activations, &want_logits);
    let want_tokens = fix.want_ids("greedy_tokens");
    assert_eq!(
        want_tokens,
        fix.want_ids("greedy_tokens_kvcache"),
        "fixture: the two greedy paths agree"
    );
    let steps = cfg.max_len;
    let margin = margins(&want_logits);
    let got_logits = greedy.logits.as_ref().unwrap();
    assert_eq!(
        got_logits.shape(),
        want_logits.shape(),
        "{label}: greedy_logits shape"
    );
    let mut compared = 0;
    for (b, row) in greedy.tokens.iter().enumerate() {
        let sure = (0..steps)
            .take_while(|&t| margin[b * steps + t] > 2.0 * logit_tol.abs)
            .count();
        if !tol.narrowed() {
            assert_eq!(
                sure, steps,
                "{label}: a reference greedy margin is within f32 noise"
            );
        }
        compared += sure;
        let upto = (sure + 1).min(steps); // the first unsure step still sees the same prefix
        assert_eq!(
            as_i32(&row[..sure]),
            want_tokens[b * steps..b * steps + sure],
            "{label}: greedy_tokens row {b}"
        );
        let v = cfg.vocab_size;
        cappa_tests::assert_close_slice(
            &what(&format!("greedy_logits row {b}")),
            &got_logits.data()[b * steps * v..(b * steps + upto) * v],
            &want_logits.data()[b * steps * v..(b * steps + upto) * v],
            logit_tol,
        );
    }

    if tol.narrowed() {
        let all = greedy.tokens.len() * steps;
        eprintln!("{label}: greedy tokens compared: {compared} of {all}");
    }

    // Stopping at EOS gives the same tokens up to the first EOS.
    let stopped = model.greedy(&encoded, &Greedy::default()).unwrap();
    for (row, full) in stopped.tokens.iter().zip(&greedy.tokens) {
        assert_eq!(
            row,
            &cappa::decoding::cut_at_eos(full, cfg.eos_id),
            "{label}: greedy stop at EOS"
        );
    }

    // Parallel decoding: every position is its own decision.
    let par = model.parallel_tokens(&encoded).unwrap();
    let want_par = fix.want_ids("parallel_tokens");
    let pa_margin = margins(&fix.want("logits_pa"));
    let pa_tol = tol.widen(tol.activations, &fix.want("logits_pa")).abs;
    let mut compared = 0;
    for (i, (&g, &w)) in par.ids().iter().zip(&want_par).enumerate() {
        if pa_margin[i] > 2.0 * pa_tol {
            compared += 1;
            assert_eq!(g as i32, w, "{label}: parallel_tokens[{i}]");
        } else {
            assert!(
                tol.narrowed(),
                "{label}: a reference Pa margin is within f32 noise"
            );
        }
    }

    if tol.narrowed() {
        let all = want_par.len();
        eprintln!("{label}: parallel tokens compared: {compared} of {all}");
    }

    // Zero-shot scores.
    if fix.inputs().get("zeroshot_candidates").is_some() {
        let cands = fix.tokens("zeroshot_candidates");
        let scores = model.score(&encoded, &cands).unwrap();
        close("zeroshot_scores", &scores, "zeroshot_scores", tol.losses);
        // Candidates split over several decoder passes score the same.
        let opts = Classify {
            chunk: 3,
            ..Classify::default()
        };
        let chunked = model.classify_tokens(&encoded, &cands, &opts).unwrap();
        close(
            "zeroshot_scores, chunks of 3",
            &chunked.scores,
            "zeroshot_scores",
            tol.losses,
        );
    }
}

#[test]
fn folder_form_blocked_gemm_matches_reference() {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let model = Model::new(&folder(&dir), CpuBackend::with_gemm(Gemm::Blocked)).unwrap();
        check_all(&fix, &model, F32, &format!("{} blocked", dir.display()));
    }
}

#[cfg(feature = "std")]
#[test]
fn folder_form_fast_gemm_matches_reference() {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let model = Model::new(&folder(&dir), CpuBackend::with_gemm(Gemm::Fast)).unwrap();
        check_all(&fix, &model, F32, &format!("{} fast", dir.display()));
    }
}

#[test]
fn single_file_form_matches_reference() {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let bytes = folder(&dir).to_single_file(None).unwrap();
        let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!(ckpt.config(), folder(&dir).config());
        let model = Model::new(&ckpt, CpuBackend::new()).unwrap();
        check_all(&fix, &model, F32, &format!("{} single file", dir.display()));
    }
}

/// How a checked model gets weights narrower than f32.
#[derive(Debug, Clone, Copy)]
enum Narrowed {
    /// Every tensor of the file rounded (`Checkpoint::to_single_file`; 16-bit only).
    EveryTensor,
    /// The kernels and the token table in the file (`Model::convert`, as `cappa convert`).
    InFile,
    /// The kernels and the token table converted as the model loads (`Model::new_as`).
    AtLoad,
}

/// Weights kept narrower than f32 perturb every output by a multiple of the format's unit
/// roundoff; see [`Tolerances::weights`].
fn check_narrowed<B: Backend + Clone>(p: Precision, how: Narrowed, backend: B) {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let f32_file = folder(&dir);
        let model = match how {
            Narrowed::EveryTensor => {
                let dtype = p.float().expect("a float format");
                let bytes = f32_file.to_single_file(Some(dtype)).unwrap();
                let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
                let entry_dtypes: Vec<_> = ckpt
                    .file()
                    .unwrap()
                    .entries()
                    .map(|(_, e)| e.float_dtype("").unwrap())
                    .collect();
                assert!(
                    entry_dtypes.iter().all(|&d| d == dtype),
                    "all tensors stored as {dtype:?}"
                );
                Model::new(&ckpt, backend.clone()).unwrap()
            }
            Narrowed::InFile => {
                let bytes = Model::convert(&f32_file, p).unwrap();
                Model::new(&Checkpoint::from_vec(bytes).unwrap(), backend.clone()).unwrap()
            }
            Narrowed::AtLoad => Model::new_as(&f32_file, backend.clone(), p).unwrap(),
        };
        let tol = Tolerances { weights: p, ..F32 };
        check_all(
            &fix,
            &model,
            tol,
            &format!("{} {p} {how:?} on {}", dir.display(), backend.name()),
        );
    }
}

#[test]
fn bf16_weights_match_reference_within_rounding() {
    check_narrowed(Precision::BF16, Narrowed::EveryTensor, CpuBackend::new());
    check_narrowed(Precision::BF16, Narrowed::AtLoad, CpuBackend::new());
}

#[test]
fn f16_weights_match_reference_within_rounding() {
    check_narrowed(Precision::F16, Narrowed::EveryTensor, CpuBackend::new());
}

#[test]
fn q8_weights_match_reference_within_quantisation() {
    check_narrowed(Precision::Q8, Narrowed::InFile, CpuBackend::new());
    check_narrowed(
        Precision::Q8,
        Narrowed::InFile,
        CpuBackend::with_gemm(Gemm::Blocked),
    );
}

/// Converting as the model loads gives the model a converted file gives, to the bit (the same
/// conversion, the same kernels), in every format.
#[test]
fn converting_at_load_equals_a_converted_file() {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let images = fix.images();
        let tokens = fix.tokens("tokens");
        let f32_file = folder(&dir);
        for p in Precision::ALL {
            let outputs = |m: &Model| {
                let be = m.backend();
                let encoded = m.encode(&images).unwrap();
                let logits = m.logits(&encoded, &tokens, Mode::Cap).unwrap();
                (
                    be.download(&encoded).unwrap(),
                    be.download(&logits).unwrap(),
                )
            };
            let at_load = Model::new_as(&f32_file, CpuBackend::new(), p).unwrap();
            let file = Checkpoint::from_vec(Model::convert(&f32_file, p).unwrap()).unwrap();
            let in_file = Model::new(&file, CpuBackend::new()).unwrap();
            assert_eq!(outputs(&at_load), outputs(&in_file), "{p}");
            // Back to f32 at load: a q8 file's weights dequantised give the same outputs.
            let back = Model::new_as(&file, CpuBackend::new(), Precision::F32).unwrap();
            let (enc, logits) = outputs(&back);
            let (want_enc, want_logits) = outputs(&in_file);
            let tol = Tol::SAME_MATH;
            cappa_tests::assert_close(&format!("{p} back to f32: encoder"), &enc, &want_enc, tol);
            let what = format!("{p} back to f32: logits");
            cappa_tests::assert_close(&what, &logits, &want_logits, tol);
        }
    }
}

/// Bytes the model's kernels and token table take on the backend (`size` of each tensor), and
/// the number of their elements. Every other parameter is f32 in any format.
fn matrix_bytes<B: Backend>(
    model: &Model<B>,
    size: impl Fn(&B::Tensor) -> usize,
) -> (usize, usize) {
    let (mut bytes, mut elements) = (0, 0);
    for p in model.params() {
        if p.name.ends_with("/kernel") || p.name.ends_with("EmbedTargets/embedding") {
            bytes += size(&p.tensor);
            elements += p.shape.iter().product::<usize>();
        }
    }
    (bytes, elements)
}

/// Weights stay in the format they are loaded in — 16-bit, or int8 plus an f32 scale per
/// channel — on the backend (not widened to f32 on the way), whether the file stores them so or
/// the model converts them as it loads.
fn check_kept_as_stored<B: Backend + Clone>(backend: B, size: impl Fn(&B::Tensor) -> usize) {
    for dir in fixture_dirs() {
        let f32_file = folder(&dir);
        for p in Precision::ALL {
            let file = Checkpoint::from_vec(Model::convert(&f32_file, p).unwrap()).unwrap();
            for model in [
                Model::new(&file, backend.clone()).unwrap(),
                Model::new_as(&f32_file, backend.clone(), p).unwrap(),
            ] {
                let (bytes, elements) = matrix_bytes(&model, &size);
                let (lo, hi) = match p {
                    // q8: a byte per element plus a 4-byte scale per channel (< 1 per 8 elements).
                    Precision::Q8 => (elements, elements + elements / 2),
                    _ => (elements * p.size(), elements * p.size()),
                };
                assert!(
                    (lo..=hi).contains(&bytes),
                    "{p} on {}: the kernels take {bytes} bytes for {elements} elements",
                    backend.name()
                );
            }
        }
    }
}

#[test]
fn weights_are_kept_as_stored_on_the_cpu() {
    check_kept_as_stored(CpuBackend::new(), |t| t.byte_len());
}

/// The whole model on the wgpu backend (lavapipe in CI) at the CPU backend's tolerances.
#[cfg(feature = "gpu")]
mod gpu {
    use super::*;
    use cappa_tests::gpu;

    #[test]
    fn gpu_matches_reference() {
        let Some(g) = gpu() else { return };
        for dir in fixture_dirs() {
            let fix = Fixture::open(&dir);
            let model = Model::new(&folder(&dir), g.clone()).unwrap();
            check_all(
                &fix,
                &model,
                F32,
                &format!("{} on {}", dir.display(), g.name()),
            );
        }
    }

    #[test]
    fn gpu_single_file_matches_reference() {
        let Some(g) = gpu() else { return };
        for dir in fixture_dirs() {
            let fix = Fixture::open(&dir);
            let bytes = folder(&dir).to_single_file(None).unwrap();
            let model = Model::new(&Checkpoint::from_bytes(&bytes).unwrap(), g.clone()).unwrap();
            check_all(
                &fix,
                &model,
                F32,
                &format!("{} single file on {}", dir.display(), g.name()),
            );
        }
    }

    #[test]
    fn weights_are_kept_as_stored_on_the_gpu() {
        if let Some(g) = gpu() {
            check_kept_as_stored(g, |t| t.byte_len());
        }
    }

    #[test]
    fn gpu_bf16_weights_match_reference_within_rounding() {
        if let Some(g) = gpu() {
            check_narrowed(Precision::BF16, Narrowed::EveryTensor, g);
        }
    }

    #[test]
    fn gpu_f16_weights_match_reference_within_rounding() {
        if let Some(g) = gpu() {
            check_narrowed(Precision::F16, Narrowed::EveryTensor, g);
        }
    }

    #[test]
    fn gpu_q8_weights_match_reference_within_quantisation() {
        if let Some(g) = gpu() {
            check_narrowed(Precision::Q8, Narrowed::InFile, g);
        }
    }
}
