//! A SentencePiece unigram model read from its `.model` file, encoding and decoding exactly as
//! the reference library (`sentencepiece` 0.2: `sentencepiece_processor.cc`,
//! `unigram_model.cc`, `model_interface.cc`, `normalizer.cc`) does.
//!
//! Encoding: normalize (see [`normalizer`](super::normalizer)); find the best segmentation of
//! the normalized bytes under the unigram scores (the library's optimized Viterbi, with its
//! tie-breaking: among equal scores the earliest-found candidate stays); characters no piece
//! covers become the UNK id, consecutive UNKs merged into one — or, with `byte_fallback`, the
//! `<0xNN>` pieces of their UTF-8 bytes.
//!
//! Decoding: control pieces vanish, UNK becomes ` ⁇ ` (the model's `unk_surface`), runs of byte
//! pieces are reassembled as UTF-8 (each malformed byte becomes U+FFFD), `▁` becomes a space and
//! the leading space of the text is dropped.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::normalizer::{decode_utf8, one_char_len, Normalizer, NormalizerSpec, SPACE_SYMBOL};
use super::protobuf::{utf8, Reader, Value};
use super::trie::Trie;
use crate::error::{Error, Result};

/// What a piece is (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece, found by segmentation.
    Normal,
    /// The unknown piece (exactly one per model).
    Unknown,
    /// A control piece (`<pad>`, `</s>`, ...): never produced by encoding, invisible in decoding.
    Control,
    /// A user-defined piece: always kept whole, never normalized.
    UserDefined,
    /// A piece excluded from segmentation.
    Unused,
    /// A byte piece `<0xNN>` for byte fallback.
    Byte,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its text, with `▁` for spaces.
    pub piece: String,
    /// Its unigram log-probability.
    pub score: f32,
    /// Its kind.
    pub kind: PieceType,
}

/// The `TrainerSpec` fields the runtime uses (protobuf defaults where absent).
#[derive(Debug, Clone, PartialEq)]
struct TrainerSpec {
    model_type: i32,
    byte_fallback: bool,
    treat_whitespace_as_suffix: bool,
    bos_id: i32,
    eos_id: i32,
    pad_id: i32,
    unk_surface: Option<String>,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: UNIGRAM,
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            unk_surface: None,
        }
    }
}

const UNIGRAM: i32 = 1;
/// `kUnkPenalty`: an unknown character scores this much below the worst piece.
const UNK_PENALTY: f32 = 10.0;
/// The decoder's surface for UNK when the model sets none.
const DEFAULT_UNK_SURFACE: &str = " \u{2047} ";

/// A parsed SentencePiece unigram model.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    /// The `.model` bytes as given (kept for [`SentencePiece::model_bytes`]).
    bytes: Vec<u8>,
    pieces: Vec<Piece>,
    /// NORMAL, USER_DEFINED and UNUSED pieces: the ones segmentation may use.
    trie: Trie,
    /// CONTROL, UNKNOWN and BYTE pieces, looked up by text only.
    reserved: BTreeMap<String, u32>,
    /// Id of `<0xNN>` for every byte when byte fallback is on.
    byte_ids: Option<Box<[u32; 256]>>,
    unk_id: u32,
    min_score: f32,
    max_score: f32,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
    trainer: TrainerSpec,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
}

struct ModelProto {
    pieces: Vec<Piece>,
    trainer: TrainerSpec,
    normalizer: NormalizerSpec,
    denormalizer: Option<NormalizerSpec>,
}

fn malformed(what: String) -> Error {
    Error::Tokenizer(format!("malformed SentencePiece model: {what}"))
}

fn parse_model(bytes: &[u8]) -> Result<ModelProto> {
    let mut proto = ModelProto {
        pieces: Vec::new(),
        trainer: TrainerSpec::default(),
        normalizer: NormalizerSpec::default(),
        denormalizer: None,
    };
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        // A field with an unexpected wire type is skipped, as protobuf treats it as unknown.
        let Some(body) = value.as_bytes() else {
            continue;
        };
        let body_start = r.offset() - body.len();
        match field {
            1 => proto.pieces.push(parse_piece(body, body_start)?),
            // Repeated occurrences of a message field merge, as in protobuf.
            2 => parse_trainer(body, body_start, &mut proto.trainer)?,
            3 => parse_normalizer(body, body_start, &mut proto.normalizer)?,
            5 => parse_normalizer(
                body,
                body_start,
                proto
                    .denormalizer
                    .get_or_insert_with(NormalizerSpec::default),
            )?,
            _ => {}
        }
    }
    Ok(proto)
}

fn parse_piece(body: &[u8], base: usize) -> Result<Piece> {
    let mut r = Reader::nested(body, base);
    let mut piece = None;
    let mut score = 0.0f32;
    let mut kind = PieceType::Normal;
    while let Some((field, v)) = r.next_field()? {
        match (field, v) {
            (1, Value::Bytes(b)) => piece = Some(utf8(b, "a piece", r.offset())?),
            (2, Value::Fixed32(_)) => score = v.as_f32().unwrap_or(0.0),
            // An enum value this version does not know keeps the default, as in proto2.
            (3, Value::Varint(t)) => kind = PieceType::from_proto(t).unwrap_or(kind),
            _ => {}
        }
    }
    Ok(Piece {
        piece: piece.unwrap_or_default(),
        score,
        kind,
    })
}

fn parse_trainer(body: &[u8], base: usize, t: &mut TrainerSpec) -> Result<()> {
    let mut r = Reader::nested(body, base);
    while let Some((field, v)) = r.next_field()? {
        match field {
            3 => {
                if let Some(x) = v.as_i32() {
                    t.model_type = x;
                }
            }
            24 => {
                t.treat_whitespace_as_suffix = v.as_bool().unwrap_or(t.treat_whitespace_as_suffix)
            }
            35 => t.byte_fallback = v.as_bool().unwrap_or(t.byte_fallback),
            41 => t.bos_id = v.as_i32().unwrap_or(t.bos_id),
            42 => t.eos_id = v.as_i32().unwrap_or(t.eos_id),
            43 => t.pad_id = v.as_i32().unwrap_or(t.pad_id),
            44 => {
                if let Some(b) = v.as_bytes() {
                    t.unk_surface = Some(utf8(b, "trainer_spec.unk_surface", r.offset())?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer(body: &[u8], base: usize, n: &mut NormalizerSpec) -> Result<()> {
    let mut r = Reader::nested(body, base);
    while let Some((field, v)) = r.next_field()? {
        match field {
            1 => {
                if let Some(b) = v.as_bytes() {
                    n.name = Some(utf8(b, "normalizer_spec.name", r.offset())?);
                }
            }
            2 => {
                if let Some(b) = v.as_bytes() {
                    n.precompiled_charsmap = b.to_vec();
                }
            }
            3 => n.add_dummy_prefix = v.as_bool().unwrap_or(n.add_dummy_prefix),
            4 => n.remove_extra_whitespaces = v.as_bool().unwrap_or(n.remove_extra_whitespaces),
            5 => n.escape_whitespaces = v.as_bool().unwrap_or(n.escape_whitespaces),
            _ => {}
        }
    }
    Ok(())
}

/// `<0xNN>` for byte `b` (upper-case hex, as the library writes it).
fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

/// The byte a `<0xNN>` piece stands for.
fn piece_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    let valid = hex.len() == 2
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c));
    if valid {
        u8::from_str_radix(hex, 16).ok()
    } else {
        None
    }
}

impl SentencePiece {
    /// Parses a `.model` file (a serialized `ModelProto`) and checks it as the library's loader
    /// does: a unigram model, non-empty unique pieces, exactly one UNKNOWN piece, byte pieces only
    /// with `byte_fallback` and then all 256 of them, a well-formed normalization table.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let proto = parse_model(bytes)?;
        if proto.trainer.model_type != UNIGRAM {
            let name = match proto.trainer.model_type {
                2 => "BPE",
                3 => "WORD",
                4 => "CHAR",
                _ => "unknown",
            };
            return Err(Error::Tokenizer(format!(
                "only unigram SentencePiece models are supported, this one is {name} (model_type {})",
                proto.trainer.model_type
            )));
        }
        if proto.pieces.is_empty() {
            return Err(malformed("the model has no pieces".to_string()));
        }
        if proto.pieces.len() > u32::MAX as usize / 2 {
            return Err(malformed("too many pieces".to_string()));
        }

        let mut normal: BTreeMap<&str, u32> = BTreeMap::new();
        let mut reserved: BTreeMap<String, u32> = BTreeMap::new();
        let mut user_defined: Vec<&str> = Vec::new();
        let mut unk_id = None;
        let mut byte_ids = [u32::MAX; 256];
        let (mut min_score, mut max_score) = (f32::MAX, f32::MIN_POSITIVE);
        for (i, p) in proto.pieces.iter().enumerate() {
            let id = i as u32;
            if p.piece.is_empty() {
                return Err(malformed(format!("piece {id} is empty")));
            }
            let fresh = match p.kind {
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused => {
                    normal.insert(&p.piece, id).is_none()
                }
                _ => reserved.insert(p.piece.clone(), id).is_none(),
            };
            if !fresh {
                return Err(malformed(format!(
                    "piece {id} {:?} is already defined",
                    p.piece
                )));
            }
            match p.kind {
                PieceType::Normal => {
                    // The library's min/max start at FLT_MAX and FLT_MIN (the smallest
                    // positive float, not the most negative): kept for identical scores.
                    min_score = min_score.min(p.score);
                    max_score = max_score.max(p.score);
                }
                PieceType::UserDefined => user_defined.push(&p.piece),
                PieceType::Unknown => {
                    if unk_id.replace(id).is_some() {
                        return Err(malformed(format!("piece {id} is a second UNKNOWN piece")));
                    }
                }
                PieceType::Byte => {
                    if !proto.trainer.byte_fallback {
                        return Err(malformed(format!(
                            "byte piece {:?} although byte_fallback is false",
                            p.piece
                        )));
                    }
                    let b = piece_byte(&p.piece).ok_or_else(|| {
                        malformed(format!(
                            "byte piece {:?} is not of the form <0xNN>",
                            p.piece
                        ))
                    })?;
                    byte_ids[b as usize] = id;
                }
                PieceType::Control | PieceType::Unused => {}
            }
        }
        let unk_id = unk_id.ok_or_else(|| malformed("no UNKNOWN piece".to_string()))?;
        let byte_ids = if proto.trainer.byte_fallback {
            if let Some(b) = byte_ids.iter().position(|&id| id == u32::MAX) {
                return Err(malformed(format!(
                    "byte_fallback is on but there is no piece {}",
                    byte_piece(b as u8)
                )));
            }
            Some(Box::new(byte_ids))
        } else {
            None
        };

        let trie = Trie::new(normal.iter().map(|(p, &id)| (p.as_bytes(), id)));
        let matcher = (!user_defined.is_empty())
            .then(|| Trie::new(user_defined.iter().map(|p| (p.as_bytes(), 0))));
        let normalizer = Normalizer::new(
            &proto.normalizer,
            proto.trainer.treat_whitespace_as_suffix,
            matcher,
        )?;
        let denormalizer = match &proto.denormalizer {
            Some(spec) if !spec.precompiled_charsmap.is_empty() => {
                Some(Normalizer::new(spec, false, None)?)
            }
            _ => None,
        };
        Ok(SentencePiece {
            bytes: bytes.to_vec(),
            trie,
            reserved,
            byte_ids,
            unk_id,
            min_score,
            max_score,
            normalizer,
            denormalizer,
            add_dummy_prefix: proto.normalizer.add_dummy_prefix,
            remove_extra_whitespaces: proto.normalizer.remove_extra_whitespaces,
            trainer: proto.trainer,
            pieces: proto.pieces,
        })
    }

    /// The `.model` bytes this was loaded from.
    pub fn model_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces (ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece with id `id`.
    pub fn piece(&self, id: u32) -> Option<&Piece> {
        self.pieces.get(id as usize)
    }

    /// The id of piece text `piece` (`▁` for spaces), or the UNK id if there is none — the
    /// library's `PieceToId`.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .copied()
            .or_else(|| self.trie.get(piece.as_bytes()))
            .unwrap_or(self.unk_id)
    }

    /// The id of the UNKNOWN piece.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// `trainer_spec.eos_id`, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        u32::try_from(self.trainer.eos_id).ok()
    }

    /// `trainer_spec.pad_id`, if the model has one.
    pub fn pad_id(&self) -> Option<u32> {
        u32::try_from(self.trainer.pad_id).ok()
    }

    /// `trainer_spec.bos_id`, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        u32::try_from(self.trainer.bos_id).ok()
    }

    /// Whether unknown characters are spelled with byte pieces.
    pub fn byte_fallback(&self) -> bool {
        self.byte_ids.is_some()
    }

    fn kind(&self, id: u32) -> Option<PieceType> {
        self.pieces.get(id as usize).map(|p| p.kind)
    }

    /// The text as the model sees it before segmentation (`▁` for spaces). Lossy only for a
    /// corrupt normalization table that yields malformed UTF-8.
    pub fn normalize(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.normalizer.normalize(text.as_bytes())).into_owned()
    }

    /// Ids of `text`, as `SentencePieceProcessor::Encode` (no BOS/EOS added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text.as_bytes());
        let mut ids = Vec::new();
        let mut prev_unk = false;
        for (start, end, id) in self.viterbi(&normalized) {
            let kind = self.kind(id);
            let is_unk = kind == Some(PieceType::Unknown);
            if kind == Some(PieceType::Control) {
                ids.push(id);
            } else if let (true, Some(byte_ids)) = (is_unk, &self.byte_ids) {
                ids.extend(normalized[start..end].iter().map(|&b| byte_ids[b as usize]));
            } else if !(prev_unk && is_unk) {
                // A run of unknown characters stays one UNK (merged, as the library does).
                ids.push(id);
            }
            prev_unk = is_unk;
        }
        ids
    }

    /// The library's `EncodeOptimized`: best segmentation of `s` as `(start, end, id)` spans.
    fn viterbi(&self, s: &[u8]) -> Vec<(usize, usize, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f32,
            /// Start of the last piece of the best path ending here (`usize::MAX`: none yet).
            start: usize,
            id: u32,
        }
        let size = s.len();
        if size == 0 {
            return Vec::new();
        }
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = alloc::vec![
            Best {
                score: 0.0,
                start: usize::MAX,
                id: self.unk_id,
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let here = best[start].score;
            let mblen = one_char_len(s[start]).min(size - start);
            let mut has_single = false;
            self.trie.common_prefixes(&s[start..], |id, len| {
                let kind = self.pieces[id as usize].kind;
                if kind == PieceType::Unused {
                    return;
                }
                let end = start + len;
                let target = &mut best[end];
                if kind == PieceType::UserDefined {
                    // `length * max_score_ - 0.1` is a double in the library, and so is the sum
                    // it is compared in.
                    let score = f64::from(len as f32 * self.max_score) - 0.1;
                    let cand = score + f64::from(here);
                    if target.start == usize::MAX || cand > f64::from(target.score) {
                        *target = Best {
                            score: cand as f32,
                            start,
                            id,
                        };
                    }
                } else {
                    let cand = self.pieces[id as usize].score + here;
                    if target.start == usize::MAX || cand > target.score {
                        *target = Best {
                            score: cand,
                            start,
                            id,
                        };
                    }
                }
                if len == mblen {
                    has_single = true;
                }
            });
            if !has_single {
                let target = &mut best[start + mblen];
                let cand = unk_score + here;
                if target.start == usize::MAX || cand > target.score {
                    *target = Best {
                        score: cand,
                        start,
                        id: self.unk_id,
                    };
                }
            }
            start += mblen;
        }
        let mut out = Vec::new();
        let mut end = size;
        while end > 0 {
            let b = best[end];
            out.push((b.start, end, b.id));
            end = b.start;
        }
        out.reverse();
        out
    }

    /// Text of `ids`, as `SentencePieceProcessor::Decode`. Ids outside the vocabulary are
    /// skipped (the library refuses them).
    pub fn decode(&self, ids: &[u32]) -> String {
        let unk_surface = self
            .trainer
            .unk_surface
            .as_deref()
            .unwrap_or(DEFAULT_UNK_SURFACE);
        let strip_bos_space = self.add_dummy_prefix || self.remove_extra_whitespaces;
        let mut text: Vec<u8> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for &id in ids {
            let Some(p) = self.piece(id) else { continue };
            // The library decodes ids through their piece text, so a piece reachable under
            // another id decodes as that one.
            let id = self.piece_to_id(&p.piece);
            let kind = self.kind(id).unwrap_or(PieceType::Normal);
            if kind == PieceType::Byte {
                bytes.push(piece_byte(&p.piece).unwrap_or(0));
                continue;
            }
            flush_bytes(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = false;
            match kind {
                PieceType::Control => {}
                PieceType::Unknown if p.piece == self.pieces[self.unk_id as usize].piece => {
                    text.extend_from_slice(unk_surface.as_bytes())
                }
                PieceType::Unknown => text.extend_from_slice(p.piece.as_bytes()),
                _ => {
                    let mut piece = p.piece.as_bytes();
                    if is_bos_ws && strip_bos_space {
                        if let Some(rest) = piece.strip_prefix(SPACE_SYMBOL) {
                            piece = rest;
                            // Without remove_extra_whitespaces only the first `▁` is dropped;
                            // with it, every leading one until text appears.
                            bos_ws_seen = !self.remove_extra_whitespaces;
                        }
                    }
                    replace_space_symbol(piece, &mut text);
                }
            }
        }
        flush_bytes(&mut bytes, &mut text);
        if let Some(d) = &self.denormalizer {
            text = d.normalize(&text);
        }
        // Only a corrupt denormalization table can produce malformed UTF-8 here.
        String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// Appends a run of byte pieces as UTF-8; each byte that does not start a well-formed
/// character becomes U+FFFD.
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut Vec<u8>) {
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        match decode_utf8(rest) {
            Some(n) => {
                text.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            None => {
                text.extend_from_slice("\u{fffd}".as_bytes());
                rest = &rest[1..];
            }
        }
    }
    bytes.clear();
}

fn replace_space_symbol(mut piece: &[u8], out: &mut Vec<u8>) {
    while let Some(i) = piece.windows(3).position(|w| w == SPACE_SYMBOL) {
        out.extend_from_slice(&piece[..i]);
        out.push(b' ');
        piece = &piece[i + 3..];
    }
    out.extend_from_slice(piece);
}
