//! The layers both halves of the model are built from. Each one loads its parameters from its
//! own scope of the parameter tree — the only place in the project that spells the reference's
//! parameter names — runs its forward pass over a [`Backend`], and lists its parameters for
//! whoever needs them all ([`Parameters`]: saving, training). With the feature `train`, each
//! layer's forward pass that keeps what its reverse pass needs, and that reverse pass, sit right
//! after its forward pass (for `y = x·W + b`: `dW = xᵀ·dy`, `dx = dy·Wᵀ`, `db = Σ_rows dy`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::backend::{Activation, Attention, Backend, Mask, Matmul};
use crate::error::Result;
use crate::formats::Role;
use crate::tensor::HostTensor;
use crate::weights::{Init, Scope};

#[cfg(feature = "train")]
pub use self::train::{AttentionSaved, Grads, MlpSaved};

/// A callback that sees named intermediate tensors (e.g. `encoder/block_0`) as they are made.
pub type Tap<'t, B> = &'t mut dyn FnMut(&str, &<B as Backend>::Tensor) -> Result<()>;

/// A parameter: a tensor on the backend under its reference path.
#[derive(Debug, Clone)]
pub struct Param<B: Backend> {
    /// Reference path, e.g. `encoder/Transformer/encoderblock_0/LayerNorm_0/scale`.
    pub name: String,
    /// Its shape in the model file (attention kernels keep their `[in, heads, head_dim]` form).
    pub shape: Vec<usize>,
    /// The values, shaped as the layer computes with them (every kernel an `[in, out]` matrix,
    /// every bias a vector).
    pub tensor: B::Tensor,
}

impl<B: Backend> Param<B> {
    /// Loads `name` of `s` with its file `shape`, as a tensor of shape `as_shape` (same size).
    /// Kernels and tables (`role`) stay in their stored format where the backend can; other
    /// parameters are f32.
    pub(crate) fn load(
        be: &B,
        s: &Scope<'_>,
        name: &str,
        shape: &[usize],
        as_shape: &[usize],
        init: Init,
        role: Role,
    ) -> Result<Self> {
        let stored = s.get(name, shape, init, role)?.reshape(as_shape)?;
        let tensor = match role {
            Role::Plain => be.upload(&stored.to_host()?)?,
            Role::Kernel { .. } | Role::Table => be.upload_weight(&stored)?,
        };
        Ok(Param {
            name: s.path(name),
            shape: shape.to_vec(),
            tensor,
        })
    }

    /// The values on the host, in the file's shape.
    pub fn download(&self, be: &B) -> Result<HostTensor> {
        be.download(&self.tensor)?.reshape(&self.shape)
    }
}

/// Something made of parameters: walks them in the order they are loaded (the order of the
/// model file's reference tree, which every optimizer state and global norm follows).
pub trait Parameters<B: Backend> {
    /// Calls `f` on every parameter.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>));
    /// Calls `f` on every parameter, mutably (an optimizer update).
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>));
}

/// The reference's initialiser of a dense kernel, by the layer it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelInit {
    /// Flax's default (`lecun_normal`).
    Lecun,
    /// `xavier_uniform` (the ViT's attention and every MLP).
    Xavier,
    /// Zeros (the logits layer).
    Zeros,
}

/// `x · kernel + bias`, with the kernel stored as a matrix `[in, out]`.
#[derive(Debug, Clone)]
pub struct Dense<B: Backend> {
    /// `[in, out]`.
    pub kernel: Param<B>,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Param<B>>,
}

impl<B: Backend> Dense<B> {
    /// Loads `kernel` of the reference shape `shape`, whose first `in_axes` axes are the input
    /// (e.g. `[in, heads, head_dim]` with 1, `[heads, head_dim, out]` with 2), initialised as
    /// `init`, and optionally a `bias` of shape `bias_shape` initialised as `bias_init`.
    pub fn load(
        be: &B,
        s: &Scope<'_>,
        shape: &[usize],
        in_axes: usize,
        init: KernelInit,
        bias: Option<(&[usize], Init)>,
    ) -> Result<Self> {
        let rows: usize = shape[..in_axes].iter().product();
        let cols: usize = shape[in_axes..].iter().product();
        let init = match init {
            KernelInit::Lecun => Init::LecunNormal { fan_in: rows },
            KernelInit::Xavier => Init::XavierUniform {
                fan_in: rows,
                fan_out: cols,
            },
            KernelInit::Zeros => Init::Zeros,
        };
        let role = Role::Kernel { in_axes };
        let kernel = Param::load(be, s, "kernel", shape, &[rows, cols], init, role)?;
        let bias = match bias {
            Some((bs, init)) => Some(Param::load(be, s, "bias", bs, &[cols], init, Role::Plain)?),
            None => None,
        };
        Ok(Dense { kernel, bias })
    }

    /// A plain `[in, out]` layer (a bias initialised as `bias`, if any).
    pub fn load_plain(
        be: &B,
        s: &Scope<'_>,
        din: usize,
        dout: usize,
        init: KernelInit,
        bias: Option<Init>,
    ) -> Result<Self> {
        let bias_shape = [dout];
        Self::load(
            be,
            s,
            &[din, dout],
            1,
            init,
            bias.map(|b| (&bias_shape[..], b)),
        )
    }

    /// `act(x · kernel + bias)` over the last axis of `x`.
    pub fn forward(&self, be: &B, x: &B::Tensor, activation: Activation) -> Result<B::Tensor> {
        be.matmul(
            x,
            &self.kernel.tensor,
            Matmul {
                bias: self.bias.as_ref().map(|b| &b.tensor),
                activation,
                ..Matmul::default()
            },
        )
    }
}

impl<B: Backend> Parameters<B> for Dense<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        f(&self.kernel);
        self.bias.iter().for_each(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.kernel);
        self.bias.iter_mut().for_each(f);
    }
}

/// LayerNorm with a scale and an optional bias.
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    /// `[D]`.
    pub scale: Param<B>,
    /// `[D]`.
    pub bias: Option<Param<B>>,
    /// Epsilon.
    pub eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `scale` (and `bias`) of width `d`.
    pub fn load(be: &B, s: &Scope<'_>, d: usize, bias: bool, eps: f32) -> Result<Self> {
        let vector = |name, init| Param::load(be, s, name, &[d], &[d], init, Role::Plain);
        Ok(LayerNorm {
            scale: vector("scale", Init::Ones)?,
            bias: match bias {
                true => Some(vector("bias", Init::Zeros)?),
                false => None,
            },
            eps,
        })
    }

    /// Normalises the last axis.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.layer_norm(
            x,
            &self.scale.tensor,
            self.bias.as_ref().map(|b| &b.tensor),
            self.eps,
        )
    }
}

impl<B: Backend> Parameters<B> for LayerNorm<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        f(&self.scale);
        self.bias.iter().for_each(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.scale);
        self.bias.iter_mut().for_each(f);
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
    /// values are read from inputs of width `kv_in`; kernels initialised as `init`, biases (if
    /// any) zero.
    pub fn load(
        be: &B,
        s: &Scope<'_>,
        width: usize,
        kv_in: usize,
        heads: usize,
        init: KernelInit,
        bias: bool,
    ) -> Result<Self> {
        let hd = width / heads;
        let qkv_bias = [heads, hd];
        let qkv_bias = bias.then_some((&qkv_bias[..], Init::Zeros));
        let out_bias = [width];
        let out_bias = bias.then_some((&out_bias[..], Init::Zeros));
        let project =
            |name, input| Dense::load(be, &s.pp(name), &[input, heads, hd], 1, init, qkv_bias);
        Ok(MultiHeadAttention {
            query: project("query", width)?,
            key: project("key", kv_in)?,
            value: project("value", kv_in)?,
            out: Dense::load(be, &s.pp("out"), &[heads, hd, width], 2, init, out_bias)?,
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

    fn op<'m>(&self, mask: Mask<'m>) -> Attention<'m> {
        Attention {
            heads: self.heads,
            mask,
        }
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
        let o = be.attention(&q, k, v, self.op(mask))?;
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

impl<B: Backend> Parameters<B> for MultiHeadAttention<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        for d in [&self.query, &self.key, &self.value, &self.out] {
            d.visit(f);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        for d in [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.out,
        ] {
            d.visit_mut(f);
        }
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
    /// Loads `Dense_0` and `Dense_1` (the ViT's `MlpBlock`: Xavier kernels, biases of a tiny
    /// normal).
    pub fn load(be: &B, s: &Scope<'_>, width: usize, hidden: usize, bias: bool) -> Result<Self> {
        let bias = bias.then_some(Init::Normal { std: 1e-6 });
        Ok(Mlp {
            fc0: Dense::load_plain(
                be,
                &s.pp("Dense_0"),
                width,
                hidden,
                KernelInit::Xavier,
                bias,
            )?,
            fc1: Dense::load_plain(
                be,
                &s.pp("Dense_1"),
                hidden,
                width,
                KernelInit::Xavier,
                bias,
            )?,
        })
    }

    /// `Dense_1(gelu(Dense_0(x)))`.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let h = self.fc0.forward(be, x, Activation::Gelu)?;
        self.fc1.forward(be, &h, Activation::None)
    }
}

impl<B: Backend> Parameters<B> for Mlp<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        self.fc0.visit(f);
        self.fc1.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.fc0.visit_mut(f);
        self.fc1.visit_mut(f);
    }
}

/// A position table added to a layer's input rows: learned (a parameter) or the fixed sin-cos
/// table of the reference (no parameter).
#[derive(Debug, Clone)]
pub enum Positions<B: Backend> {
    /// A learned table `[1, rows, d]`.
    Learned(Param<B>),
    /// The fixed table `[1, rows, d]`.
    Fixed(B::Tensor),
}

impl<B: Backend> Positions<B> {
    /// The learned table `name` of `s` (`[1, h·w, d]`, normal with std `1/√d`) or, if not
    /// `learned`, the sin-cos table of an `h × w` grid.
    pub fn load(
        be: &B,
        s: &Scope<'_>,
        name: &str,
        learned: bool,
        (h, w): (usize, usize),
        d: usize,
    ) -> Result<Self> {
        let shape = [1, h * w, d];
        Ok(match learned {
            true => {
                let init = Init::Normal {
                    std: 1.0 / libm::sqrtf(d as f32),
                };
                let plain = Role::Plain;
                Positions::Learned(Param::load(be, s, name, &shape, &shape, init, plain)?)
            }
            false => {
                Positions::Fixed(be.upload(&HostTensor::new(&shape, posemb_sincos_2d(h, w, d))?)?)
            }
        })
    }

    /// The table `[1, rows, d]`.
    pub fn table(&self) -> &B::Tensor {
        match self {
            Positions::Learned(p) => &p.tensor,
            Positions::Fixed(t) => t,
        }
    }
}

impl<B: Backend> Parameters<B> for Positions<B> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Param<B>)) {
        if let Positions::Learned(p) = self {
            f(p)
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        if let Positions::Learned(p) = self {
            f(p)
        }
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

/// The reverse passes of the layers above, each with what its forward pass saved.
#[cfg(feature = "train")]
mod train {
    use alloc::collections::BTreeMap;
    use alloc::format;
    use alloc::string::String;

    use super::*;
    use crate::backend::TrainBackend;
    use crate::error::Error;

    /// Gradients by parameter name, each shaped as its parameter's tensor.
    #[derive(Debug, Clone)]
    pub struct Grads<B: Backend> {
        map: BTreeMap<String, B::Tensor>,
    }

    impl<B: Backend> Default for Grads<B> {
        fn default() -> Self {
            Grads {
                map: BTreeMap::new(),
            }
        }
    }

    impl<B: Backend> Grads<B> {
        /// The gradient of the parameter `name`.
        pub fn get(&self, name: &str) -> Option<&B::Tensor> {
            self.map.get(name)
        }

        /// The gradient of `p`, or an error naming it.
        pub fn of(&self, p: &Param<B>) -> Result<&B::Tensor> {
            self.get(&p.name).ok_or_else(|| Error::MissingTensor {
                name: format!("gradient of {}", p.name),
                expected: p.shape.clone(),
            })
        }

        /// The gradient of `p` on the host, in the shape of the parameter in the model file.
        pub fn download(&self, be: &B, p: &Param<B>) -> Result<HostTensor> {
            be.download(self.of(p)?)?.reshape(&p.shape)
        }

        /// Every gradient, by name.
        pub fn iter(&self) -> impl Iterator<Item = (&String, &B::Tensor)> {
            self.map.iter()
        }

        /// Number of gradients.
        pub fn len(&self) -> usize {
            self.map.len()
        }

        /// Whether there are none.
        pub fn is_empty(&self) -> bool {
            self.map.is_empty()
        }

        /// Sets the gradient of `p` (each reverse pass sets each parameter's exactly once).
        pub fn set(&mut self, p: &Param<B>, g: B::Tensor) {
            self.map.insert(p.name.clone(), g);
        }
    }

    /// `[.., n]` → `[rows, n]`.
    fn flat<B: Backend>(be: &B, t: &B::Tensor) -> Result<B::Tensor> {
        let s = be.shape(t);
        let n = *s.last().unwrap_or(&1);
        be.reshape(t, &[s.iter().product::<usize>() / n.max(1), n])
    }

    impl<B: TrainBackend> Dense<B> {
        /// The kernel's and bias's gradients for the saved input `x` and the output gradient
        /// `dy` (no activation).
        pub fn backward_params(
            &self,
            be: &B,
            x: &B::Tensor,
            dy: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<()> {
            let dy = flat(be, dy)?;
            let t_a = Matmul {
                trans_a: true,
                ..Matmul::default()
            };
            g.set(&self.kernel, be.matmul(&flat(be, x)?, &dy, t_a)?);
            if let Some(b) = &self.bias {
                g.set(b, be.sum_axis0(&dy)?);
            }
            Ok(())
        }

        /// [`Dense::backward_params`], and returns the input gradient `dx`.
        pub fn backward(
            &self,
            be: &B,
            x: &B::Tensor,
            dy: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<B::Tensor> {
            self.backward_params(be, x, dy, g)?;
            let t_b = Matmul {
                trans_b: true,
                ..Matmul::default()
            };
            be.matmul(dy, &self.kernel.tensor, t_b)
        }
    }

    impl<B: TrainBackend> LayerNorm<B> {
        /// Gradients for the saved input `x` and output gradient `dy`; returns `dx`.
        pub fn backward(
            &self,
            be: &B,
            x: &B::Tensor,
            dy: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<B::Tensor> {
            let (dx, ds, db) = be.layer_norm_backward(x, &self.scale.tensor, dy, self.eps)?;
            g.set(&self.scale, ds);
            if let Some(b) = &self.bias {
                g.set(b, db);
            }
            Ok(dx)
        }
    }

    /// What [`MultiHeadAttention::forward_train`] saves: the query and key/value inputs, the
    /// projections and the attention output.
    #[derive(Debug, Clone)]
    pub struct AttentionSaved<B: Backend> {
        xq: B::Tensor,
        xkv: B::Tensor,
        q: B::Tensor,
        k: B::Tensor,
        v: B::Tensor,
        o: B::Tensor,
    }

    impl<B: TrainBackend> MultiHeadAttention<B> {
        /// [`MultiHeadAttention::forward`], keeping what the reverse pass needs.
        pub fn forward_train(
            &self,
            be: &B,
            xq: &B::Tensor,
            xkv: &B::Tensor,
            mask: Mask<'_>,
        ) -> Result<(B::Tensor, AttentionSaved<B>)> {
            let q = self.query.forward(be, xq, Activation::None)?;
            let (k, v) = self.project_kv(be, xkv)?;
            let o = be.attention(&q, &k, &v, self.op(mask))?;
            let y = self.out.forward(be, &o, Activation::None)?;
            let saved = AttentionSaved {
                xq: xq.clone(),
                xkv: xkv.clone(),
                q,
                k,
                v,
                o,
            };
            Ok((y, saved))
        }

        /// Gradients for output gradient `dy`; returns `(dxq, dxkv)`.
        pub fn backward(
            &self,
            be: &B,
            s: &AttentionSaved<B>,
            dy: &B::Tensor,
            mask: Mask<'_>,
            g: &mut Grads<B>,
        ) -> Result<(B::Tensor, B::Tensor)> {
            let d_o = self.out.backward(be, &s.o, dy, g)?;
            let (dq, dk, dv) =
                be.attention_backward(&s.q, &s.k, &s.v, &s.o, &d_o, self.op(mask))?;
            let dxq = self.query.backward(be, &s.xq, &dq, g)?;
            let dxk = self.key.backward(be, &s.xkv, &dk, g)?;
            let dxv = self.value.backward(be, &s.xkv, &dv, g)?;
            Ok((dxq, be.add(&dxk, &dxv)?))
        }
    }

    /// What [`Mlp::forward_train`] saves: the input, the pre-activation and the activation.
    #[derive(Debug, Clone)]
    pub struct MlpSaved<B: Backend> {
        x: B::Tensor,
        pre: B::Tensor,
        h: B::Tensor,
    }

    impl<B: TrainBackend> Mlp<B> {
        /// [`Mlp::forward`], keeping what the reverse pass needs (the GELU runs on its own, so
        /// that its input is kept).
        pub fn forward_train(&self, be: &B, x: &B::Tensor) -> Result<(B::Tensor, MlpSaved<B>)> {
            let pre = self.fc0.forward(be, x, Activation::None)?;
            let h = be.gelu(&pre)?;
            let y = self.fc1.forward(be, &h, Activation::None)?;
            let saved = MlpSaved {
                x: x.clone(),
                pre,
                h,
            };
            Ok((y, saved))
        }

        /// Gradients for output gradient `dy`; returns `dx`.
        pub fn backward(
            &self,
            be: &B,
            s: &MlpSaved<B>,
            dy: &B::Tensor,
            g: &mut Grads<B>,
        ) -> Result<B::Tensor> {
            let dh = self.fc1.backward(be, &s.h, dy, g)?;
            let dpre = be.gelu_backward(&s.pre, &dh)?;
            self.fc0.backward(be, &s.x, &dpre, g)
        }
    }

    impl<B: TrainBackend> Positions<B> {
        /// The gradient of a learned table from the gradient `dx [B, rows, d]` of the rows it
        /// was added to (the first `rows` of the table); nothing for a fixed table.
        pub fn backward(&self, be: &B, dx: &B::Tensor, g: &mut Grads<B>) -> Result<()> {
            let Positions::Learned(p) = self else {
                return Ok(());
            };
            let s = be.shape(dx);
            let d = be.reshape(&be.sum_axis0(dx)?, &[1, s[1], s[2]])?;
            let d = if s[1] == p.shape[1] {
                d
            } else {
                // Fewer rows than the table (captions shorter than max_len): the rest get 0.
                let mut full = be.zeros(&p.shape)?;
                be.write_rows(&mut full, &d, 0)?;
                full
            };
            g.set(p, d);
            Ok(())
        }
    }
}
