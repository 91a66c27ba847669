//! Runs a CapPa model on the inputs of a reference fixture and prints what it decodes.
//!
//! ```text
//! cargo run --release -p cappa --example run_fixture -- tests/fixtures/cappa-tiny
//! ```
//! The folder must hold `params.safetensors`, `config.json` and `inputs.safetensors` (the
//! reference fixtures' layout); a single model file can be given with a second argument for
//! the inputs.

use cappa::safetensors_io::SafetensorsFile;
use cappa::{Checkpoint, CpuBackend, Greedy, Model, Tokens};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = args
        .next()
        .unwrap_or_else(|| "tests/fixtures/cappa-tiny".into());
    let inputs_path = args
        .next()
        .unwrap_or_else(|| format!("{model_path}/inputs.safetensors"));

    let model = Model::new(&Checkpoint::load(&model_path)?, CpuBackend::new())?;
    let cfg = model.config();
    println!(
        "{}: image {}px, vocab {}, max_len {}",
        cfg.name, cfg.image_size, cfg.vocab_size, cfg.max_len
    );

    let bytes = std::fs::read(&inputs_path)?;
    let inputs = SafetensorsFile::parse(&bytes)?;
    let encoded = model.encode(&inputs.f32("images")?)?;

    let greedy = model.greedy(&encoded, &Greedy::default())?;
    let parallel = model.parallel_decode(&encoded)?;
    for (i, (g, p)) in greedy.tokens.iter().zip(&parallel).enumerate() {
        println!("image {i}: greedy {g:?}\n         parallel {p:?}");
    }

    if inputs.get("zeroshot_candidates").is_some() {
        let (shape, ids) = inputs.i32("zeroshot_candidates")?;
        let candidates = Tokens::from_i32(&ids, shape[0], shape[1])?;
        let scores = model.score(&encoded, &candidates)?;
        let probs = Model::<CpuBackend>::probabilities(&scores);
        for (i, p) in probs.chunks(candidates.batch()).enumerate() {
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(k, _)| k);
            println!("image {i}: candidate {best} wins, probabilities {p:.3?}");
        }
    }
    Ok(())
}
