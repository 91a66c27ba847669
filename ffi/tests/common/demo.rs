//! Small models for the bad-argument tests: the reference fixture `cappa-tiny` (random weights,
//! 32-pixel images, no tokenizer) and a 50-word vocabulary to attach to models made from it.

use std::path::{Path, PathBuf};

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

/// The reference fixture `cappa-tiny`.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cappa-tiny")
}
