//! SentencePiece's normalizer (`normalizer.cc`), ported step by step: the precompiled
//! character map (a darts-clone trie over the input bytes whose values point into a blob of
//! NUL-terminated replacement strings — this is what makes `nmt_nfkc` exact), user-defined
//! pieces copied verbatim, then the whitespace rules (drop leading, trailing and repeated
//! spaces, escape spaces as `▁`, add the dummy `▁` prefix).

use alloc::format;
use alloc::vec::Vec;

use super::trie::{DoubleArray, Trie};
use crate::error::{Error, Result};

/// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
pub(crate) const SPACE_SYMBOL: &[u8] = "\u{2581}".as_bytes();
const REPLACEMENT_CHAR: &[u8] = "\u{fffd}".as_bytes();

/// darts keeps at most this many prefix matches per lookup (`kMaxTrieResultsSize`); the longest
/// among them wins.
const MAX_CHARSMAP_RESULTS: usize = 32;
/// The user-defined-piece matcher's result limit (`PrefixMatcher::PrefixMatch`).
const MAX_USER_DEFINED_RESULTS: usize = 64;

/// The `NormalizerSpec` fields that affect encoding, with protobuf's defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NormalizerSpec {
    pub name: Option<alloc::string::String>,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: None,
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// The decoded `precompiled_charsmap`: `<trie size: u32 LE><double array><replacement strings>`.
#[derive(Debug, Clone)]
struct CharsMap {
    trie: DoubleArray,
    normalized: Vec<u8>,
}

impl CharsMap {
    fn decode(blob: &[u8]) -> Result<Self> {
        let broken = |what: &str| {
            Error::Tokenizer(format!(
                "malformed SentencePiece model: precompiled_charsmap {what}"
            ))
        };
        if blob.len() <= 4 {
            return Err(broken(&format!(
                "is {} bytes, too short to hold a trie",
                blob.len()
            )));
        }
        let trie_len = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let rest = &blob[4..];
        if trie_len > rest.len() {
            return Err(broken(&format!(
                "announces a {trie_len}-byte trie but holds {} bytes",
                rest.len()
            )));
        }
        Ok(CharsMap {
            trie: DoubleArray::from_le_bytes(&rest[..trie_len]),
            normalized: rest[trie_len..].to_vec(),
        })
    }

    /// The longest rule matching a prefix of `input`: (replacement, bytes consumed).
    fn lookup(&self, input: &[u8]) -> Option<(&[u8], usize)> {
        let (mut best_len, mut best_value, mut seen) = (0usize, 0u32, 0usize);
        self.trie.common_prefix_search(input, |value, len| {
            if seen < MAX_CHARSMAP_RESULTS && (best_len == 0 || len > best_len) {
                best_len = len;
                best_value = value;
            }
            seen += 1;
        });
        if best_len == 0 {
            return None;
        }
        // The replacement runs to the next NUL. A value outside the blob only occurs in a
        // corrupt model; it maps to nothing rather than reading out of bounds.
        let tail = self.normalized.get(best_value as usize..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        Some((&tail[..end], best_len))
    }
}

/// A configured normalizer.
#[derive(Debug, Clone)]
pub(crate) struct Normalizer {
    charsmap: Option<CharsMap>,
    /// User-defined pieces, matched before the character map and copied unchanged.
    user_defined: Option<Trie>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    pub(crate) fn new(
        spec: &NormalizerSpec,
        treat_whitespace_as_suffix: bool,
        user_defined: Option<Trie>,
    ) -> Result<Self> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::decode(&spec.precompiled_charsmap)?)
        };
        Ok(Normalizer {
            charsmap,
            user_defined,
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
            escape_whitespaces: spec.escape_whitespaces,
            treat_whitespace_as_suffix,
        })
    }

    /// `NormalizePrefix`: the normalized form of the first unit of `input` and how many input
    /// bytes it consumed (at least one).
    fn prefix<'s>(&'s self, input: &'s [u8]) -> (&'s [u8], usize) {
        if let Some(ud) = &self.user_defined {
            let (mut longest, mut seen) = (0usize, 0usize);
            ud.common_prefixes(input, |_, len| {
                if seen < MAX_USER_DEFINED_RESULTS {
                    longest = longest.max(len);
                }
                seen += 1;
            });
            if longest > 0 {
                return (&input[..longest], longest);
            }
        }
        if let Some(found) = self.charsmap.as_ref().and_then(|m| m.lookup(input)) {
            return found;
        }
        match decode_utf8(input) {
            Some(len) => (&input[..len], len),
            // Malformed UTF-8: one byte becomes U+FFFD.
            None => (REPLACEMENT_CHAR, 1),
        }
    }

    /// `Normalizer::Normalize` (without the alignment, which encoding to ids does not need).
    pub(crate) fn normalize(&self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if input.is_empty() {
            return out;
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (sp, n) = self.prefix(input);
                if sp != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return out;
        }
        out.reserve(input.len() * 3);
        let space: &[u8] = if self.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            b" "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut sp, n) = self.prefix(input);
            while is_prev_space && sp.first() == Some(&b' ') {
                sp = &sp[1..];
            }
            if !sp.is_empty() {
                for &b in sp {
                    if self.escape_whitespaces && b == b' ' {
                        out.extend_from_slice(SPACE_SYMBOL);
                    } else {
                        out.push(b);
                    }
                }
                is_prev_space = sp.last() == Some(&b' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        out
    }
}

/// Length of a UTF-8 character from its first byte, as SentencePiece's `OneCharLen` (which
/// does not validate: a stray continuation byte counts as one).
pub(crate) fn one_char_len(lead: u8) -> usize {
    match lead >> 4 {
        0xc | 0xd => 2,
        0xe => 3,
        0xf => 4,
        _ => 1,
    }
}

/// SentencePiece's `IsValidDecodeUTF8`: the byte length of the well-formed character starting
/// `bytes`, or `None` if it is malformed (overlong forms, surrogates and values above
/// U+10FFFF included).
pub(crate) fn decode_utf8(bytes: &[u8]) -> Option<usize> {
    let b0 = *bytes.first()?;
    let trail = |i: usize| bytes.get(i).is_some_and(|&b| b & 0xc0 == 0x80);
    let low = |i: usize| u32::from(bytes[i] & 0x3f);
    let valid = |c: u32| c < 0xd800 || (0xe000..=0x10ffff).contains(&c);
    if b0 < 0x80 {
        Some(1)
    } else if b0 & 0xe0 == 0xc0 && trail(1) {
        let c = (u32::from(b0 & 0x1f) << 6) | low(1);
        (c >= 0x80 && valid(c)).then_some(2)
    } else if b0 & 0xf0 == 0xe0 && trail(1) && trail(2) {
        let c = (u32::from(b0 & 0x0f) << 12) | (low(1) << 6) | low(2);
        (c >= 0x800 && valid(c)).then_some(3)
    } else if b0 & 0xf8 == 0xf0 && trail(1) && trail(2) && trail(3) {
        let c = (u32::from(b0 & 0x07) << 18) | (low(1) << 12) | (low(2) << 6) | low(3);
        (c >= 0x10000 && valid(c)).then_some(4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(add_dummy_prefix: bool, remove_extra: bool, escape: bool) -> Normalizer {
        let spec = NormalizerSpec {
            add_dummy_prefix,
            remove_extra_whitespaces: remove_extra,
            escape_whitespaces: escape,
            ..NormalizerSpec::default()
        };
        Normalizer::new(&spec, false, None).unwrap()
    }

    fn norm(n: &Normalizer, s: &str) -> alloc::string::String {
        alloc::string::String::from_utf8(n.normalize(s.as_bytes())).unwrap()
    }

    #[test]
    fn whitespace_rules() {
        let n = plain(true, true, true);
        assert_eq!(norm(&n, "  a  b  "), "▁a▁b");
        assert_eq!(norm(&n, "   "), "");
        assert_eq!(norm(&n, ""), "");
        let n = plain(false, false, true);
        assert_eq!(norm(&n, "  a  b  "), "▁▁a▁▁b▁▁");
        let n = plain(true, true, false);
        assert_eq!(norm(&n, " a  b "), " a b");
    }

    #[test]
    fn user_defined_pieces_are_copied_verbatim() {
        let ud = Trie::new([(&b"<x>"[..], 0), (b"<x>y", 1)]);
        let n = Normalizer::new(&NormalizerSpec::default(), false, Some(ud)).unwrap();
        assert_eq!(norm(&n, "a<x>yb <x>"), "▁a<x>yb▁<x>");
    }

    #[test]
    fn malformed_utf8_becomes_replacement_chars() {
        let n = plain(false, false, false);
        assert_eq!(n.normalize(b"a\xff\xc3"), "a\u{fffd}\u{fffd}".as_bytes());
        assert_eq!(decode_utf8("é".as_bytes()), Some(2));
        assert_eq!(decode_utf8(b"\xe0\x80\x80"), None); // overlong
        assert_eq!(decode_utf8(b"\xed\xa0\x80"), None); // surrogate
        assert_eq!(decode_utf8(b"\xf4\x90\x80\x80"), None); // above U+10FFFF
        assert_eq!(decode_utf8("\u{10ffff}".as_bytes()), Some(4));
    }

    #[test]
    fn broken_charsmaps_are_errors() {
        for blob in [&[1u8, 0, 0][..], &[1, 0, 0, 0], &[9, 0, 0, 0, 1, 2, 3, 4]] {
            let spec = NormalizerSpec {
                precompiled_charsmap: blob.to_vec(),
                ..NormalizerSpec::default()
            };
            let err = Normalizer::new(&spec, false, None).unwrap_err();
            assert!(
                matches!(&err, Error::Tokenizer(m) if m.contains("precompiled_charsmap")),
                "{err:?}"
            );
        }
    }
}
