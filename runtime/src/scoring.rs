//! Zero-shot classification by scoring, as the reference (`predict_fn_score`): each candidate
//! caption's score for an image is the sum of its tokens' log-probabilities in Cap mode over
//! non-PAD positions (EOS included), not normalised by length. Higher is better. An optional
//! prompt is prepended to every candidate (no EOS between them), and its tokens' log-probs
//! count too, as in the reference; they are the same for every candidate of an image, so they
//! never change which candidate wins.
//!
//! Each image is encoded once and its cross-attention keys and values are computed once; one
//! decoder pass then scores a chunk of candidates for every image (`images × chunk` rows, the
//! keys and values gathered per row). Trailing PAD is trimmed from each chunk: the decoder is
//! causal and PAD is not scored, so it cannot change a score.

use alloc::vec;
use alloc::vec::Vec;

use crate::backend::{Backend, Mask};
use crate::error::{Error, Result};
use crate::model::{Mode, Model};
use crate::tensor::{HostTensor, Tokens};
use crate::wait::{now, Wait};

/// Options of [`Model::classify_tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classify {
    /// Tokens put before every candidate (no EOS after them); empty by default. Their
    /// log-probabilities count, except at PAD ids, as in the reference.
    pub prompt: Vec<u32>,
    /// Candidates scored per decoder pass (each pass runs `images × chunk` rows); default 16.
    pub chunk: usize,
    /// Divide each score by its number of scored (non-PAD) tokens, prompt included: the mean
    /// log-probability per token. Off by default, as in the reference.
    pub normalize: bool,
}

impl Default for Classify {
    fn default() -> Self {
        Classify {
            prompt: Vec::new(),
            chunk: 16,
            normalize: false,
        }
    }
}

/// The result of [`Model::classify_tokens`].
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// `[B, K]` scores: log-likelihoods of each candidate for each image (per token if
    /// normalised).
    pub scores: HostTensor,
    /// `[B, K]` softmax of the scores over the candidates of each image.
    pub probabilities: HostTensor,
}

impl Classification {
    /// The best candidate of each image (the first on ties).
    pub fn predictions(&self) -> Vec<usize> {
        let k = self.scores.shape()[1];
        crate::ops::softmax::cpu_argmax(self.scores.data(), k)
            .into_iter()
            .map(|i| i as usize)
            .collect()
    }
}

impl<B: Backend> Model<B> {
    /// Scores `[B, K]` of `K` candidate captions (`[K, L]`, content + EOS + PAD) for every image
    /// of `encoded [B, patches, E]`: [`Model::classify_tokens`] with its default options.
    pub fn score(&self, encoded: &B::Tensor, candidates: &Tokens) -> Result<HostTensor> {
        Ok(self
            .classify_tokens(encoded, candidates, &Classify::default())?
            .scores)
    }

    /// Zero-shot classification of every image of `encoded [B, patches, E]` among `K`
    /// candidate captions (`[K, L]`, content + EOS + PAD, as the training captions).
    pub fn classify_tokens(
        &self,
        encoded: &B::Tensor,
        candidates: &Tokens,
        opts: &Classify,
    ) -> Result<Classification> {
        now(self.classify_tokens_in(Wait::Block, encoded, candidates, opts))
    }

    /// [`Model::classify_tokens`] without blocking: each chunk's scores are awaited
    /// ([`Backend::download_async`]), so a web page's event loop can run while the GPU works.
    pub async fn classify_tokens_async(
        &self,
        encoded: &B::Tensor,
        candidates: &Tokens,
        opts: &Classify,
    ) -> Result<Classification> {
        self.classify_tokens_in(Wait::Async, encoded, candidates, opts)
            .await
    }

    async fn classify_tokens_in(
        &self,
        wait: Wait,
        encoded: &B::Tensor,
        candidates: &Tokens,
        opts: &Classify,
    ) -> Result<Classification> {
        let be = self.backend();
        let cfg = self.config();
        let batch = self.check_encoded(encoded, None)?;
        candidates.check_below(cfg.vocab_size as u32)?;
        if let Some(index) = opts
            .prompt
            .iter()
            .position(|&t| t as usize >= cfg.vocab_size)
        {
            return Err(Error::TokenOutOfRange {
                token: opts.prompt[index] as i64,
                index,
                limit: cfg.vocab_size as u32,
            });
        }
        if opts.chunk == 0 {
            return Err(Error::InvalidInput(
                "classify: chunk must be at least 1".into(),
            ));
        }
        let (k, pad) = (candidates.batch(), cfg.pad_id);
        // Each candidate after the prompt, without trailing PAD.
        let seqs: Vec<Vec<u32>> = (0..k)
            .map(|c| {
                let row = candidates.row(c);
                let used = row.iter().rposition(|&t| t != pad).map_or(0, |i| i + 1);
                opts.prompt.iter().chain(&row[..used]).copied().collect()
            })
            .collect();
        if let Some(longest) = seqs.iter().map(Vec::len).max() {
            if longest > cfg.max_len {
                return Err(Error::InputShape {
                    what: "prompt + candidate tokens".into(),
                    expected: vec![k, cfg.max_len],
                    found: vec![k, longest],
                });
            }
        }

        // Fewer candidates per pass where a full chunk's logits would be over the limits; an
        // error only when a single candidate per image is.
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(1);
        let mut chunk = opts.chunk.min(k).max(1);
        while chunk > 1
            && crate::limits::check_decode(cfg, batch.saturating_mul(chunk), longest, longest)
                .is_err()
        {
            chunk /= 2;
        }
        crate::limits::check_decode(cfg, batch.saturating_mul(chunk), longest, longest)?;
        let cross = self.decoder().cross_kv(be, encoded)?;
        let mut expanded = None;
        let mut scores = vec![0.0f32; batch * k];
        for c0 in (0..k).step_by(chunk) {
            let n = chunk.min(k - c0);
            // Rows are image-major: row b·n + j scores candidate c0 + j for image b. Full
            // chunks share one gathered copy of the keys and values.
            let rows = match expanded.take() {
                Some((m, rows)) if m == n => rows,
                _ => {
                    let index: Vec<u32> = (0..batch as u32)
                        .flat_map(|b| core::iter::repeat_n(b, n))
                        .collect();
                    cross.select(be, &be.upload_ids(&[index.len()], &index)?)?
                }
            };
            let chunk = &seqs[c0..c0 + n];
            let len = chunk.iter().map(Vec::len).max().unwrap_or(0).max(1);
            let mut ids = Vec::with_capacity(batch * n * len);
            for _ in 0..batch {
                for s in chunk {
                    ids.extend_from_slice(s);
                    ids.resize(ids.len() + len - s.len(), pad);
                }
            }
            let targets = Tokens::new(ids, batch * n, len)?;
            let inputs = self.decoder_inputs(&targets, &vec![Mode::Cap; batch * n])?;
            let shape = [batch * n, len];
            let logits = self.decoder().forward_cross(
                be,
                &rows,
                &be.upload_ids(&shape, inputs.ids())?,
                len,
                Mask::Causal { offset: 0 },
            )?;
            let nll = be.cross_entropy(&logits, &be.upload_ids(&shape, targets.ids())?, 0.0)?;
            let nll = wait.download(be, &nll).await?;
            expanded = Some((n, rows));
            for b in 0..batch {
                for j in 0..n {
                    let r = b * n + j;
                    let (mut sum, mut count) = (0.0f32, 0usize);
                    for (&t, &l) in targets.row(r).iter().zip(&nll.data()[r * len..]) {
                        if t != pad {
                            sum += l;
                            count += 1;
                        }
                    }
                    let score = -sum;
                    scores[b * k + c0 + j] = match opts.normalize && count > 0 {
                        true => score / count as f32,
                        false => score,
                    };
                }
            }
        }
        let scores = HostTensor::new(&[batch, k], scores)?;
        let probabilities = HostTensor::new(&[batch, k], Self::probabilities(&scores))?;
        Ok(Classification {
            scores,
            probabilities,
        })
    }

    /// Softmax over candidates of [`Model::score`]'s scores, per image.
    pub fn probabilities(scores: &HostTensor) -> Vec<f32> {
        let k = *scores.shape().last().unwrap_or(&1);
        crate::ops::softmax::cpu_log_softmax(scores.data(), k)
            .into_iter()
            .map(crate::math::exp)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_take_the_first_best() {
        let c = Classification {
            scores: HostTensor::new(&[2, 3], vec![-1.0, -0.5, -0.5, -3.0, -4.0, -2.0]).unwrap(),
            probabilities: HostTensor::zeros(&[2, 3]),
        };
        assert_eq!(c.predictions(), [1, 2]);
    }
}
