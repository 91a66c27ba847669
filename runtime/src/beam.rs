//! Beam search over the KV-cache decoder (the rules are on [`Beam`]).
//!
//! All images decode in one batch of `images × width` rows. Each image's cross-attention keys
//! and values are computed once and repeated for its beams by [`KvCache::select`]. Per step
//! the device ranks every continuation ([`Backend::beam_candidates`]) and the host reads back
//! the `2·width` best per image (ids and scores) to keep finished hypotheses aside; the self
//! attention cache then follows the surviving beams' parents ([`KvCache::reorder`]), and images
//! that are done leave the batch.
//!
//! [`KvCache::select`]: crate::decoder::KvCache::select
//! [`KvCache::reorder`]: crate::decoder::KvCache::reorder

use alloc::vec;
use alloc::vec::Vec;

use crate::backend::Backend;
use crate::decoding::{Beam, Caption, OnToken, TokenEvent};
use crate::error::Result;
use crate::model::Model;
use crate::tensor::HostTensor;

/// A live hypothesis: its tokens (no BOS) and the sum of their log-probabilities. An empty
/// beam has `log_prob = −∞`.
#[derive(Debug, Clone)]
struct Hyp {
    tokens: Vec<u32>,
    log_prob: f32,
}

/// One image's search.
struct Group {
    image: usize,
    /// Exactly `width` beams, in cache row order.
    live: Vec<Hyp>,
    /// At most `width` captions, best score first.
    finished: Vec<Caption>,
    done: bool,
}

impl Group {
    fn new(image: usize, width: usize) -> Self {
        // Every beam starts from BOS; only the first is alive, so the first step does not
        // pick the same continuation `width` times.
        let mut live = vec![
            Hyp {
                tokens: Vec::new(),
                log_prob: f32::NEG_INFINITY,
            };
            width
        ];
        live[0].log_prob = 0.0;
        Group {
            image,
            live,
            finished: Vec::new(),
            done: false,
        }
    }

    /// Adds a finished caption of `len` tokens (EOS counted), keeping the best `width`.
    fn finish(&mut self, opts: &Beam, tokens: Vec<u32>, log_prob: f32, len: usize) {
        let score = opts.score(log_prob, len);
        // After every caption scoring at least as well: earlier finishers win ties.
        let at = self.finished.partition_point(|c| c.score >= score);
        if at < opts.width {
            self.finished.insert(
                at,
                Caption {
                    tokens,
                    log_prob,
                    score,
                },
            );
            self.finished.truncate(opts.width);
        }
    }

    /// Finishes every live hypothesis as it is (at `max_len`, or stopped by the caller).
    fn finish_live(&mut self, opts: &Beam) {
        for h in core::mem::take(&mut self.live) {
            if h.log_prob > f32::NEG_INFINITY {
                let len = h.tokens.len();
                self.finish(opts, h.tokens, h.log_prob, len);
            }
        }
        self.done = true;
    }

    /// Applies one step's ranked candidates (`scores`, `ids = beam·V + token`). Returns each
    /// new beam's parent beam and token.
    fn advance(
        &mut self,
        opts: &Beam,
        scores: &[f32],
        ids: &[u32],
        vocab: usize,
        eos: u32,
        pad: u32,
    ) -> Vec<(usize, u32)> {
        let w = opts.width;
        let mut live = Vec::with_capacity(w);
        let mut next = Vec::with_capacity(w);
        for (rank, (&s, &id)) in scores.iter().zip(ids).enumerate() {
            if s == f32::NEG_INFINITY || live.len() == w {
                // Ranked best first: the rest are empty beams, or not needed.
                break;
            }
            let (beam, token) = (id as usize / vocab, id % vocab as u32);
            let parent = &self.live[beam];
            if token == eos {
                // An EOS ranked past `width` would not have survived as a beam either.
                if rank < w {
                    let tokens = parent.tokens.clone();
                    let len = tokens.len() + 1;
                    self.finish(opts, tokens, s, len);
                }
                continue;
            }
            let mut tokens = Vec::with_capacity(parent.tokens.len() + 1);
            tokens.extend_from_slice(&parent.tokens);
            tokens.push(token);
            live.push(Hyp {
                tokens,
                log_prob: s,
            });
            next.push((beam, token));
        }
        while live.len() < w {
            live.push(Hyp {
                tokens: Vec::new(),
                log_prob: f32::NEG_INFINITY,
            });
            next.push((0, pad));
        }
        self.live = live;
        next
    }

    /// Whether no live hypothesis can still enter the `width` best (after `len` tokens, at most
    /// `max_len`): a log-probability only falls with more tokens, and the length penalty of
    /// any later length is at most the larger of the next length's and `max_len`'s.
    fn settled(&self, opts: &Beam, len: usize, max_len: usize) -> bool {
        let penalty = opts.penalty(len + 1).max(opts.penalty(max_len));
        let best_live = self
            .live
            .iter()
            .map(|h| h.log_prob)
            .filter(|&lp| lp > f32::NEG_INFINITY)
            .map(|lp| lp / penalty)
            .fold(f32::NEG_INFINITY, f32::max);
        best_live == f32::NEG_INFINITY
            || (self.finished.len() == opts.width
                && self.finished.last().is_some_and(|c| c.score >= best_live))
    }
}

impl<B: Backend> Model<B> {
    /// Beam search for `encoded [B, patches, E]`, at most `steps` tokens per caption (checked
    /// by the caller).
    pub(crate) fn beam_search(
        &self,
        encoded: &B::Tensor,
        opts: &Beam,
        steps: usize,
        mut on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        let be = self.backend();
        let cfg = self.config();
        opts.check(cfg.vocab_size)?;
        let (w, v) = (opts.width, cfg.vocab_size);
        let batch = be.shape(encoded)[0];
        // Twice the width: even if `width` of them end in EOS, `width` remain to continue.
        let k = (2 * w).min(w * v);

        let mut cache = self.decoder().start(be, encoded)?;
        let repeat: Vec<u32> = (0..batch as u32)
            .flat_map(|b| core::iter::repeat_n(b, w))
            .collect();
        cache.select(be, &be.upload_ids(&[repeat.len()], &repeat)?)?;
        let mut groups: Vec<Group> = (0..batch).map(|b| Group::new(b, w)).collect();
        let mut results = vec![Vec::new(); batch];
        let mut ids = be.upload_ids(&[batch * w, 1], &vec![cfg.bos_id; batch * w])?;

        for step in 0..steps {
            let g = groups.len();
            let logits = self.decoder().step(be, &mut cache, &ids)?;
            let beam_scores: Vec<f32> = groups
                .iter()
                .flat_map(|gr| gr.live.iter().map(|h| h.log_prob))
                .collect();
            let beam_scores = be.upload(&HostTensor::new(&[g * w], beam_scores)?)?;
            let (scores, cand) = be.beam_candidates(&logits, &beam_scores, g, k)?;
            let scores = be.download(&scores)?;
            let cand = be.download_ids(&cand)?;

            // Parent row (in the current cache) and token of every new beam, group by group.
            let mut parents = Vec::with_capacity(g * w);
            let mut next = Vec::with_capacity(g * w);
            for (gi, group) in groups.iter_mut().enumerate() {
                let range = gi * k..(gi + 1) * k;
                let picked = group.advance(
                    opts,
                    &scores.data()[range.clone()],
                    &cand[range],
                    v,
                    cfg.eos_id,
                    cfg.pad_id,
                );
                for (beam, token) in picked {
                    parents.push((gi * w + beam) as u32);
                    next.push(token);
                }
                if step + 1 == steps {
                    group.finish_live(opts);
                } else if group.settled(opts, step + 1, steps) {
                    group.done = true;
                } else if let (Some(f), Some(best)) = (on_token.as_mut(), group.live.first()) {
                    let token = *best.tokens.last().unwrap_or(&cfg.pad_id);
                    let event = TokenEvent {
                        image: group.image,
                        token,
                        tokens: &best.tokens,
                    };
                    if best.log_prob > f32::NEG_INFINITY && !f(event) {
                        group.finish_live(opts);
                    }
                }
            }

            // Images that are done leave the batch; the rest follow their parents.
            let keep: Vec<usize> = (0..g).filter(|&gi| !groups[gi].done).collect();
            for group in groups.iter_mut().filter(|gr| gr.done) {
                results[group.image] = core::mem::take(&mut group.finished);
            }
            if keep.is_empty() {
                break;
            }
            if keep.len() < g {
                let rows = |gi: &usize| gi * w..(gi + 1) * w;
                let index: Vec<u32> = keep
                    .iter()
                    .flat_map(|gi| &parents[rows(gi)])
                    .copied()
                    .collect();
                next = keep
                    .iter()
                    .flat_map(|gi| &next[rows(gi)])
                    .copied()
                    .collect();
                cache.select(be, &be.upload_ids(&[index.len()], &index)?)?;
                groups.retain(|gr| !gr.done);
            } else if parents.iter().enumerate().any(|(i, &p)| p as usize != i) {
                cache.reorder(be, &be.upload_ids(&[parents.len()], &parents)?)?;
            }
            ids = be.upload_ids(&[next.len(), 1], &next)?;
        }
        Ok(results)
    }
}
