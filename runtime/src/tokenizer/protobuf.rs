//! Just enough of the protobuf wire format to read a SentencePiece `ModelProto`: varints,
//! fixed-width scalars, length-delimited fields, and skipping whatever the schema here does not
//! name (as protobuf itself does with unknown fields). Every read is bounds-checked; bad bytes
//! give [`Error::Tokenizer`] with the byte offset, never a panic.

use alloc::format;
use alloc::string::String;

use crate::error::{Error, Result};

/// One field's payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, embedded messages.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire types 3/4 (a deprecated group), already skipped.
    Group,
}

impl Value<'_> {
    /// An `int32` field: protobuf sign-extends negatives to 64 bits, so the low 32 bits are the
    /// value (protobuf's own parser truncates the same way).
    pub(crate) fn as_i32(&self) -> Option<i32> {
        match *self {
            Value::Varint(v) => Some(v as u32 as i32),
            _ => None,
        }
    }

    /// A `bool` field.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Varint(v) => Some(v != 0),
            _ => None,
        }
    }

    /// A `float` field.
    pub(crate) fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::Fixed32(v) => Some(f32::from_bits(v)),
            _ => None,
        }
    }

    /// A `string`, `bytes` or message field.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match *self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Reads the fields of one message in order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole file, so errors point at the right byte.
    base: usize,
}

/// Groups nested deeper than this are refused rather than recursed into.
const MAX_GROUP_DEPTH: usize = 64;

impl<'a> Reader<'a> {
    /// A reader over a whole message.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// A reader over an embedded message that started at `base` in the file.
    pub(crate) fn nested(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// File offset of the next unread byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn error(&self, what: &str, at: usize) -> Error {
        Error::Tokenizer(format!(
            "malformed SentencePiece model: {what} at byte {}",
            self.base + at
        ))
    }

    fn varint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint", start));
            };
            self.pos += 1;
            // The tenth byte holds only the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(self.error("varint longer than 64 bits", start));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes", start))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let start = self.pos;
        let left = self.buf.len() - start;
        if n > left {
            return Err(self.error(
                &format!("truncated {what} ({n} bytes announced, {left} left)"),
                start,
            ));
        }
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    /// The next field as `(field number, value)`, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let (field, wire) = self.tag(start)?;
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8, "fixed64")?;
                Value::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                Value::Bytes(self.take(len, "length-delimited field")?)
            }
            3 => {
                self.skip_group(field)?;
                Value::Group
            }
            5 => {
                let b = self.take(4, "fixed32")?;
                Value::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            4 => return Err(self.error("end-group tag without a start", start)),
            w => return Err(self.error(&format!("invalid wire type {w}"), start)),
        };
        Ok(Some((field, value)))
    }

    fn tag(&mut self, start: usize) -> Result<(u32, u8)> {
        let tag = self.varint()?;
        let field = tag >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.error(&format!("invalid field number {field}"), start));
        }
        Ok((field as u32, (tag & 7) as u8))
    }

    /// Skips a group's fields up to its end tag (nested groups included).
    fn skip_group(&mut self, field: u32) -> Result<()> {
        let mut open: alloc::vec::Vec<u32> = alloc::vec![field];
        while let Some(&current) = open.last() {
            if self.pos == self.buf.len() {
                return Err(self.error("truncated group", self.pos));
            }
            let start = self.pos;
            let (f, wire) = self.tag(start)?;
            match wire {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8, "fixed64")?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                    self.take(len, "length-delimited field")?;
                }
                3 => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return Err(self.error("groups nested too deeply", start));
                    }
                    open.push(f);
                }
                4 if f == current => {
                    open.pop();
                }
                4 => return Err(self.error("mismatched end-group tag", start)),
                5 => {
                    self.take(4, "fixed32")?;
                }
                w => return Err(self.error(&format!("invalid wire type {w}"), start)),
            }
        }
        Ok(())
    }
}

/// A `string` field as UTF-8, or a typed error naming the field.
pub(crate) fn utf8(bytes: &[u8], what: &str, offset: usize) -> Result<String> {
    core::str::from_utf8(bytes).map(String::from).map_err(|_| {
        Error::Tokenizer(format!(
            "malformed SentencePiece model: {what} is not UTF-8 (field ending at byte {offset})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn all(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    fn err_msg(bytes: &[u8]) -> String {
        match all(bytes) {
            Err(Error::Tokenizer(m)) => m,
            other => panic!("expected a Tokenizer error for {bytes:?}, got {other:?}"),
        }
    }

    #[test]
    fn reads_every_wire_type() {
        let bytes = [
            0x08, 0x96, 0x01, // field 1 varint 150
            0x11, 1, 2, 3, 4, 5, 6, 7, 8, // field 2 fixed64
            0x1a, 0x03, b'a', b'b', b'c', // field 3 bytes
            0x25, 0x00, 0x00, 0x80, 0x3f, // field 4 fixed32 = 1.0f
            0x2b, 0x08, 0x01, 0x2c, // field 5 group holding a varint
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // field 6 = -1
        ];
        let f = all(&bytes).unwrap();
        assert_eq!(f[0], (1, Value::Varint(150)));
        assert_eq!(f[1], (2, Value::Fixed64(0x0807060504030201)));
        assert_eq!(f[2].1.as_bytes(), Some(&b"abc"[..]));
        assert_eq!(f[3].1.as_f32(), Some(1.0));
        assert_eq!(f[4], (5, Value::Group));
        assert_eq!(f[5].1.as_i32(), Some(-1));
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let bytes = [
            0x08, 0x96, 0x01, 0x1a, 0x03, b'a', b'b', b'c', 0x25, 0, 0, 0x80, 0x3f,
        ];
        for cut in 1..bytes.len() {
            if [3, 8].contains(&cut) {
                continue; // a field boundary: a shorter but valid message
            }
            let m = err_msg(&bytes[..cut]);
            assert!(m.contains("truncated"), "cut {cut}: {m}");
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        let m = err_msg(&[0x08, 0x80, 0x80]);
        assert!(
            m.contains("truncated varint") && m.contains("byte 1"),
            "{m}"
        );
        let m = err_msg(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ]);
        assert!(m.contains("longer than 64 bits"), "{m}");
        let m = err_msg(&[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81,
        ]);
        assert!(m.contains("varint"), "{m}");
    }

    #[test]
    fn bad_tags_are_errors() {
        assert!(err_msg(&[0x00]).contains("field number 0"));
        assert!(err_msg(&[0x0e]).contains("wire type 6"));
        assert!(err_msg(&[0x0c]).contains("end-group"));
        assert!(err_msg(&[0x0b, 0x14]).contains("mismatched"));
        assert!(err_msg(&[0x0b, 0x08, 0x01]).contains("truncated group"));
        // A length that overflows usize arithmetic is a truncation, not a panic.
        let m = err_msg(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        assert!(m.contains("truncated length-delimited"), "{m}");
    }

    #[test]
    fn deep_groups_are_refused() {
        let bytes: Vec<u8> = core::iter::repeat_n(0x0b, 100).collect();
        assert!(err_msg(&bytes).contains("nested too deeply"));
    }
}
