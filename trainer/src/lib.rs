//! # cappa-trainer — train CapPa models on the kernels cappa runs them with
//!
//! Training drives the runtime's own model: `cappa::Model` with the feature `train`, whose
//! layers carry their reverse passes beside their forward passes (written once, by hand, over
//! `cappa::TrainBackend`), so it runs on the CPU oracle and on the wgpu backend, whose backward
//! kernels sit beside the forward ones in `wgsl/`. The trainer holds a `Model` and updates its
//! parameter tensors in place; a model trained here is a `cappa` model file and runs in `cappa`
//! bit for bit as it was trained. This crate adds what a training run needs around that:
//!
//! * [`optim`] — AdamW with the reference's update order, warm-up + cosine, clipping.
//! * [`mixing`] — CapPa's per-example choice between Cap and Pa, seeded.
//! * [`data`] — JSONL or folder datasets decoded, resized and tokenized on background threads.
//! * [`train`] — the training loop, validation, and checkpoints that resume exactly.
//! * [`shapes`] — the shapes world: seeded scenes of coloured shapes and their captions.
//! * [`eval`] — captioning, zero-shot, word-order and linear-probe evaluations on it.
//! * [`log`] — a run's log of losses and evaluations (`log.jsonl`).
//! * [`plot`] — training curves of runs, drawn from their logs.
//!
//! Gradients match the reference implementation's (`grad_cap/*`, `grad_pa/*` of the golden
//! fixture) on both backends; see `trainer/tests/`.

#![deny(missing_docs)]

pub mod data;
pub mod eval;
pub mod log;
pub mod mixing;
pub mod optim;
pub mod plot;
pub mod shapes;
pub mod train;

pub use optim::{AdamState, OptimConfig};
pub use train::{RunConfig, Trainer};
