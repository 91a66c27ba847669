//! The operations the model needs, as one trait. The encoder, decoder, decoding and scoring are
//! written once over it; each backend (the CPU oracle, the wgpu backend behind its feature, and
//! [`crate::Device`], which is either) implements it.
//!
//! # Checked once, by structure
//!
//! Every op is a pair of trait methods:
//!
//! * the public method (`matmul`, `layer_norm`, ...) is *provided*: it reads the operands'
//!   shapes ([`Shaped`]), applies the op's shape rules — the `check` function of its module under
//!   [`crate::ops`] — and calls the kernel with the result;
//! * the kernel (`matmul_kernel`, `layer_norm_kernel`, ...: the op's name + `_kernel`) is the
//!   method a backend *implements*. Besides the operands it takes the op's checked sizes, a
//!   [`Checked`] value that only the op's `check` can make, so a kernel cannot be reached with
//!   shapes its op's rules have not accepted, and no backend checks shapes again.
//!
//! A backend implements the kernels only and leaves the provided ops as they are (overriding
//! one would bypass the shared rules; `tests/gpu_ops.rs` feeds the CPU and GPU backends the same
//! bad shapes of every op and expects the same errors).
//!
//! So every backend rejects the same inputs with the same error. What a kernel still checks is
//! what only it can see: values (the CPU checks that ids are in range; a device backend cannot
//! without a round trip, and clamps instead) and its own limits (the GPU's binding sizes, its
//! kernels' largest head dimension, 16-bit storage). [`Device`](crate::Device) implements the
//! kernels by handing the checked value on to the backend it holds.
//!
//! The trainer's ops extend the trait: `TrainBackend: Backend` (feature `train`) holds the
//! backward ops, the standalone GELU, the trainer's reductions and the fused optimizer update, in
//! the same pattern; inference builds have none of it.
//!
//! Adding an op: its sizes type and `check` + CPU reference in `ops/<op>.rs`, the provided method
//! and the `_kernel` method here, the kernel of each backend (the CPU's in `cpu.rs`, the GPU's
//! launcher in `gpu/kernels/` with its WGSL in `wgsl/`), [`crate::Device`]'s forwarding, and a
//! GPU-vs-CPU test in `tests/gpu_ops.rs`.

use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;

use crate::error::Result;
use crate::formats::StoredTensor;
use crate::ops::{self, Checked};
use crate::tensor::HostTensor;

/// What the shape rules read from a tensor or ids: the shape, on the host (no device round trip).
pub trait Shaped {
    /// The shape.
    fn shape(&self) -> &[usize];
}

/// Nonlinearity fused into a matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// GELU, tanh approximation (`jax.nn.gelu(approximate=True)`).
    Gelu,
}

/// Options of [`Backend::matmul`].
#[derive(Debug, Clone, Copy)]
pub struct Matmul<'a, T> {
    /// Use `aᵀ`: `a` is viewed as a `[K, M]` matrix.
    pub trans_a: bool,
    /// Use `bᵀ`: `b` is viewed as a `[N, K]` matrix.
    pub trans_b: bool,
    /// Batched: `a` and `b` are both `[batch, ·, ·]` and each batch is multiplied separately.
    pub batched: bool,
    /// Bias `[N]` added to every output row.
    pub bias: Option<&'a T>,
    /// Activation applied after the bias.
    pub activation: Activation,
}

impl<T> Default for Matmul<'_, T> {
    fn default() -> Self {
        Matmul {
            trans_a: false,
            trans_b: false,
            batched: false,
            bias: None,
            activation: Activation::None,
        }
    }
}

/// Which keys each query may attend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask<'a> {
    /// Every query sees every key (Pa self-attention, cross-attention).
    None,
    /// Query `i` sees keys `0..=offset + i` (Cap self-attention; `offset` is the position of the
    /// first query when decoding with a KV cache).
    Causal {
        /// Absolute position of query 0.
        offset: usize,
    },
    /// Per batch row: `true` rows are causal (offset 0), `false` rows see every key. Used to
    /// mix Cap and Pa examples in one batch.
    CausalRows(&'a [bool]),
}

/// Options of [`Backend::attention`].
#[derive(Debug, Clone, Copy)]
pub struct Attention<'a> {
    /// Number of heads; the feature axis is `heads × head_dim`.
    pub heads: usize,
    /// The mask.
    pub mask: Mask<'a>,
}

/// How [`Backend::sample`] draws a token from a row of logits. The exact semantics (which a GPU
/// kernel reproduces) are in [`crate::ops::sample`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Divides the logits; `0` picks the argmax (first maximum). Must be finite and `≥ 0`.
    pub temperature: f32,
    /// Keep only the tokens whose value is at least the `top_k`-th largest (ties kept);
    /// `0`, or any value `≥ V`, keeps every token.
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of most probable tokens (ties kept) holding at
    /// least this fraction of the probability mass. In `(0, 1]`; `1` keeps every token.
    pub top_p: f32,
}

impl Default for Sampling {
    /// Plain sampling from the model's distribution: temperature 1, no top-k, no top-p.
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// A compute backend: device tensors and the ops of a CapPa forward pass.
///
/// Tensors are row-major with a shape; the last axis is the feature axis. Token ids live in
/// their own tensor type so they can stay on the device between decoding steps. The ops are
/// provided methods that check shapes and call the backend's `_kernel` methods (see the
/// [module documentation](self)).
pub trait Backend {
    /// An `f32` tensor on this backend.
    type Tensor: Clone + core::fmt::Debug + Shaped;
    /// A `u32` tensor (token ids) on this backend.
    type Ids: Clone + core::fmt::Debug + Shaped;

    /// Human-readable name of the device.
    fn name(&self) -> String;

    /// Copies a host tensor to the device.
    fn upload(&self, t: &HostTensor) -> Result<Self::Tensor>;
    /// Uploads a kernel or table as stored in the model file (a matmul's right operand, or a
    /// table to [`Backend::gather`] from): a backend may keep it in its format (16-bit, q8) and
    /// widen it inside its kernels (compute stays f32). The default uploads it widened to f32.
    fn upload_weight(&self, t: &StoredTensor<'_>) -> Result<Self::Tensor> {
        self.upload(&t.to_host()?)
    }
    /// Copies a tensor back to the host.
    fn download(&self, t: &Self::Tensor) -> Result<HostTensor>;
    /// Copies a tensor and token ids back together; a device backend does it in one round trip
    /// (decoding reads each step's chosen ids with their log-probabilities).
    fn download_with_ids(
        &self,
        t: &Self::Tensor,
        ids: &Self::Ids,
    ) -> Result<(HostTensor, Vec<u32>)> {
        Ok((self.download(t)?, self.download_ids(ids)?))
    }
    /// Copies token ids to the device.
    fn upload_ids(&self, shape: &[usize], ids: &[u32]) -> Result<Self::Ids>;
    /// Copies token ids back to the host.
    fn download_ids(&self, ids: &Self::Ids) -> Result<Vec<u32>>;

    /// [`Backend::download`] without blocking, for callers that cannot block (a web page, where
    /// WebGPU hands memory back only from the browser's event loop). The default completes at
    /// once with the blocking method; the wgpu backend awaits the device instead.
    fn download_async(&self, t: &Self::Tensor) -> impl Future<Output = Result<HostTensor>> {
        core::future::ready(self.download(t))
    }
    /// [`Backend::download_ids`] without blocking (see [`Backend::download_async`]).
    fn download_ids_async(&self, ids: &Self::Ids) -> impl Future<Output = Result<Vec<u32>>> {
        core::future::ready(self.download_ids(ids))
    }
    /// [`Backend::download_with_ids`] without blocking (see [`Backend::download_async`]).
    fn download_with_ids_async(
        &self,
        t: &Self::Tensor,
        ids: &Self::Ids,
    ) -> impl Future<Output = Result<(HostTensor, Vec<u32>)>> {
        core::future::ready(self.download_with_ids(t, ids))
    }
    /// The shape of a tensor.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize> {
        t.shape().to_vec()
    }
    /// The same values with another shape of equal size (no copy where the backend allows).
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// A tensor of zeros.
    fn zeros(&self, shape: &[usize]) -> Result<Self::Tensor>;

    // ---- The ops: shapes checked here, once, then the backend's kernel. ----

    /// `act(op(a) · op(b) + bias)`; see [`crate::ops::matmul`] for the shape rules.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: Matmul<'_, Self::Tensor>,
    ) -> Result<Self::Tensor> {
        let bias = op.bias.map(Shaped::shape);
        let dims = ops::matmul::check(
            a.shape(),
            b.shape(),
            op.trans_a,
            op.trans_b,
            op.batched,
            bias,
        )?;
        self.matmul_kernel(a, b, op.bias, op.activation, &dims)
    }
    /// LayerNorm over the last axis, `E[x²] − E[x]²` variance (see [`crate::ops::layer_norm`]).
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        eps: f32,
    ) -> Result<Self::Tensor> {
        let dims = ops::layer_norm::check(x.shape(), scale.shape(), bias.map(Shaped::shape))?;
        self.layer_norm_kernel(x, scale, bias, eps, &dims)
    }
    /// Multi-head scaled dot-product attention (see [`crate::ops::attention`]).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        op: Attention<'_>,
    ) -> Result<Self::Tensor> {
        let dims = ops::attention::check(q.shape(), k.shape(), v.shape(), &op)?;
        self.attention_kernel(q, k, v, &op.mask, &dims)
    }
    /// `a + b`, where `b` may be smaller and is repeated (see [`crate::ops::add`]).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let dims = ops::add::check(a.shape(), b.shape())?;
        self.add_kernel(a, b, &dims)
    }
    /// Rows of axis 0 picked by `ids`: `x [N, ..]` and ids of any shape `S` give
    /// `S ++ x.shape[1..]` with `out[i] = x[ids[i]]` (see [`crate::ops::gather`]): token
    /// embeddings from the table, KV caches reordered by beam, encodings repeated per beam. An id
    /// `≥ N` is an error where the backend can see it without a device round trip (the CPU
    /// always); a device backend must then at least never read out of bounds.
    fn gather(&self, x: &Self::Tensor, ids: &Self::Ids) -> Result<Self::Tensor> {
        let dims = ops::gather::check(x.shape(), ids.shape())?;
        self.gather_kernel(x, ids, &dims)
    }
    /// NHWC images to `[B, patches, p·p·C]` rows (see [`crate::ops::patchify`]).
    fn patchify(&self, images: &Self::Tensor, patch: usize) -> Result<Self::Tensor> {
        let dims = ops::patchify::check(images.shape(), patch)?;
        self.patchify_kernel(images, &dims)
    }
    /// `[B, L, D]` → `[B, D]`, the mean over `L` (see [`crate::ops::rows`]).
    fn mean_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let dims = ops::rows::check_mean(x.shape())?;
        self.mean_rows_kernel(x, &dims)
    }
    /// `[B, L, D]` → `[B, len, D]`, rows `start..start + len`.
    fn slice_rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor> {
        let dims = ops::rows::check_slice(x.shape(), start, len)?;
        self.slice_rows_kernel(x, &dims)
    }
    /// Writes `src [B, Ls, D]` into rows `start..start + Ls` of `dst [B, Ld, D]`.
    fn write_rows(&self, dst: &mut Self::Tensor, src: &Self::Tensor, start: usize) -> Result<()> {
        let dims = ops::rows::check_write(dst.shape(), src.shape(), start)?;
        self.write_rows_kernel(dst, src, &dims)
    }
    /// Index of the largest value over the last axis (the first one on ties; see
    /// [`crate::ops::softmax::cpu_argmax`]). Errors: no last axis, or an empty one.
    fn argmax(&self, x: &Self::Tensor) -> Result<Self::Ids> {
        let dims = ops::softmax::check_argmax(x.shape())?;
        self.argmax_kernel(x, &dims)
    }
    /// One token drawn per row of `logits` (`[N, V]` or `[N, 1, V]`), giving ids `[N]` or
    /// `[N, 1]`: temperature, then top-k, then top-p filtering, then a draw from the counter-based
    /// uniform number of `(seed, row, step)`; `temperature == 0` is [`Backend::argmax`]. The
    /// exact rules, which every backend follows, are in [`crate::ops::sample`]. Errors: a shape
    /// other than those two, a temperature that is negative or not finite, `top_p` outside
    /// `(0, 1]`.
    fn sample(
        &self,
        logits: &Self::Tensor,
        op: Sampling,
        seed: u64,
        step: u32,
    ) -> Result<Self::Ids> {
        let dims = ops::sample::check(logits.shape(), &op)?;
        self.sample_kernel(logits, seed, step, &dims)
    }
    /// One beam-search step for `groups` groups of `W` beams (see [`crate::ops::beam`]): every
    /// continuation `(w, t)` of a group scores `beam_scores[row] + log_softmax(logits[row])[t]`
    /// (`row = g·W + w`); per group, the best `k` of its `W·V` continuations, best first, equal
    /// scores by lower index. `logits` is `[G·W, V]` or `[G·W, 1, V]`, `beam_scores` `[G·W]`;
    /// returns scores `[G, k]` and ids `[G, k]` (`w·V + t`). Errors: mismatched shapes, `groups`
    /// not dividing the rows, `k` outside `1..=W·V`.
    fn beam_candidates(
        &self,
        logits: &Self::Tensor,
        beam_scores: &Self::Tensor,
        groups: usize,
        k: usize,
    ) -> Result<(Self::Tensor, Self::Ids)> {
        let dims = ops::beam::check(logits.shape(), beam_scores.shape(), groups, k)?;
        self.beam_candidates_kernel(logits, beam_scores, &dims)
    }
    /// Per-row softmax cross-entropy of `logits [.., V]` against `targets [..]` with label
    /// smoothing (see [`crate::ops::cross_entropy`]); returns `[..]`.
    fn cross_entropy(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        label_smoothing: f32,
    ) -> Result<Self::Tensor> {
        let dims = ops::cross_entropy::check(logits.shape(), targets.shape())?;
        self.cross_entropy_kernel(logits, targets, label_smoothing, &dims)
    }

    // ---- Kernels: what a backend implements, for shapes its op has checked. ----

    /// Kernel of [`Backend::matmul`].
    fn matmul_kernel(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        act: Activation,
        dims: &Checked<ops::matmul::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::layer_norm`].
    fn layer_norm_kernel(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        eps: f32,
        dims: &Checked<ops::layer_norm::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::attention`].
    fn attention_kernel(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &Mask<'_>,
        dims: &Checked<ops::attention::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::add`].
    fn add_kernel(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        dims: &Checked<ops::add::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::gather`].
    fn gather_kernel(
        &self,
        x: &Self::Tensor,
        ids: &Self::Ids,
        dims: &Checked<ops::gather::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::patchify`].
    fn patchify_kernel(
        &self,
        images: &Self::Tensor,
        dims: &Checked<ops::patchify::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::mean_rows`].
    fn mean_rows_kernel(
        &self,
        x: &Self::Tensor,
        dims: &Checked<ops::rows::Mean>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::slice_rows`].
    fn slice_rows_kernel(
        &self,
        x: &Self::Tensor,
        dims: &Checked<ops::rows::Slice>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`Backend::write_rows`].
    fn write_rows_kernel(
        &self,
        dst: &mut Self::Tensor,
        src: &Self::Tensor,
        dims: &Checked<ops::rows::Write>,
    ) -> Result<()>;
    /// Kernel of [`Backend::argmax`].
    fn argmax_kernel(
        &self,
        x: &Self::Tensor,
        dims: &Checked<ops::softmax::Argmax>,
    ) -> Result<Self::Ids>;
    /// Kernel of [`Backend::sample`] (the options are in `dims`, checked).
    fn sample_kernel(
        &self,
        logits: &Self::Tensor,
        seed: u64,
        step: u32,
        dims: &Checked<ops::sample::Dims>,
    ) -> Result<Self::Ids>;
    /// Kernel of [`Backend::beam_candidates`].
    fn beam_candidates_kernel(
        &self,
        logits: &Self::Tensor,
        beam_scores: &Self::Tensor,
        dims: &Checked<ops::beam::Dims>,
    ) -> Result<(Self::Tensor, Self::Ids)>;
    /// Kernel of [`Backend::cross_entropy`].
    fn cross_entropy_kernel(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        label_smoothing: f32,
        dims: &Checked<ops::cross_entropy::Dims>,
    ) -> Result<Self::Tensor>;
}

/// The trainer's ops (feature `train`): the backward of each forward op the network uses, the
/// standalone GELU, the trainer's reductions and the fused optimizer update — provided methods
/// that check shapes and call the backend's `_kernel` methods, as in [`Backend`]. CPU references
/// in [`crate::ops`]. Builds without `train` (the C library, the web demo, `no_std`) have none of
/// these ops, their CPU references or their GPU kernels.
#[cfg(feature = "train")]
pub trait TrainBackend: Backend {
    /// Elementwise tanh-GELU (inference fuses it into the matmul instead; see
    /// [`crate::ops::gelu`]).
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let dims = ops::gelu::check(x.shape());
        self.gelu_kernel(x, &dims)
    }
    /// Gradients of [`Backend::layer_norm`] at `x` for output gradient `dy` (see
    /// [`crate::ops::layer_norm_backward`]): `(dx, dscale, dbias)`, the last two `[D]` sums
    /// over every row (`dbias` is returned whether or not the forward had a bias).
    fn layer_norm_backward(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        dy: &Self::Tensor,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        let dims = ops::layer_norm_backward::check(x.shape(), scale.shape(), dy.shape())?;
        self.layer_norm_backward_kernel(x, scale, dy, eps, &dims)
    }
    /// Gradients of [`Backend::attention`] (every mask allowed): `(dq, dk, dv)` from the forward
    /// inputs, the forward output `o` and its gradient `d_o` (see
    /// [`crate::ops::attention_backward`]).
    fn attention_backward(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        o: &Self::Tensor,
        d_o: &Self::Tensor,
        op: Attention<'_>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        let dims = ops::attention_backward::check(
            q.shape(),
            k.shape(),
            v.shape(),
            o.shape(),
            d_o.shape(),
            &op,
        )?;
        self.attention_backward_kernel(q, k, v, o, d_o, &op.mask, &dims)
    }
    /// `dy · gelu'(x)` elementwise, for the tanh-GELU of [`TrainBackend::gelu`] (see
    /// [`crate::ops::gelu_backward`]).
    fn gelu_backward(&self, x: &Self::Tensor, dy: &Self::Tensor) -> Result<Self::Tensor> {
        let dims = ops::gelu_backward::check(x.shape(), dy.shape())?;
        self.gelu_backward_kernel(x, dy, &dims)
    }
    /// Gradient of [`Backend::gather`] with respect to an `x` of `rows` rows: the rows of
    /// `dy` (`ids.shape ++ row shape`) summed into the rows `ids` picked, in position order,
    /// without atomics, so every run gives the same bits (see [`crate::ops::gather_backward`]).
    /// Returns `[rows] ++ row shape`.
    fn gather_backward(
        &self,
        dy: &Self::Tensor,
        ids: &Self::Ids,
        rows: usize,
    ) -> Result<Self::Tensor> {
        let dims = ops::gather_backward::check(dy.shape(), ids.shape(), rows)?;
        self.gather_backward_kernel(dy, ids, &dims)
    }
    /// `x [N, ..] → [..]`: the sum over the first axis, in row order (bias and position-table
    /// gradients; see [`crate::ops::sums`]).
    fn sum_axis0(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let dims = ops::sums::check_axis0(x.shape())?;
        self.sum_axis0_kernel(x, &dims)
    }
    /// The sum of squares of every tensor of `xs`, as one `[xs.len()]` tensor (global-norm
    /// clipping reads all of them in one round trip; see [`crate::ops::sums`]).
    fn sum_squares(&self, xs: &[&Self::Tensor]) -> Result<Self::Tensor> {
        let dims = ops::sums::check_squares(xs.iter().map(|x| x.shape()));
        self.sum_squares_kernel(xs, &dims)
    }
    /// Gradient of the reference caption loss ([`crate::loss::caption_loss`]: per-position
    /// softmax cross-entropy with label smoothing, PAD targets weighted 0, each caption's sum
    /// divided by its non-PAD count, then the mean over captions) with respect to
    /// `logits [B, L, V]`, fused: softmax, smoothing and normalisation in one pass (see
    /// [`crate::ops::cross_entropy_backward`]).
    fn cross_entropy_backward(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        pad_id: u32,
        label_smoothing: f32,
    ) -> Result<Self::Tensor> {
        let dims = ops::cross_entropy_backward::check(logits.shape(), targets.shape())?;
        self.cross_entropy_backward_kernel(logits, targets, pad_id, label_smoothing, &dims)
    }
    /// One AdamW step in place on `param` and its moments `m` and `v` for gradient `grad`, all
    /// of one shape (see [`ops::adamw::AdamW`] and [`crate::ops::adamw`]).
    fn adamw_update(
        &self,
        param: &mut Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        grad: &Self::Tensor,
        op: &ops::adamw::AdamW,
    ) -> Result<()> {
        let dims = ops::adamw::check(param.shape(), m.shape(), v.shape(), grad.shape())?;
        self.adamw_update_kernel(param, m, v, grad, op, &dims)
    }

    // ---- Kernels. ----

    /// Kernel of [`TrainBackend::gelu`].
    fn gelu_kernel(
        &self,
        x: &Self::Tensor,
        dims: &Checked<ops::gelu::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::layer_norm_backward`].
    fn layer_norm_backward_kernel(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        dy: &Self::Tensor,
        eps: f32,
        dims: &Checked<ops::layer_norm_backward::Dims>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Kernel of [`TrainBackend::attention_backward`].
    #[allow(clippy::too_many_arguments)]
    fn attention_backward_kernel(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        o: &Self::Tensor,
        d_o: &Self::Tensor,
        mask: &Mask<'_>,
        dims: &Checked<ops::attention_backward::Dims>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Kernel of [`TrainBackend::gelu_backward`].
    fn gelu_backward_kernel(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        dims: &Checked<ops::gelu_backward::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::gather_backward`].
    fn gather_backward_kernel(
        &self,
        dy: &Self::Tensor,
        ids: &Self::Ids,
        dims: &Checked<ops::gather_backward::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::sum_axis0`].
    fn sum_axis0_kernel(
        &self,
        x: &Self::Tensor,
        dims: &Checked<ops::sums::Axis0>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::sum_squares`].
    fn sum_squares_kernel(
        &self,
        xs: &[&Self::Tensor],
        dims: &Checked<ops::sums::Squares>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::cross_entropy_backward`].
    fn cross_entropy_backward_kernel(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        pad_id: u32,
        label_smoothing: f32,
        dims: &Checked<ops::cross_entropy_backward::Dims>,
    ) -> Result<Self::Tensor>;
    /// Kernel of [`TrainBackend::adamw_update`].
    fn adamw_update_kernel(
        &self,
        param: &mut Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        grad: &Self::Tensor,
        op: &ops::adamw::AdamW,
        dims: &Checked<ops::adamw::Dims>,
    ) -> Result<()>;
}
