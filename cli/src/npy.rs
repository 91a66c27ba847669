//! `.npy` arrays, read and written by hand.
//!
//! The format (numpy's `NEP 1`) is small: the magic `\x93NUMPY`, a version byte pair, the header
//! length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), then the header: a
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded
//! with spaces and a newline so that the data starts 64-byte aligned. The data follows, raw.
//!
//! Only what model parameters need is accepted: C-order, little-endian `<f4`, `<f2`, `<f8`,
//! `<i4`, `<i8`, and `<V2` / `|V2` — the 2-byte "void" that numpy writes for a bfloat16 array
//! (numpy has no bfloat16; big_vision's `utils.recover_dtype` reads such arrays back as
//! bfloat16). Anything else is an error that says what was found, never a panic. The writer
//! produces byte-for-byte what `np.save` writes for the same array.

use std::fmt;
use std::io::Read;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Data starts at a multiple of this (numpy's `ARRAY_ALIGN`).
const ALIGN: usize = 64;
/// numpy leaves room for the first dimension to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// Longest header accepted; real headers are about a hundred bytes.
const MAX_HEADER: usize = 1 << 20;

/// An element type a `.npy` file may hold here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Descr {
    /// `<f4`.
    F32,
    /// `<f2`.
    F16,
    /// `<V2`: bfloat16 bits, as numpy saves an `ml_dtypes.bfloat16` array.
    BF16,
    /// `<f8`.
    F64,
    /// `<i4`.
    I32,
    /// `<i8`.
    I64,
}

impl Descr {
    /// Parses a `descr` string.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "<f4" => Descr::F32,
            "<f2" => Descr::F16,
            "<V2" | "|V2" => Descr::BF16,
            "<f8" => Descr::F64,
            "<i4" => Descr::I32,
            "<i8" => Descr::I64,
            _ if s.starts_with('>') => {
                return Err(format!(
                    "big-endian dtype `{s}` is not supported (save it little-endian, e.g. \
                     `a.astype(a.dtype.newbyteorder('<'))`)"
                ))
            }
            _ => {
                return Err(format!(
                    "unsupported dtype `{s}` (expected <f4, <f2, <f8, <i4, <i8, or <V2 for \
                     bfloat16)"
                ))
            }
        })
    }

    /// The `descr` string numpy writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Descr::F32 => "<f4",
            Descr::F16 => "<f2",
            Descr::BF16 => "<V2",
            Descr::F64 => "<f8",
            Descr::I32 => "<i4",
            Descr::I64 => "<i8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Descr::F16 | Descr::BF16 => 2,
            Descr::F32 | Descr::I32 => 4,
            Descr::F64 | Descr::I64 => 8,
        }
    }
}

impl fmt::Display for Descr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a header says about the data that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub descr: Descr,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
}

impl Header {
    /// Bytes of data the header announces; `None` if that overflows.
    pub fn data_len(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.descr.size(), |n, &d| n.checked_mul(d))
    }
}

/// Reads the magic, version, header length and header from `r`; returns the header and the
/// number of bytes read (the offset of the data).
pub fn read_header(r: &mut impl Read) -> Result<(Header, usize), String> {
    let mut start = [0u8; 8];
    read_exact(r, &mut start, "the magic string")?;
    if &start[..6] != MAGIC {
        return Err(format!(
            "not a .npy array (starts with {:?}, not \\x93NUMPY)",
            String::from_utf8_lossy(&start[..6])
        ));
    }
    let (major, minor) = (start[6], start[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => return Err(format!(".npy version {major}.{minor} is not supported")),
    };
    let mut len = [0u8; 4];
    read_exact(r, &mut len[..len_bytes], "the header length")?;
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > MAX_HEADER {
        return Err(format!(
            "header length {header_len} is implausible (more than {MAX_HEADER} bytes)"
        ));
    }
    let mut text = vec![0u8; header_len];
    read_exact(r, &mut text, "the header")?;
    let header = parse_header(&text)?;
    Ok((header, 8 + len_bytes + header_len))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("truncated .npy: the file ends inside {what}"),
        _ => format!("cannot read {what}: {e}"),
    })
}

/// One value of the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the header dict literal.
pub fn parse_header(text: &[u8]) -> Result<Header, String> {
    let mut p = Parser { s: text, i: 0 };
    let dict = p.dict().map_err(|e| format!("bad header: {e}"))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in dict {
        let slot_taken = match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr.replace(s).is_some(),
            ("fortran_order", Value::Bool(b)) => fortran.replace(b).is_some(),
            ("shape", Value::Tuple(t)) => shape.replace(t).is_some(),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(format!("bad header: `{key}` has the wrong kind of value"))
            }
            _ => false, // numpy writes no other keys; tolerate them
        };
        if slot_taken {
            return Err(format!("bad header: `{key}` appears twice"));
        }
    }
    let missing = |k: &str| format!("bad header: no `{k}`");
    let descr = Descr::parse(&descr.ok_or_else(|| missing("descr"))?)?;
    if fortran.ok_or_else(|| missing("fortran_order"))? {
        return Err(
            "Fortran-order arrays are not supported (save a C-order copy, e.g. \
             `np.ascontiguousarray(a)`)"
                .into(),
        );
    }
    let shape = shape.ok_or_else(|| missing("shape"))?;
    let header = Header { descr, shape };
    if header.data_len().is_none() {
        return Err(format!("shape {:?} is too large", header.shape));
    }
    Ok(header)
}

/// A recursive-descent parser for the one dict literal numpy writes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected `{}` at byte {} but found `{}`",
                c as char, self.i, x as char
            )),
            None => Err(format!("expected `{}` but the header ends", c as char)),
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                break;
            }
            let key = self.string()?;
            self.expect(b':')?;
            items.push((key, self.value()?));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.i)),
            }
        }
        self.skip_ws();
        if self.i != self.s.len() {
            return Err(format!("unexpected text after the dict at byte {}", self.i));
        }
        Ok(items)
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            return Ok(Value::Bool(true));
        }
        if rest.starts_with(b"False") {
            self.i += 5;
            return Ok(Value::Bool(false));
        }
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => self.tuple().map(Value::Tuple),
            Some(b'[') => Err("structured dtypes (a list as `descr`) are not supported".into()),
            Some(c) => Err(format!("unexpected `{}` at byte {}", c as char, self.i)),
            None => Err("the header ends where a value should be".into()),
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b')') => {
                    self.i += 1;
                    return Ok(dims);
                }
                Some(b'0'..=b'9') => {
                    let start = self.i;
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.i += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
                    dims.push(
                        digits
                            .parse()
                            .map_err(|_| format!("dimension {digits} is too large"))?,
                    );
                    // Python 2 wrote longs as `3L`.
                    if self.peek() == Some(b'L') {
                        self.i += 1;
                    }
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b')') => {}
                        _ => return Err(format!("expected `,` or `)` at byte {}", self.i)),
                    }
                }
                Some(b'-') => return Err("negative dimension in `shape`".into()),
                _ => return Err(format!("expected a dimension at byte {}", self.i)),
            }
        }
    }
}

/// The magic, version, length and padded header `np.save` writes before the data of a C-order
/// array of `descr` and `shape`.
pub fn header_bytes(descr: Descr, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_repr}, }}",
        descr.as_str()
    );
    // Room to grow the first axis in place, as numpy leaves it.
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // Version 1.0 has a 2-byte length; 2.0 a 4-byte one (numpy's `_wrap_header`).
    let wrap = |len_bytes: usize| {
        let hlen = dict.len() + 1;
        let pad = ALIGN - (MAGIC.len() + 2 + len_bytes + hlen) % ALIGN;
        (hlen + pad, pad)
    };
    let (major, len_bytes) = if wrap(2).0 <= u16::MAX as usize {
        (1u8, 2)
    } else {
        (2, 4)
    };
    let (total, pad) = wrap(len_bytes);
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + len_bytes + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    out.extend_from_slice(&(total as u32).to_le_bytes()[..len_bytes]);
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(bytes: &[u8]) -> Result<Header, String> {
        read_header(&mut &bytes[..]).map(|(h, _)| h)
    }

    fn with_dict(version: u8, dict: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[version, 0]);
        if version == 1 {
            b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(dict.as_bytes());
        b
    }

    #[test]
    fn header_matches_numpy_bytes() {
        // What `np.save` wrote for an `ml_dtypes.bfloat16` array of shape (3,) (numpy 2.4).
        let want =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<V2', 'fortran_order': False, 'shape': (3,), }";
        let got = header_bytes(Descr::BF16, &[3]);
        assert_eq!(&got[..want.len()], &want[..]);
        assert_eq!(got.len(), 128);
        assert_eq!(got.last(), Some(&b'\n'));
        for shape in [vec![], vec![0], vec![2, 3], vec![123456, 7, 8, 9]] {
            let h = header_bytes(Descr::F32, &shape);
            assert_eq!(h.len() % ALIGN, 0, "{shape:?}");
            let (parsed, offset) = read_header(&mut &h[..]).unwrap();
            assert_eq!(offset, h.len());
            assert_eq!(parsed.shape, shape);
            assert_eq!(parsed.descr, Descr::F32);
        }
    }

    #[test]
    fn long_headers_use_version_two() {
        let shape = vec![1; 30_000];
        let h = header_bytes(Descr::F16, &shape);
        assert_eq!(&h[6..8], &[2, 0]);
        assert_eq!(h.len() % ALIGN, 0);
        let (parsed, offset) = read_header(&mut &h[..]).unwrap();
        assert_eq!((parsed.shape, offset), (shape, h.len()));
    }

    #[test]
    fn accepts_what_numpy_and_older_writers_write() {
        let cases = [
            (
                1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                vec![],
            ),
            (
                1,
                "{'descr':'<f2','fortran_order':False,'shape':(3L, 4L)}  \n",
                vec![3, 4],
            ),
            (
                2,
                r#"{"shape": (5,), "descr": "|V2", "fortran_order": False}"#,
                vec![5],
            ),
            (
                3,
                "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 2), }",
                vec![0, 2],
            ),
        ];
        for (version, dict, shape) in cases {
            let h = header_of(&with_dict(version, dict)).unwrap_or_else(|e| panic!("{dict}: {e}"));
            assert_eq!(h.shape, shape, "{dict}");
        }
        assert_eq!(
            header_of(&with_dict(
                1,
                "{'descr': '|V2', 'fortran_order': False, 'shape': (1,)}"
            ))
            .unwrap()
            .descr,
            Descr::BF16
        );
    }

    #[test]
    fn rejects_bad_headers_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"PK\x03\x04rest", "not a .npy array"),
            (b"\x93NUM", "truncated"),
            (b"\x93NUMPY\x01\x00\x40\x00{'descr'", "truncated"),
            (b"\x93NUMPY\x09\x00\x00\x00", "version 9.0"),
        ];
        for (bytes, want) in cases {
            let err = header_of(bytes).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let dicts = [
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                "Fortran",
            ),
            (
                "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                "big-endian",
            ),
            (
                "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                "`<c8`",
            ),
            (
                "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
                "`|O`",
            ),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
                "structured",
            ),
            ("{'descr': '<f4', 'fortran_order': False}", "no `shape`"),
            ("{'fortran_order': False, 'shape': (2,)}", "no `descr`"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
                "negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 'False', 'shape': (2,)}",
                "wrong kind",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
                "unexpected `0`",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
                "twice",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
                "after the dict",
            ),
            (
                "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
                "expected",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2",
                "expected",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
                "too large",
            ),
        ];
        for (dict, want) in dicts {
            let err = header_of(&with_dict(1, dict)).unwrap_err();
            assert!(err.contains(want), "{dict}: {err}");
        }
    }
}
