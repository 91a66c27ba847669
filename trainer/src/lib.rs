//! # cappa-trainer — train CapPa models on the kernels cappa runs them with
//!
//! The reverse pass of the fixed CapPa architecture (Tschannen et al., 2023, arXiv:2306.07915),
//! written once by hand over `cappa`'s [`Backend`] trait, so it runs on the CPU oracle and on
//! the wgpu backend, whose backward kernels sit beside the forward ones in `wgsl/`. A model
//! trained here is a `cappa` model file and runs in `cappa` bit for bit as it was trained.
//!
//! * [`net`] — the forward pass keeping what the reverse pass needs, and the reverse pass.
//! * [`params`] — the parameters by reference path, the reference initialisers, model files.
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
pub mod net;
pub mod optim;
pub mod params;
pub mod plot;
pub mod shapes;
pub mod train;

use cappa::loss::{caption_loss, LossOutput};
use cappa::{HostTensor, Mode, Result, Tokens, TrainBackend};

pub use net::{Grads, Net};
pub use optim::{AdamState, OptimConfig};
pub use params::Params;
pub use train::{RunConfig, Trainer};

/// The reference training loss of one batch (images `[B, H, W, C]` in [-1, 1], caption targets,
/// a mode per caption) and its gradient with respect to every parameter.
pub fn loss_and_grads<B: TrainBackend>(
    be: &B,
    net: &Net,
    params: &Params<B>,
    images: &HostTensor,
    targets: &Tokens,
    modes: &[Mode],
    label_smoothing: f32,
) -> Result<(LossOutput, Grads<B>)> {
    let images = be.upload(images)?;
    let tape = net.forward(be, params, &images, targets, modes)?;
    // The reverse pass is recorded before the loss is read back, so a device backend submits
    // the whole step at once.
    let grads = net.backward(be, params, &tape, label_smoothing)?;
    let loss = caption_loss(
        be,
        &tape.logits,
        targets,
        net.config().pad_id,
        label_smoothing,
    )?;
    Ok((loss, grads))
}
