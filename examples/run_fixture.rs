//! Runs a CapPa model on the inputs of a reference fixture and prints what it decodes with each
//! strategy (greedy, streamed; beam search; sampling; parallel) and how it classifies the
//! zero-shot candidates.
//!
//! ```text
//! cargo run --release -p cappa --example run_fixture -- tests/fixtures/cappa-tiny
//! ```
//! The folder must hold `params.safetensors`, `config.json` and `inputs.safetensors` (the
//! reference fixtures' layout); a single model file can be given with a second argument for
//! the inputs.

use cappa::safetensors_io::SafetensorsFile;
use cappa::{
    Beam, Checkpoint, Classify, CpuBackend, Decode, DecodeOptions, Model, OnToken, Sample,
    TokenEvent, Tokens,
};

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

    let opts = DecodeOptions::default();
    let strategies = [
        ("greedy", Decode::Greedy),
        ("beam", Decode::Beam(Beam::default())),
        ("sampled", Decode::Sample(Sample::default())),
        ("parallel", Decode::Parallel),
    ];
    for (name, how) in &strategies {
        // Stream the greedy captions token by token; the others print when done.
        let mut stream = |e: TokenEvent<'_>| {
            println!("  image {} +{}", e.image, e.token);
            true
        };
        let on_token: Option<OnToken<'_>> = match how {
            Decode::Greedy => Some(&mut stream),
            _ => None,
        };
        let out = model.caption_tokens(&encoded, how, &opts, on_token)?;
        for (i, captions) in out.iter().enumerate() {
            for c in captions {
                println!(
                    "image {i}: {name:8} {:?} (log-prob {:.3}, score {:.3})",
                    c.tokens, c.log_prob, c.score
                );
            }
        }
    }

    if inputs.get("zeroshot_candidates").is_some() {
        let (shape, ids) = inputs.i32("zeroshot_candidates")?;
        let candidates = Tokens::from_i32(&ids, shape[0], shape[1])?;
        let result = model.classify_tokens(&encoded, &candidates, &Classify::default())?;
        let k = candidates.batch();
        for (i, best) in result.predictions().into_iter().enumerate() {
            let p = &result.probabilities.data()[i * k..(i + 1) * k];
            println!("image {i}: candidate {best} wins, probabilities {p:.3?}");
        }
    }
    Ok(())
}
