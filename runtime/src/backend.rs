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
    /// Rows of `table` gathered by `ids` (see [`crate::ops::embed`]).
    fn embed(&self, table: &Self::Tensor, ids: &Self::Ids) -> Result<Self::Tensor>;
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
    /// Rows of axis 0 picked by `index`: `x [N, ..]`, `index` `M` ids (any shape, read flat)
    /// → `[M, ..]` with `out[i] = x[index[i]]` (see [`crate::ops::gather`]). An index `≥ N` is
    /// an error where the backend can see it without a device round trip (the CPU always); a
    /// device backend must then at least never read out of bounds.
    fn gather_batch(&self, x: &Self::Tensor, index: &Self::Ids) -> Result<Self::Tensor>;
    /// Per-row softmax cross-entropy of `logits [.., V]` against `targets [..]` with label
    /// smoothing (see [`crate::ops::cross_entropy`]); returns `[..]`.
    fn cross_entropy(
        &self,
        logits: &Self::Tensor,
        targets: &Self::Ids,
        label_smoothing: f32,
    ) -> Result<Self::Tensor>;
}
