//! The image encoder: the reference's pre-LayerNorm ViT (`big_vision/models/vit.py`) as CapPa
//! uses it — patch embedding, position embedding, `enc_depth` blocks, final `encoder_norm`.
//! No class token, no head.

use alloc::format;
use alloc::vec::Vec;

use crate::backend::{Activation, Backend, Mask};
use crate::config::{Config, PosEmb};
use crate::error::Result;
use crate::layers::{
    Dense, KernelInit, LayerNorm, Mlp, MultiHeadAttention, Param, Parameters, Positions, Tap,
};
use crate::weights::{Init, Scope};

/// One `encoderblock_i`: `x + MHA(LN_0(x))`, then `x + MLP(LN_1(x))`.
#[derive(Debug, Clone)]
pub struct EncoderBlock<B: Backend> {
    ln0: LayerNorm<B>,
    attn: MultiHeadAttention<B>,
    ln1: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> EncoderBlock<B> {
    fn load(be: &B, s: &Scope<'_>, cfg: &Config) -> Result<Self> {
        let (w, eps) = (cfg.enc_width, cfg.layernorm_eps);
        Ok(EncoderBlock {
            ln0: LayerNorm::load(be, &s.pp("LayerNorm_0"), w, true, eps)?,
            attn: MultiHeadAttention::load(
                be,
                &s.pp("MultiHeadDotProductAttention_0"),
                w,
                w,
                cfg.enc_heads,
                KernelInit::Xavier,
                true,
            )?,
            ln1: LayerNorm::load(be, &s.pp("LayerNorm_1"), w, true, eps)?,
            mlp: Mlp::load(be, &s.pp("MlpBlock_0"), w, cfg.enc_mlp, true)?,
        })
    }

    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let y = self.ln0.forward(be, x)?;
        let y = self.attn.forward(be, &y, &y, Mask::None)?;
        let x = be.add(x, &y)?;
        let y = self.ln1.forward(be, &x)?;
        let y = self.mlp.forward(be, &y)?;
        be.add(&x, &y)
    }
}

impl<B: Backend> Parameters<B> for EncoderBlock<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        self.ln0.visit(f);
        self.attn.visit(f);
        self.ln1.visit(f);
        self.mlp.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.ln0.visit_mut(f);
        self.attn.visit_mut(f);
        self.ln1.visit_mut(f);
        self.mlp.visit_mut(f);
    }
}

/// The ViT encoder (parameters under `encoder/`).
#[derive(Debug, Clone)]
pub struct Encoder<B: Backend> {
    embedding: Dense<B>,
    pos_embedding: Positions<B>,
    blocks: Vec<EncoderBlock<B>>,
    norm: LayerNorm<B>,
    patch: usize,
}

impl<B: Backend> Encoder<B> {
    /// Loads `encoder/...` from the scope `s` (which should be the `encoder` scope).
    pub fn load(be: &B, s: &Scope<'_>, cfg: &Config) -> Result<Self> {
        let (p, w) = (cfg.patch_size, cfg.enc_width);
        let embedding = Dense::load(
            be,
            &s.pp("embedding"),
            &[p, p, cfg.in_channels, w],
            3,
            KernelInit::Lecun,
            Some((&[w], Init::Zeros)),
        )?;
        let learned = cfg.posemb_type == PosEmb::Learn;
        let grid = (cfg.grid(), cfg.grid());
        let pos_embedding = Positions::load(be, s, "pos_embedding", learned, grid, w)?;
        let t = s.pp("Transformer");
        let blocks = (0..cfg.enc_depth)
            .map(|i| EncoderBlock::load(be, &t.pp(&format!("encoderblock_{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            embedding,
            pos_embedding,
            blocks,
            norm: LayerNorm::load(be, &t.pp("encoder_norm"), w, true, cfg.layernorm_eps)?,
            patch: p,
        })
    }

    /// Encodes NHWC images `[B, H, W, C]` (values in the model's range, [-1, 1]) to
    /// `[B, patches, width]`. `tap` sees `encoder/stem`, `encoder/with_posemb` and
    /// `encoder/block_i`.
    pub fn forward(
        &self,
        be: &B,
        images: &B::Tensor,
        mut tap: Option<Tap<'_, B>>,
    ) -> Result<B::Tensor> {
        let mut emit = |name: &str, t: &B::Tensor| match tap.as_mut() {
            Some(f) => f(name, t),
            None => Ok(()),
        };
        let patches = be.patchify(images, self.patch)?;
        let x = self.embedding.forward(be, &patches, Activation::None)?;
        emit("encoder/stem", &x)?;
        let mut x = be.add(&x, self.pos_embedding.table())?;
        emit("encoder/with_posemb", &x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(be, &x)?;
            emit(&format!("encoder/block_{i}"), &x)?;
        }
        self.norm.forward(be, &x)
    }
}

impl<B: Backend> Parameters<B> for Encoder<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        self.embedding.visit(f);
        self.pos_embedding.visit(f);
        self.blocks.iter().for_each(|b| b.visit(f));
        self.norm.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.embedding.visit_mut(f);
        self.pos_embedding.visit_mut(f);
        self.blocks.iter_mut().for_each(|b| b.visit_mut(f));
        self.norm.visit_mut(f);
    }
}

#[cfg(feature = "train")]
pub use self::train::EncoderTape;

#[cfg(feature = "train")]
mod train {
    use super::*;
    use crate::backend::TrainBackend;
    use crate::layers::{AttentionSaved, Grads, MlpSaved};

    /// What [`EncoderBlock::forward_train`] saves.
    #[derive(Debug, Clone)]
    pub(super) struct BlockSaved<B: Backend> {
        x: B::Tensor,
        attn: AttentionSaved<B>,
        x1: B::Tensor,
        mlp: MlpSaved<B>,
    }

    impl<B: TrainBackend> EncoderBlock<B> {
        fn forward_train(&self, be: &B, x: &B::Tensor) -> Result<(B::Tensor, BlockSaved<B>)> {
            let y = self.ln0.forward(be, x)?;
            let (a, attn) = self.attn.forward_train(be, &y, &y, Mask::None)?;
            let x1 = be.add(x, &a)?;
            let y = self.ln1.forward(be, &x1)?;
            let (m, mlp) = self.mlp.forward_train(be, &y)?;
            let x2 = be.add(&x1, &m)?;
            let saved = BlockSaved {
                x: x.clone(),
                attn,
                x1,
                mlp,
            };
            Ok((x2, saved))
        }

        fn backward(
            &self,
            be: &B,
            s: &BlockSaved<B>,
            dx2: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<B::Tensor> {
            let dy = self.mlp.backward(be, &s.mlp, dx2, g)?;
            let dx1 = be.add(dx2, &self.ln1.backward(be, &s.x1, &dy, g)?)?;
            let (dq, dkv) = self.attn.backward(be, &s.attn, &dx1, Mask::None, g)?;
            let dy = be.add(&dq, &dkv)?;
            be.add(&dx1, &self.ln0.backward(be, &s.x, &dy, g)?)
        }
    }

    /// What [`Encoder::forward_train`] saves for the reverse pass.
    #[derive(Debug, Clone)]
    pub struct EncoderTape<B: Backend> {
        patches: B::Tensor,
        blocks: Vec<BlockSaved<B>>,
        last: B::Tensor,
    }

    impl<B: TrainBackend> Encoder<B> {
        /// [`Encoder::forward`], keeping what the reverse pass needs.
        pub fn forward_train(
            &self,
            be: &B,
            images: &B::Tensor,
        ) -> Result<(B::Tensor, EncoderTape<B>)> {
            let patches = be.patchify(images, self.patch)?;
            let x = self.embedding.forward(be, &patches, Activation::None)?;
            let mut x = be.add(&x, self.pos_embedding.table())?;
            let mut blocks = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                let (y, saved) = block.forward_train(be, &x)?;
                blocks.push(saved);
                x = y;
            }
            let encoded = self.norm.forward(be, &x)?;
            let tape = EncoderTape {
                patches,
                blocks,
                last: x,
            };
            Ok((encoded, tape))
        }

        /// Every encoder parameter's gradient for the gradient of the encoder's output.
        pub fn backward(
            &self,
            be: &B,
            tape: &EncoderTape<B>,
            d_encoded: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<()> {
            let mut dx = self.norm.backward(be, &tape.last, d_encoded, g)?;
            for (block, saved) in self.blocks.iter().zip(&tape.blocks).rev() {
                dx = block.backward(be, saved, &dx, g)?;
            }
            self.pos_embedding.backward(be, &dx, g)?;
            // The images need no gradient: the stem's input gradient is never formed.
            self.embedding.backward_params(be, &tape.patches, &dx, g)
        }
    }
}
