//! The non-blocking API (what the browser demo uses: WebGPU cannot block) gives exactly what the
//! blocking API gives, with the same device round trips — on the CPU, where its reads complete
//! at once, and on the GPU, where they await the device's map callbacks. Driven here with
//! `pollster`; in a page, the browser's event loop drives them (`examples/web`).

use cappa::tokenizer::SpecialIds;
use cappa::{
    Backend, Beam, Caption, Checkpoint, Classify, ClassifyText, CpuBackend, Decode, DecodeOptions,
    Model, Pool, Sample, Sampling, TokenEvent, Tokenizer, Tokens,
};
use cappa_tests::random::{captions, configs, images};
use cappa_tests::{fixture_dirs, Fixture};
use pollster::block_on;

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
    ];
    if with_pa {
        all.push(Decode::Parallel);
    }
    all
}

/// Captions and streamed events, blocking and async, must be identical.
fn same_both_ways<B: Backend>(label: &str, model: &Model<B>, encoded: &B::Tensor, max: usize) {
    for how in strategies(model.config().has_mask_token()) {
        let opts = DecodeOptions { max_len: Some(max) };
        // Image 0 stops itself after 3 tokens.
        let keep = |e: &TokenEvent<'_>| e.tokens.len() < 3 || e.image != 0;
        let (mut seen_blocking, mut seen_awaited) = (Vec::new(), Vec::new());
        let mut on_blocking = |e: TokenEvent<'_>| {
            seen_blocking.push((e.image, e.tokens.to_vec()));
            keep(&e)
        };
        let mut on_awaited = |e: TokenEvent<'_>| {
            seen_awaited.push((e.image, e.tokens.to_vec()));
            keep(&e)
        };
        let blocking = model
            .caption_tokens(encoded, &how, &opts, Some(&mut on_blocking))
            .unwrap();
        let awaited =
            block_on(model.caption_tokens_async(encoded, &how, &opts, Some(&mut on_awaited)))
                .unwrap();
        assert_eq!(blocking, awaited, "{label} {how:?}");
        assert_eq!(
            seen_blocking, seen_awaited,
            "{label} {how:?} streamed tokens"
        );
        assert!(
            !seen_blocking.is_empty(),
            "{label} {how:?} streamed something"
        );
    }
}

fn candidates(cfg: &cappa::Config) -> Tokens {
    let c = captions(cfg, 5, 2);
    let l = cfg.max_len - 2;
    let ids: Vec<u32> = (0..5).flat_map(|k| c.row(k)[..l].to_vec()).collect();
    Tokens::new(ids, 5, l).unwrap()
}

fn classify_both_ways<B: Backend>(label: &str, model: &Model<B>, encoded: &B::Tensor) {
    let opts = Classify {
        prompt: vec![3, 4],
        chunk: 2,
        normalize: true,
    };
    let cands = candidates(model.config());
    let blocking = model.classify_tokens(encoded, &cands, &opts).unwrap();
    let awaited = block_on(model.classify_tokens_async(encoded, &cands, &opts)).unwrap();
    assert_eq!(blocking, awaited, "{label} classify");
}

#[test]
fn async_decoding_and_scoring_equal_blocking_on_the_cpu() {
    for cfg in configs() {
        let model = Model::random(&cfg, 5, CpuBackend::new()).unwrap();
        let encoded = model.encode(&images(&cfg, 2, 1)).unwrap();
        same_both_ways(&cfg.name, &model, &encoded, cfg.max_len);
        classify_both_ways(&cfg.name, &model, &encoded);
    }
}

#[test]
fn async_errors_are_the_blocking_errors() {
    let cfg = configs().pop().unwrap(); // Cap-only: no parallel decoding
    assert!(!cfg.has_mask_token());
    let model = Model::random(&cfg, 5, CpuBackend::new()).unwrap();
    let encoded = model.encode(&images(&cfg, 1, 1)).unwrap();
    let opts = DecodeOptions::default();
    let blocking = model
        .caption_tokens(&encoded, &Decode::Parallel, &opts, None)
        .unwrap_err();
    let awaited =
        block_on(model.caption_tokens_async(&encoded, &Decode::Parallel, &opts, None)).unwrap_err();
    assert_eq!(blocking.to_string(), awaited.to_string());
    let too_long = DecodeOptions {
        max_len: Some(cfg.max_len + 1),
    };
    let e = block_on(model.caption_tokens_async(&encoded, &Decode::Greedy, &too_long, None));
    assert!(e.is_err());
    let no_tokenizer = block_on(model.caption_async(&[], &Decode::Greedy)).unwrap_err();
    assert!(
        no_tokenizer.to_string().contains("tokenizer"),
        "{no_tokenizer}"
    );
}

/// The fixture with a word vocabulary, so the string API works.
fn fixture_with_words<B: Backend>(backend: B) -> (Model<B>, Fixture) {
    let dir = &fixture_dirs()[0];
    // From its two files, so this runs against the no_std runtime too (no file access there).
    let params = std::fs::read(dir.join("params.safetensors")).unwrap();
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::from_parts(&params, &json).unwrap();
    let cfg = ckpt.config().clone();
    let mut words = vec!["<pad>".to_string(), "</s>".to_string(), "<unk>".to_string()];
    words.extend((3..cfg.vocab_size).map(|i| format!("w{i}")));
    let tok = Tokenizer::words(words, SpecialIds::from_config(&cfg), true).unwrap();
    let model = Model::new(&ckpt, backend)
        .unwrap()
        .with_tokenizer(tok)
        .unwrap();
    (model, Fixture::open(dir))
}

/// The string API, blocking and async, on the fixture's images.
fn string_api_both_ways<B: Backend>(label: &str, model: &Model<B>, fix: &Fixture) {
    let size = model.config().image_size;
    let pixels: Vec<u8> = fix.images().data()[..size * size * 3]
        .iter()
        .map(|&v| ((v + 1.0) * 127.5).round() as u8)
        .collect();
    let image = model.preprocess_rgb8(&pixels, size, size).unwrap();
    let images = [image.clone(), image.clone()];
    for how in [Decode::Parallel, Decode::Greedy] {
        let blocking = model.caption(&images, &how).unwrap();
        let awaited = block_on(model.caption_async(&images, &how)).unwrap();
        assert_eq!(blocking, awaited, "{label} {how:?}");
        let opts = DecodeOptions::default();
        let with: Vec<Vec<Caption>> =
            block_on(model.caption_with_async(&images, &how, &opts, None)).unwrap();
        assert_eq!(
            with[0][0].text, blocking[0],
            "{label} {how:?} caption_with_async"
        );
    }
    let labels = ["w3 w4", "w10", "w7 w8 w9"];
    let blocking = model.classify(&image, &labels).unwrap();
    let awaited = block_on(model.classify_async(&image, &labels)).unwrap();
    assert_eq!(blocking, awaited, "{label} classify");
    let text = ClassifyText {
        prompt: Some("w5".into()),
        normalize: true,
    };
    let blocking = model.classify_with(&images, &labels, &text).unwrap();
    let awaited = block_on(model.classify_with_async(&images, &labels, &text)).unwrap();
    assert_eq!(blocking, awaited, "{label} classify_with");
    let blocking = model.embed(&images, Pool::Gap).unwrap();
    let awaited = block_on(model.embed_async(&images, Pool::Gap)).unwrap();
    assert_eq!(blocking, awaited, "{label} embed");
}

#[test]
fn async_string_api_equals_blocking_on_the_cpu() {
    let (model, fix) = fixture_with_words(CpuBackend::new());
    string_api_both_ways("cpu", &model, &fix);
}

#[cfg(feature = "gpu")]
mod gpu {
    use super::*;
    use cappa::{Device, GpuBackend};
    use cappa_tests::gpu;

    /// The GPU backend opened without blocking (as in a page), or `None` where there is no
    /// adapter (which fails under `CAPPA_REQUIRE_GPU=1`, through `cappa_tests::gpu`).
    fn gpu_async() -> Option<GpuBackend> {
        gpu()?;
        Some(block_on(GpuBackend::new_async()).expect("the blocking open worked"))
    }

    #[test]
    fn async_decoding_and_scoring_equal_blocking_on_the_gpu() {
        let Some(g) = gpu_async() else { return };
        for cfg in configs() {
            let ckpt = Model::random_checkpoint(&cfg, 5).unwrap();
            let model = Model::new(&ckpt, g.clone()).unwrap();
            let encoded = model.encode(&images(&cfg, 2, 1)).unwrap();
            same_both_ways(&cfg.name, &model, &encoded, cfg.max_len);
            classify_both_ways(&cfg.name, &model, &encoded);
        }
    }

    #[test]
    fn async_string_api_equals_blocking_on_the_gpu_and_on_a_device() {
        let Some(g) = gpu_async() else { return };
        let (model, fix) = fixture_with_words(g);
        string_api_both_ways("gpu", &model, &fix);
        let device = block_on(Device::gpu_async()).unwrap();
        assert!(device.is_gpu());
        let (model, fix) = fixture_with_words(device);
        string_api_both_ways("device gpu", &model, &fix);
        let (model, fix) = fixture_with_words(Device::cpu());
        string_api_both_ways("device cpu", &model, &fix);
    }

    #[test]
    fn async_reads_cost_the_blocking_round_trips() {
        let Some(g) = gpu_async() else { return };
        let (model, fix) = fixture_with_words(g.clone());
        let encoded = model.encode(&fix.images()).unwrap();
        let opts = DecodeOptions::default();
        let steps = model.config().max_len as u64;
        for how in [Decode::Parallel, Decode::Greedy] {
            // Warm: pipelines compiled, buffers pooled.
            model.caption_tokens(&encoded, &how, &opts, None).unwrap();
            let s0 = g.stats();
            let blocking = model.caption_tokens(&encoded, &how, &opts, None).unwrap();
            let s1 = g.stats();
            let awaited =
                block_on(model.caption_tokens_async(&encoded, &how, &opts, None)).unwrap();
            let s2 = g.stats();
            assert_eq!(blocking, awaited, "{how:?}");
            assert_eq!(
                s2.submits - s1.submits,
                s1.submits - s0.submits,
                "{how:?} submits"
            );
            assert_eq!(
                s2.readbacks - s1.readbacks,
                s1.readbacks - s0.readbacks,
                "{how:?} readbacks"
            );
            assert_eq!(
                s2.bytes_read - s1.bytes_read,
                s1.bytes_read - s0.bytes_read,
                "{how:?} bytes"
            );
            assert_eq!(
                s2.buffers_created, s1.buffers_created,
                "{how:?}: nothing new allocated"
            );
            let submits = s2.submits - s1.submits;
            match how {
                Decode::Parallel => assert_eq!(submits, 1, "parallel: one submission"),
                _ => assert!((1..=steps).contains(&submits), "greedy: one per step"),
            }
        }
    }
}
