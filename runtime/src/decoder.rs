//! The text decoder (`big_vision/models/proj/cappa/cappa.py`, `Decoder`): token embedding
//! (with the `[MASK]` row under CapPa), learned position table `pos_embedding_decoder` at the
//! top of the parameter tree, `dec_depth` blocks of self-attention, cross-attention to every
//! image token and an MLP (pre-LayerNorm, residuals), a final LayerNorm and an untied
//! `LogitsDense`. Attention layers never have biases; `decoder_bias=false` also drops the block
//! LayerNorm and MLP biases (the final LayerNorm and the logits keep theirs).

use alloc::format;
use alloc::vec::Vec;

use crate::backend::{Activation, Backend, Mask};
use crate::config::{Config, PosEmb};
use crate::error::{Error, Result};
use crate::layers::{posemb_sincos_2d, Dense, LayerNorm, Mlp, MultiHeadAttention};
use crate::tensor::HostTensor;
use crate::weights::Scope;

/// One `EncDecBlock{i}`.
#[derive(Debug, Clone)]
pub struct DecoderBlock<B: Backend> {
    ln1: LayerNorm<B>,
    self_attn: MultiHeadAttention<B>,
    ln2: LayerNorm<B>,
    cross_attn: MultiHeadAttention<B>,
    ln3: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> DecoderBlock<B> {
    fn load(be: &B, s: &Scope<'_>, cfg: &Config) -> Result<Self> {
        let (d, h, eps, bias) = (
            cfg.dec_width,
            cfg.dec_heads,
            cfg.layernorm_eps,
            cfg.decoder_bias,
        );
        Ok(DecoderBlock {
            ln1: LayerNorm::load(be, &s.pp("LayerNorm1"), d, bias, eps)?,
            self_attn: MultiHeadAttention::load(be, &s.pp("SelfAttn"), d, d, h, false)?,
            ln2: LayerNorm::load(be, &s.pp("LayerNorm2"), d, bias, eps)?,
            cross_attn: MultiHeadAttention::load(
                be,
                &s.pp("CrossAttn"),
                d,
                cfg.enc_width,
                h,
                false,
            )?,
            ln3: LayerNorm::load(be, &s.pp("LayerNorm3"), d, bias, eps)?,
            mlp: Mlp::load(be, &s.pp("MLP"), d, cfg.dec_mlp, bias)?,
        })
    }

    /// Cross-attention and MLP halves, shared by the full pass and the cached step.
    fn cross_and_mlp(
        &self,
        be: &B,
        x: B::Tensor,
        ck: &B::Tensor,
        cv: &B::Tensor,
    ) -> Result<B::Tensor> {
        let y = self.ln2.forward(be, &x)?;
        let y = self.cross_attn.attend(be, &y, ck, cv, Mask::None)?;
        let x = be.add(&x, &y)?;
        let y = self.ln3.forward(be, &x)?;
        let y = self.mlp.forward(be, &y)?;
        be.add(&x, &y)
    }
}

/// Every block's cross-attention keys and values `[B, patches, D]` for a batch of encoded
/// images: computed once per image, shared by all decoding steps, and gathered (not recomputed)
/// when an image's rows are repeated for beams or candidate captions.
#[derive(Debug, Clone)]
pub struct CrossKv<B: Backend> {
    kv: Vec<(B::Tensor, B::Tensor)>,
    batch: usize,
}

impl<B: Backend> CrossKv<B> {
    /// Rows (images, or image copies).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Rows picked by `index` (see [`Backend::gather`]), e.g. each image repeated once
    /// per beam.
    pub fn select(&self, be: &B, index: &B::Ids) -> Result<Self> {
        let kv = self
            .kv
            .iter()
            .map(|(k, v)| Ok((be.gather(k, index)?, be.gather(v, index)?)))
            .collect::<Result<Vec<_>>>()?;
        let batch = kv.first().map_or(0, |(k, _)| be.shape(k)[0]);
        Ok(CrossKv { kv, batch })
    }
}

/// Self-attention keys/values of every generated position and the cross-attention keys/values
/// of the image, for autoregressive decoding.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// Per block: cross-attention (keys, values), computed once per image.
    cross: CrossKv<B>,
    /// Per block: self-attention (keys, values) `[B, max_len, D]`, filled one row per step.
    own: Vec<(B::Tensor, B::Tensor)>,
    /// Positions decoded so far.
    pos: usize,
    batch: usize,
}

impl<B: Backend> KvCache<B> {
    /// Positions decoded so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Keeps the rows picked by `index` of every cached tensor, cross-attention included; the
    /// batch becomes the number of indices. Beam search uses it to drop the rows of images that
    /// are done (while following the parents of the others).
    pub fn select(&mut self, be: &B, index: &B::Ids) -> Result<()> {
        let cross = self.cross.select(be, index)?;
        let own = gather_pairs(be, &self.own, index)?;
        self.batch = cross.batch;
        self.cross = cross;
        self.own = own;
        Ok(())
    }

    /// Reorders the self-attention keys and values by parent: row `i` continues the history of
    /// row `parents[i]` (beam search). `parents` must hold `batch` ids, and each parent must
    /// attend to the same image as the row it replaces (true within a beam group): the
    /// cross-attention keys and values are left as they are, which saves copying them every
    /// step. Use [`KvCache::select`] for any other reordering.
    pub fn reorder(&mut self, be: &B, parents: &B::Ids) -> Result<()> {
        let own = gather_pairs(be, &self.own, parents)?;
        let rows = own.first().map_or(self.batch, |(k, _)| be.shape(k)[0]);
        if rows != self.batch {
            return Err(Error::InvalidInput(format!(
                "reorder: {rows} parents for a cache of {} rows",
                self.batch
            )));
        }
        self.own = own;
        Ok(())
    }
}

/// Both tensors of every pair gathered by `index`.
fn gather_pairs<B: Backend>(
    be: &B,
    pairs: &[(B::Tensor, B::Tensor)],
    index: &B::Ids,
) -> Result<Vec<(B::Tensor, B::Tensor)>> {
    pairs
        .iter()
        .map(|(k, v)| Ok((be.gather(k, index)?, be.gather(v, index)?)))
        .collect()
}

/// The decoder (parameters `pos_embedding_decoder` and `decoder/...`).
#[derive(Debug, Clone)]
pub struct Decoder<B: Backend> {
    embedding: B::Tensor,
    pos_embedding: B::Tensor,
    blocks: Vec<DecoderBlock<B>>,
    norm: LayerNorm<B>,
    logits: Dense<B>,
    max_len: usize,
    width: usize,
}

impl<B: Backend> Decoder<B> {
    /// Loads from the root scope of the parameter tree.
    pub fn load(be: &B, root: &Scope<'_>, cfg: &Config) -> Result<Self> {
        let (d, l) = (cfg.dec_width, cfg.max_len);
        let pos = match cfg.posemb_type {
            PosEmb::Learn => root.get("pos_embedding_decoder", &[1, l, d])?,
            PosEmb::Sincos2d => HostTensor::new(&[1, l, d], posemb_sincos_2d(1, l, d))?,
        };
        let s = root.pp("decoder");
        let (embedding, stored) = s
            .pp("EmbedTargets")
            .get_stored("embedding", &[cfg.embed_rows(), d])?;
        let blocks = (0..cfg.dec_depth)
            .map(|i| DecoderBlock::load(be, &s.pp(&format!("EncDecBlock{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            embedding: be.upload_weight(&embedding, stored)?,
            pos_embedding: be.upload(&pos)?,
            blocks,
            norm: LayerNorm::load(be, &s.pp("LayerNorm"), d, true, cfg.layernorm_eps)?,
            logits: Dense::load_plain(be, &s.pp("LogitsDense"), d, cfg.vocab_size, true)?,
            max_len: l,
            width: d,
        })
    }

    /// Token embeddings plus the position rows `start..start + len`.
    fn embed(&self, be: &B, ids: &B::Ids, start: usize, len: usize) -> Result<B::Tensor> {
        let x = be.gather(&self.embedding, ids)?;
        let pos = be.slice_rows(&self.pos_embedding, start, len)?;
        be.add(&x, &pos)
    }

    fn head(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let x = self.norm.forward(be, x)?;
        self.logits.forward(be, &x, Activation::None)
    }

    /// Every block's cross-attention keys and values for `encoded [B, patches, E]`.
    pub fn cross_kv(&self, be: &B, encoded: &B::Tensor) -> Result<CrossKv<B>> {
        let kv = self
            .blocks
            .iter()
            .map(|b| b.cross_attn.project_kv(be, encoded))
            .collect::<Result<Vec<_>>>()?;
        Ok(CrossKv {
            kv,
            batch: be.shape(encoded)[0],
        })
    }

    /// Logits `[B, L, V]` for decoder inputs `ids [B, L]` (already shifted, or all `[MASK]`)
    /// attending to `encoded [B, patches, E]` with self-attention `mask`.
    pub fn forward(
        &self,
        be: &B,
        encoded: &B::Tensor,
        ids: &B::Ids,
        len: usize,
        mask: Mask<'_>,
    ) -> Result<B::Tensor> {
        self.forward_cross(be, &self.cross_kv(be, encoded)?, ids, len, mask)
    }

    /// [`Decoder::forward`] with the image's cross-attention keys and values already computed
    /// (one row per row of `ids`).
    pub fn forward_cross(
        &self,
        be: &B,
        cross: &CrossKv<B>,
        ids: &B::Ids,
        len: usize,
        mask: Mask<'_>,
    ) -> Result<B::Tensor> {
        if len > self.max_len {
            return Err(Error::InvalidInput(format!(
                "{len} decoder positions exceed max_len {}",
                self.max_len
            )));
        }
        let mut x = self.embed(be, ids, 0, len)?;
        for (block, (ck, cv)) in self.blocks.iter().zip(&cross.kv) {
            let y = block.ln1.forward(be, &x)?;
            let y = block.self_attn.forward(be, &y, &y, mask)?;
            x = be.add(&x, &y)?;
            x = block.cross_and_mlp(be, x, ck, cv)?;
        }
        self.head(be, &x)
    }

    /// Starts autoregressive decoding for `encoded [B, patches, E]`: computes every block's
    /// cross-attention keys and values once and allocates the self-attention cache.
    pub fn start(&self, be: &B, encoded: &B::Tensor) -> Result<KvCache<B>> {
        self.start_cross(be, self.cross_kv(be, encoded)?)
    }

    /// [`Decoder::start`] from already computed cross-attention keys and values.
    pub fn start_cross(&self, be: &B, cross: CrossKv<B>) -> Result<KvCache<B>> {
        let batch = cross.batch;
        let own = self
            .blocks
            .iter()
            .map(|_| {
                Ok((
                    be.zeros(&[batch, self.max_len, self.width])?,
                    be.zeros(&[batch, self.max_len, self.width])?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            cross,
            own,
            pos: 0,
            batch,
        })
    }

    /// Feeds one token per row (`ids [B, 1]`) at the cache's next position and returns the
    /// logits `[B, 1, V]` for the position after it.
    pub fn step(&self, be: &B, cache: &mut KvCache<B>, ids: &B::Ids) -> Result<B::Tensor> {
        let pos = cache.pos;
        if pos >= self.max_len {
            return Err(Error::InvalidInput(format!(
                "cannot decode past max_len {}",
                self.max_len
            )));
        }
        let mut x = self.embed(be, ids, pos, 1)?;
        for (block, ((ck, cv), (k, v))) in self
            .blocks
            .iter()
            .zip(cache.cross.kv.iter().zip(cache.own.iter_mut()))
        {
            let y = block.ln1.forward(be, &x)?;
            let (k_new, v_new) = block.self_attn.project_kv(be, &y)?;
            be.write_rows(k, &k_new, pos)?;
            be.write_rows(v, &v_new, pos)?;
            let y = block
                .self_attn
                .attend(be, &y, k, v, Mask::Causal { offset: pos })?;
            x = be.add(&x, &y)?;
            x = block.cross_and_mlp(be, x, ck, cv)?;
        }
        cache.pos += 1;
        self.head(be, &x)
    }
}
