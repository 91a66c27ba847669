//! Evaluations of a model on the shapes world: captioning (exact match and token accuracy for
//! greedy, beam and parallel decoding), zero-shot classification of a one-object scene's shape
//! and colour by scoring candidate captions, word order (the true caption against the same words
//! with the objects swapped, in the spirit of ARO), and a few-shot linear probe on the frozen
//! encoder's GAP features.

use cappa::{
    Backend, Beam, Classify, Decode, DecodeOptions, HostTensor, Model, Result, Tokenizer, Tokens,
};

use serde::Serialize;

use crate::shapes::{Colour, Scene, Shape, ShapesWorld, Split};

/// Evaluation scenes are drawn at this multiple of the model's image size, as the sample images
/// in `examples/images/` are, then resized like any user image.
pub const RENDER_SCALE: usize = 3;

/// Scenes of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objects {
    /// One object.
    One,
    /// Two objects and a relation.
    Two,
}

/// `n` scenes of `split` with `kind` objects (scanning the split from index `start`).
pub fn scenes(
    world: &ShapesWorld,
    split: Split,
    kind: Objects,
    n: usize,
    start: u64,
) -> Vec<Scene> {
    (start..)
        .map(|i| world.scene(split, i))
        .filter(|s| (s.objects.len() == 1) == (kind == Objects::One))
        .take(n)
        .collect()
}

/// Renders scenes at [`RENDER_SCALE`] times the model's size and preprocesses them (resizing, as
/// any user image) into a `[B, S, S, 3]` batch for `model`.
pub fn images<B: Backend>(model: &Model<B>, scenes: &[Scene]) -> Result<HostTensor> {
    let s = model.config().image_size * RENDER_SCALE;
    let imgs = scenes
        .iter()
        .map(|sc| model.preprocess_rgb8(&sc.render(s), s, s))
        .collect::<Result<Vec<_>>>()?;
    model.batch(&imgs)
}

/// Captioning quality of one decoding mode.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CaptionScore {
    /// Fraction of captions equal, word for word, to one of the scene's exact captions.
    pub exact_match: f32,
    /// Fraction of the (closest) true caption's tokens, EOS included, predicted at their
    /// position.
    pub token_accuracy: f32,
}

/// Exact match and token accuracy of `decode` on `scenes`, in batches of `batch`. A caption is
/// measured against the closest of the scene's exact captions ([`Scene::captions`]: a
/// two-object scene has two, one from each object).
pub fn captioning<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    scenes: &[Scene],
    decode: &Decode,
    batch: usize,
) -> Result<CaptionScore> {
    let cfg = model.config();
    let (mut exact, mut right, mut total) = (0usize, 0usize, 0usize);
    for chunk in scenes.chunks(batch.max(1)) {
        let enc = model.encode(&images(model, chunk)?)?;
        let out = model.caption_tokens(&enc, decode, &DecodeOptions::default(), None)?;
        for (scene, caps) in chunk.iter().zip(out) {
            let mut got = caps[0].tokens.clone();
            if caps[0].eos {
                got.push(cfg.eos_id);
            }
            // (exact, tokens right, tokens) against each exact caption; the best one counts.
            let (e, r, n) = scene
                .captions()
                .iter()
                .map(|c| {
                    let truth = tok.encode_caption(c, cfg.max_len, cfg.eos_id, cfg.pad_id);
                    let n = truth
                        .iter()
                        .position(|&t| t == cfg.eos_id)
                        .map_or(truth.len(), |p| p + 1);
                    let r = (0..n).filter(|&i| got.get(i) == Some(&truth[i])).count();
                    (got.len() == n && got[..] == truth[..n], r, n)
                })
                .max_by_key(|&(e, r, _)| (e, r))
                .expect("a scene has a caption");
            exact += usize::from(e);
            right += r;
            total += n;
        }
    }
    Ok(CaptionScore {
        exact_match: exact as f32 / scenes.len().max(1) as f32,
        token_accuracy: right as f32 / total.max(1) as f32,
    })
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// Zero-shot accuracy on one-object scenes: the shape among six candidate captions that differ
/// only in the shape word, and the colour among six that differ only in the colour word.
pub fn zero_shot<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    scenes: &[Scene],
) -> Result<(f32, f32)> {
    let cfg = model.config();
    let (mut shape_ok, mut colour_ok) = (0usize, 0usize);
    for scene in scenes {
        let o = scene.objects[0];
        let enc = model.encode(&images(model, core::slice::from_ref(scene))?)?;
        let by = |texts: Vec<String>| -> Result<usize> {
            let ids: Vec<u32> = texts
                .iter()
                .flat_map(|t| tok.encode_caption(t, cfg.max_len, cfg.eos_id, cfg.pad_id))
                .collect();
            let c = model.classify_tokens(
                &enc,
                &Tokens::new(ids, texts.len(), cfg.max_len)?,
                &Classify::default(),
            )?;
            Ok(argmax(c.scores.data()))
        };
        let shapes = Shape::ALL
            .iter()
            .map(|s| format!("a {} {} {}", o.size.word(), o.colour.word(), s.word()))
            .collect();
        shape_ok += usize::from(Shape::ALL[by(shapes)?] == o.shape);
        let colours = Colour::ALL
            .iter()
            .map(|c| format!("a {} {} {}", o.size.word(), c.word(), o.shape.word()))
            .collect();
        colour_ok += usize::from(Colour::ALL[by(colours)?] == o.colour);
    }
    let n = scenes.len().max(1) as f32;
    Ok((shape_ok as f32 / n, colour_ok as f32 / n))
}

/// Word-order accuracy on two-object scenes: how often the true caption scores higher than the
/// same words with the two objects swapped. Scenes of two identical objects, where the swap says
/// the same thing, are left out.
pub fn word_order<B: Backend>(model: &Model<B>, tok: &Tokenizer, scenes: &[Scene]) -> Result<f32> {
    let cfg = model.config();
    let (mut ok, mut n) = (0usize, 0usize);
    for scene in scenes {
        let swapped = scene.swapped_caption().expect("two-object scenes");
        if scene.captions().contains(&swapped) {
            continue;
        }
        n += 1;
        let enc = model.encode(&images(model, core::slice::from_ref(scene))?)?;
        let ids: Vec<u32> = [scene.caption(), swapped]
            .iter()
            .flat_map(|t| tok.encode_caption(t, cfg.max_len, cfg.eos_id, cfg.pad_id))
            .collect();
        let c = model.classify_tokens(
            &enc,
            &Tokens::new(ids, 2, cfg.max_len)?,
            &Classify::default(),
        )?;
        ok += usize::from(c.scores.data()[0] > c.scores.data()[1]);
    }
    Ok(ok as f32 / n.max(1) as f32)
}

/// Solves `(XᵀX + λI) W = XᵀY` for the ridge-regression weights (Gaussian elimination).
fn ridge(x: &[Vec<f64>], y: &[Vec<f64>], lambda: f64) -> Vec<Vec<f64>> {
    let (d, k) = (x[0].len() + 1, y[0].len());
    let row =
        |r: &Vec<f64>| -> Vec<f64> { r.iter().copied().chain(core::iter::once(1.0)).collect() };
    let xs: Vec<Vec<f64>> = x.iter().map(row).collect();
    let mut a = vec![vec![0.0; d + k]; d];
    for (xi, yi) in xs.iter().zip(y) {
        for i in 0..d {
            for j in 0..d {
                a[i][j] += xi[i] * xi[j];
            }
            for c in 0..k {
                a[i][d + c] += xi[i] * yi[c];
            }
        }
    }
    for (i, r) in a.iter_mut().enumerate().take(d - 1) {
        r[i] += lambda;
    }
    for col in 0..d {
        let piv = (col..d)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap();
        a.swap(col, piv);
        let p = a[col][col];
        if p.abs() < 1e-12 {
            continue;
        }
        for v in &mut a[col][col..] {
            *v /= p;
        }
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            let f = row[col];
            if r != col && f != 0.0 {
                for (v, pv) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *v -= f * pv;
                }
            }
        }
    }
    (0..d).map(|i| a[i][d..].to_vec()).collect()
}

/// Ridge strength of the linear probe, on standardised features.
pub const PROBE_RIDGE: f64 = 10.0;

/// Few-shot linear probe: ridge regression (closed form) on the GAP features of `shots` training
/// scenes per class, accuracy on `test` one-object scenes. `label` picks the attribute.
pub fn linear_probe<B: Backend>(
    model: &Model<B>,
    world: &ShapesWorld,
    classes: usize,
    label: impl Fn(&Scene) -> usize,
    shots: usize,
    test: &[Scene],
) -> Result<f32> {
    let feats = |scenes: &[Scene]| -> Result<Vec<Vec<f64>>> {
        let enc = model.encode(&images(model, scenes)?)?;
        let g = model.backend().download(&model.gap(&enc)?)?;
        let d = g.shape()[1];
        Ok(g.data()
            .chunks(d)
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect())
    };
    let mut per_class = vec![Vec::new(); classes];
    for i in 0.. {
        let s = world.scene(Split::Train, i);
        let c = label(&s);
        if s.objects.len() == 1 && per_class[c].len() < shots {
            per_class[c].push(s);
        }
        if per_class.iter().all(|v| v.len() == shots) {
            break;
        }
    }
    let train: Vec<Scene> = per_class.into_iter().flatten().collect();
    // Features standardised with the training shots' mean and spread, so one ridge strength
    // suits any model's feature scale.
    let raw = feats(&train)?;
    let d = raw[0].len();
    let n = raw.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| raw.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            (raw.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-6)
        })
        .collect();
    let standardise =
        |r: &Vec<f64>| -> Vec<f64> { (0..d).map(|j| (r[j] - mean[j]) / sd[j]).collect() };
    let x: Vec<Vec<f64>> = raw.iter().map(standardise).collect();
    let y: Vec<Vec<f64>> = train
        .iter()
        .map(|s| {
            (0..classes)
                .map(|c| f64::from(u8::from(c == label(s))))
                .collect()
        })
        .collect();
    let w = ridge(&x, &y, PROBE_RIDGE);
    let mut ok = 0usize;
    for chunk in test.chunks(32) {
        for (f, s) in feats(chunk)?.iter().zip(chunk) {
            let f = standardise(f);
            let scores: Vec<f32> = (0..classes)
                .map(|c| {
                    (f.iter()
                        .chain(core::iter::once(&1.0))
                        .zip(&w)
                        .map(|(a, wr)| a * wr[c])
                        .sum::<f64>()) as f32
                })
                .collect();
            ok += usize::from(argmax(&scores) == label(s));
        }
    }
    Ok(ok as f32 / test.len().max(1) as f32)
}

/// Every evaluation at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Report {
    /// Greedy captioning, one-object and two-object scenes.
    pub greedy: (CaptionScore, CaptionScore),
    /// Beam search (width 4), one- and two-object scenes.
    pub beam: (CaptionScore, CaptionScore),
    /// Parallel decoding, one- and two-object scenes (None for Cap-only models).
    pub parallel: Option<(CaptionScore, CaptionScore)>,
    /// Greedy exact match on held-out colour+shape pairs.
    pub held_out_greedy: CaptionScore,
    /// Zero-shot shape and colour accuracy.
    pub zero_shot: (f32, f32),
    /// Word-order accuracy.
    pub word_order: f32,
    /// 10-shot linear probe accuracy on shape and on colour.
    pub probe: (f32, f32),
}

/// Runs every evaluation on `n` test scenes of each kind.
pub fn report<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    world: &ShapesWorld,
    n: usize,
) -> Result<Report> {
    let one = scenes(world, Split::Test, Objects::One, n, 0);
    let two = scenes(world, Split::Test, Objects::Two, n, 0);
    let both = |d: &Decode| -> Result<(CaptionScore, CaptionScore)> {
        Ok((
            captioning(model, tok, &one, d, 32)?,
            captioning(model, tok, &two, d, 32)?,
        ))
    };
    let held = scenes(world, Split::HeldOut, Objects::One, n, 0);
    Ok(Report {
        greedy: both(&Decode::Greedy)?,
        beam: both(&Decode::Beam(Beam::default()))?,
        parallel: if model.config().has_mask_token() {
            Some(both(&Decode::Parallel)?)
        } else {
            None
        },
        held_out_greedy: captioning(model, tok, &held, &Decode::Greedy, 32)?,
        zero_shot: zero_shot(model, tok, &one)?,
        word_order: word_order(model, tok, &two)?,
        probe: (
            linear_probe(model, world, 6, |s| s.objects[0].shape as usize, 10, &one)?,
            linear_probe(model, world, 6, |s| s.objects[0].colour as usize, 10, &one)?,
        ),
    })
}

impl Report {
    /// A human-readable table, one line per measure (percentages).
    pub fn table(&self) -> String {
        let pct = |v: f32| format!("{:5.1}%", 100.0 * v);
        let caption = |name: &str, (one, two): (CaptionScore, CaptionScore)| {
            format!(
                "{name:<28} exact {} / {}   tokens {} / {}\n",
                pct(one.exact_match),
                pct(two.exact_match),
                pct(one.token_accuracy),
                pct(two.token_accuracy)
            )
        };
        let mut out = String::from("captioning (one object / two objects):\n");
        out += &caption("  greedy", self.greedy);
        out += &caption("  beam (width 4)", self.beam);
        match self.parallel {
            Some(p) => out += &caption("  parallel", p),
            None => out += "  parallel                   (a Cap-only model)\n",
        }
        out += &format!(
            "  greedy, held-out pairs     exact {}           tokens {}\n",
            pct(self.held_out_greedy.exact_match),
            pct(self.held_out_greedy.token_accuracy)
        );
        out += &format!(
            "zero-shot shape / colour     {} / {}\n",
            pct(self.zero_shot.0),
            pct(self.zero_shot.1)
        );
        out += &format!("word order (true > swapped)  {}\n", pct(self.word_order));
        out += &format!(
            "10-shot probe shape / colour {} / {}\n",
            pct(self.probe.0),
            pct(self.probe.1)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::vocabulary;
    use cappa::tokenizer::SpecialIds;
    use cappa::{Config, CpuBackend};

    fn random_model(masked_pred_prob: f32) -> (Model<CpuBackend>, Tokenizer) {
        let mut cfg = Config::tiny_for_tests();
        cfg.vocab_size = vocabulary().len();
        cfg.max_len = 16;
        cfg.masked_pred_prob = masked_pred_prob;
        let tok = Tokenizer::words(vocabulary(), SpecialIds::from_config(&cfg), true).unwrap();
        let m = Model::random(&cfg, 1, CpuBackend::new()).unwrap();
        (m, tok)
    }

    #[test]
    fn every_measure_is_a_fraction_and_cap_models_have_no_parallel_score() {
        let world = ShapesWorld::new(2);
        for (p, parallel) in [(0.75, true), (0.0, false)] {
            let (m, tok) = random_model(p);
            let r = report(&m, &tok, &world, 4).unwrap();
            assert_eq!(r.parallel.is_some(), parallel);
            let scores = [
                r.greedy.0,
                r.greedy.1,
                r.beam.0,
                r.beam.1,
                r.held_out_greedy,
            ];
            for v in scores
                .iter()
                .flat_map(|s| [s.exact_match, s.token_accuracy])
                .chain([
                    r.zero_shot.0,
                    r.zero_shot.1,
                    r.word_order,
                    r.probe.0,
                    r.probe.1,
                ])
            {
                assert!((0.0..=1.0).contains(&v), "{r:?}");
            }
            // A random model does not caption.
            assert!(r.greedy.0.exact_match < 0.5, "{r:?}");
            assert!(r.table().contains("word order"));
        }
    }

    #[test]
    fn ridge_regression_recovers_a_linear_map() {
        // y = 2 x0 - x1 + 3, exactly representable: the solution is found.
        let x: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![i as f64, (i * i % 7) as f64])
            .collect();
        let y: Vec<Vec<f64>> = x.iter().map(|r| vec![2.0 * r[0] - r[1] + 3.0]).collect();
        let w = ridge(&x, &y, 1e-9);
        for (got, want) in w.iter().map(|r| r[0]).zip([2.0, -1.0, 3.0]) {
            assert!((got - want).abs() < 1e-5, "{w:?}");
        }
    }
}
