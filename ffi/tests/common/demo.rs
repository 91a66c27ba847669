//! The demonstration model: the reference fixture `cappa-tiny` (random weights, 32-pixel
//! images) with a 50-word vocabulary attached, as one model file. Its captions are words of the
//! list in no meaningful order, but they are deterministic, which is what the tests and the C
//! example need until a trained default model exists.

use std::path::{Path, PathBuf};

use cappa_rt::tokenizer::SpecialIds;
use cappa_rt::{Checkpoint, Tokenizer};

/// The vocabulary: ids 0 PAD, 1 EOS, 2 UNK, then words about shapes scenes.
pub const WORDS: [&str; 50] = [
    "<pad>",
    "</s>",
    "<unk>",
    "a",
    "an",
    "the",
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "white",
    "black",
    "gray",
    "small",
    "large",
    "big",
    "tiny",
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "shape",
    "shapes",
    "on",
    "in",
    "of",
    "and",
    "with",
    "next",
    "to",
    "left",
    "right",
    "top",
    "bottom",
    "above",
    "below",
    "center",
    "corner",
    "one",
    "two",
    "three",
    "background",
    "picture",
    "photo",
    "dark",
    "bright",
];

/// The fixture folder the demonstration model is made from.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cappa-tiny")
}

/// The demonstration model as the bytes of a single `.safetensors` file.
pub fn demo_model_bytes() -> Vec<u8> {
    let mut checkpoint = Checkpoint::load(fixture_dir()).expect("the cappa-tiny fixture loads");
    let words = WORDS.iter().map(|w| w.to_string()).collect();
    let ids = SpecialIds::from_config(checkpoint.config());
    let tokenizer = Tokenizer::words(words, ids, true).expect("the word list is valid");
    checkpoint.set_tokenizer(Some(tokenizer.to_metadata()));
    checkpoint
        .to_single_file(None)
        .expect("the model serialises")
}
