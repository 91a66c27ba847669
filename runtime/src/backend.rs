//! The operations the model needs, as one trait. The encoder, decoder, decoding and scoring are
//! written once over it; each backend (the CPU oracle here, the wgpu backend behind its feature)
//! implements it. Shapes are checked once, in the op's module under [`crate::ops`], so every
//! backend rejects the same inputs with the same error.

use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;

use crate::error::Result;
use crate::safetensors_io::DType;
use crate::tensor::HostTensor;

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

/// Hyperparameters of one [`Backend::adamw_update`] on one tensor, all already resolved for this
/// step and tensor by the caller (the trainer), so every backend does the same f32 arithmetic.
///
/// The update follows the reference's order (big_vision `optax.make`, spec §2): the gradient is
/// scaled by `clip` (global-norm clipping), Adam's direction `m̂ / (√v̂ + eps)` is taken, scaled by
/// `lr`, `weight_decay · param` is added (zero for tensors that are not `*/kernel`), the sum is
/// scaled by `schedule`, and subtracted from the parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// Peak learning rate (multiplies the direction only).
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to `√v̂`.
    pub eps: f32,
    /// Decoupled weight decay of this tensor (0 for tensors that are not `*/kernel`).
    pub weight_decay: f32,
    /// Schedule value of this step (warm-up × cosine, in [0, 1]); scales direction and decay.
    pub schedule: f32,
    /// Gradient scale from global-norm clipping (1 when the norm is under the threshold).
    pub clip: f32,
    /// `1 − beta1^t` for the 1-based step `t` (Adam's bias correction).
    pub bias_correction1: f32,
    /// `1 − beta2^t`.
    pub bias_correction2: f32,
}

/// A compute backend: device tensors and the ops of a CapPa forward pass.
///
/// Tensors are row-major with a shape; the last axis is the feature axis. Token ids live in
/// their own tensor type so they can stay on the device between decoding steps.
pub trait Backend {
    /// An `f32` tensor on this backend.
    type Tensor: Clone + core::fmt::Debug;
    /// A `u32` tensor (token ids) on this backend.
    type Ids: Clone + core::fmt::Debug;

    /// Human-readable name of the device.
    fn name(&self) -> String;

    /// Copies a host tensor to the device.
    fn upload(&self, t: &HostTensor) -> Result<Self::Tensor>;
    /// Uploads a parameter stored in the model file as `stored`; a backend may keep 16-bit
    /// weights 16-bit (compute stays f32). The default uploads f32.
    fn upload_weight(&self, t: &HostTensor, stored: DType) -> Result<Self::Tensor> {
        let _ = stored;
        self.upload(t)
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
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;
    /// The same values with another shape of equal size (no copy where the backend allows).
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// A tensor of zeros.
    fn zeros(&self, shape: &[usize]) -> Result<Self::Tensor>;

    /// `act(op(a) · op(b) + bias)`; see [`crate::ops::matmul`] for the shape rules.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: Matmul<'_, Self::Tensor>,
    ) -> Result<Self::Tensor>;
    /// LayerNorm over the last axis, `E[x²] − E[x]²` variance (see [`crate::ops::layer_norm`]).
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        eps: f32,
    ) -> Result<Self::Tensor>;
    /// Multi-head scaled dot-product attention (see [`crate::ops::attention`]).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        op: Attention<'_>,
    ) -> Result<Self::Tensor>;
    /// Elementwise tanh-GELU.
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// `a + b`, where `b` may be smaller and is repeated (see [`crate::ops::add`]).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Rows of axis 0 picked by `ids`: `x [N, ..]` and ids of any shape `S` give
    /// `S ++ x.shape[1..]` with `out[i] = x[ids[i]]` (see [`crate::ops::gather`]): token
    /// embeddings from the table, KV caches reordered by beam, encodings repeated per beam. An id
    /// `≥ N` is an error where the backend can see it without a device round trip (the CPU
    /// always); a device backend must then at least never read out of bounds.
    fn gather(&self, x: &Self::Tensor, ids: &Self::Ids) -> Result<Self::Tensor>;
    /// NHWC images to `[B, patches, p·p·C]` rows (see [`crate::ops::patchify`]).
    fn patchify(&self, images: &Self::Tensor, patch: usize) -> Result<Self::Tensor>;
    /// `[B, L, D]` → `[B, D]`, the mean over `L`.
    fn mean_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// `[B, L, D]` → `[B, len, D]`, rows `start..start + len`.
    fn slice_rows(&self, x: &Self::Tensor, start: usize, len: usize) -> Result<Self::Tensor>;
    /// Writes `src [B, Ls, D]` into rows `start..start + Ls` of `dst [B, Ld, D]`.
    fn write_rows(&self, dst: &mut Self::Tensor, src: &Self::Tensor, start: usize) -> Result<()>;
    /// Log-softmax over the last axis.
    fn log_softmax(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Index of the largest value over the last axis (the first one on ties).
    fn argmax(&self, x: &Self::Tensor) -> Result<Self::Ids>;
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
    ) -> Result<Self::Ids>;
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
    ) -> Result<(Self::Tensor, Self::Ids)>;
    /// Per-row softmax cross-entropy of `logits [.., V]` against `targets [..]` with label
    /// smoothing (see [`crate::ops::cross_entropy`]); returns `[..]`.
    fn cross_entropy(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        label_smoothing: f32,
    ) -> Result<Self::Tensor>;

    // ---- Backward ops of the trainer (`cappa-trainer`); CPU references in `crate::ops`. ----

    /// Gradients of [`Backend::layer_norm`] at `x` for output gradient `dy` (see
    /// [`crate::ops::layer_norm_backward`]): `(dx, dscale, dbias)`, the last two `[D]` sums
    /// over every row (`dbias` is returned whether or not the forward had a bias).
    fn layer_norm_backward(
        &self,
        x: &Self::Tensor,
        scale: &Self::Tensor,
        dy: &Self::Tensor,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Gradients of [`Backend::attention`] (every mask but a causal offset other than 0 is
    /// allowed): `(dq, dk, dv)` from the forward inputs, the forward output `o` and its
    /// gradient `d_o` (see [`crate::ops::attention_backward`]).
    fn attention_backward(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        o: &Self::Tensor,
        d_o: &Self::Tensor,
        op: Attention<'_>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// `dy · gelu'(x)` elementwise, for the tanh-GELU of [`Backend::gelu`].
    fn gelu_backward(&self, x: &Self::Tensor, dy: &Self::Tensor) -> Result<Self::Tensor>;
    /// Gradient of [`Backend::gather`] with respect to an `x` of `rows` rows: the rows of
    /// `dy` (`ids.shape ++ row shape`) summed into the rows `ids` picked, in position order,
    /// without atomics, so every run gives the same bits (see [`crate::ops::gather_backward`]).
    /// Returns `[rows] ++ row shape`.
    fn gather_backward(
        &self,
        dy: &Self::Tensor,
        ids: &Self::Ids,
        rows: usize,
    ) -> Result<Self::Tensor>;
    /// `x [N, ..] → [..]`: the sum over the first axis, in row order (bias and position-table
    /// gradients; see [`crate::ops::sums`]).
    fn sum_axis0(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// The sum of squares of every tensor of `xs`, as one `[xs.len()]` tensor (global-norm
    /// clipping reads all of them in one round trip).
    fn sum_squares(&self, xs: &[&Self::Tensor]) -> Result<Self::Tensor>;
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
    ) -> Result<Self::Tensor>;
    /// One AdamW step in place on `param` and its moments `m` and `v` for gradient `grad`, all
    /// of one shape (see [`AdamW`] and [`crate::ops::adamw`]).
    fn adamw_update(
        &self,
        param: &mut Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        grad: &Self::Tensor,
        op: &AdamW,
    ) -> Result<()>;
}
