//! The one error type of the crate. Every failure on bad input is one of these, never a panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Result with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong when loading or running a model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a valid safetensors file: truncated, a header length beyond the end of
    /// the file, malformed JSON, or tensor offsets that do not match the data.
    MalformedFile(String),
    /// A parameter the configuration requires is absent from the weights.
    MissingTensor {
        /// Reference parameter path, e.g. `decoder/LogitsDense/kernel`.
        name: String,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// A parameter exists but its shape disagrees with the configuration.
    ShapeMismatch {
        /// Reference parameter path.
        name: String,
        /// Shape the configuration implies.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// The file holds a tensor the configuration does not use.
    UnexpectedTensor {
        /// Name of the tensor in the file.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor has an element type the model cannot use (only f32, f16 and bf16 are accepted).
    UnsupportedDtype {
        /// Name of the tensor.
        name: String,
        /// Element type found in the file.
        dtype: String,
    },
    /// A quantised (q8) tensor breaks the rules of the format (see [`crate::formats`]): no
    /// scheme in the file's metadata, a missing or misshapen scale tensor, a bad scale or value,
    /// or a parameter that may not be quantised.
    Quantization {
        /// Name of the tensor.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The configuration is missing, unparsable, or inconsistent.
    Config(String),
    /// An input tensor has the wrong shape.
    InputShape {
        /// What the input is (e.g. `images`).
        what: String,
        /// Expected shape (0 marks a free dimension).
        expected: Vec<usize>,
        /// Shape given.
        found: Vec<usize>,
    },
    /// A token id is outside the range the model accepts.
    TokenOutOfRange {
        /// The offending id.
        token: i64,
        /// Flat index of the token in its input.
        index: usize,
        /// Exclusive upper bound.
        limit: u32,
    },
    /// Any other invalid argument, with a description.
    InvalidInput(String),
    /// Parallel (Pa) decoding was asked of a Cap-only checkpoint (its embedding has no `[MASK]` row).
    PaUnavailable,
    /// Reading or writing a file failed.
    Io(String),
    /// The compute backend failed.
    Backend(String),
    /// A tokenizer could not be loaded: a malformed SentencePiece `.model` (bad protobuf,
    /// inconsistent pieces, broken normalization table), a bad word list, or bad
    /// `cappa.tokenizer` metadata.
    Tokenizer(String),
    /// A size that a config or a request implies is over one of cappa's documented limits
    /// ([`crate::limits`]); the check runs before anything of that size is allocated.
    Limit {
        /// The quantity, e.g. `image tokens per image, (image_size / patch_size)²`.
        what: String,
        /// Its value.
        value: u64,
        /// The limit it exceeds.
        limit: u64,
        /// The name of the limit in [`crate::limits`], e.g. `MAX_IMAGE_TOKENS`.
        name: &'static str,
    },
    /// A weight of the model file is NaN or infinite: every output would be meaningless.
    NonFiniteWeight {
        /// Name of the tensor.
        name: String,
        /// Flat index of the first non-finite value.
        index: usize,
    },
    /// Memory for a tensor whose size comes from the input could not be allocated.
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// An error concerning a file, with its path (what [`crate::Checkpoint::load`] returns).
    File {
        /// The file, as given.
        path: String,
        /// What went wrong.
        error: alloc::boxed::Box<Error>,
    },
}

impl Error {
    /// The error beneath any [`Error::File`] wrappers (what to match on).
    pub fn root(&self) -> &Error {
        match self {
            Error::File { error, .. } => error.root(),
            other => other,
        }
    }

    /// Wraps the error with the file it concerns (once: an error already about `path` is
    /// returned as it is).
    pub fn in_file(self, path: impl Into<String>) -> Error {
        let path = path.into();
        match self {
            Error::File { path: p, error } if p == path => Error::File { path: p, error },
            other => Error::File {
                path,
                error: alloc::boxed::Box::new(other),
            },
        }
    }
}

fn shape(s: &[usize]) -> ShapeFmt<'_> {
    ShapeFmt(s)
}

struct ShapeFmt<'a>(&'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if *d == 0 {
                f.write_str("_")?;
            } else {
                write!(f, "{d}")?;
            }
        }
        f.write_str("]")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MalformedFile(m) => write!(f, "malformed safetensors file: {m}"),
            Error::MissingTensor { name, expected } if expected.is_empty() => {
                write!(f, "missing tensor `{name}`")
            }
            Error::MissingTensor { name, expected } => write!(
                f,
                "missing tensor `{name}` (expected shape {})",
                shape(expected)
            ),
            Error::ShapeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor `{name}` has shape {} but the config implies {}",
                shape(found),
                shape(expected)
            ),
            Error::UnexpectedTensor { name, shape: s } => write!(
                f,
                "unexpected tensor `{name}` {} (not a parameter of this config)",
                shape(s)
            ),
            Error::UnsupportedDtype { name, dtype } => write!(
                f,
                "tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported (and I8 \
                 in a q8 model file)"
            ),
            Error::Quantization { name, problem } => {
                write!(f, "tensor `{name}`: {problem}")
            }
            Error::Config(m) => write!(f, "invalid config: {m}"),
            Error::InputShape {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} has shape {} but the model expects {}",
                shape(found),
                shape(expected)
            ),
            Error::TokenOutOfRange {
                token,
                index,
                limit,
            } => write!(
                f,
                "token id {token} at index {index} is out of range (must be in 0..{limit})"
            ),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::PaUnavailable => write!(
                f,
                "parallel (Pa) decoding needs a [MASK] embedding row; this is a Cap-only checkpoint"
            ),
            Error::Io(m) => write!(f, "I/O error: {m}"),
            Error::Backend(m) => write!(f, "backend error: {m}"),
            Error::Tokenizer(m) => write!(f, "invalid tokenizer: {m}"),
            Error::Limit {
                what,
                value,
                limit,
                name,
            } => write!(
                f,
                "{what} is {value}, over cappa's limit of {limit} (cappa::limits::{name})"
            ),
            Error::NonFiniteWeight { name, index } => write!(
                f,
                "tensor `{name}` holds a non-finite value (NaN or infinity) at index {index}; \
                 the model's outputs would be meaningless"
            ),
            Error::OutOfMemory { what, bytes } => {
                write!(f, "out of memory: cannot allocate {bytes} bytes for {what}")
            }
            Error::File { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(alloc::format!("{e}"))
    }
}
