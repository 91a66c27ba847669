//! Caption an image with the default model (or `CAPPA_MODEL`), in every decoding mode.
//!
//! ```text
//! cargo run --release -p cappa --example caption -- examples/images/<sample>.png
//! ```

use cappa::{Beam, Decode, Device, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: caption IMAGE")?;
    let model_path = std::env::var("CAPPA_MODEL")
        .unwrap_or_else(|_| "examples/models/shapes.safetensors".into());

    // The device: a hardware GPU if there is one, else the CPU (CAPPA_DEVICE=cpu|gpu overrides).
    let model = Model::from_bytes(&std::fs::read(&model_path)?, Device::best()?)?;

    // Any size, any of PNG/JPEG/WebP: resized and scaled to [-1, 1] as the reference does.
    let rgb = image::open(&path)?.to_rgb8();
    let img = model.preprocess_rgb8(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)?;

    for (name, how) in [
        ("parallel", Decode::Parallel),
        ("greedy", Decode::Greedy),
        ("beam", Decode::Beam(Beam::default())),
    ] {
        let caption = &model.caption(std::slice::from_ref(&img), &how)?[0];
        println!("{name:>8}: {caption}");
    }
    Ok(())
}
