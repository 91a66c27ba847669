//! What the wgpu backend does per pass, counted by the backend itself: one submission per
//! forward pass (or decoding step), reading back only what was asked for (while decoding: each
//! step's chosen ids and their log-probabilities), and no new buffers once a pass has been run.

#![cfg(feature = "gpu")]

use cappa::{Backend, Checkpoint, GpuOptions, Greedy, Mode, Model};
use cappa_tests::{fixture_dirs, gpu_with, Fixture};

#[test]
fn one_submit_per_forward_and_no_new_buffers_when_warm() {
    let Some(g) = gpu_with(GpuOptions::default()) else {
        return;
    };
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let model = Model::new(&Checkpoint::load(dir).unwrap(), g.clone()).unwrap();
    let images = fix.images();
    let tokens = fix.tokens("tokens");
    let forward = || {
        let enc = model.encode(&images).unwrap();
        let logits = model.logits(&enc, &tokens, Mode::Cap).unwrap();
        g.download(&logits).unwrap()
    };
    let first = forward();
    let before = g.stats();
    let second = forward();
    let after = g.stats();
    assert_eq!(first, second, "same inputs, same logits");
    assert_eq!(
        after.submits - before.submits,
        1,
        "one submission per forward pass"
    );
    assert_eq!(
        after.readbacks - before.readbacks,
        1,
        "only the logits are read back"
    );
    let v = model.config().vocab_size;
    assert_eq!(
        after.bytes_read - before.bytes_read,
        (tokens.batch() * tokens.len() * v * 4) as u64
    );
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "a warm forward allocates no buffers"
    );
    assert!(after.dispatches > before.dispatches);
    assert_eq!(after.pipelines, before.pipelines, "pipelines are cached");
}

#[test]
fn greedy_submits_once_per_step_and_reads_only_ids_and_log_probs() {
    let Some(g) = gpu_with(GpuOptions::default()) else {
        return;
    };
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let model = Model::new(&Checkpoint::load(dir).unwrap(), g.clone()).unwrap();
    let enc = model.encode(&fix.images()).unwrap();
    g.flush().unwrap();
    let opts = Greedy {
        stop_at_eos: false,
        ..Greedy::default()
    };
    model.greedy(&enc, &opts).unwrap(); // warm up
    let before = g.stats();
    let out = model.greedy(&enc, &opts).unwrap();
    let after = g.stats();
    let steps = model.config().max_len as u64;
    let batch = out.tokens.len() as u64;
    assert_eq!(
        after.submits - before.submits,
        steps,
        "one submission per decoding step"
    );
    assert_eq!(
        after.readbacks - before.readbacks,
        2 * steps,
        "two small reads per submission"
    );
    assert_eq!(
        after.bytes_read - before.bytes_read,
        steps * batch * 8,
        "only the chosen ids and their log-probabilities come back, never logits"
    );
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "a warm decode allocates no buffers"
    );
}

#[test]
fn parallel_captions_submit_once_and_sampling_once_per_step() {
    use cappa::{Decode, DecodeOptions, Sample, Sampling};
    let Some(g) = gpu_with(GpuOptions::default()) else {
        return;
    };
    let dir = &fixture_dirs()[0];
    let fix = Fixture::open(dir);
    let model = Model::new(&Checkpoint::load(dir).unwrap(), g.clone()).unwrap();
    let enc = model.encode(&fix.images()).unwrap();
    g.flush().unwrap();
    let batch = model.backend().shape(&enc)[0] as u64;
    let l = model.config().max_len as u64;
    let opts = DecodeOptions::default();

    model
        .caption_tokens(&enc, &Decode::Parallel, &opts, None)
        .unwrap();
    let before = g.stats();
    model
        .caption_tokens(&enc, &Decode::Parallel, &opts, None)
        .unwrap();
    let after = g.stats();
    assert_eq!(
        after.submits - before.submits,
        1,
        "one submission per parallel caption batch"
    );
    assert_eq!(
        after.bytes_read - before.bytes_read,
        batch * l * 8,
        "ids and their log-probs only"
    );
    assert_eq!(after.buffers_created, before.buffers_created);

    // Sampling with a budget of 4 tokens: every row runs 4 steps unless all rows end early.
    let sample = Decode::Sample(Sample {
        sampling: Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
        },
        seed: 1,
    });
    let opts = DecodeOptions { max_len: Some(4) };
    let before = g.stats();
    let out = model.caption_tokens(&enc, &sample, &opts, None).unwrap();
    let after = g.stats();
    let steps = out
        .iter()
        .map(|c| c[0].tokens.len() as u64 + u64::from(c[0].eos))
        .max()
        .unwrap();
    assert_eq!(
        after.submits - before.submits,
        steps,
        "one submission per sampling step"
    );
    assert_eq!(after.bytes_read - before.bytes_read, steps * batch * 8);
}
