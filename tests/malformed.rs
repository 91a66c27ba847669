//! Bad input gives a typed error that names the problem — never a panic, never wrong output.

use cappa::safetensors_io::{serialize, OwnedTensor, SafetensorsFile};
use cappa::{Checkpoint, Config, CpuBackend, Error, HostTensor, Mode, Model, Tokens};

fn tiny() -> Config {
    Config::tiny_for_tests()
}

/// The tensors of a random tiny checkpoint, to be edited.
fn tensors(cfg: &Config) -> Vec<(String, HostTensor)> {
    let ckpt = Model::random_checkpoint(cfg, 1).unwrap();
    let file = ckpt.file().unwrap();
    file.names()
        .map(|n| (n.to_string(), file.f32(n).unwrap()))
        .collect()
}

fn build(cfg: &Config, tensors: &[OwnedTensor]) -> Result<Model, Error> {
    let bytes = serialize(tensors, &[("cappa.config", cfg.to_json())]).unwrap();
    let ckpt = Checkpoint::from_vec(bytes)?;
    Model::new(&ckpt, CpuBackend::new())
}

fn owned(ts: &[(String, HostTensor)]) -> Vec<OwnedTensor> {
    ts.iter().map(|(n, t)| OwnedTensor::f32(n, t)).collect()
}

fn good_bytes() -> Vec<u8> {
    Model::random_checkpoint(&tiny(), 1)
        .unwrap()
        .to_single_file(None)
        .unwrap()
}

#[test]
fn truncated_file_is_malformed() {
    let bytes = good_bytes();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        match Checkpoint::from_bytes(&bytes[..cut]) {
            Err(Error::MalformedFile(msg)) => assert!(!msg.is_empty()),
            other => panic!("cut at {cut}: expected MalformedFile, got {other:?}"),
        }
    }
}

#[test]
fn header_length_beyond_the_file_is_malformed() {
    let mut bytes = good_bytes();
    let huge = (bytes.len() as u64) * 4;
    bytes[..8].copy_from_slice(&huge.to_le_bytes());
    let err = Checkpoint::from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, Error::MalformedFile(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&huge.to_string()) && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn garbage_header_is_malformed() {
    let mut bytes = 16u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{not json at all");
    assert!(matches!(
        Checkpoint::from_bytes(&bytes),
        Err(Error::MalformedFile(_))
    ));
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let cfg = tiny();
    let mut ts = tensors(&cfg);
    let name = "decoder/EncDecBlock0/MLP/Dense_0/kernel";
    let t = ts.iter_mut().find(|(n, _)| n == name).unwrap();
    t.1 = HostTensor::zeros(&[cfg.dec_width, cfg.dec_mlp + 1]);
    match build(&cfg, &owned(&ts)) {
        Err(Error::ShapeMismatch {
            name: n,
            expected,
            found,
        }) => {
            assert_eq!(n, name);
            assert_eq!(expected, vec![cfg.dec_width, cfg.dec_mlp]);
            assert_eq!(found, vec![cfg.dec_width, cfg.dec_mlp + 1]);
        }
        other => panic!("expected ShapeMismatch, got {:?}", other.err()),
    }
}

#[test]
fn missing_tensor_is_named() {
    let cfg = tiny();
    let mut ts = tensors(&cfg);
    ts.retain(|(n, _)| n != "encoder/Transformer/encoder_norm/scale");
    let err = build(&cfg, &owned(&ts)).err().unwrap();
    assert_eq!(
        err,
        Error::MissingTensor {
            name: "encoder/Transformer/encoder_norm/scale".into(),
            expected: vec![cfg.enc_width]
        }
    );
    assert!(err
        .to_string()
        .contains("encoder/Transformer/encoder_norm/scale"));
}

#[test]
fn unexpected_tensor_is_named() {
    let cfg = tiny();
    let mut ts = tensors(&cfg);
    // A decoder bias that `decoder_bias = false` does not have.
    ts.push((
        "decoder/EncDecBlock0/LayerNorm1/bias".into(),
        HostTensor::zeros(&[cfg.dec_width]),
    ));
    let err = build(&cfg, &owned(&ts)).err().unwrap();
    assert!(
        matches!(err, Error::UnexpectedTensor { ref name, .. } if name == "decoder/EncDecBlock0/LayerNorm1/bias"),
        "{err:?}"
    );
}

#[test]
fn integer_weights_are_an_unsupported_dtype() {
    let cfg = tiny();
    let ts = tensors(&cfg);
    let mut out = owned(&ts);
    let i = ts
        .iter()
        .position(|(n, _)| n == "decoder/LogitsDense/bias")
        .unwrap();
    let shape = ts[i].1.shape().to_vec();
    out[i] = OwnedTensor::i32("decoder/LogitsDense/bias", &shape, &vec![0; shape[0]]);
    let err = build(&cfg, &out).err().unwrap();
    assert!(
        matches!(err, Error::UnsupportedDtype { ref name, .. } if name == "decoder/LogitsDense/bias"),
        "{err:?}"
    );
    assert!(err.to_string().contains("I32"), "{err}");
}

#[test]
fn inconsistent_config_is_rejected() {
    let mut cfg = tiny();
    cfg.enc_heads = 3; // 16 is not divisible by 3
    let err = Model::random_checkpoint(&cfg, 0).unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("enc_width 16 is not divisible by enc_heads 3")),
        "{err:?}"
    );
    // The same config inside a file is rejected when the file is opened.
    let bytes = serialize(&[], &[("cappa.config", cfg.to_json())]).unwrap();
    assert!(matches!(
        Checkpoint::from_bytes(&bytes),
        Err(Error::Config(_))
    ));
}

#[test]
fn file_without_config_says_so() {
    let bytes = serialize(&[], &[]).unwrap();
    let err = Checkpoint::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("cappa.config")),
        "{err:?}"
    );
}

#[test]
fn images_of_the_wrong_size_are_rejected() {
    let cfg = tiny();
    let model = Model::random(&cfg, 2, CpuBackend::new()).unwrap();
    for shape in [
        vec![1, cfg.image_size + 8, cfg.image_size, 3],
        vec![1, cfg.image_size, cfg.image_size, 4],
        vec![cfg.image_size, cfg.image_size, 3],
    ] {
        let err = model.encode(&HostTensor::zeros(&shape)).unwrap_err();
        assert!(
            matches!(err, Error::InputShape { ref found, .. } if *found == shape),
            "{err:?}"
        );
    }
}

#[test]
fn token_ids_at_or_above_vocab_are_rejected() {
    let cfg = tiny();
    let model = Model::random(&cfg, 3, CpuBackend::new()).unwrap();
    let enc = model
        .encode(&HostTensor::zeros(&[1, cfg.image_size, cfg.image_size, 3]))
        .unwrap();
    let v = cfg.vocab_size as u32;
    // The [MASK] id (= vocab_size) is not a valid caption token either.
    for bad in [v, v + 1, u32::MAX] {
        let tokens = Tokens::new(vec![3, bad, 1], 1, 3).unwrap();
        for mode in [Mode::Cap, Mode::Pa] {
            let err = model.logits(&enc, &tokens, mode).unwrap_err();
            assert!(
                matches!(err, Error::TokenOutOfRange { index: 1, limit, .. } if limit == v),
                "{err:?}"
            );
        }
        assert!(matches!(
            model.score(&enc, &tokens),
            Err(Error::TokenOutOfRange { .. })
        ));
    }
    assert!(matches!(
        Tokens::from_i32(&[1, -4], 1, 2),
        Err(Error::TokenOutOfRange { token: -4, .. })
    ));
    let too_long = Tokens::new(vec![3; cfg.max_len + 1], 1, cfg.max_len + 1).unwrap();
    assert!(matches!(
        model.logits(&enc, &too_long, Mode::Cap),
        Err(Error::InputShape { .. })
    ));
}

#[test]
fn cap_only_checkpoint_loads_and_refuses_pa() {
    let mut cfg = tiny();
    cfg.masked_pred_prob = 0.0;
    let ckpt = Model::random_checkpoint(&cfg, 4).unwrap();
    let file = ckpt.file().unwrap();
    assert_eq!(
        file.get("decoder/EmbedTargets/embedding").unwrap().shape,
        vec![cfg.vocab_size, cfg.dec_width]
    );
    let model = Model::new(&ckpt, CpuBackend::new()).unwrap();
    let enc = model
        .encode(&HostTensor::zeros(&[2, cfg.image_size, cfg.image_size, 3]))
        .unwrap();
    let tokens = Tokens::new(vec![3, 4, 1, 5, 1, 0], 2, 3).unwrap();
    assert!(model.logits(&enc, &tokens, Mode::Cap).is_ok());
    assert!(model.greedy(&enc, &Default::default()).is_ok());
    assert_eq!(
        model.logits(&enc, &tokens, Mode::Pa).unwrap_err(),
        Error::PaUnavailable
    );
    assert_eq!(
        model.parallel_decode(&enc).unwrap_err(),
        Error::PaUnavailable
    );
    assert!(Error::PaUnavailable.to_string().contains("Cap-only"));

    // A CapPa file with a Cap-only config (or the reverse) fails on the embedding's shape.
    let capa = Model::random_checkpoint(&tiny(), 4)
        .unwrap()
        .to_single_file(None)
        .unwrap();
    let parts = Checkpoint::from_parts(&capa, &cfg.to_json()).unwrap();
    let err = Model::new(&parts, CpuBackend::new()).err().unwrap();
    assert!(
        matches!(err, Error::ShapeMismatch { ref name, .. } if name == "decoder/EmbedTargets/embedding"),
        "{err:?}"
    );
}

#[test]
fn parse_never_panics_on_corrupted_bytes() {
    // Flip bytes all over a valid file: every outcome is Ok or a typed error.
    let bytes = good_bytes();
    let mut state = 12345u64;
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (state >> 33) as usize % b.len().min(400);
            b[i] = (state >> 17) as u8;
        }
        if let Ok(ckpt) = Checkpoint::from_bytes(&b) {
            let _ = Model::new(&ckpt, CpuBackend::new());
        }
        let _ = SafetensorsFile::parse(&b);
    }
}

// ---- Issue 18: sizes over the documented limits are typed errors before any allocation ----

use cappa::{Beam, Decode, DecodeOptions};
use cappa_tests::hostile;

/// The limit an error names (through any file wrapper), or a panic showing the error.
#[track_caller]
fn limit_of<T>(r: Result<T, Error>) -> &'static str {
    match r.err().as_ref().map(Error::root) {
        Some(Error::Limit { name, .. }) => name,
        other => panic!("expected Error::Limit, got {other:?}"),
    }
}

#[test]
fn a_sincos_model_claiming_4096_pixels_is_refused_at_load() {
    // No tensor pins image_size under sincos2d: the file loads on every tensor check, and the
    // first caption allocated (4096/8)⁴ attention scores (256 GiB) and aborted.
    for (key, value, limit) in [
        ("image_size", 4096, "MAX_IMAGE_TOKENS"),
        ("image_size", 1024, "MAX_IMAGE_TOKENS"),
        ("max_len", 65536, "MAX_CAPTION_TOKENS"),
    ] {
        let bytes = hostile::sincos_claiming(key, value);
        assert_eq!(
            limit_of(Model::from_bytes(&bytes, CpuBackend::new())),
            limit,
            "{key} {value}"
        );
        let msg = Model::from_bytes(&bytes, CpuBackend::new())
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains(&value.to_string()) && msg.contains(limit),
            "{msg}"
        );
    }
    // Within the limits the same file loads and captions.
    let bytes = hostile::sincos_claiming("image_size", 64);
    let model = Model::from_bytes(&bytes, CpuBackend::new()).unwrap();
    let encoded = model.encode(&HostTensor::zeros(&[1, 64, 64, 3])).unwrap();
    model
        .caption_tokens(&encoded, &Decode::Parallel, &DecodeOptions::default(), None)
        .unwrap();
}

#[test]
fn beam_widths_and_batches_over_the_limits_are_refused_before_decoding() {
    let model = Model::new(
        &Model::random_checkpoint(&tiny(), 3).unwrap(),
        CpuBackend::new(),
    )
    .unwrap();
    let encoded = model.encode(&HostTensor::zeros(&[1, 16, 16, 3])).unwrap();
    for width in [100_000, 1_000_000, usize::MAX / 2] {
        let beam = Decode::Beam(Beam {
            width,
            ..Beam::default()
        });
        let r = model.caption_tokens(&encoded, &beam, &DecodeOptions::default(), None);
        assert_eq!(limit_of(r), "MAX_BEAM_WIDTH", "width {width}");
    }
    let r = model.encode(&HostTensor::zeros(&[2000, 16, 16, 3]));
    assert_eq!(limit_of(r), "MAX_BATCH");
}

#[test]
fn requests_whose_tensors_would_be_too_large_are_refused() {
    // A config within every per-model limit, whose decoding of many images at once is not.
    let mut cfg = tiny();
    cfg.vocab_size = 1 << 20;
    cfg.max_len = 512;
    let err = cappa::limits::check_decode(&cfg, 1000, 512, 512).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                name: "MAX_TENSOR_ELEMENTS",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("1000 captions"), "{err}");
    let err = cappa::limits::check_decode(&Config::b16(), 1024 * 256, 64, 1).unwrap_err();
    assert!(matches!(err, Error::Limit { .. }), "{err}");
}

#[test]
fn non_finite_weights_are_refused() {
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let r = Model::from_bytes(&hostile::with_weight(value), CpuBackend::new());
        match r.err() {
            Some(Error::NonFiniteWeight { name, index }) => {
                assert_eq!((name.as_str(), index), ("decoder/LogitsDense/kernel", 3))
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    // Large but finite weights load.
    Model::from_bytes(&hostile::with_weight(3e38), CpuBackend::new()).unwrap();
}

#[test]
fn files_that_are_not_models_say_what_they_are() {
    let npz = include_bytes!("data/npz/loop.npz");
    let err = Checkpoint::from_bytes(npz).err().unwrap().to_string();
    assert!(
        err.contains(".npz") && err.contains("cappa convert"),
        "{err}"
    );
    assert!(!err.contains("header claims"), "{err}");
    let png = include_bytes!("../examples/images/large-red-cross.png");
    let err = Checkpoint::from_bytes(png).err().unwrap().to_string();
    assert!(err.contains("PNG image"), "{err}");
}

#[cfg(feature = "std")]
#[test]
fn model_files_are_read_only_when_regular_and_as_long_as_declared() {
    #[cfg(unix)]
    {
        let err = Checkpoint::load("/dev/zero").err().unwrap();
        assert!(matches!(err.root(), Error::Io(_)), "{err:?}");
        assert!(err.to_string().starts_with("/dev/zero: "), "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    let dir = std::env::temp_dir().join(format!("cappa-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.safetensors");
    let mut bytes = good_bytes();
    bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
    std::fs::write(&path, &bytes).unwrap();
    let err = Checkpoint::load(&path).err().unwrap();
    assert!(matches!(err.root(), Error::MalformedFile(_)), "{err:?}");
    assert!(err.to_string().contains("declares"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
