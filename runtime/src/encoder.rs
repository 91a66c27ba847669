//! The image encoder: the reference's pre-LayerNorm ViT (`big_vision/models/vit.py`) as CapPa
//! uses it — patch embedding, position embedding, `enc_depth` blocks, final `encoder_norm`.
//! No class token, no head.

use alloc::format;
use alloc::vec::Vec;

use crate::backend::{Backend, Mask};
use crate::config::{Config, PosEmb};
use crate::error::Result;
use crate::layers::{posemb_sincos_2d, Dense, LayerNorm, Mlp, MultiHeadAttention, Tap};
use crate::tensor::HostTensor;
use crate::weights::Scope;

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

/// The ViT encoder (parameters under `encoder/`).
#[derive(Debug, Clone)]
pub struct Encoder<B: Backend> {
    embedding: Dense<B>,
    pos_embedding: B::Tensor,
    blocks: Vec<EncoderBlock<B>>,
    norm: LayerNorm<B>,
    patch: usize,
}

impl<B: Backend> Encoder<B> {
    /// Loads `encoder/...` from the scope `s` (which should be the `encoder` scope).
    pub fn load(be: &B, s: &Scope<'_>, cfg: &Config) -> Result<Self> {
        let (p, w, n) = (cfg.patch_size, cfg.enc_width, cfg.num_patches());
        let embedding = Dense::load(
            be,
            &s.pp("embedding"),
            &[p, p, cfg.in_channels, w],
            3,
            Some(&[w]),
        )?;
        let pos = match cfg.posemb_type {
            PosEmb::Learn => s.get("pos_embedding", &[1, n, w])?,
            PosEmb::Sincos2d => {
                HostTensor::new(&[1, n, w], posemb_sincos_2d(cfg.grid(), cfg.grid(), w))?
            }
        };
        let t = s.pp("Transformer");
        let blocks = (0..cfg.enc_depth)
            .map(|i| EncoderBlock::load(be, &t.pp(&format!("encoderblock_{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            embedding,
            pos_embedding: be.upload(&pos)?,
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
        let x = self
            .embedding
            .forward(be, &patches, crate::backend::Activation::None)?;
        emit("encoder/stem", &x)?;
        let mut x = be.add(&x, &self.pos_embedding)?;
        emit("encoder/with_posemb", &x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(be, &x)?;
            emit(&format!("encoder/block_{i}"), &x)?;
        }
        self.norm.forward(be, &x)
    }
}
