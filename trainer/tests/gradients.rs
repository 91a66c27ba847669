//! The reverse pass against the reference implementation: the loss and the gradient of every
//! parameter, for Cap, Pa and the fixture's mixed batch, on the CPU backend (both GEMMs) and the
//! GPU backend, within the fixture README's tolerance: 1e-4 of each tensor's largest magnitude
//! plus 1e-6; the exact-zero attention key-bias gradients absolutely (1e-6).

use cappa::{Checkpoint, CpuBackend, Gemm, Mode, Model, TrainBackend};
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
                .loss_and_grads(&images, &tokens, &vec![mode; b], 0.0)
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
        let (loss, _) = model.loss_and_grads(&images, &tokens, &modes, 0.0).unwrap();
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
