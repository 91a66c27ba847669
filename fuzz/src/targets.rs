//! The fuzz targets: each takes arbitrary bytes and drives one of cappa's input paths as a
//! user's program would. Any outcome is fine except a panic, an abort (an allocation over the
//! worker's limit), a hang, or a broken property checked here (a config that does not survive
//! its own JSON round trip, a tokenizer that ids out of its vocabulary).

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use cappa::image::{preprocess, PixelLayout};
use cappa::{
    Backend, Beam, Checkpoint, Classify, Config, CpuBackend, Decode, DecodeOptions, Gemm, Model,
    Sample, Tokenizer, Tokens,
};

/// A fuzz target.
pub struct Target {
    /// Its name (the corpus folder's).
    pub name: &'static str,
    /// What it drives.
    pub about: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
    /// Where mutations go most of the time: `(start, end)` of the interesting part of an input
    /// (a model file's header), or `None` for all of it.
    pub hot: fn(&[u8]) -> Option<(usize, usize)>,
    /// Tokens worth inserting.
    pub dictionary: &'static [&'static [u8]],
    /// Percent of mutations that replace a whole decimal number (a config value, a shape).
    pub numbers: u64,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "model",
        about: "safetensors model files: Checkpoint::from_bytes, Model::new, then encoding, \
                greedy, beam, sampled and parallel captions and scoring when it loads",
        run: model,
        hot: safetensors_header,
        dictionary: JSON_WORDS,
        numbers: 40,
    },
    Target {
        name: "npz",
        about: "big_vision .npz archives: the CLI's reader (cli/src/npz.rs, npy.rs)",
        run: npz,
        hot: whole,
        dictionary: &[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"PK\x05\x06",
            b"\x93NUMPY",
            b"<f4",
            b"<V2",
            b"'shape': (",
            b"True",
        ],
        numbers: 15,
    },
    Target {
        name: "sentencepiece",
        about: "SentencePiece .model protobufs: Tokenizer::sentencepiece, then encode/decode",
        run: sentencepiece,
        hot: whole,
        dictionary: &[
            b"\x0a",
            b"\x12",
            b"\x1a",
            b"\x22",
            b"\xff\xff\xff\xff\x0f",
            b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
        ],
        numbers: 0,
    },
    Target {
        name: "tokenizer",
        about: "arbitrary text through the SentencePiece and word tokenizers (encode, \
                encode_caption, decode)",
        run: tokenizer,
        hot: whole,
        dictionary: &[
            "\u{2581}".as_bytes(),
            "\u{fffd}".as_bytes(),
            "\u{0301}".as_bytes(),
            b"\xef\xbc\xa1",
            b"  ",
            b"\t\n",
            "\u{200b}".as_bytes(),
        ],
        numbers: 5,
    },
    Target {
        name: "config",
        about: "config and tokenizer-metadata JSON: Config::from_json (round trip checked), \
                Tokenizer::from_metadata",
        run: config,
        hot: whole,
        dictionary: JSON_WORDS,
        numbers: 40,
    },
    Target {
        name: "image",
        about: "image files (PNG, JPEG, WebP, PPM) through the CLI's decoder \
                (cli/src/decode.rs) and cappa::image::preprocess",
        run: image_file,
        hot: whole,
        dictionary: &[
            b"\x89PNG\r\n\x1a\n",
            b"IHDR",
            b"IDAT",
            b"IEND",
            b"\xff\xd8\xff",
            b"\xff\xc0",
            b"RIFF",
            b"WEBPVP8",
            b"P6\n",
        ],
        numbers: 5,
    },
];

const JSON_WORDS: &[&[u8]] = &[
    b"\"image_size\":",
    b"\"patch_size\":",
    b"\"max_len\":",
    b"\"vocab_size\":",
    b"\"enc_width\":",
    b"\"enc_heads\":",
    b"\"dec_heads\":",
    b"\"posemb_type\":\"sincos2d\"",
    b"\"masked_pred_prob\":",
    b"\"cappa.config\"",
    b"\"cappa.tokenizer\"",
    b"\"data_offsets\":",
    b"\"dtype\":\"F16\"",
    b"\"shape\":[",
    b"null",
    b"true",
    b"-1",
    b"1e309",
    b"4096",
    b"65536",
    b"\\u0000",
    b"\\\"",
];

fn whole(_: &[u8]) -> Option<(usize, usize)> {
    None
}

/// The 8-byte length and the JSON header of a safetensors file.
fn safetensors_header(b: &[u8]) -> Option<(usize, usize)> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
    Some((0, n.saturating_add(8).min(b.len())))
}

/// A model that loaded: run what a program would, on small requests.
fn exercise(model: &Model) {
    let c = model.config().clone();
    if c.in_channels != 3 {
        return;
    }
    let image = model.preprocess_rgb8(&[90u8; 5 * 7 * 3], 5, 7);
    let images = match image {
        Ok(i) => i,
        Err(_) => return,
    };
    let Ok(batch) = model.batch(&[images.clone(), images]) else {
        return;
    };
    let Ok(encoded) = model.encode(&batch) else {
        return;
    };
    let opts = DecodeOptions {
        max_len: Some(c.max_len.min(4)),
    };
    for decode in [
        Decode::Greedy,
        Decode::Beam(Beam {
            width: 2,
            ..Beam::default()
        }),
        Decode::Sample(Sample::default()),
        Decode::Parallel,
    ] {
        let _ = model.caption_tokens(&encoded, &decode, &opts, None);
    }
    let len = c.max_len.min(3);
    let ids: Vec<u32> = (0..2 * len).map(|i| (i % c.vocab_size) as u32).collect();
    if let Ok(cands) = Tokens::new(ids, 2, len) {
        let _ = model.classify_tokens(&encoded, &cands, &Classify::default());
    }
    let _ = model
        .gap(&encoded)
        .and_then(|g| model.backend().download(&g));
}

fn model(data: &[u8]) {
    let Ok(ckpt) = Checkpoint::from_bytes(data) else {
        return;
    };
    let _ = ckpt.to_single_file(None);
    if let Ok(model) = Model::new(&ckpt, CpuBackend::with_gemm(Gemm::Blocked)) {
        exercise(&model);
    }
}

fn npz(data: &[u8]) {
    let _ = crate::npz::read_archive(Cursor::new(data), Path::new("fuzz.npz"));
}

fn sentencepiece(data: &[u8]) {
    for lowercase in [false, true] {
        let Ok(tok) = Tokenizer::sentencepiece(data, lowercase) else {
            return;
        };
        check_tokenizer(&tok, "A photo of a Cat, naïve café — ＡＢＣ 123 \u{1F600}");
    }
}

/// Encodes and decodes `text`, checking that every id is in the vocabulary.
fn check_tokenizer(tok: &Tokenizer, text: &str) {
    let n = tok.vocab_size() as u32;
    let ids = tok.encode(text);
    assert!(
        ids.iter().all(|&i| i < n),
        "id out of the vocabulary of {n}: {ids:?}"
    );
    let _ = tok.decode(&ids);
    let caption = tok.encode_caption(text, 16, 1, 0);
    assert_eq!(caption.len(), 16);
    let all: Vec<u32> = (0..n.min(300)).chain([n, n + 1, u32::MAX]).collect();
    let _ = tok.decode(&all);
}

/// The committed SentencePiece models and a word list, loaded once.
fn tokenizers() -> &'static [Tokenizer] {
    static TOKS: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    TOKS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/spm");
        let mut toks: Vec<Tokenizer> = ["unk.model", "edited.model", "bytes.model"]
            .iter()
            .map(|f| {
                let bytes = std::fs::read(root.join(f)).expect("tests/data/spm models");
                Tokenizer::sentencepiece(&bytes, true).expect("a committed model loads")
            })
            .collect();
        let config = Config::tiny_for_tests();
        let words = [
            "<pad>", "</s>", "<unk>", "a", "red", "blue", "circle", "square", "on", "the", "left",
            "right",
        ];
        toks.push(
            Tokenizer::words(
                words.iter().map(|w| w.to_string()).collect(),
                cappa::tokenizer::SpecialIds::from_config(&config),
                true,
            )
            .unwrap(),
        );
        toks
    })
}

fn tokenizer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for tok in tokenizers() {
        check_tokenizer(tok, &text);
        let ids: Vec<u32> = data
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .collect();
        let _ = tok.decode(&ids);
    }
}

fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_json(text) {
        let back = Config::from_json(&c.to_json()).expect("a valid config survives its JSON");
        assert_eq!(back, c, "the JSON round trip changed the config");
        let _ = (c.num_patches(), c.patch_dim(), c.embed_rows());
        let _ = cappa::limits::check_images(&c, 3);
        let _ = cappa::limits::check_decode(&c, 12, c.max_len, 1);
    }
    if let Ok(tok) = Tokenizer::from_metadata(text) {
        if tok.vocab_size() > 0 {
            check_tokenizer(&tok, "a red circle");
        }
        let _ = Tokenizer::from_metadata(&tok.to_metadata()).expect("metadata survives");
    }
}

fn image_file(data: &[u8]) {
    let Ok((pixels, w, h)) = crate::decode::decode_image(data) else {
        return;
    };
    for size in [1, 16, 48] {
        let t = preprocess(&pixels, PixelLayout::rgb(w, h), size).expect("decoded pixels fit");
        assert!(
            t.data().iter().all(|v| (-1.0..=1.0).contains(v)),
            "values out of [-1, 1]"
        );
    }
    if w * h > 1 << 20 {
        return;
    }
    // The same pixels as padded RGBA rows.
    let stride = w * 4 + 3;
    let mut rgba = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            rgba[y * stride + x * 4..][..3].copy_from_slice(&pixels[(y * w + x) * 3..][..3]);
        }
    }
    let layout = PixelLayout {
        stride,
        ..PixelLayout::rgba(w, h)
    };
    let a = preprocess(&rgba, layout, 16).unwrap();
    assert_eq!(a, preprocess(&pixels, PixelLayout::rgb(w, h), 16).unwrap());
}
