//! Tokenizers: SentencePiece id for id against the reference library (fixtures made by
//! `data/spm/make_fixture.py` with `sentencepiece` 0.2.x; no Python needed here), the word
//! vocabulary, captions, metadata, and malformed input.

use std::path::{Path, PathBuf};

use cappa::tokenizer::{pad_caption, PieceType, SentencePiece, SpecialIds, Vocab};
use cappa::{Checkpoint, Config, Error, Tokenizer};
use serde_json::Value;

fn spm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/spm")
}

fn model_bytes(name: &str) -> Vec<u8> {
    let path = spm_dir().join(format!("{name}.model"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model(name: &str) -> SentencePiece {
    SentencePiece::from_bytes(&model_bytes(name)).unwrap()
}

/// One line of a `<name>.jsonl` fixture.
struct Case {
    line: usize,
    /// `None` for decode-only cases.
    text: Option<String>,
    ids: Vec<u32>,
    decoded: String,
}

fn cases(name: &str) -> Vec<Case> {
    let path = spm_dir().join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            Case {
                line: i + 1,
                text: v.get("text").map(|t| t.as_str().expect("text").to_string()),
                ids: v["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|x| x.as_u64().expect("id") as u32)
                    .collect(),
                decoded: v["decoded"].as_str().expect("decoded").to_string(),
            }
        })
        .collect()
}

fn pieces(sp: &SentencePiece, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| {
            sp.piece(id)
                .map_or_else(|| format!("#{id}?"), |p| p.piece.clone())
        })
        .collect()
}

/// Every case of `<name>.jsonl` encodes and decodes as the library did; the first mismatch is
/// reported with the pieces on both sides. Returns (encode cases, decode-only cases).
fn check_against_reference(name: &str) -> (usize, usize) {
    let sp = model(name);
    let cases = cases(name);
    let (mut encoded, mut decoded_only) = (0, 0);
    let mut failures = Vec::new();
    for c in &cases {
        if let Some(text) = &c.text {
            encoded += 1;
            let got = sp.encode(text);
            if got != c.ids {
                failures.push(format!(
                    "{name}.jsonl line {}: encode({text:?})\n  normalized {:?}\n  want {:?} {:?}\n  got  {:?} {:?}",
                    c.line,
                    sp.normalize(text),
                    c.ids,
                    pieces(&sp, &c.ids),
                    got,
                    pieces(&sp, &got)
                ));
            }
        } else {
            decoded_only += 1;
        }
        let got = sp.decode(&c.ids);
        if got != c.decoded {
            failures.push(format!(
                "{name}.jsonl line {}: decode({:?} = {:?})\n  want {:?}\n  got  {:?}",
                c.line,
                c.ids,
                pieces(&sp, &c.ids),
                c.decoded,
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with the reference; first: {}",
        failures.len(),
        cases.len(),
        failures[0]
    );
    (encoded, decoded_only)
}

#[test]
fn byte_fallback_model_matches_the_reference_library() {
    let (encoded, decoded) = check_against_reference("bytes");
    assert!(encoded >= 1000 && decoded >= 100, "{encoded} {decoded}");
}

#[test]
fn unk_model_matches_the_reference_library() {
    let (encoded, decoded) = check_against_reference("unk");
    assert!(encoded >= 1000 && decoded >= 100, "{encoded} {decoded}");
}

#[test]
fn edited_model_matches_the_reference_library() {
    let (encoded, decoded) = check_against_reference("edited");
    assert!(encoded >= 200 && decoded >= 50, "{encoded} {decoded}");
}
