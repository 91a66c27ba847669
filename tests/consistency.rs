//! Properties of the model that hold for any configuration, checked on random models of
//! several shapes (decoder biases on and off, sin-cos position tables, encoder and decoder of
//! different widths, Cap-only): the KV-cache decoder agrees with full recomputation, mixed
//! Cap/Pa batches agree with single-mode ones, batch rows are independent, and scoring agrees
//! with the loss.

use cappa::{Backend, Checkpoint, CpuBackend, Gemm, Greedy, HostTensor, Mode, Model, Tokens};
use cappa_tests::random::{captions, configs, images, model};
use cappa_tests::{assert_close_slice, Tol};

#[test]
fn kv_cache_greedy_equals_full_recompute() {
    for cfg in configs() {
        let m = model(&cfg, Gemm::Blocked);
        let be = m.backend();
        let enc = m.encode(&images(&cfg, 3, 1)).unwrap();
        let g = m
            .greedy(
                &enc,
                &Greedy {
                    stop_at_eos: false,
                    keep_logits: true,
                    ..Greedy::default()
                },
            )
            .unwrap();
        let logits = g.logits.unwrap();
        let (l, v) = (cfg.max_len, cfg.vocab_size);
        for t in 0..l {
            let prefix: Vec<u32> = g.tokens.iter().flat_map(|row| row[..=t].to_vec()).collect();
            let targets = Tokens::new(prefix, 3, t + 1).unwrap();
            let full = be
                .download(&m.logits(&enc, &targets, Mode::Cap).unwrap())
                .unwrap();
            for b in 0..3 {
                let step = &logits.data()[(b * l + t) * v..(b * l + t + 1) * v];
                let recomputed = &full.data()[(b * (t + 1) + t) * v..(b * (t + 1) + t + 1) * v];
                assert_close_slice(
                    &format!("{}: step {t} row {b}", cfg.name),
                    step,
                    recomputed,
                    Tol::SAME_MATH,
                );
            }
        }
    }
}

#[test]
fn mixed_batch_rows_equal_single_mode_rows() {
    for cfg in configs().into_iter().filter(|c| c.has_mask_token()) {
        let m = model(&cfg, Gemm::Blocked);
        let be = m.backend();
        let enc = m.encode(&images(&cfg, 3, 2)).unwrap();
        let t = captions(&cfg, 3, 5);
        let modes = [Mode::Pa, Mode::Cap, Mode::Pa];
        let mixed = be
            .download(&m.logits_per_row(&enc, &t, &modes).unwrap())
            .unwrap();
        let cap = be
            .download(&m.logits(&enc, &t, Mode::Cap).unwrap())
            .unwrap();
        let pa = be.download(&m.logits(&enc, &t, Mode::Pa).unwrap()).unwrap();
        let row = cfg.max_len * cfg.vocab_size;
        for (b, mode) in modes.iter().enumerate() {
            let want = if *mode == Mode::Cap { &cap } else { &pa };
            let r = b * row..(b + 1) * row;
            assert_close_slice(
                &format!("{} row {b}", cfg.name),
                &mixed.data()[r.clone()],
                &want.data()[r],
                Tol::SAME_MATH,
            );
        }
        let loss = m.loss_per_row(&enc, &t, &modes, 0.0).unwrap();
        let cap_l = m.loss(&enc, &t, Mode::Cap, 0.0).unwrap();
        let pa_l = m.loss(&enc, &t, Mode::Pa, 0.0).unwrap();
        let want = [
            pa_l.per_example[0],
            cap_l.per_example[1],
            pa_l.per_example[2],
        ];
        assert_close_slice("mixed loss", &loss.per_example, &want, Tol::SAME_MATH);
    }
}

#[test]
fn batch_rows_are_independent() {
    for cfg in configs() {
        let m = model(&cfg, Gemm::Blocked);
        let be = m.backend();
        let imgs = images(&cfg, 2, 3);
        let both = be.download(&m.encode(&imgs).unwrap()).unwrap();
        let per = imgs.data().len() / 2;
        let second = HostTensor::new(
            &[1, cfg.image_size, cfg.image_size, 3],
            imgs.data()[per..].to_vec(),
        )
        .unwrap();
        let alone = be.download(&m.encode(&second).unwrap()).unwrap();
        let half = both.data().len() / 2;
        assert_close_slice(
            &cfg.name,
            &both.data()[half..],
            alone.data(),
            Tol::SAME_MATH,
        );
    }
}

#[cfg(feature = "std")]
#[test]
fn blocked_and_fast_gemm_agree() {
    for cfg in configs() {
        let (a, b) = (model(&cfg, Gemm::Blocked), model(&cfg, Gemm::Fast));
        let imgs = images(&cfg, 2, 4);
        let t = captions(&cfg, 2, 6);
        let ea = a.encode(&imgs).unwrap();
        let eb = b.encode(&imgs).unwrap();
        let la = a
            .backend()
            .download(&a.logits(&ea, &t, Mode::Cap).unwrap())
            .unwrap();
        let lb = b
            .backend()
            .download(&b.logits(&eb, &t, Mode::Cap).unwrap())
            .unwrap();
        assert_eq!(la.shape(), lb.shape());
        assert_close_slice(&cfg.name, la.data(), lb.data(), Tol::SAME_MATH);
    }
}

#[test]
fn scores_are_minus_the_unnormalised_caption_nll() {
    for cfg in configs() {
        let m = model(&cfg, Gemm::Blocked);
        let enc = m.encode(&images(&cfg, 2, 7)).unwrap();
        let cands = captions(&cfg, 4, 9);
        let scores = m.score(&enc, &cands).unwrap();
        assert_eq!(scores.shape(), &[2, 4]);
        for k in 0..4 {
            let row = cands.row(k);
            let t = Tokens::new(row.repeat(2), 2, row.len()).unwrap();
            let loss = m.loss(&enc, &t, Mode::Cap, 0.0).unwrap();
            let n = row.iter().filter(|&&x| x != cfg.pad_id).count() as f32;
            for b in 0..2 {
                let want = -loss.per_example[b] * n;
                let got = scores.data()[b * 4 + k];
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{}: {got} vs {want}",
                    cfg.name
                );
            }
        }
        let probs = Model::<CpuBackend>::probabilities(&scores);
        for b in 0..2 {
            let s: f32 = probs[b * 4..(b + 1) * 4].iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn parallel_decode_cuts_at_eos_and_greedy_stops() {
    for cfg in configs().into_iter().filter(|c| c.has_mask_token()) {
        let m = model(&cfg, Gemm::Blocked);
        let enc = m.encode(&images(&cfg, 2, 8)).unwrap();
        let raw = m.parallel_tokens(&enc).unwrap();
        assert_eq!((raw.batch(), raw.len()), (2, cfg.max_len));
        for (b, cut) in m.parallel_decode(&enc).unwrap().iter().enumerate() {
            assert!(!cut.contains(&cfg.eos_id));
            assert_eq!(cut[..], raw.row(b)[..cut.len()]);
            if cut.len() < cfg.max_len {
                assert_eq!(raw.row(b)[cut.len()], cfg.eos_id);
            }
        }
    }
}

#[test]
fn model_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Model<CpuBackend>>();
    shareable::<Checkpoint<'static>>();
}
