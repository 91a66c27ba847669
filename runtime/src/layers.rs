//! The layers both halves of the model are built from, each loaded from its own scope of the
//! parameter tree and run over a [`Backend`].

use alloc::vec::Vec;

use crate::backend::{Activation, Attention, Backend, Mask, Matmul};
use crate::error::Result;
use crate::weights::Scope;

/// A callback that sees named intermediate tensors (e.g. `encoder/block_0`) as they are made.
pub type Tap<'t, B> = &'t mut dyn FnMut(&str, &<B as Backend>::Tensor) -> Result<()>;

/// `x · kernel + bias`, with the kernel stored as a matrix `[in, out]`.
#[derive(Debug, Clone)]
pub struct Dense<B: Backend> {
    /// `[in, out]`.
    pub kernel: B::Tensor,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<B::Tensor>,
}

impl<B: Backend> Dense<B> {
    /// Loads `kernel` of the reference shape `shape`, whose first `in_axes` axes are the input
    /// (e.g. `[in, heads, head_dim]` with 1, `[heads, head_dim, out]` with 2), and optionally a
    /// `bias` of shape `bias_shape`.
    pub fn load(
        be: &B,
        s: &Scope<'_>,
        shape: &[usize],
        in_axes: usize,
        bias_shape: Option<&[usize]>,
    ) -> Result<Self> {
        let rows: usize = shape[..in_axes].iter().product();
        let cols: usize = shape[in_axes..].iter().product();
        let (kernel, stored) = s.get_stored("kernel", shape)?;
        let kernel = kernel.reshape(&[rows, cols])?;
        let bias = match bias_shape {
            Some(bs) => Some(be.upload(&s.get("bias", bs)?.reshape(&[cols])?)?),
            None => None,
        };
        Ok(Dense {
            kernel: be.upload_weight(&kernel, stored)?,
            bias,
        })
    }

    /// A plain `[in, out]` layer.
    pub fn load_plain(be: &B, s: &Scope<'_>, din: usize, dout: usize, bias: bool) -> Result<Self> {
        Self::load(be, s, &[din, dout], 1, bias.then_some(&[dout][..]))
    }

    /// `act(x · kernel + bias)` over the last axis of `x`.
    pub fn forward(&self, be: &B, x: &B::Tensor, activation: Activation) -> Result<B::Tensor> {
        be.matmul(
            x,
            &self.kernel,
            Matmul {
                bias: self.bias.as_ref(),
                activation,
                ..Matmul::default()
            },
        )
    }
}

/// LayerNorm with a scale and an optional bias.
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    /// `[D]`.
    pub scale: B::Tensor,
    /// `[D]`.
    pub bias: Option<B::Tensor>,
    /// Epsilon.
    pub eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `scale` (and `bias`) of width `d`.
    pub fn load(be: &B, s: &Scope<'_>, d: usize, bias: bool, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            scale: be.upload(&s.get("scale", &[d])?)?,
            bias: match bias {
                true => Some(be.upload(&s.get("bias", &[d])?)?),
                false => None,
            },
            eps,
        })
    }

    /// Normalises the last axis.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.layer_norm(x, &self.scale, self.bias.as_ref(), self.eps)
    }
}

/// Flax's `MultiHeadDotProductAttention`: `query`/`key`/`value` kernels `[in, H, D]`, `out`
/// kernel `[H, D, width]`, optional biases.
#[derive(Debug, Clone)]
pub struct MultiHeadAttention<B: Backend> {
    /// Query projection.
    pub query: Dense<B>,
    /// Key projection.
    pub key: Dense<B>,
    /// Value projection.
    pub value: Dense<B>,
    /// Output projection.
    pub out: Dense<B>,
    /// Number of heads.
    pub heads: usize,
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Loads an attention layer whose queries (and output) have width `width` and whose keys and
    /// values are read from inputs of width `kv_in`.
    pub fn load(
        be: &B,
        s: &Scope<'_>,
        width: usize,
        kv_in: usize,
        heads: usize,
        bias: bool,
    ) -> Result<Self> {
        let hd = width / heads;
        let qkv_bias = [heads, hd];
        let qkv_bias = bias.then_some(&qkv_bias[..]);
        let out_bias = [width];
        Ok(MultiHeadAttention {
            query: Dense::load(be, &s.pp("query"), &[width, heads, hd], 1, qkv_bias)?,
            key: Dense::load(be, &s.pp("key"), &[kv_in, heads, hd], 1, qkv_bias)?,
            value: Dense::load(be, &s.pp("value"), &[kv_in, heads, hd], 1, qkv_bias)?,
            out: Dense::load(
                be,
                &s.pp("out"),
                &[heads, hd, width],
                2,
                bias.then_some(&out_bias[..]),
            )?,
            heads,
        })
    }

    /// Projects keys and values of `kv` (cached once per image for cross-attention).
    pub fn project_kv(&self, be: &B, kv: &B::Tensor) -> Result<(B::Tensor, B::Tensor)> {
        Ok((
            self.key.forward(be, kv, Activation::None)?,
            self.value.forward(be, kv, Activation::None)?,
        ))
    }

    /// Attends from `x` to already projected keys and values.
    pub fn attend(
        &self,
        be: &B,
        x: &B::Tensor,
        k: &B::Tensor,
        v: &B::Tensor,
        mask: Mask<'_>,
    ) -> Result<B::Tensor> {
        let q = self.query.forward(be, x, Activation::None)?;
        let o = be.attention(
            &q,
            k,
            v,
            Attention {
                heads: self.heads,
                mask,
            },
        )?;
        self.out.forward(be, &o, Activation::None)
    }

    /// Attends from `x` to `kv`.
    pub fn forward(
        &self,
        be: &B,
        x: &B::Tensor,
        kv: &B::Tensor,
        mask: Mask<'_>,
    ) -> Result<B::Tensor> {
        let (k, v) = self.project_kv(be, kv)?;
        self.attend(be, x, &k, &v, mask)
    }
}

/// Two dense layers with a GELU between them (`Dense_0`, `Dense_1`).
#[derive(Debug, Clone)]
pub struct Mlp<B: Backend> {
    /// `[width, hidden]`, GELU fused.
    pub fc0: Dense<B>,
    /// `[hidden, width]`.
    pub fc1: Dense<B>,
}

impl<B: Backend> Mlp<B> {
    /// Loads `Dense_0` and `Dense_1`.
    pub fn load(be: &B, s: &Scope<'_>, width: usize, hidden: usize, bias: bool) -> Result<Self> {
        Ok(Mlp {
            fc0: Dense::load_plain(be, &s.pp("Dense_0"), width, hidden, bias)?,
            fc1: Dense::load_plain(be, &s.pp("Dense_1"), hidden, width, bias)?,
        })
    }

    /// `Dense_1(gelu(Dense_0(x)))`.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let h = self.fc0.forward(be, x, Activation::Gelu)?;
        self.fc1.forward(be, &h, Activation::None)
    }
}

/// The fixed 2-D sin-cos position table of the reference ViT for an `h × w` grid: channels
/// `[sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)]`, `ω_i = 10000^(−i/(d/4 − 1))`. Returns `[h·w, d]`.
pub fn posemb_sincos_2d(h: usize, w: usize, d: usize) -> Vec<f32> {
    use crate::math::{cos, powf, sin};
    let q = d / 4;
    let omega: Vec<f64> = (0..q)
        .map(|i| 1.0 / powf(10_000.0, i as f64 / (q as f64 - 1.0)))
        .collect();
    let mut out = Vec::with_capacity(h * w * d);
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f64, y as f64);
            out.extend(omega.iter().map(|o| sin(xf * o) as f32));
            out.extend(omega.iter().map(|o| cos(xf * o) as f32));
            out.extend(omega.iter().map(|o| sin(yf * o) as f32));
            out.extend(omega.iter().map(|o| cos(yf * o) as f32));
        }
    }
    out
}
