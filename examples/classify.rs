//! Zero-shot classification: which of the given captions does the model find most likely?
//!
//! ```text
//! cargo run --release -p cappa --example classify -- IMAGE "a red circle" "a blue square" ...
//! ```

use cappa::{Device, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: classify IMAGE LABEL...")?;
    let labels: Vec<String> = args.collect();
    let model_path = std::env::var("CAPPA_MODEL")
        .unwrap_or_else(|_| "examples/models/shapes.safetensors".into());
    let model = Model::from_bytes(&std::fs::read(&model_path)?, Device::best()?)?;

    let rgb = image::open(&path)?.to_rgb8();
    let img = model.preprocess_rgb8(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)?;

    // Each label is scored as a caption of the image (sum of its tokens' log-probabilities).
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let probs = model.classify(&img, &labels)?;
    let mut ranked: Vec<(f32, &str)> = probs.into_iter().zip(labels).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (p, label) in ranked {
        println!("{p:.3}  {label}");
    }
    Ok(())
}
