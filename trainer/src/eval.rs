//! Evaluations of a model on the shapes world: captioning (exact match and token accuracy for
//! greedy, beam and parallel decoding), zero-shot classification of a one-object scene's shape
//! and colour by scoring candidate captions, word order (the true caption against the same words
//! with the objects swapped, in the spirit of ARO), and a few-shot linear probe on the frozen
//! encoder's GAP features.

use std::path::Path;

use cappa::{
    Backend, Beam, Classify, Decode, DecodeOptions, Error, HostTensor, Model, Result, Tokenizer,
    Tokens,
};

use serde::Serialize;

use crate::data::{load_image, Dataset, ImageSource};
use crate::shapes::{Colour, Description, Phrase, Scene, Shape, ShapesWorld, Size, Split};

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

/// Draws scenes as training does (each at its own [`Scene::pixels`], resized as any user
/// picture) into a `[B, S, S, 3]` batch for `model`.
pub fn images<B: Backend>(model: &Model<B>, scenes: &[Scene]) -> Result<HostTensor> {
    let s = model.config().image_size;
    let mut data = Vec::with_capacity(scenes.len() * s * s * 3);
    for sc in scenes {
        data.extend_from_slice(sc.image(s)?.data());
    }
    HostTensor::new(&[scenes.len(), s, s, 3], data)
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

/// The captions `decode` gives for a batch of images `[B, S, S, 3]`: per image its tokens
/// (EOS appended when the caption ended with one) and its text.
pub fn decode_batch<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    images: &HostTensor,
    decode: &Decode,
) -> Result<Vec<(Vec<u32>, String)>> {
    let eos = model.config().eos_id;
    let enc = model.encode(images)?;
    let out = model.caption_tokens(&enc, decode, &DecodeOptions::default(), None)?;
    Ok(out
        .into_iter()
        .map(|mut caps| {
            let c = caps.swap_remove(0);
            let text = tok.decode(&c.tokens);
            let mut tokens = c.tokens;
            if c.eos {
                tokens.push(eos);
            }
            (tokens, text)
        })
        .collect())
}

/// Exact match and token accuracy of `decode` on `scenes`, in batches of `batch`, and the
/// captions' texts. A caption is measured against the closest of the scene's exact captions
/// ([`Scene::captions`]: a two-object scene has two, one from each object).
pub fn captioning<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    scenes: &[Scene],
    decode: &Decode,
    batch: usize,
) -> Result<(CaptionScore, Vec<String>)> {
    let cfg = model.config();
    let (mut exact, mut right, mut total) = (0usize, 0usize, 0usize);
    let mut texts = Vec::with_capacity(scenes.len());
    for chunk in scenes.chunks(batch.max(1)) {
        let out = decode_batch(model, tok, &images(model, chunk)?, decode)?;
        for (scene, (got, text)) in chunk.iter().zip(out) {
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
            texts.push(text);
        }
    }
    let score = CaptionScore {
        exact_match: exact as f32 / scenes.len().max(1) as f32,
        token_accuracy: right as f32 / total.max(1) as f32,
    };
    Ok((score, texts))
}

/// What a model's captions get right on one-object scenes, by word. Each is a fraction of the
/// one-object scenes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct OneObjectWords {
    /// Number of one-object scenes.
    pub scenes: usize,
    /// The first colour word of the caption is the object's colour.
    pub colour: f32,
    /// The first shape word of the caption is the object's shape.
    pub shape: f32,
    /// Both of the above.
    pub colour_and_shape: f32,
    /// The first size word of the caption is the object's size.
    pub size: f32,
    /// The caption is the scene's caption, word for word.
    pub exact: f32,
}

/// What a model's captions get right on two-object scenes, by word. A caption counts only if it
/// has the world's grammar ([`Description::parse`]: "a S C S RELATION a S C S"); each is a
/// fraction of the two-object scenes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TwoObjectWords {
    /// Number of two-object scenes.
    pub scenes: usize,
    /// The caption's two colour words are the objects' two colours, in either order.
    pub colours: f32,
    /// Its two shape words are the objects' two shapes, in either order.
    pub shapes: f32,
    /// Its two objects are the scene's two objects by colour and shape (sizes aside), in either
    /// order: both objects named.
    pub objects: f32,
    /// Both objects named, and the relation right: "X REL Y" with X, Y the scene's first and
    /// second object and REL its relation, or the same said from the other object ("Y REL⁻¹ X").
    pub objects_and_relation: f32,
    /// The caption is one of the scene's two exact captions (either phrasing), sizes included.
    pub exact: f32,
}

/// Word-level scores of one decoding mode on one- and two-object scenes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct WordScores {
    /// One-object scenes.
    pub one: OneObjectWords,
    /// Two-object scenes.
    pub two: TwoObjectWords,
}

/// Scores captions (`got`) against what their scenes are (`truth`), pair by pair; see the
/// fields of [`OneObjectWords`] and [`TwoObjectWords`] for what each measure counts.
pub fn score_words<'a>(pairs: impl IntoIterator<Item = (&'a Description, &'a str)>) -> WordScores {
    let (mut one, mut two) = ([0usize; 6], [0usize; 6]);
    for (truth, got) in pairs {
        let parsed = Description::parse(got);
        match (truth.objects.as_slice(), truth.relation) {
            ([t], None) => {
                let lower = got.to_lowercase();
                let words: Vec<&str> = lower.split_whitespace().collect();
                let first =
                    |all: &[&str]| words.iter().find_map(|w| all.iter().position(|a| a == w));
                let colour = first(&Colour::ALL.map(Colour::word)) == Some(t.colour as usize);
                let shape = first(&Shape::ALL.map(Shape::word)) == Some(t.shape as usize);
                let size = first(&Size::ALL.map(Size::word)) == Some(t.size as usize);
                let exact = parsed.as_ref() == Some(truth);
                for (k, ok) in [true, colour, shape, colour && shape, size, exact]
                    .into_iter()
                    .enumerate()
                {
                    one[k] += usize::from(ok);
                }
            }
            ([a, b], Some(r)) => {
                let same = |p: &Phrase, q: &Phrase| (p.colour, p.shape) == (q.colour, q.shape);
                let (colours, shapes, objects, related, exact) = match parsed {
                    Some(Description {
                        objects,
                        relation: Some(rel),
                    }) => {
                        let (p, q) = (&objects[0], &objects[1]);
                        let pair = |f: &dyn Fn(&Phrase) -> (usize, usize)| {
                            let (mut x, mut y) = ([f(p), f(q)], [f(a), f(b)]);
                            x.sort_unstable();
                            y.sort_unstable();
                            x == y
                        };
                        let related = (same(p, a) && same(q, b) && rel == r)
                            || (same(p, b) && same(q, a) && rel == r.inverse());
                        let d = Description {
                            objects: objects.clone(),
                            relation: Some(rel),
                        };
                        (
                            pair(&|o| (o.colour as usize, 0)),
                            pair(&|o| (o.shape as usize, 0)),
                            pair(&|o| (o.colour as usize, o.shape as usize)),
                            related,
                            d == *truth || d == truth.other_way(),
                        )
                    }
                    _ => (false, false, false, false, false),
                };
                for (k, ok) in [true, colours, shapes, objects, related, exact]
                    .into_iter()
                    .enumerate()
                {
                    two[k] += usize::from(ok);
                }
            }
            _ => unreachable!("a description has one object, or two and a relation"),
        }
    }
    let f = |n: usize, of: usize| n as f32 / of.max(1) as f32;
    WordScores {
        one: OneObjectWords {
            scenes: one[0],
            colour: f(one[1], one[0]),
            shape: f(one[2], one[0]),
            colour_and_shape: f(one[3], one[0]),
            size: f(one[4], one[0]),
            exact: f(one[5], one[0]),
        },
        two: TwoObjectWords {
            scenes: two[0],
            colours: f(two[1], two[0]),
            shapes: f(two[2], two[0]),
            objects: f(two[3], two[0]),
            objects_and_relation: f(two[4], two[0]),
            exact: f(two[5], two[0]),
        },
    }
}

impl WordScores {
    /// Two lines of percentages (one-object, two-object scenes), each starting with `name`.
    pub fn table(&self, name: &str) -> String {
        let pct = |v: f32| format!("{:5.1}%", 100.0 * v);
        let (o, t) = (&self.one, &self.two);
        format!(
            "{name:<12} one object ({:>3}):  colour {}  shape {}  both {}  size {}  exact {}\n\
             {:<12} two objects ({:>3}): colours {}  shapes {}  objects {}  + relation {}  exact {}\n",
            o.scenes,
            pct(o.colour),
            pct(o.shape),
            pct(o.colour_and_shape),
            pct(o.size),
            pct(o.exact),
            "",
            t.scenes,
            pct(t.colours),
            pct(t.shapes),
            pct(t.objects),
            pct(t.objects_and_relation),
            pct(t.exact),
        )
    }
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

/// Ridge strength of the linear probe, on standardised features. The reference's few-shot
/// evaluator defaults to 2¹⁰, a strength for wide features; on the default model's 128-wide ones
/// it probes worse (docs/experiments.md, "A longer schedule").
pub const PROBE_RIDGE: f64 = 10.0;

/// Most shots per class the probe takes: the shots are found by scanning the training split and
/// their features held at once.
pub const MAX_PROBE_SHOTS: usize = 1000;

/// An error unless `shots` is a probe's number of shots per class: 1 to [`MAX_PROBE_SHOTS`].
pub fn check_probe_shots(shots: usize) -> Result<()> {
    if (1..=MAX_PROBE_SHOTS).contains(&shots) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "probe shots must be 1..={MAX_PROBE_SHOTS}, not {shots}"
        )))
    }
}

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
    check_probe_shots(shots)?;
    // Batches of 32, so that many shots do not make one large batch.
    let feats = |scenes: &[Scene]| -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::with_capacity(scenes.len());
        for chunk in scenes.chunks(32) {
            let enc = model.encode(&images(model, chunk)?)?;
            let g = model.backend().download(&model.gap(&enc)?)?;
            let d = g.shape()[1];
            out.extend(
                g.data()
                    .chunks(d)
                    .map(|r| r.iter().map(|&v| v as f64).collect::<Vec<f64>>()),
            );
        }
        Ok(out)
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
    for (f, s) in feats(test)?.iter().zip(test) {
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
    /// Word-level scores of the greedy captions of the same scenes.
    pub greedy_words: WordScores,
    /// Word-level scores of the parallel captions (None for Cap-only models).
    pub parallel_words: Option<WordScores>,
    /// Greedy exact match on held-out colour+shape pairs.
    pub held_out_greedy: CaptionScore,
    /// Zero-shot shape and colour accuracy.
    pub zero_shot: (f32, f32),
    /// Word-order accuracy.
    pub word_order: f32,
    /// Linear probe accuracy on shape and on colour, with [`Report::probe_shots`] shots per class.
    pub probe: (f32, f32),
    /// Training scenes per class of the linear probe ([`PROBE_SHOTS`] unless asked otherwise).
    pub probe_shots: usize,
}

/// Shots per class of the linear probe in the default report: the 10-shot measure.
pub const PROBE_SHOTS: usize = 10;

/// Runs every evaluation on `n` test scenes of each kind, the linear probe with `shots` training
/// scenes per class ([`PROBE_SHOTS`] for the standard report; more tells how much shape the pooled
/// features hold beyond what ten examples can find).
pub fn report<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    world: &ShapesWorld,
    n: usize,
    shots: usize,
) -> Result<Report> {
    // Before the captioning, so that a bad count fails at once.
    check_probe_shots(shots)?;
    let one = scenes(world, Split::Test, Objects::One, n, 0);
    let two = scenes(world, Split::Test, Objects::Two, n, 0);
    let truths: Vec<Description> = one.iter().chain(&two).map(Scene::description).collect();
    let both = |d: &Decode| -> Result<((CaptionScore, CaptionScore), WordScores)> {
        let (s1, t1) = captioning(model, tok, &one, d, 32)?;
        let (s2, t2) = captioning(model, tok, &two, d, 32)?;
        let texts: Vec<String> = t1.into_iter().chain(t2).collect();
        let words = score_words(truths.iter().zip(texts.iter().map(String::as_str)));
        Ok(((s1, s2), words))
    };
    let held = scenes(world, Split::HeldOut, Objects::One, n, 0);
    let (greedy, greedy_words) = both(&Decode::Greedy)?;
    let (beam, _) = both(&Decode::Beam(Beam::default()))?;
    let parallel = if model.config().has_mask_token() {
        Some(both(&Decode::Parallel)?)
    } else {
        None
    };
    Ok(Report {
        greedy,
        beam,
        parallel: parallel.map(|p| p.0),
        greedy_words,
        parallel_words: parallel.map(|p| p.1),
        held_out_greedy: captioning(model, tok, &held, &Decode::Greedy, 32)?.0,
        zero_shot: zero_shot(model, tok, &one)?,
        word_order: word_order(model, tok, &two)?,
        probe: (
            linear_probe(
                model,
                world,
                6,
                |s| s.objects[0].shape as usize,
                shots,
                &one,
            )?,
            linear_probe(
                model,
                world,
                6,
                |s| s.objects[0].colour as usize,
                shots,
                &one,
            )?,
        ),
        probe_shots: shots,
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
            "{:<29}{} / {}\n",
            format!("{}-shot probe shape / colour", self.probe_shots),
            pct(self.probe.0),
            pct(self.probe.1)
        );
        out += "words of the captions:\n";
        out += &self.greedy_words.table("  greedy");
        if let Some(p) = &self.parallel_words {
            out += &p.table("  parallel");
        }
        out
    }
}

/// A check set: pictures of the shapes world's words drawn by another program (such as
/// `examples/checkset/`, written by `examples/checkset/make_checkset.py`), with what each
/// caption says. Never training data.
#[derive(Debug, Clone)]
pub struct CheckSet {
    /// The images, preprocessed for the model: `[S, S, 3]` each.
    pub images: Vec<HostTensor>,
    /// What each image's caption says.
    pub truths: Vec<Description>,
    /// Where each came from (`captions.jsonl:line`), for messages.
    pub origins: Vec<String>,
}

impl CheckSet {
    /// Reads `captions.jsonl` of the folder `dir` (or `dir` itself if it is a JSONL file):
    /// `{"image": path, "caption": text}` per line, as `cappa-train shapes` writes. Images of any
    /// size are decoded and resized to `image_size` as the trainer and the runtime do. Strict:
    /// a bad line, an unreadable image or a caption outside the world's grammar is an error.
    pub fn open(dir: &Path, image_size: usize) -> Result<CheckSet> {
        let file = if dir.is_dir() {
            dir.join(CHECKSET_CAPTIONS)
        } else {
            dir.to_path_buf()
        };
        let ds = Dataset::from_jsonl(&file)?;
        if let Some(w) = ds.warnings.first() {
            return Err(Error::InvalidInput(w.clone()));
        }
        if ds.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: no example",
                file.display()
            )));
        }
        let mut set = CheckSet {
            images: Vec::with_capacity(ds.len()),
            truths: Vec::with_capacity(ds.len()),
            origins: Vec::with_capacity(ds.len()),
        };
        for ex in ds.examples {
            let truth = Description::parse(&ex.caption).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: {:?} is not a caption of the shapes world",
                    ex.origin, ex.caption
                ))
            })?;
            let ImageSource::File(path) = &ex.image else {
                unreachable!("JSONL examples are files")
            };
            set.images.push(load_image(path, image_size)?);
            set.truths.push(truth);
            set.origins.push(ex.origin);
        }
        Ok(set)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// The caption file of a check-set folder.
pub const CHECKSET_CAPTIONS: &str = "captions.jsonl";

/// A model's word-level scores on a check set, greedy and parallel.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CheckReport {
    /// Greedy captions.
    pub greedy: WordScores,
    /// Parallel captions (None for Cap-only models).
    pub parallel: Option<WordScores>,
}

impl CheckReport {
    /// A human-readable table (percentages).
    pub fn table(&self) -> String {
        let mut out = self.greedy.table("greedy");
        match &self.parallel {
            Some(p) => out += &p.table("parallel"),
            None => out += "parallel     (a Cap-only model)\n",
        }
        out
    }
}

/// The captions of `decode` for `images` (`[S, S, 3]` each), in batches of `batch`.
pub fn caption_images<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    images: &[HostTensor],
    decode: &Decode,
    batch: usize,
) -> Result<Vec<String>> {
    let s = model.config().image_size;
    let mut texts = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mut data = Vec::with_capacity(chunk.len() * s * s * 3);
        for img in chunk {
            data.extend_from_slice(img.data());
        }
        let batch = HostTensor::new(&[chunk.len(), s, s, 3], data)?;
        texts.extend(
            decode_batch(model, tok, &batch, decode)?
                .into_iter()
                .map(|(_, t)| t),
        );
    }
    Ok(texts)
}

/// Greedy and parallel word-level scores of `model` on a check set.
pub fn check<B: Backend>(model: &Model<B>, tok: &Tokenizer, set: &CheckSet) -> Result<CheckReport> {
    let score = |d: &Decode| -> Result<WordScores> {
        let texts = caption_images(model, tok, &set.images, d, 32)?;
        Ok(score_words(
            set.truths.iter().zip(texts.iter().map(String::as_str)),
        ))
    };
    Ok(CheckReport {
        greedy: score(&Decode::Greedy)?,
        parallel: if model.config().has_mask_token() {
            Some(score(&Decode::Parallel)?)
        } else {
            None
        },
    })
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
            let r = report(&m, &tok, &world, 4, 3).unwrap();
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
            assert!(
                r.table().contains("3-shot probe shape / colour"),
                "{}",
                r.table()
            );
        }
    }

    /// Word scores of `got` against the descriptions of `truths`.
    fn words(truths: &[&str], got: &[&str]) -> WordScores {
        let t: Vec<Description> = truths
            .iter()
            .map(|c| Description::parse(c).unwrap())
            .collect();
        score_words(t.iter().zip(got.iter().copied()))
    }

    #[test]
    fn the_truth_scores_everything_and_either_phrasing_counts() {
        let world = ShapesWorld::new(6);
        let all: Vec<Scene> = (0..200).map(|i| world.scene(Split::Test, i)).collect();
        let truths: Vec<Description> = all.iter().map(Scene::description).collect();
        for phrasing in [0, 1] {
            let got: Vec<String> = all
                .iter()
                .map(|s| s.captions()[phrasing.min(s.captions().len() - 1)].clone())
                .collect();
            let w = score_words(truths.iter().zip(got.iter().map(String::as_str)));
            assert!(w.one.scenes > 50 && w.two.scenes > 50, "{w:?}");
            assert_eq!(w.one.scenes + w.two.scenes, 200);
            let o = w.one;
            let t = w.two;
            for v in [o.colour, o.shape, o.colour_and_shape, o.size, o.exact] {
                assert_eq!(v, 1.0, "{w:?}");
            }
            for v in [
                t.colours,
                t.shapes,
                t.objects,
                t.objects_and_relation,
                t.exact,
            ] {
                assert_eq!(v, 1.0, "{w:?}");
            }
        }
    }

    #[test]
    fn one_object_words_count_the_first_colour_shape_and_size_word() {
        let truth = ["a small red circle"; 6];
        let w = words(
            &truth,
            &[
                "a small red circle",                           // all right
                "a large red circle",                           // size wrong
                "a small blue circle",                          // colour wrong
                "a small red square above a small blue circle", // shape wrong (first), not exact
                "red circle",                                   // not the grammar, words right
                "",                                             // nothing
            ],
        )
        .one;
        assert_eq!(w.scenes, 6);
        assert_eq!(w.colour, 4.0 / 6.0);
        assert_eq!(w.shape, 4.0 / 6.0);
        assert_eq!(w.colour_and_shape, 3.0 / 6.0);
        assert_eq!(w.size, 3.0 / 6.0);
        assert_eq!(w.exact, 1.0 / 6.0);
    }

    #[test]
    fn two_object_words_need_both_objects_and_the_relation() {
        let truth = ["a small red circle above a large blue square"; 7];
        let w = words(
            &truth,
            &[
                "a small red circle above a large blue square", // exact
                "a large blue square below a small red circle", // exact, other phrasing
                "a large red circle above a small blue square", // sizes wrong
                "a large blue square above a small red circle", // objects swapped: relation wrong
                "a small red square above a large blue circle", // shapes swapped between objects
                "a small red circle above a large red square",  // a colour wrong
                "a small red circle above a large blue",        // not the grammar
            ],
        )
        .two;
        assert_eq!(w.scenes, 7);
        assert_eq!(w.colours, 5.0 / 7.0);
        assert_eq!(w.shapes, 6.0 / 7.0);
        assert_eq!(w.objects, 4.0 / 7.0);
        assert_eq!(w.objects_and_relation, 3.0 / 7.0);
        assert_eq!(w.exact, 2.0 / 7.0);
        // Two objects alike in colour and shape: either relation of the pair reads right.
        let same = ["a small red circle to the left of a large red circle"; 2];
        let w = words(
            &same,
            &[
                "a large red circle to the left of a small red circle",
                "a small red circle to the right of a large red circle",
            ],
        )
        .two;
        assert_eq!((w.objects_and_relation, w.exact), (1.0, 0.0));
        // A one-object caption of a two-object scene names nothing.
        let w = words(&truth[..1], &["a small red circle"]).two;
        assert_eq!((w.colours, w.objects, w.exact), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_probe_without_shots_or_with_too_many_is_an_error() {
        let world = ShapesWorld::new(2);
        let (m, _) = random_model(0.75);
        let one = scenes(&world, Split::Test, Objects::One, 2, 0);
        for shots in [0, MAX_PROBE_SHOTS + 1] {
            let r = linear_probe(&m, &world, 6, |s| s.objects[0].shape as usize, shots, &one);
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{shots}: {r:?}");
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
