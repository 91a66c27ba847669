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
