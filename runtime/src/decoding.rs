//! Turning images into captions: greedy autoregressive decoding (Cap, with a KV cache) and
//! one-shot parallel decoding (Pa: argmax of the all-`[MASK]` logits at full `max_len`).
//!
//! The reference has no generation routine; its fixtures define greedy decoding as: start from
//! BOS, feed back the argmax of each step's logits (PAD and EOS included as classes).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::backend::{Backend, Mask};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tensor::{HostTensor, Tokens};

/// Options of greedy decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greedy {
    /// Steps at most (default: the model's `max_len`).
    pub max_len: Option<usize>,
    /// Stop a row at its first EOS and leave the EOS out of its caption (default). When false,
    /// every row runs all steps and keeps every token, EOS and beyond (the fixtures' convention).
    pub stop_at_eos: bool,
    /// Keep each step's logits (`[B, steps, V]`, read back every step).
    pub keep_logits: bool,
}

impl Default for Greedy {
    fn default() -> Self {
        Greedy {
            max_len: None,
            stop_at_eos: true,
            keep_logits: false,
        }
    }
}

/// The result of greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyOutput {
    /// One token list per image.
    pub tokens: Vec<Vec<u32>>,
    /// The logits each token was chosen from, `[B, steps, V]`, if asked for.
    pub logits: Option<HostTensor>,
}

/// Cuts a token row before its first EOS.
pub fn cut_at_eos(row: &[u32], eos: u32) -> Vec<u32> {
    row.iter().copied().take_while(|&t| t != eos).collect()
}

impl<B: Backend> Model<B> {
    /// Greedy decoding of `encoded [B, patches, E]` with a KV cache: the cross-attention keys
    /// and values are computed once, each step appends one row to the self-attention cache.
    pub fn greedy(&self, encoded: &B::Tensor, opts: &Greedy) -> Result<GreedyOutput> {
        let be = self.backend();
        let cfg = self.config();
        let batch = self.check_encoded(encoded, None)?;
        let steps = opts.max_len.unwrap_or(cfg.max_len);
        if steps == 0 || steps > cfg.max_len {
            return Err(Error::InvalidInput(format!(
                "greedy max_len {steps} must be in 1..={}",
                cfg.max_len
            )));
        }
        let mut cache = self.decoder().start(be, encoded)?;
        let mut ids = be.upload_ids(&[batch, 1], &vec![cfg.bos_id; batch])?;
        let mut tokens = vec![Vec::new(); batch];
        let mut done = vec![false; batch];
        let mut step_logits = Vec::new();
        for _ in 0..steps {
            let logits = self.decoder().step(be, &mut cache, &ids)?;
            if opts.keep_logits {
                step_logits.push(be.download(&logits)?);
            }
            let next = be.argmax(&logits)?;
            for (b, t) in be.download_ids(&next)?.into_iter().enumerate() {
                if done[b] {
                    continue;
                }
                if opts.stop_at_eos && t == cfg.eos_id {
                    done[b] = true;
                } else {
                    tokens[b].push(t);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            ids = next;
        }
        let logits = match opts.keep_logits {
            true => Some(interleave_steps(&step_logits, batch)?),
            false => None,
        };
        Ok(GreedyOutput { tokens, logits })
    }

    /// Raw parallel decoding: the argmax of the Pa logits (all `[MASK]` inputs, full `max_len`,
    /// no mask) as `[B, max_len]`, nothing cut.
    pub fn parallel_tokens(&self, encoded: &B::Tensor) -> Result<Tokens> {
        let cfg = self.config();
        if !cfg.has_mask_token() {
            return Err(Error::PaUnavailable);
        }
        let be = self.backend();
        let batch = self.check_encoded(encoded, None)?;
        let l = cfg.max_len;
        let ids = be.upload_ids(&[batch, l], &vec![cfg.mask_token(); batch * l])?;
        let logits = self.decoder().forward(be, encoded, &ids, l, Mask::None)?;
        let best = be.download_ids(&be.argmax(&logits)?)?;
        Tokens::new(best, batch, l)
    }

    /// Parallel decoding: one Pa pass, each caption cut before its first EOS.
    pub fn parallel_decode(&self, encoded: &B::Tensor) -> Result<Vec<Vec<u32>>> {
        let raw = self.parallel_tokens(encoded)?;
        Ok((0..raw.batch())
            .map(|b| cut_at_eos(raw.row(b), self.config().eos_id))
            .collect())
    }
}

/// Stacks per-step logits `[B, 1, V]` into `[B, steps, V]`.
fn interleave_steps(steps: &[HostTensor], batch: usize) -> Result<HostTensor> {
    let v = steps.first().map_or(0, |s| s.shape()[2]);
    let mut out = vec![0.0f32; batch * steps.len() * v];
    for (t, s) in steps.iter().enumerate() {
        for b in 0..batch {
            let dst = (b * steps.len() + t) * v;
            out[dst..dst + v].copy_from_slice(&s.data()[b * v..(b + 1) * v]);
        }
    }
    HostTensor::new(&[batch, steps.len(), v], out)
}
