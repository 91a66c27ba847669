//! Decoding strategies and zero-shot classification on random models of several shapes (the
//! configs of `consistency.rs`): beam search against greedy decoding and against exhaustive
//! search, every returned log-probability against teacher forcing, sampling against greedy
//! decoding and against the softmax it draws from, batched rows against rows decoded alone,
//! the streaming callback, batched zero-shot scoring against one candidate at a time, and the
//! typed errors of bad arguments.

use std::collections::BTreeMap;

use cappa::{
    Backend, Beam, Caption, Classify, Config, CpuBackend, Decode, DecodeOptions, Error, Gemm,
    HostTensor, Mode, Model, Sample, Sampling, TokenEvent, Tokens,
};
use cappa_tests::random::{captions, configs, images, model};
use cappa_tests::{assert_close_slice, Tol};

type Tensor = <CpuBackend as Backend>::Tensor;

/// Sums of a few f32 log-probabilities computed along two paths (KV cache vs full pass,
/// batched vs alone): rounding differences only.
const SUMS: Tol = Tol {
    abs: 1e-4,
    rel: 1e-5,
};

fn setup(cfg: &Config, batch: usize, seed: u64) -> (Model, Tensor) {
    let m = model(cfg, Gemm::Blocked);
    let enc = m.encode(&images(cfg, batch, seed)).unwrap();
    (m, enc)
}

/// The rows `index` of a batch of encodings.
fn rows(m: &Model, enc: &Tensor, index: &[u32]) -> Tensor {
    let be = m.backend();
    be.gather(enc, &be.upload_ids(&[index.len()], index).unwrap())
        .unwrap()
}

fn decode(m: &Model, enc: &Tensor, how: &Decode, max_len: Option<usize>) -> Vec<Vec<Caption>> {
    m.caption_tokens(enc, how, &DecodeOptions { max_len }, None)
        .unwrap()
}

fn tokens(captions: &[Vec<Caption>]) -> Vec<Vec<u32>> {
    captions.iter().map(|c| c[0].tokens.clone()).collect()
}

fn beam(width: usize, length_penalty: f32) -> Decode {
    Decode::Beam(Beam {
        width,
        length_penalty,
    })
}

fn sample(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Decode {
    Decode::Sample(Sample {
        sampling: Sampling {
            temperature,
            top_k,
            top_p,
        },
        seed,
    })
}

/// Log-softmax of each row of `[.., V]` logits, in f64.
fn log_softmax(logits: &HostTensor) -> Vec<Vec<f64>> {
    let v = *logits.shape().last().unwrap();
    logits
        .data()
        .chunks(v)
        .map(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            row.iter().map(|&x| x as f64 - lse).collect()
        })
        .collect()
}

/// Sum of the log-probabilities of `targets` for image `b` in `mode`, teacher-forced, over every
/// position (or every non-PAD position with `skip_pad`).
fn teacher_forced(
    m: &Model,
    enc: &Tensor,
    b: usize,
    targets: &[u32],
    mode: Mode,
    skip_pad: bool,
) -> f32 {
    // Pa logits ignore the tokens but depend on the length: always run Pa at max_len.
    let mut t = targets.to_vec();
    if mode == Mode::Pa {
        t.resize(m.config().max_len, m.config().pad_id);
    }
    let len = t.len();
    let t = Tokens::new(t, 1, len).unwrap();
    let logits = m.logits(&rows(m, enc, &[b as u32]), &t, mode).unwrap();
    let lp = log_softmax(&m.backend().download(&logits).unwrap());
    targets
        .iter()
        .enumerate()
        .filter(|(_, &tok)| !(skip_pad && tok == m.config().pad_id))
        .map(|(i, &tok)| lp[i][tok as usize])
        .sum::<f64>() as f32
}

/// A caption's teacher-forcing targets: its tokens, then EOS if it ended with one.
fn targets(c: &Caption, eos: u32) -> Vec<u32> {
    let mut t = c.tokens.clone();
    if c.eos {
        t.push(eos);
    }
    t
}

/// Checks each caption's log-probability is the teacher-forced Cap sum of its tokens (EOS
/// included when it has one).
fn check_log_probs(m: &Model, enc: &Tensor, out: &[Vec<Caption>], what: &str) {
    for (b, caps) in out.iter().enumerate() {
        for c in caps {
            let want = teacher_forced(m, enc, b, &targets(c, m.config().eos_id), Mode::Cap, false);
            assert_close_slice(
                &format!("{what}: image {b} {:?}", c.tokens),
                &[c.log_prob],
                &[want],
                SUMS,
            );
        }
    }
}

#[test]
fn beam_width_one_is_greedy() {
    for cfg in configs() {
        for seed in 1..=4 {
            let (m, enc) = setup(&cfg, 3, seed);
            let greedy = decode(&m, &enc, &Decode::Greedy, None);
            let beam = decode(&m, &enc, &beam(1, 0.0), None);
            assert_eq!(
                tokens(&greedy),
                m.greedy(&enc, &Default::default()).unwrap().tokens
            );
            assert_eq!(tokens(&beam), tokens(&greedy), "{} seed {seed}", cfg.name);
            for (g, b) in greedy.iter().zip(&beam) {
                assert_eq!((b.len(), g[0].eos), (1, b[0].eos));
                assert_close_slice(&cfg.name, &[b[0].log_prob], &[g[0].log_prob], SUMS);
            }
            check_log_probs(&m, &enc, &greedy, &cfg.name);
        }
    }
}

/// Not a theorem for widths above 1 (a beam can drop the greedy prefix for ones that later
/// fall below it), but true for these fixed models: a failure means a change in the search
/// (or in the models), to be looked at.
#[test]
fn beam_finds_at_least_greedys_log_prob() {
    for cfg in configs() {
        for seed in [3, 4] {
            let (m, enc) = setup(&cfg, 2, seed);
            let greedy = decode(&m, &enc, &Decode::Greedy, None);
            for width in [2, 3, 5] {
                let out = decode(&m, &enc, &beam(width, 0.0), None);
                for (g, b) in greedy.iter().zip(&out) {
                    let best = b[0].log_prob;
                    assert!(
                        best >= g[0].log_prob - 1e-5,
                        "{} width {width}: beam {best} < greedy {}",
                        cfg.name,
                        g[0].log_prob
                    );
                }
            }
        }
    }
}

#[test]
fn beam_captions_are_ranked_teacher_forced_sums() {
    for cfg in configs() {
        let (m, enc) = setup(&cfg, 2, 5);
        for (alpha, max_len) in [(0.0, None), (0.6, None), (2.0, Some(4))] {
            let opts = Beam {
                width: 3,
                length_penalty: alpha,
            };
            let out = decode(&m, &enc, &Decode::Beam(opts), max_len);
            let what = format!("{} α {alpha}", cfg.name);
            check_log_probs(&m, &enc, &out, &what);
            let limit = max_len.unwrap_or(cfg.max_len);
            for caps in &out {
                assert_eq!(caps.len(), 3, "{what}");
                for (i, c) in caps.iter().enumerate() {
                    let len = c.tokens.len() + usize::from(c.eos);
                    assert!(len <= limit && (c.eos || len == limit), "{what}: {c:?}");
                    assert!(!c.tokens.contains(&cfg.eos_id));
                    assert_eq!(c.score, opts.score(c.log_prob, len));
                    if i > 0 {
                        assert!(caps[i - 1].score >= c.score, "{what}: not ranked");
                        assert!(caps[..i].iter().all(|p| p.tokens != c.tokens), "{what}");
                    }
                }
            }
        }
    }
}

/// With more beams than there are prefixes, beam search is exhaustive: its captions are the
/// best of all captions of at most `max_len` tokens, found here by brute force.
#[test]
fn wide_beam_is_exhaustive() {
    let cfg = Config::tiny_for_tests();
    let (m, enc) = setup(&cfg, 2, 6);
    let (v, eos) = (cfg.vocab_size as u32, cfg.eos_id);
    let width = 144; // > (V − 1)² live prefixes
    for steps in [2, 3] {
        // Every prefix of steps − 1 non-EOS tokens, teacher-forced with a dummy last token:
        // the logits give every caption of at most `steps` tokens.
        let mut prefixes: Vec<Vec<u32>> = vec![vec![]];
        for _ in 0..steps - 1 {
            prefixes = prefixes
                .iter()
                .flat_map(|p| {
                    (0..v)
                        .filter(|&t| t != eos)
                        .map(move |t| [&p[..], &[t]].concat())
                })
                .collect();
        }
        let n = prefixes.len();
        let ids: Vec<u32> = prefixes
            .iter()
            .flat_map(|p| [&p[..], &[0]].concat())
            .collect();
        let targets = Tokens::new(ids, n, steps).unwrap();
        for alpha in [0.0, 1.0] {
            let opts = Beam {
                width,
                length_penalty: alpha,
            };
            let out = decode(&m, &enc, &Decode::Beam(opts), Some(steps));
            for (b, caps) in out.iter().enumerate() {
                let img = rows(&m, &enc, &vec![b as u32; n]);
                let logits = m.logits(&img, &targets, Mode::Cap).unwrap();
                let lp = log_softmax(&m.backend().download(&logits).unwrap());
                let lp = |row: usize, pos: usize, t: u32| lp[row * steps + pos][t as usize];
                // tokens → (log-prob, ended with EOS)
                let mut all: BTreeMap<Vec<u32>, (f64, bool)> = BTreeMap::new();
                for (r, p) in prefixes.iter().enumerate() {
                    let mut sum = 0.0;
                    for j in 0..steps {
                        if j + 1 < steps {
                            all.insert(p[..j].to_vec(), (sum + lp(r, j, eos), true));
                            sum += lp(r, j, p[j]);
                        } else {
                            for t in 0..v {
                                let key = if t == eos {
                                    p.clone()
                                } else {
                                    [&p[..], &[t]].concat()
                                };
                                all.insert(key, (sum + lp(r, j, t), t == eos));
                            }
                        }
                    }
                }
                let mut best: Vec<f32> = all
                    .iter()
                    .map(|(t, &(lp, e))| opts.score(lp as f32, t.len() + usize::from(e)))
                    .collect();
                best.sort_by(|a, b| b.total_cmp(a));
                best.truncate(width);
                let what = format!("steps {steps} α {alpha} image {b}");
                assert_eq!(caps.len(), best.len(), "{what}");
                let got: Vec<f32> = caps.iter().map(|c| c.score).collect();
                assert_close_slice(&what, &got, &best, SUMS);
                for c in caps {
                    let (lp, e) = all[&c.tokens];
                    assert_eq!(e, c.eos, "{what}");
                    assert_close_slice(&what, &[c.log_prob], &[lp as f32], SUMS);
                }
            }
        }
    }
}

#[test]
fn sampling_with_top_k_one_or_temperature_zero_is_greedy() {
    for cfg in configs() {
        let (m, enc) = setup(&cfg, 3, 7);
        let greedy = tokens(&decode(&m, &enc, &Decode::Greedy, None));
        for seed in 0..3 {
            for how in [sample(0.7, 1, 1.0, seed), sample(0.0, 0, 0.5, seed)] {
                let out = decode(&m, &enc, &how, None);
                assert_eq!(tokens(&out), greedy, "{} {how:?}", cfg.name);
            }
        }
    }
}

#[test]
fn sampling_is_reproducible_seeded_and_teacher_forced() {
    for cfg in configs() {
        let (m, enc) = setup(&cfg, 3, 8);
        let mut seen = Vec::new();
        for seed in 0..6 {
            let how = sample(1.0, 0, 1.0, seed);
            let out = decode(&m, &enc, &how, None);
            assert_eq!(
                out,
                decode(&m, &enc, &how, None),
                "{} seed {seed}",
                cfg.name
            );
            check_log_probs(&m, &enc, &out, &cfg.name);
            seen.push(tokens(&out));
        }
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 1, "{}: every seed drew the same", cfg.name);
        // Filters and temperature keep log-probs those of the model itself.
        let out = decode(&m, &enc, &sample(1.7, 5, 0.9, 11), Some(5));
        check_log_probs(&m, &enc, &out, &cfg.name);
    }
}

/// The exact distribution of [`cappa::ops::sample`] for one row, in f64.
fn filtered_softmax(x: &[f32], op: Sampling) -> Vec<f64> {
    let z: Vec<f64> = x
        .iter()
        .map(|&v| v as f64 / op.temperature as f64)
        .collect();
    let mut sorted = z.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let t_k = match op.top_k {
        k if k >= 1 && k < z.len() => sorted[k - 1],
        _ => f64::NEG_INFINITY,
    };
    let mut p: Vec<f64> = z
        .iter()
        .map(|&zi| {
            if zi >= t_k {
                (zi - sorted[0]).exp()
            } else {
                0.0
            }
        })
        .collect();
    if op.top_p < 1.0 {
        let total: f64 = p.iter().sum();
        let mut cand = p.clone();
        cand.sort_by(|a, b| b.total_cmp(a));
        let t = *cand
            .iter()
            .find(|&&t| p.iter().filter(|&&q| q >= t).sum::<f64>() >= op.top_p as f64 * total)
            .unwrap();
        p.iter_mut().filter(|q| **q < t).for_each(|q| *q = 0.0);
    }
    let total: f64 = p.iter().sum();
    p.iter().map(|q| q / total).collect()
}

/// 20 000 draws (4 seeds × 5 000 rows) from one hand-made row. Each token's frequency must be
/// within 5 standard deviations of its probability (plus one count); a correct sampler fails
/// this with probability below 1e-5 per token, and the draws are fixed by their seeds.
/// Filtered tokens must never appear.
#[test]
fn sampled_frequencies_follow_the_filtered_softmax() {
    let be = CpuBackend::new();
    let x = [1.0f32, 0.0, 2.0, -1.0, 0.5, 2.0];
    let (rows, seeds) = (5000, 4);
    let logits = be
        .upload(&HostTensor::new(&[rows, x.len()], x.repeat(rows)).unwrap())
        .unwrap();
    let cases = [
        (1.0, 0, 1.0),  // plain softmax
        (0.5, 3, 1.0),  // top-k with a tie at the top: {0, 2, 5}
        (1.5, 0, 0.75), // nucleus {0, 2, 5}
        (1.0, 4, 0.9),  // top-k {0, 2, 4, 5}, then nucleus {0, 2, 5}
        (3.0, 0, 1.0),  // flattened
    ];
    for (temperature, top_k, top_p) in cases {
        let op = Sampling {
            temperature,
            top_k,
            top_p,
        };
        let want = filtered_softmax(&x, op);
        let mut counts = vec![0usize; x.len()];
        for seed in 0..seeds {
            let ids = be.sample(&logits, op, seed, 3).unwrap();
            for t in be.download_ids(&ids).unwrap() {
                counts[t as usize] += 1;
            }
        }
        let n = (rows * seeds as usize) as f64;
        for (t, (&c, &p)) in counts.iter().zip(&want).enumerate() {
            let f = c as f64 / n;
            let bound = 5.0 * (p * (1.0 - p) / n).sqrt() + 1.0 / n;
            assert!(
                (f - p).abs() <= bound,
                "{op:?}: token {t} drawn {f:.4} of the time, expected {p:.4} ± {bound:.4}"
            );
        }
    }
}

#[test]
fn batched_rows_decode_as_they_would_alone() {
    for cfg in configs().into_iter().take(4) {
        let (m, enc) = setup(&cfg, 3, 9);
        for how in [Decode::Greedy, beam(3, 0.6), sample(1.0, 0, 0.9, 4)] {
            let batched = decode(&m, &enc, &how, None);
            // Sampling draws from the row's index, so only row 0 keeps its numbers alone.
            let alone = if matches!(how, Decode::Sample(_)) {
                1
            } else {
                3
            };
            for (b, x) in batched.iter().enumerate().take(alone) {
                let one = decode(&m, &rows(&m, &enc, &[b as u32]), &how, None);
                let what = format!("{} {how:?} image {b}", cfg.name);
                let y = &one[0];
                assert_eq!(x.len(), y.len(), "{what}");
                for (c, d) in x.iter().zip(y) {
                    assert_eq!((&c.tokens, c.eos), (&d.tokens, d.eos), "{what}");
                    assert_close_slice(&what, &[c.log_prob], &[d.log_prob], SUMS);
                }
            }
        }
    }
}

#[test]
fn streaming_callback_sees_every_token_and_can_stop_an_image() {
    let cfg = Config::tiny_for_tests();
    let (m, enc) = setup(&cfg, 3, 10);
    let opts = DecodeOptions::default();
    for how in [Decode::Greedy, sample(1.0, 0, 1.0, 2), Decode::Parallel] {
        let full = decode(&m, &enc, &how, None);
        // Stop the image with the longest caption after two tokens.
        let long = (0..3).max_by_key(|&b| full[b][0].tokens.len()).unwrap();
        assert!(full[long][0].tokens.len() > 2, "{how:?}: no long caption");
        let mut events = vec![Vec::new(); 3];
        let mut on_token = |e: TokenEvent<'_>| {
            assert_eq!(e.tokens.last(), Some(&e.token));
            events[e.image].push(e.token);
            assert_eq!(events[e.image], e.tokens);
            !(e.image == long && e.tokens.len() == 2)
        };
        let out = m
            .caption_tokens(&enc, &how, &opts, Some(&mut on_token))
            .unwrap();
        for b in 0..3 {
            assert_eq!(events[b], out[b][0].tokens, "{how:?} image {b}");
            if b == long {
                assert_eq!(out[b][0].tokens, full[b][0].tokens[..2]);
                assert!(!out[b][0].eos);
            } else {
                assert_eq!(out[b], full[b], "{how:?}: other images go on");
            }
        }
        if how != Decode::Parallel {
            check_log_probs(&m, &enc, &out, &format!("{how:?}"));
        }
    }

    // Beam search reports its best live hypothesis; stopping finishes the live ones as they are.
    let how = beam(3, 0.0);
    let mut calls = 0;
    let mut stop_first = |e: TokenEvent<'_>| {
        calls += 1;
        e.image != 0
    };
    let out = m
        .caption_tokens(&enc, &how, &opts, Some(&mut stop_first))
        .unwrap();
    assert!(calls > 0);
    assert!(out[0].iter().all(|c| c.tokens.len() <= 1), "{:?}", out[0]);
    assert_eq!(out[1..], decode(&m, &enc, &how, None)[1..]);
    check_log_probs(&m, &enc, &out, "beam stopped");
}

#[test]
fn parallel_captions_are_pa_argmaxes_with_pa_log_probs() {
    for cfg in configs() {
        let (m, enc) = setup(&cfg, 2, 12);
        if !cfg.has_mask_token() {
            let err = m.caption_tokens(&enc, &Decode::Parallel, &Default::default(), None);
            assert_eq!(err.unwrap_err(), Error::PaUnavailable);
            continue;
        }
        let out = decode(&m, &enc, &Decode::Parallel, None);
        assert_eq!(tokens(&out), m.parallel_decode(&enc).unwrap());
        for (b, caps) in out.iter().enumerate() {
            let c = &caps[0];
            let want = teacher_forced(&m, &enc, b, &targets(c, cfg.eos_id), Mode::Pa, false);
            assert_close_slice(&cfg.name, &[c.log_prob], &[want], SUMS);
        }
        // A shorter max_len cuts the same captions.
        for (short, full) in decode(&m, &enc, &Decode::Parallel, Some(2))
            .iter()
            .zip(&out)
        {
            let n = full[0].tokens.len().min(2);
            assert_eq!(short[0].tokens, full[0].tokens[..n]);
        }
    }
}

/// `k` captions that leave `room` positions free, padded to `max_len`.
fn short_captions(cfg: &Config, k: usize, seed: u64, room: usize) -> Tokens {
    let mut short = cfg.clone();
    short.max_len = cfg.max_len - room;
    let c = captions(&short, k, seed);
    let ids = (0..k)
        .flat_map(|r| {
            let mut row = c.row(r).to_vec();
            row.resize(cfg.max_len, cfg.pad_id);
            row
        })
        .collect();
    Tokens::new(ids, k, cfg.max_len).unwrap()
}

#[test]
fn batched_zero_shot_equals_one_candidate_at_a_time() {
    for cfg in configs() {
        let (m, enc) = setup(&cfg, 2, 13);
        let k = 5;
        for prompt in [vec![], vec![5, 7]] {
            let cands = short_captions(&cfg, k, 14, prompt.len());
            // Reference: each prompt + candidate teacher-forced alone, PAD skipped.
            let mut want = Vec::new();
            let mut scored = Vec::new();
            for b in 0..2 {
                for c in 0..k {
                    let seq = [&prompt[..], cands.row(c)].concat();
                    let seq = &seq[..cfg.max_len];
                    want.push(teacher_forced(&m, &enc, b, seq, Mode::Cap, true));
                    scored.push(seq.iter().filter(|&&t| t != cfg.pad_id).count() as f32);
                }
            }
            let what = format!("{} prompt {prompt:?}", cfg.name);
            for chunk in [1, 2, 5, 16] {
                let opts = Classify {
                    prompt: prompt.clone(),
                    chunk,
                    normalize: false,
                };
                let out = m.classify_tokens(&enc, &cands, &opts).unwrap();
                assert_eq!(out.scores.shape(), &[2, k]);
                assert_close_slice(&what, out.scores.data(), &want, SUMS);
                let probs = Model::<CpuBackend>::probabilities(&out.scores);
                assert_eq!(out.probabilities.data(), probs);
                for b in 0..2 {
                    let s: f32 = probs[b * k..(b + 1) * k].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5);
                }
                let normalized = Classify {
                    normalize: true,
                    ..opts
                };
                let norm = m.classify_tokens(&enc, &cands, &normalized).unwrap();
                let per_token: Vec<f32> = want.iter().zip(&scored).map(|(s, n)| s / n).collect();
                assert_close_slice(&what, norm.scores.data(), &per_token, SUMS);
            }
            // One candidate per call gives the same scores.
            let opts = Classify {
                prompt: prompt.clone(),
                ..Classify::default()
            };
            let batched = m.classify_tokens(&enc, &cands, &opts).unwrap();
            for c in 0..k {
                let one = Tokens::new(cands.row(c).to_vec(), 1, cfg.max_len).unwrap();
                let alone = m.classify_tokens(&enc, &one, &opts).unwrap();
                for b in 0..2 {
                    assert_close_slice(
                        &what,
                        &[batched.scores.data()[b * k + c]],
                        &[alone.scores.data()[b]],
                        Tol::SAME_MATH,
                    );
                }
            }
            if prompt.is_empty() {
                assert_eq!(m.score(&enc, &cands).unwrap(), batched.scores);
            }
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let cfg = Config::tiny_for_tests();
    let (m, enc) = setup(&cfg, 2, 15);
    let be = m.backend();
    let invalid = |r: Result<Vec<Vec<Caption>>, Error>, what: &str| {
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{what}: {r:?}");
    };
    let run = |how: &Decode, max_len: Option<usize>| {
        m.caption_tokens(&enc, how, &DecodeOptions { max_len }, None)
    };
    invalid(run(&Decode::Greedy, Some(0)), "max_len 0");
    invalid(
        run(&Decode::Greedy, Some(cfg.max_len + 1)),
        "max_len too long",
    );
    invalid(run(&beam(3, 0.0), Some(0)), "beam max_len 0");
    invalid(run(&beam(0, 0.0), None), "width 0");
    invalid(run(&beam(2, f32::NAN), None), "NaN length penalty");
    let huge = run(&beam(usize::MAX / 2, 0.0), None);
    assert!(
        matches!(
            huge,
            Err(Error::Limit {
                name: "MAX_BEAM_WIDTH",
                ..
            })
        ),
        "huge width: {huge:?}"
    );
    for (t, k, p) in [
        (-1.0, 0, 1.0),
        (f32::NAN, 0, 1.0),
        (f32::INFINITY, 0, 1.0),
        (1.0, 0, 0.0),
        (1.0, 0, 1.01),
        (1.0, 0, f32::NAN),
    ] {
        invalid(run(&sample(t, k, p, 0), None), "sampling options");
    }
    let wrong = be.zeros(&[2, 3, cfg.enc_width]).unwrap();
    let err = m.caption_tokens(&wrong, &beam(2, 0.0), &Default::default(), None);
    assert!(matches!(err, Err(Error::InputShape { .. })), "{err:?}");

    // The ops themselves.
    let logits = be.zeros(&[4, 1, cfg.vocab_size]).unwrap();
    let scores = be.zeros(&[4]).unwrap();
    let v = cfg.vocab_size;
    for (groups, k) in [(2, 0), (2, 2 * v + 1), (3, 1), (0, 1)] {
        let r = be.beam_candidates(&logits, &scores, groups, k);
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{groups} {k}");
    }
    let three = be.zeros(&[3]).unwrap();
    assert!(
        be.beam_candidates(&logits, &three, 1, 1).is_err(),
        "batch mismatch"
    );
    assert!(be.beam_candidates(&logits, &scores, 2, 2 * v).is_ok());
    let bad_op = Sampling {
        temperature: -1.0,
        ..Default::default()
    };
    assert!(matches!(
        be.sample(&logits, bad_op, 0, 0),
        Err(Error::InvalidInput(_))
    ));
    let flat = be.zeros(&[4 * v]).unwrap();
    assert!(be.sample(&flat, Sampling::default(), 0, 0).is_err());
    let index = be.upload_ids(&[2], &[0, 4]).unwrap();
    assert!(matches!(
        be.gather(&logits, &index),
        Err(Error::InvalidInput(_))
    ));
    let mut cache = m.decoder().start(be, &enc).unwrap();
    let three_ids = be.upload_ids(&[3], &[0, 1, 1]).unwrap();
    assert!(matches!(
        cache.reorder(be, &three_ids),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(cache.batch(), 2, "a failed reorder changes nothing");

    // Zero-shot options.
    let cands = captions(&cfg, 3, 16);
    let classify = |opts: Classify| m.classify_tokens(&enc, &cands, &opts);
    let r = classify(Classify {
        chunk: 0,
        ..Default::default()
    });
    assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
    let r = classify(Classify {
        prompt: vec![cfg.vocab_size as u32],
        ..Default::default()
    });
    assert!(matches!(r, Err(Error::TokenOutOfRange { .. })), "{r:?}");
    let r = classify(Classify {
        prompt: vec![3; cfg.max_len],
        ..Default::default()
    });
    assert!(matches!(r, Err(Error::InputShape { .. })), "{r:?}");
}
