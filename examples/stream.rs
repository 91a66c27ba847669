//! Stream a caption token by token as the decoder produces it.
//!
//! ```text
//! cargo run --release -p cappa --example stream -- IMAGE
//! ```

use std::io::Write;

use cappa::{Decode, DecodeOptions, Device, Model, TokenEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: stream IMAGE")?;
    let model_path = std::env::var("CAPPA_MODEL")
        .unwrap_or_else(|_| "examples/models/shapes.safetensors".into());
    let model = Model::from_bytes(&std::fs::read(&model_path)?, Device::best()?)?;
    let tokenizer = model.tokenizer().ok_or("the model has no tokenizer")?;

    let rgb = image::open(&path)?.to_rgb8();
    let img = model.preprocess_rgb8(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)?;

    // Called once per new token; returning false would stop this image's caption.
    let mut shown = String::new();
    let mut on_token = |e: TokenEvent<'_>| {
        let text = tokenizer.decode(e.tokens);
        // Decoding more tokens extends the text; print what is new.
        print!("{}", text.get(shown.len()..).unwrap_or(""));
        std::io::stdout().flush().ok();
        shown = text;
        true
    };
    let captions = model.caption_with(
        &[img],
        &Decode::Greedy,
        &DecodeOptions::default(),
        Some(&mut on_token),
    )?;
    println!("\n(log-probability {:.3})", captions[0][0].log_prob);
    Ok(())
}
