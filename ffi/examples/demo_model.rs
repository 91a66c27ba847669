//! Writes the demonstration model used by the C example and the tests: the reference fixture
//! `cappa-tiny` (random weights) with a 50-word vocabulary, as one `.safetensors` file.
//!
//! ```text
//! cargo run -p cappa-ffi --example demo_model -- /tmp/cappa-demo.safetensors
//! ```
//! Its captions are deterministic but meaningless; any model file with a tokenizer can take
//! its place.

#[path = "../tests/common/demo.rs"]
mod demo;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: demo_model OUTPUT.safetensors")?;
    std::fs::write(&path, demo::demo_model_bytes())?;
    println!("wrote {path}");
    Ok(())
}
