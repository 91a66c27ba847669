//! Beam search over the KV-cache decoder (the rules are on [`Beam`]).
//!
//! All images decode in one batch of `images × width` rows. Each image's cross-attention keys
//! and values are computed once and repeated for its beams ([`CrossKv::select`]). Per step
//! the device ranks every continuation ([`Backend::beam_candidates`]) and the host reads back
//! the `2·width` best per image (ids and scores) to keep finished hypotheses aside; the self
//! attention cache then follows the surviving beams' parents ([`KvCache::reorder`]), and images
//! that are done leave the batch ([`KvCache::select`]).
//!
//! [`CrossKv::select`]: crate::decoder::CrossKv::select
//! [`KvCache::select`]: crate::decoder::KvCache::select
//! [`KvCache::reorder`]: crate::decoder::KvCache::reorder

use alloc::vec;
use alloc::vec::Vec;

use crate::backend::Backend;
use crate::decoding::{Beam, Caption, OnToken, TokenEvent};
use crate::error::Result;
use crate::model::Model;
use crate::tensor::HostTensor;
use crate::wait::Wait;

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

    /// Adds a finished caption (its EOS, if `eos`, not in `tokens`), keeping the best `width`.
    fn finish(&mut self, opts: &Beam, tokens: Vec<u32>, log_prob: f32, eos: bool) {
        let score = opts.score(log_prob, tokens.len() + usize::from(eos));
        // After every caption scoring at least as well: earlier finishers win ties.
        let at = self.finished.partition_point(|c| c.score >= score);
        if at < opts.width {
            self.finished.insert(
                at,
                Caption {
                    tokens,
                    log_prob,
                    score,
                    eos,
                    text: alloc::string::String::new(),
                },
            );
            self.finished.truncate(opts.width);
        }
    }

    /// Finishes every live hypothesis as it is (at `max_len`, or stopped by the caller).
    fn finish_live(&mut self, opts: &Beam) {
        for h in core::mem::take(&mut self.live) {
            if h.log_prob > f32::NEG_INFINITY {
                self.finish(opts, h.tokens, h.log_prob, false);
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
                    self.finish(opts, tokens, s, true);
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
    pub(crate) async fn beam_search(
        &self,
        wait: Wait,
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

        let repeat: Vec<u32> = (0..batch as u32)
            .flat_map(|b| core::iter::repeat_n(b, w))
            .collect();
        let cross = self.decoder().cross_kv(be, encoded)?;
        let cross = cross.select(be, &be.upload_ids(&[repeat.len()], &repeat)?)?;
        let mut cache = self.decoder().start_cross(be, cross)?;
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
            let scores = wait.download(be, &scores).await?;
            let cand = wait.download_ids(be, &cand).await?;

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
                } else if let Some(f) = on_token.as_mut() {
                    // Not settled, so the first (best) beam is alive and holds a token.
                    let best = &group.live[0];
                    let event = TokenEvent {
                        image: group.image,
                        token: *best.tokens.last().unwrap_or(&cfg.pad_id),
                        tokens: &best.tokens,
                    };
                    if !f(event) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hyp(tokens: &[u32], log_prob: f32) -> Hyp {
        Hyp {
            tokens: tokens.to_vec(),
            log_prob,
        }
    }

    fn group(live: Vec<Hyp>) -> Group {
        Group {
            image: 0,
            live,
            finished: Vec::new(),
            done: false,
        }
    }

    const EOS: u32 = 1;
    const PAD: u32 = 0;

    #[test]
    fn eos_within_the_width_finishes_the_rest_continue() {
        let opts = Beam {
            width: 2,
            length_penalty: 0.0,
        };
        let mut g = group(vec![hyp(&[3], -1.0), hyp(&[4], -2.0)]);
        // V = 5; ids are beam·5 + token. The EOS ranked 2 (≥ width) is ignored.
        let scores = [-1.1, -1.5, -2.2, -2.5];
        let ids = [1, 2, 5 + 1, 5 + 3];
        let next = g.advance(&opts, &scores, &ids, 5, EOS, PAD);
        assert_eq!(next, [(0, 2), (1, 3)]);
        let live: Vec<_> = g
            .live
            .iter()
            .map(|h| (h.tokens.clone(), h.log_prob))
            .collect();
        assert_eq!(live, [(vec![3, 2], -1.5), (vec![4, 3], -2.5)]);
        assert_eq!(g.finished.len(), 1);
        let c = &g.finished[0];
        assert_eq!(
            (&c.tokens[..], c.log_prob, c.score, c.eos),
            (&[3][..], -1.1, -1.1, true)
        );
    }

    #[test]
    fn missing_candidates_leave_empty_beams() {
        let opts = Beam {
            width: 3,
            length_penalty: 0.0,
        };
        let mut g = group(vec![
            hyp(&[], 0.0),
            hyp(&[], f32::NEG_INFINITY),
            hyp(&[], f32::NEG_INFINITY),
        ]);
        let inf = f32::NEG_INFINITY;
        let next = g.advance(
            &opts,
            &[-0.5, -0.9, inf, inf, inf, inf],
            &[1, 0, 2, 3, 4, 5],
            2,
            EOS,
            PAD,
        );
        assert_eq!(next, [(0, 0), (0, PAD), (0, PAD)]);
        assert_eq!(g.live[0].tokens, [0]);
        assert_eq!(g.live[1].log_prob, inf);
        // The EOS candidate ranked first finished as the empty caption.
        assert_eq!((g.finished[0].tokens.len(), g.finished[0].eos), (0, true));
        g.finish_live(&opts);
        assert_eq!(g.finished.len(), 2, "empty beams never finish");
        assert!(g.done);
    }

    #[test]
    fn finished_keeps_the_best_width_earlier_first_on_ties() {
        let opts = Beam {
            width: 2,
            length_penalty: 1.0,
        };
        let mut g = group(Vec::new());
        g.finish(&opts, vec![5], -2.0, true); // len 2: −2 / (7/6)
        g.finish(&opts, vec![6, 7, 8], -2.0, false); // len 3: −2 / (8/6), better
        g.finish(&opts, vec![9], -2.0, true); // ties the first, comes after it: dropped
        let got: Vec<_> = g.finished.iter().map(|c| c.tokens.clone()).collect();
        assert_eq!(got, [vec![6, 7, 8], vec![5]]);
        assert_eq!(g.finished[1].score, -2.0 / (7.0 / 6.0));
    }

    #[test]
    fn settled_only_when_no_live_hypothesis_can_catch_up() {
        let finished = |scores: &[f32]| {
            scores
                .iter()
                .map(|&s| Caption {
                    tokens: Vec::new(),
                    log_prob: s,
                    score: s,
                    eos: true,
                    text: alloc::string::String::new(),
                })
                .collect::<Vec<_>>()
        };
        let a0 = Beam {
            width: 2,
            length_penalty: 0.0,
        };
        let mut g = group(vec![hyp(&[3, 3], -2.9), hyp(&[], f32::NEG_INFINITY)]);
        g.finished = finished(&[-1.0, -3.0]);
        assert!(!g.settled(&a0, 2, 6), "−2.9 may still beat −3");
        g.live[0].log_prob = -3.0;
        assert!(g.settled(&a0, 2, 6));
        g.finished.pop();
        assert!(!g.settled(&a0, 2, 6), "fewer than width finished");
        g.live[0].log_prob = f32::NEG_INFINITY;
        assert!(g.settled(&a0, 2, 6), "nothing live");

        // With α = 1 a live −2 after 2 tokens may reach −2 / (15/6) = −0.8 at length 10.
        let a1 = Beam {
            width: 2,
            length_penalty: 1.0,
        };
        let mut g = group(vec![hyp(&[3, 3], -2.0), hyp(&[4, 4], -2.5)]);
        g.finished = finished(&[-0.5, -1.0]);
        assert!(!g.settled(&a1, 2, 10));
        // At most one more token: −2 / (8/6) = −1.5 cannot reach −1.
        assert!(g.settled(&a1, 2, 3));
        // α < 0 favours the shortest continuation.
        let neg = Beam {
            width: 2,
            length_penalty: -1.0,
        };
        g.finished = finished(&[-0.5, -2.0 * 8.0 / 6.0]);
        assert!(g.settled(&neg, 2, 10));
        g.finished[1].score -= 0.01;
        assert!(!g.settled(&neg, 2, 10));
    }
}
