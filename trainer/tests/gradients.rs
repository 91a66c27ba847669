//! The reverse pass against the reference implementation: the loss and the gradient of every
//! parameter, for Cap, Pa and the fixture's mixed batch, on the CPU backend (both GEMMs) and the
//! GPU backend, within the fixture README's tolerance: 1e-4 of each tensor's largest magnitude
//! plus 1e-6; the exact-zero attention key-bias gradients absolutely (1e-6).

use cappa::loss::caption_loss;
use cappa::model::KeptTokens;
use cappa::{Checkpoint, CpuBackend, Gemm, HostTensor, Mask, Mode, Model, TrainBackend};
use cappa_tests::{assert_close, fixture_dirs, Fixture, Tol};

/// Gradients whose true value is exactly zero (spec §12.14): softmax cancels a key bias.
fn exactly_zero(name: &str) -> bool {
    name.ends_with("MultiHeadDotProductAttention_0/key/bias")
}

fn check<B: TrainBackend + Clone>(be: &B, label: &str) {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let ckpt = Checkpoint::load(&dir).unwrap();
        let model = Model::new(&ckpt, be.clone()).unwrap();
        let params = model.params();
        let images = fix.images();
        let tokens = fix.tokens("tokens");
        let b = tokens.batch();
        let mut worst = 0.0f32;
        for (mode, key) in [(Mode::Cap, "cap"), (Mode::Pa, "pa")] {
            let (loss, grads) = model
                .loss_and_grads(&images, &tokens, &vec![mode; b], None, 0.0)
                .unwrap();
            let want = fix.want(&format!("loss_{key}")).data()[0];
            assert!(
                (loss.mean - want).abs() <= Tol::LOSSES.abs,
                "{label} loss_{key}: {} vs {want}",
                loss.mean
            );
            assert_eq!(
                grads.len(),
                params.len(),
                "{label}: one gradient per parameter"
            );
            for p in &params {
                let name = format!("grad_{key}/{}", p.name);
                let want = fix.want(&name);
                let got = grads.download(be, p).unwrap();
                let max = want.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let tol = if exactly_zero(&p.name) {
                    Tol {
                        abs: 1e-6,
                        rel: 0.0,
                    }
                } else {
                    Tol {
                        abs: 1e-4 * max + 1e-6,
                        rel: 0.0,
                    }
                };
                assert_close(&format!("{label} {name}"), &got, &want, tol);
                if !exactly_zero(&p.name) {
                    let err = cappa_tests::max_abs_diff(got.data(), want.data());
                    worst = worst.max(err / max);
                }
            }
        }
        // The fixture's CapPa batch: a mode per example, in one pass.
        let modes: Vec<Mode> = fix
            .inputs()
            .i32("mixed_is_pa")
            .unwrap()
            .1
            .iter()
            .map(|&pa| if pa != 0 { Mode::Pa } else { Mode::Cap })
            .collect();
        let (loss, _) = model
            .loss_and_grads(&images, &tokens, &modes, None, 0.0)
            .unwrap();
        let want = fix.want("loss_mixed").data()[0];
        assert!(
            (loss.mean - want).abs() <= Tol::LOSSES.abs,
            "{label} loss_mixed: {} vs {want}",
            loss.mean
        );
        eprintln!(
            "{label} {}: worst gradient error {worst:.2e} of the tensor's largest magnitude",
            dir.display()
        );
    }
}

/// Token dropout ([`KeptTokens`], not in the reference): keeping every token is no dropout; with
/// a different half kept per image the loss is the decoder's on those tokens alone, and the
/// encoder's gradient (which comes back through the kept tokens only) predicts the loss's
/// change along it to 1% (a first-order check: the step changes the loss by about 0.2%).
fn check_token_dropout<B: TrainBackend + Clone>(be: &B, label: &str) {
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let mut model = Model::new(&Checkpoint::load(dir).unwrap(), be.clone()).unwrap();
    let (images, tokens) = (fix.images(), fix.tokens("tokens"));
    let b = tokens.batch();
    let modes = vec![Mode::Cap; b];
    let cfg = model.config().clone();
    let t = cfg.num_patches();
    let loss = |m: &Model<B>, kept: Option<&KeptTokens>| {
        m.loss_and_grads(&images, &tokens, &modes, kept, 0.0)
            .unwrap()
    };

    let every = KeptTokens {
        per_example: t,
        index: (0..b).flat_map(|_| 0..t as u32).collect(),
    };
    let ((l0, g0), (l1, g1)) = (loss(&model, None), loss(&model, Some(&every)));
    assert_eq!(l0.mean, l1.mean, "{label}: every token kept");
    for p in model.params() {
        let (a, c) = (g0.download(be, p).unwrap(), g1.download(be, p).unwrap());
        assert_close(
            &format!("{label} every token: {}", p.name),
            &c,
            &a,
            Tol { abs: 0.0, rel: 0.0 },
        );
    }

    // Image e keeps tokens e, e + 2, e + 4, ... (mod t): distinct, and different per image.
    let per = (t / 2).max(1);
    let kept = KeptTokens {
        per_example: per,
        index: (0..b)
            .flat_map(|e| (0..per).map(move |j| ((2 * j + e) % t) as u32))
            .collect(),
    };
    let (l, grads) = loss(&model, Some(&kept));
    let encoded = be.download(&model.encode(&images).unwrap()).unwrap();
    let d = encoded.shape()[2];
    let rows: Vec<f32> = kept
        .index
        .iter()
        .enumerate()
        .flat_map(|(i, &tok)| {
            let at = ((i / per) * t + tok as usize) * d;
            encoded.data()[at..at + d].to_vec()
        })
        .collect();
    let seen = be
        .upload(&HostTensor::new(&[b, per, d], rows).unwrap())
        .unwrap();
    let inputs = model.decoder_inputs(&tokens, &modes).unwrap();
    let ids = be.upload_ids(&[b, tokens.len()], inputs.ids()).unwrap();
    let causal = Mask::Causal { offset: 0 };
    let decoder = model.decoder();
    let logits = decoder
        .forward(be, &seen, &ids, tokens.len(), causal)
        .unwrap();
    let want = caption_loss(be, &logits, &tokens, cfg.pad_id, 0.0)
        .unwrap()
        .mean;
    assert!(
        (l.mean - want).abs() <= 1e-5 * want.abs(),
        "{label}: {} vs {want}",
        l.mean
    );

    // One step down the encoder's gradient, sized to lower the loss by about 0.2%.
    let is_encoder = |name: &str| name.starts_with("encoder/");
    let mut norm2 = 0.0f64;
    for p in model.params().into_iter().filter(|p| is_encoder(&p.name)) {
        let g = grads.download(be, p).unwrap();
        norm2 += g.data().iter().map(|&v| v as f64 * v as f64).sum::<f64>();
    }
    assert!(norm2 > 0.0, "{label}: the encoder gets a gradient");
    let eps = 0.002 * l.mean as f64 / norm2;
    model.update_params(&mut |be, p| {
        if !is_encoder(&p.name) {
            return;
        }
        let (x, g) = (be.download(&p.tensor).unwrap(), grads.of(p).unwrap());
        let g = be.download(g).unwrap();
        let moved = x
            .data()
            .iter()
            .zip(g.data())
            .map(|(x, g)| x - (eps * *g as f64) as f32);
        let moved = HostTensor::new(x.shape(), moved.collect()).unwrap();
        p.tensor = be.upload(&moved).unwrap();
    });
    let (after, _) = loss(&model, Some(&kept));
    let (got, predicted) = ((l.mean - after.mean) as f64, eps * norm2);
    eprintln!("{label}: the loss fell by {got:.4e}, its gradient predicts {predicted:.4e}");
    assert!(
        (got - predicted).abs() <= 0.01 * predicted,
        "{label}: the loss fell by {got:.3e}, its gradient predicts {predicted:.3e}"
    );
}

#[test]
fn token_dropout_refuses_subsets_that_do_not_fit_the_batch() {
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let model = Model::new(&Checkpoint::load(dir).unwrap(), CpuBackend::new()).unwrap();
    let (images, tokens) = (fix.images(), fix.tokens("tokens"));
    let b = tokens.batch();
    let cfg = model.config();
    let t = cfg.num_patches();
    let bad = [
        (0, vec![], "0 per example"),
        (t + 1, vec![0; b * (t + 1)], "more than the image has"),
        (1, vec![0; b + 1], "one too many"),
        (1, vec![t as u32; b], "a token past the last"),
    ];
    for (per_example, index, what) in bad {
        let kept = KeptTokens { per_example, index };
        let got = model.forward_train(&images, &tokens, &vec![Mode::Pa; b], Some(&kept));
        assert!(got.is_err(), "{what} must be refused");
    }
}

#[test]
fn cpu_token_dropout_matches_the_decoder_on_the_kept_tokens() {
    check_token_dropout(&CpuBackend::new(), "cpu");
}

#[cfg(feature = "gpu")]
#[test]
fn gpu_token_dropout_matches_the_decoder_on_the_kept_tokens() {
    if let Some(g) = cappa_tests::gpu() {
        check_token_dropout(&g, "gpu");
    }
}

#[test]
fn cpu_gradients_match_the_reference() {
    check(&CpuBackend::new(), "cpu");
    check(&CpuBackend::with_gemm(Gemm::Blocked), "cpu (blocked)");
}

#[cfg(feature = "gpu")]
#[test]
fn gpu_gradients_match_the_reference() {
    if let Some(g) = cappa_tests::gpu() {
        check(&g, "gpu");
    }
}
