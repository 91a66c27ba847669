//! Embed every image of a folder with the encoder and list each one's nearest neighbour
//! (cosine similarity of the pooled features) — the encoder as a visual representation.
//!
//! ```text
//! cargo run --release -p cappa --example neighbours -- examples/images
//! ```

use cappa::{Device, Model, Pool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: neighbours FOLDER")?;
    let model_path = std::env::var("CAPPA_MODEL")
        .unwrap_or_else(|_| "examples/models/shapes.safetensors".into());
    let model = Model::from_bytes(&std::fs::read(&model_path)?, Device::best()?)?;

    let mut names = Vec::new();
    let mut images = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        // Skip what is not an image.
        let Ok(img) = image::open(&path) else {
            continue;
        };
        let rgb = img.to_rgb8();
        images.push(model.preprocess_rgb8(
            rgb.as_raw(),
            rgb.width() as usize,
            rgb.height() as usize,
        )?);
        names.push(path.display().to_string());
    }
    if images.len() < 2 {
        return Err("need at least two images".into());
    }

    let features = model.embed(&images, Pool::Gap)?; // [N, width]
    let d = features.shape()[1];
    let unit: Vec<Vec<f32>> = features
        .data()
        .chunks(d)
        .map(|v| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / n).collect()
        })
        .collect();
    for (i, a) in unit.iter().enumerate() {
        let (j, sim) = unit
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, b)| (j, a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .expect("two images or more");
        println!("{} → {} ({sim:.3})", names[i], names[j]);
    }
    Ok(())
}
