//! # cappa — CapPa image captioning, anywhere
//!
//! CapPa (Tschannen et al., 2023, *Image Captioners Are Scalable Vision Learners Too*,
//! arXiv:2306.07915) pairs a ViT image encoder with a transformer text decoder trained on two
//! tasks: **Cap** (autoregressive captioning, causal mask, teacher forcing) and **Pa** (parallel
//! prediction: every decoder input is `[MASK]`, attention is bidirectional, all tokens come out
//! in one pass).
//!
//! This crate runs such models exactly as the public reference implementation (big_vision) does.
//! The model is written once, over the [`Backend`] trait; the [`CpuBackend`] is exact `f32`, works
//! without `std`, and is the oracle every other backend is tested against.
//!
//! * [`Config`] — every hyperparameter, named as in the reference configs.
//! * [`Checkpoint`] — a parsed `.safetensors` file (tensor names are the reference's parameter
//!   paths), in the single-file form (config in `__metadata__`) or the folder form.
//! * [`Model`] — encoder + decoder over a backend: logits in both modes, loss, captions
//!   ([`Model::caption_tokens`]: greedy, beam search and sampling with a KV cache, one-shot
//!   parallel decoding, with a streaming callback), zero-shot classification
//!   ([`Model::classify_tokens`]), GAP features.
//! * [`Backend`] — the ops, token choice included ([`Backend::sample`],
//!   [`Backend::beam_candidates`]), so a GPU reads back only the chosen ids while decoding.
//! * [`Tokenizer`] — captions and prompts to ids and back: SentencePiece (exactly as the
//!   reference library) or a word list.
//!
//! ```
//! use cappa::{
//!     Backend, Beam, Classify, Config, CpuBackend, Decode, DecodeOptions, HostTensor, Model, Mode,
//!     Tokens,
//! };
//!
//! // A tiny random model, built in memory (real models load from a file).
//! let config = Config::tiny_for_tests();
//! let model = Model::random(&config, 7, CpuBackend::new()).unwrap();
//!
//! let images = HostTensor::zeros(&[1, config.image_size, config.image_size, 3]);
//! let encoded = model.encode(&images).unwrap();
//! let caption = model.parallel_decode(&encoded).unwrap();
//! assert_eq!(caption.len(), 1);
//! let tokens = Tokens::new(vec![3, 4, 1, 0], 1, 4).unwrap();
//! let logits = model.logits(&encoded, &tokens, Mode::Cap).unwrap();
//! assert_eq!(model.backend().download(&logits).unwrap().shape(), &[1, 4, config.vocab_size]);
//!
//! // Three captions by beam search, best first, each with its log-probability.
//! let beam = Decode::Beam(Beam { width: 3, ..Beam::default() });
//! let captions = model.caption_tokens(&encoded, &beam, &DecodeOptions::default(), None).unwrap();
//! assert_eq!(captions[0].len(), 3);
//! // Zero-shot: which of two captions fits the image better.
//! let candidates = Tokens::new(vec![3, 1, 0, 4, 5, 1], 2, 3).unwrap();
//! let result = model.classify_tokens(&encoded, &candidates, &Classify::default()).unwrap();
//! assert_eq!(result.probabilities.shape(), &[1, 2]);
//! ```
//!
//! Features: `std` (default) adds file loading, threads and a fast GEMM to the CPU backend.
//! Without it the crate is `no_std` + `alloc`.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod api;
pub mod backend;
mod beam;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod decoder;
pub mod decoding;
pub mod device;
pub mod encoder;
pub mod error;
#[cfg(feature = "std")]
pub mod files;
pub mod formats;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod image;
mod lanes;
pub mod layers;
pub mod limits;
pub mod loss;
mod math;
pub mod model;
pub mod ops;
pub mod pooling;
pub mod rng;
pub mod safetensors_io;
pub mod scoring;
pub mod tensor;
mod threads;
pub mod tokenizer;
mod wait;
pub mod weights;

pub use api::{ClassifyText, Image, Pool};
#[cfg(feature = "train")]
pub use backend::TrainBackend;
pub use backend::{Backend, Mask, Sampling};
pub use checkpoint::Checkpoint;
pub use config::{Config, PosEmb};
pub use cpu::{CpuBackend, Gemm};
pub use decoding::{
    Beam, Caption, Decode, DecodeOptions, Greedy, GreedyOutput, OnToken, Sample, TokenEvent,
};
pub use device::{Device, DeviceKind, DeviceOptions};
pub use error::{Error, Result};
pub use formats::{Precision, StoredTensor};
#[cfg(feature = "gpu")]
pub use gpu::{GpuBackend, GpuOptions};
pub use loss::LossOutput;
pub use model::{Mode, Model};
pub use safetensors_io::DType;
pub use scoring::{Classification, Classify};
pub use tensor::{HostTensor, Tokens};
#[cfg(all(feature = "std", not(target_family = "wasm")))]
pub use threads::streaming_sum;
pub use tokenizer::Tokenizer;
