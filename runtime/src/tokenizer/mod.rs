//! Text ↔ token ids, as the reference input pipeline makes them.
//!
//! Two vocabularies, one [`Tokenizer`]:
//! * [`SentencePiece`] — a unigram `.model` file (CapPa uses T5's `c4_en`), read and applied
//!   exactly as the `sentencepiece` library does: its protobuf, its `nmt_nfkc` normalization table,
//!   its whitespace rules, user-defined pieces, Viterbi segmentation, UNK merging and byte
//!   fallback. Tested id for id against the library on over a thousand varied sentences.
//! * [`WordVocab`] — a plain word list for small models trained from scratch.
//!
//! Lower-casing is the tokenizer's own option, applied before the vocabulary sees the text, as the
//! reference's `tokenize` op does with `tf.strings.lower` — which, called without an encoding,
//! lower-cases ASCII letters only; so does this crate, so that `"É"` stays `"É"` as in training.
//!
//! Captions follow the reference op with `eos="sticky"` ([`pad_caption`]): content ids, then EOS —
//! kept even when the caption is cut, the last id becoming EOS — then PAD up to `max_len`. Prompts
//! are encoded without EOS ([`Tokenizer::encode`]). Special ids come from the model config or the
//! SentencePiece model, never from constants here.
//!
//! A single-file model stores its tokenizer as JSON in `__metadata__` under
//! [`TOKENIZER_KEY`](crate::checkpoint::TOKENIZER_KEY):
//! `{"type":"sentencepiece","lowercase":true,"model":"<base64 of the .model file>"}` or
//! `{"type":"words","lowercase":true,"pad_id":0,"eos_id":1,"unk_id":2,"words":[...]}`
//! (`lowercase` defaults to `true`, the reference's default).
//!
//! ```
//! use cappa::tokenizer::{SpecialIds, Tokenizer};
//!
//! let words = ["<pad>", "</s>", "<unk>", "a", "red", "cube", "."].map(String::from);
//! let ids = SpecialIds { pad: 0, eos: 1, unk: 2 };
//! let tok = Tokenizer::words(words.to_vec(), ids, true).unwrap();
//! assert_eq!(tok.encode("A red sphere."), [3, 4, 2, 6]);
//! assert_eq!(tok.encode_caption("a red cube", 5, 1, 0), [3, 4, 5, 1, 0]);
//! assert_eq!(tok.encode_caption("a red red red cube", 4, 1, 0), [3, 4, 4, 1]);
//! assert_eq!(tok.decode(&[3, 5, 1, 0]), "a cube");
//! let again = Tokenizer::from_metadata(&tok.to_metadata()).unwrap();
//! assert_eq!(again.encode("a cube"), [3, 5]);
//! ```

mod base64;
mod normalizer;
mod protobuf;
mod sentencepiece;
mod trie;
mod words;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub use sentencepiece::{Piece, PieceType, SentencePiece};
pub use words::{SpecialIds, WordVocab};

use crate::config::Config;
use crate::error::{Error, Result};

/// Which vocabulary a [`Tokenizer`] uses.
#[derive(Debug, Clone)]
pub enum Vocab {
    /// A SentencePiece unigram model (boxed: it is large beside a word list).
    SentencePiece(Box<SentencePiece>),
    /// A word list.
    Words(WordVocab),
}

/// A vocabulary plus the lower-casing option: everything needed to turn captions and prompts into
/// ids and back.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    lowercase: bool,
}

/// The metadata JSON. `type` names the variant.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
enum Metadata {
    #[serde(rename = "sentencepiece")]
    SentencePiece {
        #[serde(default = "lowercase_default")]
        lowercase: bool,
        model: String,
    },
    #[serde(rename = "words")]
    Words {
        #[serde(default = "lowercase_default")]
        lowercase: bool,
        pad_id: u32,
        eos_id: u32,
        unk_id: u32,
        words: Vec<String>,
    },
}

/// The reference's `tokenize` op lower-cases unless told otherwise.
fn lowercase_default() -> bool {
    true
}

impl Tokenizer {
    /// A tokenizer over `vocab`, lower-casing (ASCII) first if `lowercase`.
    pub fn new(vocab: Vocab, lowercase: bool) -> Self {
        Tokenizer { vocab, lowercase }
    }

    /// A SentencePiece tokenizer from a `.model` file's bytes.
    pub fn sentencepiece(model: &[u8], lowercase: bool) -> Result<Self> {
        Ok(Tokenizer::new(
            Vocab::SentencePiece(Box::new(SentencePiece::from_bytes(model)?)),
            lowercase,
        ))
    }

    /// A word-level tokenizer: word `i` of `words` has id `i`.
    pub fn words(words: Vec<String>, ids: SpecialIds, lowercase: bool) -> Result<Self> {
        Ok(Tokenizer::new(
            Vocab::Words(WordVocab::new(words, ids)?),
            lowercase,
        ))
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Whether text is lower-cased (ASCII letters) before encoding.
    pub fn lowercase(&self) -> bool {
        self.lowercase
    }

    /// Number of ids the vocabulary defines (`0..vocab_size()`).
    pub fn vocab_size(&self) -> usize {
        match &self.vocab {
            Vocab::SentencePiece(sp) => sp.vocab_size(),
            Vocab::Words(w) => w.vocab_size(),
        }
    }

    /// Ids of `text`, without EOS or padding (for prompts, and the content of captions).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let lowered;
        let text = if self.lowercase {
            lowered = text.to_ascii_lowercase();
            &lowered
        } else {
            text
        };
        match &self.vocab {
            Vocab::SentencePiece(sp) => sp.encode(text),
            Vocab::Words(w) => w.encode(text),
        }
    }

    /// A caption as the model is trained on it: `max_len` ids, see [`pad_caption`].
    pub fn encode_caption(&self, text: &str, max_len: usize, eos_id: u32, pad_id: u32) -> Vec<u32> {
        pad_caption(self.encode(text), max_len, eos_id, pad_id)
    }

    /// Text of `ids`. SentencePiece drops control pieces (PAD and EOS among them), the word
    /// vocabulary skips PAD and EOS; ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.vocab {
            Vocab::SentencePiece(sp) => sp.decode(ids),
            Vocab::Words(w) => w.decode(ids),
        }
    }

    /// Parses the `cappa.tokenizer` metadata JSON.
    pub fn from_metadata(json: &str) -> Result<Self> {
        let meta: Metadata = serde_json::from_str(json)
            .map_err(|e| Error::Tokenizer(format!("bad tokenizer metadata: {e}")))?;
        match meta {
            Metadata::SentencePiece { lowercase, model } => {
                Tokenizer::sentencepiece(&base64::decode(&model)?, lowercase)
            }
            Metadata::Words {
                lowercase,
                pad_id,
                eos_id,
                unk_id,
                words,
            } => {
                let ids = SpecialIds {
                    pad: pad_id,
                    eos: eos_id,
                    unk: unk_id,
                };
                Tokenizer::words(words, ids, lowercase)
            }
        }
    }

    /// The `cappa.tokenizer` metadata JSON ([`Tokenizer::from_metadata`] reads it back).
    pub fn to_metadata(&self) -> String {
        let meta = match &self.vocab {
            Vocab::SentencePiece(sp) => Metadata::SentencePiece {
                lowercase: self.lowercase,
                model: base64::encode(sp.model_bytes()),
            },
            Vocab::Words(w) => {
                let ids = w.special_ids();
                Metadata::Words {
                    lowercase: self.lowercase,
                    pad_id: ids.pad,
                    eos_id: ids.eos,
                    unk_id: ids.unk,
                    words: w.words().to_vec(),
                }
            }
        };
        serde_json::to_string(&meta).expect("tokenizer metadata serialises")
    }

    /// Checks that this tokenizer fits the model: no id beyond the model's `vocab_size`, and the
    /// special ids it defines equal the config's (a SentencePiece model without a PAD or EOS
    /// piece is not checked for it).
    pub fn check_config(&self, config: &Config) -> Result<()> {
        let mut problems: Vec<String> = Vec::new();
        if self.vocab_size() > config.vocab_size {
            problems.push(format!(
                "the tokenizer has {} ids but the model's vocab_size is {}",
                self.vocab_size(),
                config.vocab_size
            ));
        }
        let (unk, eos, pad) = match &self.vocab {
            Vocab::SentencePiece(sp) => (Some(sp.unk_id()), sp.eos_id(), sp.pad_id()),
            Vocab::Words(w) => {
                let ids = w.special_ids();
                (Some(ids.unk), Some(ids.eos), Some(ids.pad))
            }
        };
        for (name, tok, cfg) in [
            ("unk_id", unk, config.unk_id),
            ("eos_id", eos, config.eos_id),
            ("pad_id", pad, config.pad_id),
        ] {
            if let Some(t) = tok.filter(|&t| t != cfg) {
                problems.push(format!(
                    "the tokenizer's {name} is {t} but the config's is {cfg}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

/// The reference `tokenize` op with `eos="sticky"`: `content` then `eos_id`, cut to `max_len`
/// keeping the EOS last, or padded with `pad_id` to `max_len`. (`max_len` 0 gives no ids.)
pub fn pad_caption(mut content: Vec<u32>, max_len: usize, eos_id: u32, pad_id: u32) -> Vec<u32> {
    if max_len == 0 {
        return Vec::new();
    }
    content.truncate(max_len - 1);
    content.push(eos_id);
    content.resize(max_len, pad_id);
    content
}

impl core::fmt::Display for Tokenizer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match &self.vocab {
            Vocab::SentencePiece(_) => "SentencePiece",
            Vocab::Words(_) => "word",
        };
        write!(
            f,
            "{kind} tokenizer, {} ids{}",
            self.vocab_size(),
            if self.lowercase { ", lower-cased" } else { "" }
        )
    }
}
