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
use crate::formats::Role;
use crate::layers::{
    Dense, KernelInit, LayerNorm, Mlp, MultiHeadAttention, Param, Parameters, Positions,
};
use crate::weights::{Init, Scope};

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
            self_attn: MultiHeadAttention::load(
                be,
                &s.pp("SelfAttn"),
                d,
                d,
                h,
                KernelInit::Lecun,
                false,
            )?,
            ln2: LayerNorm::load(be, &s.pp("LayerNorm2"), d, bias, eps)?,
            cross_attn: MultiHeadAttention::load(
                be,
                &s.pp("CrossAttn"),
                d,
                cfg.enc_width,
                h,
                KernelInit::Lecun,
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

impl<B: Backend> Parameters<B> for DecoderBlock<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        self.ln1.visit(f);
        self.self_attn.visit(f);
        self.ln2.visit(f);
        self.cross_attn.visit(f);
        self.ln3.visit(f);
        self.mlp.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.ln1.visit_mut(f);
        self.self_attn.visit_mut(f);
        self.ln2.visit_mut(f);
        self.cross_attn.visit_mut(f);
        self.ln3.visit_mut(f);
        self.mlp.visit_mut(f);
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
    pos_embedding: Positions<B>,
    embedding: Param<B>,
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
        let learned = cfg.posemb_type == PosEmb::Learn;
        let pos_embedding = Positions::load(be, root, "pos_embedding_decoder", learned, (1, l), d)?;
        let s = root.pp("decoder");
        let table = [cfg.embed_rows(), d];
        let normal = Init::Normal { std: 1.0 };
        let embedding = Param::load(
            be,
            &s.pp("EmbedTargets"),
            "embedding",
            &table,
            &table,
            normal,
            Role::Table,
        )?;
        let blocks = (0..cfg.dec_depth)
            .map(|i| DecoderBlock::load(be, &s.pp(&format!("EncDecBlock{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let (logits, zeros) = (s.pp("LogitsDense"), KernelInit::Zeros);
        Ok(Decoder {
            pos_embedding,
            embedding,
            blocks,
            norm: LayerNorm::load(be, &s.pp("LayerNorm"), d, true, cfg.layernorm_eps)?,
            logits: Dense::load_plain(be, &logits, d, cfg.vocab_size, zeros, Some(Init::Zeros))?,
            max_len: l,
            width: d,
        })
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.max_len {
            return Err(Error::InvalidInput(format!(
                "{len} decoder positions exceed max_len {}",
                self.max_len
            )));
        }
        Ok(())
    }

    /// The decoder's input vectors: each token's row of the embedding table plus the position
    /// rows `start..start + len`.
    fn input_vectors(&self, be: &B, ids: &B::Ids, start: usize, len: usize) -> Result<B::Tensor> {
        let x = be.gather(&self.embedding.tensor, ids)?;
        let pos = be.slice_rows(self.pos_embedding.table(), start, len)?;
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
        self.check_len(len)?;
        let mut x = self.input_vectors(be, ids, 0, len)?;
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
        let mut x = self.input_vectors(be, ids, pos, 1)?;
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

impl<B: Backend> Parameters<B> for Decoder<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        self.pos_embedding.visit(f);
        f(&self.embedding);
        self.blocks.iter().for_each(|b| b.visit(f));
        self.norm.visit(f);
        self.logits.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.pos_embedding.visit_mut(f);
        f(&mut self.embedding);
        self.blocks.iter_mut().for_each(|b| b.visit_mut(f));
        self.norm.visit_mut(f);
        self.logits.visit_mut(f);
    }
}

#[cfg(feature = "train")]
pub use self::train::DecoderTape;

#[cfg(feature = "train")]
mod train {
    use super::*;
    use crate::backend::TrainBackend;
    use crate::layers::{AttentionSaved, Grads, MlpSaved};

    /// What [`DecoderBlock::forward_train`] saves.
    #[derive(Debug, Clone)]
    pub(super) struct BlockSaved<B: Backend> {
        x: B::Tensor,
        self_attn: AttentionSaved<B>,
        x1: B::Tensor,
        cross_attn: AttentionSaved<B>,
        x2: B::Tensor,
        mlp: MlpSaved<B>,
    }

    impl<B: TrainBackend> DecoderBlock<B> {
        fn forward_train(
            &self,
            be: &B,
            x: &B::Tensor,
            encoded: &B::Tensor,
            mask: Mask<'_>,
        ) -> Result<(B::Tensor, BlockSaved<B>)> {
            let y = self.ln1.forward(be, x)?;
            let (a, self_attn) = self.self_attn.forward_train(be, &y, &y, mask)?;
            let x1 = be.add(x, &a)?;
            let y = self.ln2.forward(be, &x1)?;
            let (c, cross_attn) = self.cross_attn.forward_train(be, &y, encoded, Mask::None)?;
            let x2 = be.add(&x1, &c)?;
            let y = self.ln3.forward(be, &x2)?;
            let (m, mlp) = self.mlp.forward_train(be, &y)?;
            let x3 = be.add(&x2, &m)?;
            let saved = BlockSaved {
                x: x.clone(),
                self_attn,
                x1,
                cross_attn,
                x2,
                mlp,
            };
            Ok((x3, saved))
        }

        /// Returns `(dx, d_encoded)`.
        fn backward(
            &self,
            be: &B,
            s: &BlockSaved<B>,
            dx3: &B::Tensor,
            mask: Mask<'_>,
            g: &mut Grads<B>,
        ) -> Result<(B::Tensor, B::Tensor)> {
            let dy = self.mlp.backward(be, &s.mlp, dx3, g)?;
            let dx2 = be.add(dx3, &self.ln3.backward(be, &s.x2, &dy, g)?)?;
            let (dq, d_enc) = self
                .cross_attn
                .backward(be, &s.cross_attn, &dx2, Mask::None, g)?;
            let dx1 = be.add(&dx2, &self.ln2.backward(be, &s.x1, &dq, g)?)?;
            let (dq, dkv) = self.self_attn.backward(be, &s.self_attn, &dx1, mask, g)?;
            let dy = be.add(&dq, &dkv)?;
            let dx = be.add(&dx1, &self.ln1.backward(be, &s.x, &dy, g)?)?;
            Ok((dx, d_enc))
        }
    }

    /// What [`Decoder::forward_train`] saves for the reverse pass.
    #[derive(Debug, Clone)]
    pub struct DecoderTape<B: Backend> {
        ids: B::Ids,
        blocks: Vec<BlockSaved<B>>,
        last: B::Tensor,
        normed: B::Tensor,
    }

    impl<B: TrainBackend> Decoder<B> {
        /// [`Decoder::forward`] (logits `[B, L, V]`), keeping what the reverse pass needs.
        pub fn forward_train(
            &self,
            be: &B,
            encoded: &B::Tensor,
            ids: &B::Ids,
            len: usize,
            mask: Mask<'_>,
        ) -> Result<(B::Tensor, DecoderTape<B>)> {
            self.check_len(len)?;
            let mut x = self.input_vectors(be, ids, 0, len)?;
            let mut blocks = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                let (y, saved) = block.forward_train(be, &x, encoded, mask)?;
                blocks.push(saved);
                x = y;
            }
            let normed = self.norm.forward(be, &x)?;
            let logits = self.logits.forward(be, &normed, Activation::None)?;
            let tape = DecoderTape {
                ids: ids.clone(),
                blocks,
                last: x,
                normed,
            };
            Ok((logits, tape))
        }

        /// Every decoder parameter's gradient for the logits' gradient `d_logits`, with the same
        /// `mask` as the forward pass; returns the gradient of the encoded images.
        pub fn backward(
            &self,
            be: &B,
            tape: &DecoderTape<B>,
            d_logits: &B::Tensor,
            mask: Mask<'_>,
            g: &mut Grads<B>,
        ) -> Result<B::Tensor> {
            let dy = self.logits.backward(be, &tape.normed, d_logits, g)?;
            let mut dx = self.norm.backward(be, &tape.last, &dy, g)?;
            let mut d_enc: Option<B::Tensor> = None;
            for (block, saved) in self.blocks.iter().zip(&tape.blocks).rev() {
                let (d, de) = block.backward(be, saved, &dx, mask, g)?;
                dx = d;
                d_enc = Some(match d_enc {
                    Some(acc) => be.add(&acc, &de)?,
                    None => de,
                });
            }
            let rows = be.shape(&self.embedding.tensor)[0];
            g.set(&self.embedding, be.gather_backward(&dx, &tape.ids, rows)?);
            self.pos_embedding.backward(be, &dx, g)?;
            d_enc.ok_or_else(|| Error::Config("the decoder has no blocks".into()))
        }
    }
}
