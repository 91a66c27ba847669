//! A word-level vocabulary for small models: id = position in a word list.
//!
//! Splitting rule: whitespace (`char::is_whitespace`) separates words; every ASCII punctuation
//! character (`char::is_ascii_punctuation`) is a word of its own; all other characters
//! (letters, digits, any non-ASCII character) join into words. So `"a red-cube."` splits into
//! `a`, `red`, `-`, `cube`, `.`. A word missing from the vocabulary becomes the UNK id; a
//! punctuation character missing from it is dropped (small vocabularies usually leave
//! punctuation out, and a caption is better without it than with an UNK for every comma).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::Config;
use crate::error::{Error, Result};

/// The special ids a word vocabulary needs, taken from the model config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// Padding: skipped when decoding.
    pub pad: u32,
    /// End of sequence: skipped when decoding.
    pub eos: u32,
    /// What an unknown word encodes to.
    pub unk: u32,
}

impl SpecialIds {
    /// The config's `pad_id`, `eos_id` and `unk_id`.
    pub fn from_config(config: &Config) -> Self {
        SpecialIds {
            pad: config.pad_id,
            eos: config.eos_id,
            unk: config.unk_id,
        }
    }
}

/// A list of words; word `i` has id `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVocab {
    words: Vec<String>,
    index: BTreeMap<String, u32>,
    ids: SpecialIds,
}

impl WordVocab {
    /// Checks the list: no empty word, no whitespace inside a word, no duplicate, and the
    /// special ids inside the list.
    pub fn new(words: Vec<String>, ids: SpecialIds) -> Result<Self> {
        let bad = |m: String| Error::Tokenizer(format!("word vocabulary: {m}"));
        if words.len() > u32::MAX as usize {
            return Err(bad(format!("{} words are too many", words.len())));
        }
        let mut index = BTreeMap::new();
        for (i, w) in words.iter().enumerate() {
            if w.is_empty() {
                return Err(bad(format!("word {i} is empty")));
            }
            if w.chars().any(char::is_whitespace) {
                return Err(bad(format!("word {i} {w:?} contains whitespace")));
            }
            if let Some(j) = index.insert(w.clone(), i as u32) {
                return Err(bad(format!("word {i} {w:?} repeats word {j}")));
            }
        }
        for (name, id) in [("pad", ids.pad), ("eos", ids.eos), ("unk", ids.unk)] {
            if id as usize >= words.len() {
                return Err(bad(format!(
                    "{name} id {id} is not below the vocabulary size {}",
                    words.len()
                )));
            }
        }
        Ok(WordVocab { words, index, ids })
    }

    /// The words, in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The special ids.
    pub fn special_ids(&self) -> SpecialIds {
        self.ids
    }

    /// Number of words.
    pub fn vocab_size(&self) -> usize {
        self.words.len()
    }

    /// The id of `word`, if it is in the vocabulary.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// Ids of `text` under the splitting rule of this module.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut word_start = None;
        let flush = |ids: &mut Vec<u32>, word: &str| {
            ids.push(self.id(word).unwrap_or(self.ids.unk));
        };
        for (i, c) in text.char_indices() {
            if c.is_whitespace() || c.is_ascii_punctuation() {
                if let Some(s) = word_start.take() {
                    flush(&mut ids, &text[s..i]);
                }
                if c.is_ascii_punctuation() {
                    if let Some(id) = self.id(&text[i..i + 1]) {
                        ids.push(id);
                    }
                }
            } else if word_start.is_none() {
                word_start = Some(i);
            }
        }
        if let Some(s) = word_start {
            flush(&mut ids, &text[s..]);
        }
        ids
    }

    /// The words of `ids` joined by single spaces; PAD, EOS and ids outside the vocabulary are
    /// skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            if id == self.ids.pad || id == self.ids.eos {
                continue;
            }
            let Some(w) = self.words.get(id as usize) else {
                continue;
            };
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
        out
    }
}
