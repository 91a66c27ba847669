//! Writes what the browser test serves beside the page, until the trained default model exists:
//! a model file made from a reference fixture plus a word vocabulary (so that it writes text),
//! a few PNG images, and the page's `index.json` naming the images and default labels.
//!
//! ```sh
//! cargo run -p cappa-web --bin web-test-assets -- tests/fixtures/cappa-tiny target/web-test/assets
//! ```
//!
//! With `--shapes-size` instead of a fixture it writes a model of the default model's size
//! (`examples/models/shapes.toml`: 64×64 images, patch 8, width 128, 6 + 2 blocks, sin-cos
//! position embeddings, the shapes-world vocabulary) with random weights, and shapes scenes as images: the same work per
//! caption as the trained model, for measuring the page's speed before that model exists.

use std::path::PathBuf;
use std::process::ExitCode;

use cappa::tokenizer::SpecialIds;
use cappa::{Checkpoint, Config, Model, PosEmb, Tokenizer};

/// The labels the test classifies against (words of the vocabulary below).
const LABELS: [&str; 3] = ["w3 w4", "w10", "w7 w8 w9"];

/// The shapes world's words (PAD, EOS, UNK first), as the trainer's tokenizer has them.
const SHAPES_WORDS: [&str; 25] = [
    "<pad>", "</s>", "<unk>", "a", "to", "the", "of", "left", "right", "above", "below", "small",
    "large", "red", "green", "blue", "yellow", "purple", "orange", "circle", "square", "triangle",
    "diamond", "cross", "hexagon",
];

/// Whether a point (in [-1, 1]², the image's centre at 0) is inside a shape.
type Inside = fn(f32, f32) -> bool;

/// A random model of the default model's size, shapes scenes, and labels from the shapes world.
fn shapes_size(out: &PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cfg = Config {
        name: "shapes-size (random weights)".to_string(),
        image_size: 64,
        patch_size: 8,
        enc_width: 128,
        enc_depth: 6,
        enc_heads: 4,
        enc_mlp: 256,
        dec_width: 128,
        dec_depth: 2,
        dec_heads: 4,
        dec_mlp: 512,
        vocab_size: SHAPES_WORDS.len(),
        max_len: 16,
        posemb_type: PosEmb::Sincos2d,
        ..Config::tiny_for_tests()
    };
    let mut ckpt = Model::random_checkpoint(&cfg, 0).map_err(|e| e.to_string())?;
    let words = SHAPES_WORDS.iter().map(|w| w.to_string()).collect();
    let tok = Tokenizer::words(words, SpecialIds::from_config(ckpt.config()), true)
        .map_err(|e| e.to_string())?;
    ckpt.set_tokenizer(Some(tok.to_metadata()));
    ckpt.save(out.join("model.safetensors"), None)
        .map_err(|e| e.to_string())?;
    // A shape of a colour on a light background, 96×96 (resized to 64 by the model).
    let scenes: [(&str, [u8; 3], Inside); 3] = [
        ("red-circle.png", [220, 40, 40], |x, y| x * x + y * y < 0.16),
        ("blue-square.png", [40, 80, 220], |x, y| {
            x.abs() < 0.4 && y.abs() < 0.4
        }),
        ("green-diamond.png", [40, 170, 60], |x, y| {
            x.abs() + y.abs() < 0.5
        }),
    ];
    let mut names = Vec::new();
    for (name, rgb, inside) in scenes {
        let img = image::RgbImage::from_fn(96, 96, |x, y| {
            let (u, v) = (x as f32 / 48.0 - 1.0, y as f32 / 48.0 - 1.0);
            image::Rgb(if inside(u, v) { rgb } else { [245, 245, 240] })
        });
        img.save(out.join(name)).map_err(|e| e.to_string())?;
        names.push(name);
    }
    let labels = [
        "a large red circle",
        "a small blue square",
        "a large green diamond",
    ];
    let index = serde_json::json!({ "images": names, "labels": labels });
    std::fs::write(out.join("index.json"), format!("{index}\n")).map_err(|e| e.to_string())?;
    Ok(())
}

fn run(fixture: &PathBuf, out: &PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let fixture_ckpt = Checkpoint::load(fixture).map_err(|e| e.to_string())?;
    let cfg = fixture_ckpt.config().clone();
    let mut words = vec!["<pad>".to_string(), "</s>".to_string(), "<unk>".to_string()];
    words.extend((3..cfg.vocab_size).map(|i| format!("w{i}")));
    let tok =
        Tokenizer::words(words, SpecialIds::from_config(&cfg), true).map_err(|e| e.to_string())?;
    let mut ckpt = fixture_ckpt.clone();
    ckpt.set_tokenizer(Some(tok.to_metadata()));
    ckpt.save(out.join("model.safetensors"), None)
        .map_err(|e| e.to_string())?;

    // Odd sizes, so the page's resizing is exercised too.
    let mut names = Vec::new();
    for (i, (w, h)) in [(40u32, 30u32), (17, 23), (64, 64)].into_iter().enumerate() {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 6) as u8,
                (y * 9) as u8,
                ((i as u32 * 120 + x * y) % 256) as u8,
            ])
        });
        let name = format!("img{i}.png");
        img.save(out.join(&name)).map_err(|e| e.to_string())?;
        names.push(name);
    }
    let index = serde_json::json!({ "images": names, "labels": LABELS });
    std::fs::write(out.join("index.json"), format!("{index}\n")).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [fixture, out] = args.as_slice() else {
        eprintln!("usage: web-test-assets FIXTURE_DIR|--shapes-size OUT_DIR");
        return ExitCode::from(2);
    };
    let done = if fixture.as_os_str() == "--shapes-size" {
        shapes_size(out)
    } else {
        run(fixture, out)
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web-test-assets: {e}");
            ExitCode::FAILURE
        }
    }
}
