//! Turning images into captions: greedy decoding, sampling and beam search (Cap, with a KV
//! cache), and one-shot parallel decoding (Pa: argmax of the all-`[MASK]` logits at full
//! `max_len`).
//!
//! The reference has no generation routine; its fixtures define greedy decoding as: start from
//! BOS, feed back the argmax of each step's logits (PAD and EOS included as classes).
//!
//! Token choice happens in backend ops ([`Backend::argmax`], [`Backend::sample`],
//! [`Backend::beam_candidates`]), so a device backend reads back only the chosen ids each step
//! (beam search also reads its `2·width` candidate scores per image). Log-probabilities are
//! gathered on the device and read once at the end.
//!
//! [`Model::caption_tokens`] is the entry point; [`Model::greedy`] is the lower-level greedy
//! decoder that can also keep every step's logits (the fixtures' convention).
//! [`Model::caption_tokens_async`] is the same without blocking (web pages): the loops are
//! written once and read through [`Wait`](crate::wait) either way.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::backend::{Backend, Mask, Sampling};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tensor::{HostTensor, Tokens};
use crate::wait::{now, Wait};

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

/// How [`Model::caption_tokens`] chooses tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Decode {
    /// The most likely token at each step (first maximum on ties); one caption per image.
    #[default]
    Greedy,
    /// Beam search; `width` captions per image, best first.
    Beam(Beam),
    /// Random draws with temperature / top-k / top-p; one caption per image.
    Sample(Sample),
    /// One Pa pass (all `[MASK]` inputs, bidirectional), each position's argmax; one caption
    /// per image. Needs a CapPa checkpoint (one with the `[MASK]` embedding row).
    Parallel,
}

/// Options of beam search.
///
/// Each image keeps `width` live hypotheses. Every step scores all their continuations (sum of
/// token log-probabilities) and keeps, per image, the best `2·width`, in order: a continuation
/// ending in EOS among the first `width` becomes a finished hypothesis (the EOS itself is
/// never continued); the others fill the `width` live beams. Finished hypotheses are ranked
/// by [`Beam::score`], and an image is done when it has `width` of them and no live
/// hypothesis could still beat the worst (its log-probability can only fall, its length
/// penalty only move towards [`Beam::score`]'s most favourable length), or at `max_len`,
/// where the live hypotheses finish without EOS.
///
/// With `width == 1` and `length_penalty == 0` this is exactly greedy decoding stopped at EOS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beam {
    /// Hypotheses kept per image, and captions returned per image (fewer only when the model
    /// cannot produce that many distinct finite-probability captions within `max_len`).
    pub width: usize,
    /// GNMT length penalty `α` (Wu et al. 2016): a caption of `len` tokens (its EOS counted)
    /// and log-probability `lp` scores `lp / ((5 + len) / 6)^α`. `0` ranks by log-probability
    /// alone, which favours short captions; larger values favour longer ones.
    pub length_penalty: f32,
}

impl Default for Beam {
    /// Width 4, `α = 0.6` (the GNMT paper's value).
    fn default() -> Self {
        Beam {
            width: 4,
            length_penalty: 0.6,
        }
    }
}

impl Beam {
    /// The length-normalised score of a caption with log-probability `log_prob` and `len`
    /// tokens (EOS included): `log_prob / ((5 + len) / 6)^α`, the power taken in `f64`.
    pub fn score(&self, log_prob: f32, len: usize) -> f32 {
        log_prob / self.penalty(len)
    }

    /// `((5 + len) / 6)^α` (exactly 1 when `α = 0`).
    pub(crate) fn penalty(&self, len: usize) -> f32 {
        if self.length_penalty == 0.0 {
            return 1.0;
        }
        crate::math::powf((5.0 + len as f64) / 6.0, self.length_penalty as f64) as f32
    }

    /// Checks the options for a vocabulary of `vocab` tokens.
    pub(crate) fn check(&self, vocab: usize) -> Result<()> {
        if self.width == 0 {
            return Err(Error::InvalidInput(
                "beam width 0 must be at least 1".into(),
            ));
        }
        crate::limits::check_beam_width(self.width)?;
        let candidates = (self.width as u64).checked_mul(vocab as u64);
        if candidates.is_none_or(|c| c > u32::MAX as u64) {
            return Err(Error::InvalidInput(format!(
                "beam width {} × vocabulary {vocab} must be below 2^32",
                self.width
            )));
        }
        if !self.length_penalty.is_finite() {
            return Err(Error::InvalidInput(format!(
                "beam length_penalty {} must be finite",
                self.length_penalty
            )));
        }
        Ok(())
    }
}

/// Options of sampling: the distribution (see [`crate::ops::sample`] for the exact rules) and
/// the seed. The same seed, images and options give the same captions on every backend; image
/// `b` of a batch draws from row `b`, step `i` of its caption with counter `i`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Temperature, top-k and top-p.
    pub sampling: Sampling,
    /// Seed of the counter-based random numbers.
    pub seed: u64,
}

/// Options shared by every [`Decode`] strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// Tokens per caption at most, EOS included (default: the model's `max_len`; must be in
    /// `1..=max_len`). Parallel decoding always runs its pass at the full `max_len` (its logits
    /// depend on the length) and cuts the captions here.
    pub max_len: Option<usize>,
}

/// A decoded caption.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Caption {
    /// The tokens, without BOS and without the final EOS.
    pub tokens: Vec<u32>,
    /// Sum of the model's log-probabilities of the tokens (temperature 1, no filtering), the
    /// final EOS included when the caption ended with one: the teacher-forced Cap score of the
    /// caption. For [`Decode::Parallel`], the same sum under the Pa logits.
    pub log_prob: f32,
    /// The value captions are ranked by: [`Beam::score`] for beam search, else `log_prob`.
    pub score: f32,
    /// Whether the caption ended with EOS; if not, it reached `max_len` or was stopped by the
    /// [`OnToken`] callback.
    pub eos: bool,
    /// The tokens as text, when the model has a tokenizer (else empty).
    pub text: String,
}

/// A token added to a caption while decoding (see [`OnToken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent<'a> {
    /// The image's index in the batch.
    pub image: usize,
    /// The new token.
    pub token: u32,
    /// The caption so far, ending with `token`. For beam search, the best live hypothesis after
    /// this step, which need not extend the previous event's caption.
    pub tokens: &'a [u32],
}

/// A streaming callback: called once per image for every token added to its caption (EOS is
/// not reported; it ends the caption), in image order within a step. Returning `false` stops
/// that image: its caption ends after this token (beam search: its live hypotheses finish as
/// they are). The other images go on.
pub type OnToken<'a> = &'a mut dyn FnMut(TokenEvent<'_>) -> bool;

/// How the autoregressive loop picks each token.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Argmax,
    Sample(Sampling, u64),
}

/// What the autoregressive loop produced.
struct Run {
    tokens: Vec<Vec<u32>>,
    log_probs: Vec<f32>,
    /// Per row: ended with EOS.
    eos: Vec<bool>,
    logits: Option<HostTensor>,
}

impl<B: Backend> Model<B> {
    /// Captions (as tokens) for `encoded [B, patches, E]`: one list per image, best first
    /// (`width` captions for beam search, one otherwise). `on_token` streams the tokens as they
    /// are chosen and may stop images early (see [`OnToken`]).
    pub fn caption_tokens(
        &self,
        encoded: &B::Tensor,
        decode: &Decode,
        opts: &DecodeOptions,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        now(self.caption_tokens_in(Wait::Block, encoded, decode, opts, on_token))
    }

    /// [`Model::caption_tokens`] without blocking: every read from the device is awaited
    /// ([`Backend::download_with_ids_async`], ...), so a web page's event loop can run while
    /// the GPU works. Same captions as the blocking method.
    pub async fn caption_tokens_async(
        &self,
        encoded: &B::Tensor,
        decode: &Decode,
        opts: &DecodeOptions,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        self.caption_tokens_in(Wait::Async, encoded, decode, opts, on_token)
            .await
    }

    async fn caption_tokens_in(
        &self,
        wait: Wait,
        encoded: &B::Tensor,
        decode: &Decode,
        opts: &DecodeOptions,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        let batch = self.check_encoded(encoded, None)?;
        let steps = self.steps(opts.max_len, "decode")?;
        // What the decoding will hold, checked before any of it is allocated.
        let l = self.config().max_len;
        let (rows, len, per_pass) = match decode {
            Decode::Beam(beam) => {
                beam.check(self.config().vocab_size)?;
                (batch.saturating_mul(beam.width), steps, 1)
            }
            Decode::Parallel => (batch, l, l),
            Decode::Greedy | Decode::Sample(_) => (batch, steps, 1),
        };
        crate::limits::check_decode(self.config(), rows, len, per_pass)?;
        let mut captions = self
            .captions_without_text(wait, encoded, decode, steps, on_token)
            .await?;
        if let Some(tok) = self.tokenizer() {
            for c in captions.iter_mut().flatten() {
                c.text = tok.decode(&c.tokens);
            }
        }
        Ok(captions)
    }

    async fn captions_without_text(
        &self,
        wait: Wait,
        encoded: &B::Tensor,
        decode: &Decode,
        steps: usize,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        let pick = match decode {
            Decode::Beam(beam) => {
                return self.beam_search(wait, encoded, beam, steps, on_token).await
            }
            Decode::Parallel => {
                return self.parallel_captions(wait, encoded, steps, on_token).await
            }
            Decode::Greedy => Pick::Argmax,
            Decode::Sample(s) => {
                crate::ops::sample::check_op(&s.sampling)?;
                Pick::Sample(s.sampling, s.seed)
            }
        };
        let run = self
            .autoregressive(wait, encoded, pick, steps, true, false, on_token)
            .await?;
        Ok(run
            .tokens
            .into_iter()
            .zip(run.log_probs)
            .zip(run.eos)
            .map(|((tokens, log_prob), eos)| {
                vec![Caption {
                    tokens,
                    log_prob,
                    score: log_prob,
                    eos,
                    text: String::new(),
                }]
            })
            .collect())
    }

    /// Greedy decoding of `encoded [B, patches, E]` with a KV cache: the cross-attention keys
    /// and values are computed once, each step appends one row to the self-attention cache.
    /// Rows decode together; a row that is done stops collecting tokens.
    pub fn greedy(&self, encoded: &B::Tensor, opts: &Greedy) -> Result<GreedyOutput> {
        let batch = self.check_encoded(encoded, None)?;
        let steps = self.steps(opts.max_len, "greedy")?;
        // Kept logits are `[batch, steps, V]`, as large as a full pass's.
        let per_pass = if opts.keep_logits { steps } else { 1 };
        crate::limits::check_decode(self.config(), batch, steps, per_pass)?;
        let run = now(self.autoregressive(
            Wait::Block,
            encoded,
            Pick::Argmax,
            steps,
            opts.stop_at_eos,
            opts.keep_logits,
            None,
        ))?;
        Ok(GreedyOutput {
            tokens: run.tokens,
            logits: run.logits,
        })
    }

    /// The number of decoding steps for `max_len` (default: the config's).
    fn steps(&self, max_len: Option<usize>, what: &str) -> Result<usize> {
        let limit = self.config().max_len;
        let steps = max_len.unwrap_or(limit);
        if steps == 0 || steps > limit {
            return Err(Error::InvalidInput(format!(
                "{what} max_len {steps} must be in 1..={limit}"
            )));
        }
        Ok(steps)
    }

    /// Greedy or sampled decoding, every row in one batch through the KV cache.
    #[allow(clippy::too_many_arguments)]
    async fn autoregressive(
        &self,
        wait: Wait,
        encoded: &B::Tensor,
        pick: Pick,
        steps: usize,
        stop_at_eos: bool,
        keep_logits: bool,
        mut on_token: Option<OnToken<'_>>,
    ) -> Result<Run> {
        let be = self.backend();
        let cfg = self.config();
        let batch = be.shape(encoded)[0];
        let mut cache = self.decoder().start(be, encoded)?;
        let mut ids = be.upload_ids(&[batch, 1], &vec![cfg.bos_id; batch])?;
        // −log p of each row's chosen tokens so far (read with the ids: one round trip a step).
        let mut nll = vec![0.0f32; batch];
        let mut tokens = vec![Vec::new(); batch];
        let mut done = vec![false; batch];
        let mut eos = vec![false; batch];
        let mut step_logits = Vec::new();
        for step in 0..steps {
            let logits = self.decoder().step(be, &mut cache, &ids)?;
            if keep_logits {
                step_logits.push(wait.download(be, &logits).await?);
            }
            let next = match pick {
                Pick::Argmax => be.argmax(&logits)?,
                Pick::Sample(op, seed) => be.sample(&logits, op, seed, step as u32)?,
            };
            let ce = be.cross_entropy(&logits, &next, 0.0)?;
            let (ce, chosen) = wait.download_with_ids(be, &ce, &next).await?;
            for (b, t) in chosen.into_iter().enumerate() {
                if done[b] {
                    continue;
                }
                // The caption's tokens and its EOS count; steps after a row is done do not.
                nll[b] += ce.data()[b];
                if stop_at_eos && t == cfg.eos_id {
                    (done[b], eos[b]) = (true, true);
                    continue;
                }
                tokens[b].push(t);
                if let Some(f) = on_token.as_mut() {
                    let event = TokenEvent {
                        image: b,
                        token: t,
                        tokens: &tokens[b],
                    };
                    done[b] = !f(event);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            ids = next;
        }
        let log_probs = nll.iter().map(|&n| -n).collect();
        let logits = match keep_logits {
            true => Some(interleave_steps(&step_logits, batch)?),
            false => None,
        };
        Ok(Run {
            tokens,
            log_probs,
            eos,
            logits,
        })
    }

    /// The Pa pass: logits `[B, max_len, V]` of all-`[MASK]` inputs and their argmax.
    fn parallel_pass(&self, encoded: &B::Tensor) -> Result<(B::Tensor, B::Ids)> {
        let cfg = self.config();
        if !cfg.has_mask_token() {
            return Err(Error::PaUnavailable);
        }
        let be = self.backend();
        let batch = self.check_encoded(encoded, None)?;
        let l = cfg.max_len;
        crate::limits::check_decode(cfg, batch, l, l)?;
        let ids = be.upload_ids(&[batch, l], &vec![cfg.mask_token(); batch * l])?;
        let logits = self.decoder().forward(be, encoded, &ids, l, Mask::None)?;
        let best = be.argmax(&logits)?;
        Ok((logits, best))
    }

    /// Raw parallel decoding: the argmax of the Pa logits (all `[MASK]` inputs, full `max_len`,
    /// no mask) as `[B, max_len]`, nothing cut.
    pub fn parallel_tokens(&self, encoded: &B::Tensor) -> Result<Tokens> {
        let (_, best) = self.parallel_pass(encoded)?;
        let best = self.backend().download_ids(&best)?;
        let l = self.config().max_len;
        Tokens::new(best, self.backend().shape(encoded)[0], l)
    }

    /// Parallel decoding: one Pa pass, each caption cut before its first EOS.
    pub fn parallel_decode(&self, encoded: &B::Tensor) -> Result<Vec<Vec<u32>>> {
        let raw = self.parallel_tokens(encoded)?;
        Ok((0..raw.batch())
            .map(|b| cut_at_eos(raw.row(b), self.config().eos_id))
            .collect())
    }

    /// [`Decode::Parallel`]: captions cut before the first EOS or at `steps` tokens, with their
    /// Pa log-probabilities.
    async fn parallel_captions(
        &self,
        wait: Wait,
        encoded: &B::Tensor,
        steps: usize,
        mut on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        let be = self.backend();
        let (logits, best) = self.parallel_pass(encoded)?;
        let nll = be.cross_entropy(&logits, &best, 0.0)?;
        let (nll, best) = wait.download_with_ids(be, &nll, &best).await?;
        let (l, eos) = (self.config().max_len, self.config().eos_id);
        let mut out = Vec::new();
        for (b, (row, nll)) in best.chunks(l).zip(nll.data().chunks(l)).enumerate() {
            let mut tokens = Vec::new();
            let mut counted = 0;
            let mut ended = false;
            for &t in &row[..steps] {
                counted += 1;
                if t == eos {
                    ended = true;
                    break;
                }
                tokens.push(t);
                if let Some(f) = on_token.as_mut() {
                    if !f(TokenEvent {
                        image: b,
                        token: t,
                        tokens: &tokens,
                    }) {
                        break;
                    }
                }
            }
            let log_prob = -nll[..counted].iter().sum::<f32>();
            out.push(vec![Caption {
                tokens,
                log_prob,
                score: log_prob,
                eos: ended,
                text: String::new(),
            }]);
        }
        Ok(out)
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
