//! Every decoding strategy and zero-shot classification give the same captions on the GPU as on
//! the CPU oracle — the same sampled tokens for the same seed included — on random models of
//! several shapes and on the reference fixture.

#![cfg(feature = "gpu")]

use cappa::{
    Backend, Beam, Caption, Checkpoint, Classify, CpuBackend, Decode, DecodeOptions, Model, Sample,
    Sampling, Tokens,
};
use cappa_tests::random::{captions, configs, images};
use cappa_tests::{assert_close_slice, fixture_dirs, gpu, Fixture, Tol};

/// Log-probability sums of a few tokens computed by two backends.
const SUMS: Tol = Tol {
    abs: 1e-4,
    rel: 1e-5,
};

fn strategies(with_pa: bool) -> Vec<Decode> {
    let mut all = vec![
        Decode::Greedy,
        Decode::Beam(Beam {
            width: 3,
            length_penalty: 0.6,
        }),
        Decode::Sample(Sample {
            sampling: Sampling {
                temperature: 0.8,
                top_k: 5,
                top_p: 0.9,
            },
            seed: 3,
        }),
        Decode::Sample(Sample {
            sampling: Sampling {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
            },
            seed: 99,
        }),
    ];
    if with_pa {
        all.push(Decode::Parallel);
    }
    all
}

fn same_captions(what: &str, cpu: &[Vec<Caption>], gpu: &[Vec<Caption>]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}");
    for (b, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        let ct: Vec<_> = c.iter().map(|x| &x.tokens).collect();
        let gt: Vec<_> = g.iter().map(|x| &x.tokens).collect();
        assert_eq!(ct, gt, "{what}: image {b} tokens");
        let cl: Vec<f32> = c.iter().map(|x| x.log_prob).collect();
        let gl: Vec<f32> = g.iter().map(|x| x.log_prob).collect();
        assert_close_slice(&format!("{what}: image {b} log-probs"), &gl, &cl, SUMS);
    }
}

fn compare_models(
    label: &str,
    ckpt: &Checkpoint<'_>,
    images: &cappa::HostTensor,
    candidates: &Tokens,
) {
    let Some(g) = gpu() else { return };
    let cpu = Model::new(ckpt, CpuBackend::new()).unwrap();
    let gpu = Model::new(ckpt, g).unwrap();
    let (ec, eg) = (cpu.encode(images).unwrap(), gpu.encode(images).unwrap());
    for how in strategies(cpu.config().has_mask_token()) {
        let opts = DecodeOptions::default();
        let c = cpu.caption_tokens(&ec, &how, &opts, None).unwrap();
        let gg = gpu.caption_tokens(&eg, &how, &opts, None).unwrap();
        same_captions(&format!("{label} {how:?}"), &c, &gg);
    }
    let classify = Classify {
        prompt: vec![3, 4],
        chunk: 3,
        normalize: false,
    };
    let c = cpu.classify_tokens(&ec, candidates, &classify).unwrap();
    let gg = gpu.classify_tokens(&eg, candidates, &classify).unwrap();
    assert_close_slice(
        &format!("{label} classify"),
        gg.scores.data(),
        c.scores.data(),
        SUMS,
    );
    let _ = gpu.backend().name();
}

#[test]
fn random_models_decode_alike_on_gpu_and_cpu() {
    for cfg in configs() {
        let ckpt = Model::random_checkpoint(&cfg, 5).unwrap();
        let mut cands = captions(&cfg, 5, 2);
        // Leave room for the two prompt tokens.
        let l = cfg.max_len - 2;
        let ids: Vec<u32> = (0..5).flat_map(|k| cands.row(k)[..l].to_vec()).collect();
        cands = Tokens::new(ids, 5, l).unwrap();
        compare_models(&cfg.name, &ckpt, &images(&cfg, 3, 1), &cands);
    }
}

#[test]
fn fixture_decodes_alike_on_gpu_and_cpu() {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let ckpt = Checkpoint::load(&dir).unwrap();
        let cands = fix.tokens("zeroshot_candidates");
        let l = cands.len().min(ckpt.config().max_len - 2);
        let ids: Vec<u32> = (0..cands.batch())
            .flat_map(|k| cands.row(k)[..l].to_vec())
            .collect();
        let cands = Tokens::new(ids, cands.batch(), l).unwrap();
        compare_models(&dir.display().to_string(), &ckpt, &fix.images(), &cands);
    }
}
