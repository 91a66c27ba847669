//! `cappa-fuzz seeds`: writes the seed corpora (`fuzz/corpus/<target>/`) from the repository's
//! own files and from small generated ones. The corpora are committed; this is how they were
//! made, and how to make them again after a format changes.

use std::path::Path;

use cappa::checkpoint::{CONFIG_KEY, TOKENIZER_KEY};
use cappa::safetensors_io::{serialize, OwnedTensor};
use cappa::tokenizer::SpecialIds;
use cappa::{Config, DType, Model, PosEmb, Tokenizer};

/// The smallest model that has every part: 8-pixel images, patch 4, width 8, one block each.
fn small_config() -> Config {
    Config {
        name: "fuzz".into(),
        image_size: 8,
        patch_size: 4,
        enc_width: 8,
        enc_depth: 1,
        enc_heads: 2,
        enc_mlp: 8,
        dec_width: 8,
        dec_depth: 1,
        dec_heads: 2,
        dec_mlp: 8,
        vocab_size: 7,
        max_len: 4,
        ..Config::tiny_for_tests()
    }
}

fn words(config: &Config) -> Tokenizer {
    let words = ["<pad>", "</s>", "<unk>", "a", "red", "circle", "left"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    Tokenizer::words(words, SpecialIds::from_config(config), true).unwrap()
}

/// A single-file model of `config` (random weights stored as `dtype`, a word tokenizer).
fn model_file(config: &Config, dtype: DType) -> Vec<u8> {
    let ckpt = Model::random_checkpoint(config, 5).unwrap();
    let file = ckpt.file().unwrap();
    let tensors: Vec<OwnedTensor> = file
        .entries()
        .map(|(n, e)| OwnedTensor::float(n, &e.shape, &e.to_f32(n).unwrap(), dtype))
        .collect();
    serialize(
        &tensors,
        &[
            (CONFIG_KEY, config.to_json()),
            (TOKENIZER_KEY, words(config).to_metadata()),
        ],
    )
    .unwrap()
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Writes every corpus under `root`.
pub fn write_all(root: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read(repo.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // Model files: learned and sin-cos position tables, a Cap-only model in bf16.
    let learned = small_config();
    let sincos = Config {
        posemb_type: PosEmb::Sincos2d,
        ..small_config()
    };
    let cap_only = Config {
        masked_pred_prob: 0.0,
        decoder_bias: true,
        ..small_config()
    };
    write(
        root,
        "model",
        "learned.safetensors",
        &model_file(&learned, DType::F32),
    );
    write(
        root,
        "model",
        "sincos.safetensors",
        &model_file(&sincos, DType::F32),
    );
    write(
        root,
        "model",
        "cap-only-bf16.safetensors",
        &model_file(&cap_only, DType::BF16),
    );

    // .npz archives as numpy wrote them (tests/data/npz/make_npz.py).
    for f in [
        "cap_only_f16_f64.npz",
        "scan_compressed_bf16.npz",
        "loop.npz",
    ] {
        write(root, "npz", f, &read(&format!("tests/data/npz/{f}")));
    }

    // SentencePiece models recorded from the library (tests/data/spm/make_fixture.py).
    for f in ["unk.model", "edited.model"] {
        write(
            root,
            "sentencepiece",
            f,
            &read(&format!("tests/data/spm/{f}")),
        );
    }

    // Text: every 40th sentence of the tokenizer fixtures (varied scripts, spaces, emoji).
    let mut n = 0;
    for f in ["unk.jsonl", "bytes.jsonl"] {
        let text = String::from_utf8(read(&format!("tests/data/spm/{f}"))).unwrap();
        for line in text.lines().step_by(40) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let s = v["text"].as_str().unwrap_or_default();
            if !s.is_empty() {
                write(root, "tokenizer", &format!("text-{n:03}"), s.as_bytes());
                n += 1;
            }
        }
    }

    // Config and tokenizer metadata JSON.
    write(
        root,
        "config",
        "fixture-config.json",
        &read("tests/fixtures/cappa-tiny/config.json"),
    );
    write(root, "config", "small.json", learned.to_json().as_bytes());
    write(root, "config", "sincos.json", sincos.to_json().as_bytes());
    write(
        root,
        "config",
        "b16.json",
        Config::b16().to_json().as_bytes(),
    );
    write(
        root,
        "config",
        "words-tokenizer.json",
        words(&learned).to_metadata().as_bytes(),
    );
    let sp = Tokenizer::sentencepiece(&read("tests/data/spm/edited.model"), true).unwrap();
    write(
        root,
        "config",
        "sentencepiece-tokenizer.json",
        sp.to_metadata().as_bytes(),
    );

    // Images in every format the CLI reads, small.
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    let rgb = RgbImage::from_fn(24, 20, |x, y| Rgb([(x * 10) as u8, (y * 12) as u8, 77]));
    let rgba = RgbaImage::from_fn(9, 13, |x, y| {
        Rgba([(x * 25) as u8, 30, (y * 19) as u8, 200])
    });
    let encode = |img: DynamicImage, format: ImageFormat| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    };
    let images = [
        (
            "rgb.png",
            DynamicImage::ImageRgb8(rgb.clone()),
            ImageFormat::Png,
        ),
        (
            "rgba.png",
            DynamicImage::ImageRgba8(rgba.clone()),
            ImageFormat::Png,
        ),
        (
            "gray16.png",
            DynamicImage::ImageLuma16(DynamicImage::ImageRgb8(rgb.clone()).into_luma16()),
            ImageFormat::Png,
        ),
        (
            "rgb.jpg",
            DynamicImage::ImageRgb8(rgb.clone()),
            ImageFormat::Jpeg,
        ),
        (
            "rgba.webp",
            DynamicImage::ImageRgba8(rgba),
            ImageFormat::WebP,
        ),
        ("rgb.ppm", DynamicImage::ImageRgb8(rgb), ImageFormat::Pnm),
    ];
    for (name, img, format) in images {
        write(root, "image", name, &encode(img, format));
    }
}
