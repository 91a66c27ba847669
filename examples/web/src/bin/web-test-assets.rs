//! Writes what the browser test serves beside the page, until the trained default model exists:
//! a model file made from a reference fixture plus a word vocabulary (so that it writes text),
//! a few PNG images, and the page's `index.json` naming the images and default labels.
//!
//! ```sh
//! cargo run -p cappa-web --bin web-test-assets -- tests/fixtures/cappa-tiny target/web-test/assets
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use cappa::tokenizer::SpecialIds;
use cappa::{Checkpoint, Tokenizer};

/// The labels the test classifies against (words of the vocabulary below).
const LABELS: [&str; 3] = ["w3 w4", "w10", "w7 w8 w9"];

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
        eprintln!("usage: web-test-assets FIXTURE_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match run(fixture, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web-test-assets: {e}");
            ExitCode::FAILURE
        }
    }
}
