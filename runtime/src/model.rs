//! The CapPa model: encoder + decoder over a backend, and the inputs of both decoder modes.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::backend::{Backend, Mask};
use crate::checkpoint::{metadata, Checkpoint};
use crate::config::Config;
use crate::cpu::{CpuBackend, Gemm};
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::formats::{Precision, Role, StoredTensor, Q8_SCHEME, QUANTIZATION_KEY};
use crate::layers::{Param, Parameters, Tap};
use crate::loss::{caption_loss, LossOutput};
use crate::safetensors_io::{serialize, OwnedTensor};
use crate::tensor::{HostTensor, Tokens};
use crate::tokenizer::Tokenizer;
use crate::weights::{FileParams, Init, ParamSource, RandomParams, Scope};

/// How the decoder reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Autoregressive: input = targets shifted right (BOS = `bos_id` in front), causal mask;
    /// position `i` predicts target `i` from targets `< i`.
    Cap,
    /// Parallel prediction: every input is `[MASK]`, no mask; position `i` predicts target `i`.
    Pa,
}

/// A loaded CapPa model on backend `B`.
pub struct Model<B: Backend = CpuBackend> {
    config: Config,
    backend: B,
    encoder: Encoder<B>,
    decoder: Decoder<B>,
    tokenizer: Option<Tokenizer>,
}

impl<B: Backend> Model<B> {
    /// Builds the model from a checkpoint: every parameter the config implies must be present
    /// with its shape, and nothing else may be in the file. Parameters reach the backend as the
    /// file stores them (f32, f16, bf16 or q8; see [`crate::formats`]), which keeps them so where
    /// it can.
    pub fn new(ckpt: &Checkpoint<'_>, backend: B) -> Result<Self> {
        Self::load(ckpt, backend, None)
    }

    /// [`Model::new`], with every kernel and the token table converted to `precision` as they
    /// load, whatever the file stores (LayerNorm parameters, biases and position tables are f32
    /// in any case): an f32 file runs with bf16 or q8 weights, a q8 file with f32 ones.
    pub fn new_as(ckpt: &Checkpoint<'_>, backend: B, precision: Precision) -> Result<Self> {
        Self::load(ckpt, backend, Some(precision))
    }

    fn load(ckpt: &Checkpoint<'_>, backend: B, precision: Option<Precision>) -> Result<Self> {
        let file = ckpt.file()?;
        let params = FileParams::new(&file).with_precision(precision);
        let mut model = Self::from_source(ckpt.config(), &params, backend)?;
        params.finish()?;
        model.tokenizer = ckpt.load_tokenizer()?;
        Ok(model)
    }

    /// Builds the model from any parameter source.
    pub fn from_source(config: &Config, source: &dyn ParamSource, backend: B) -> Result<Self> {
        config.validate()?;
        let root = Scope::new(source);
        let encoder = Encoder::load(&backend, &root.pp("encoder"), config)?;
        let decoder = Decoder::load(&backend, &root, config)?;
        Ok(Model {
            config: config.clone(),
            backend,
            encoder,
            decoder,
            tokenizer: None,
        })
    }

    /// A model with every parameter `config` implies filled with seeded random values (for
    /// tests, benchmarks and demos; not the reference initialisers: see
    /// [`crate::weights::InitParams`] for those). The same seed gives the same model on every
    /// backend.
    pub fn random(config: &Config, seed: u64, backend: B) -> Result<Self> {
        Self::from_source(config, &RandomParams::new(seed), backend)
    }

    /// The model file of the current parameters, parsed (see [`Model::to_file`]).
    pub fn to_checkpoint(&self) -> Result<Checkpoint<'static>> {
        Checkpoint::from_vec(self.to_file()?)
    }

    /// The tokenizer stored with the model, if any.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Sets the tokenizer (checked against the config: vocabulary size and special ids).
    pub fn with_tokenizer(mut self, tokenizer: Tokenizer) -> Result<Self> {
        tokenizer.check_config(&self.config)?;
        self.tokenizer = Some(tokenizer);
        Ok(self)
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The decoder (for step-by-step decoding).
    pub fn decoder(&self) -> &Decoder<B> {
        &self.decoder
    }

    /// Checks `images` is `[B, image_size, image_size, in_channels]` and uploads it.
    pub fn upload_images(&self, images: &HostTensor) -> Result<B::Tensor> {
        let c = &self.config;
        let s = images.shape();
        if s.len() != 4 || s[0] == 0 || s[1..] != [c.image_size, c.image_size, c.in_channels] {
            return Err(Error::InputShape {
                what: "images".into(),
                expected: vec![0, c.image_size, c.image_size, c.in_channels],
                found: s.to_vec(),
            });
        }
        crate::limits::check_images(c, s[0])?;
        self.backend.upload(images)
    }

    /// Encodes images `[B, H, W, C]` (values already in [-1, 1]) to `[B, patches, enc_width]`.
    pub fn encode(&self, images: &HostTensor) -> Result<B::Tensor> {
        self.encode_with_tap(images, None)
    }

    /// [`Model::encode`], showing intermediates (`encoder/stem`, `encoder/with_posemb`,
    /// `encoder/block_i`) to `tap`.
    pub fn encode_with_tap(
        &self,
        images: &HostTensor,
        tap: Option<Tap<'_, B>>,
    ) -> Result<B::Tensor> {
        let x = self.upload_images(images)?;
        self.encoder.forward(&self.backend, &x, tap)
    }

    /// Checks `encoded` is `[batch, patches, enc_width]`.
    pub(crate) fn check_encoded(&self, encoded: &B::Tensor, batch: Option<usize>) -> Result<usize> {
        let s = self.backend.shape(encoded);
        let c = &self.config;
        let ok = s.len() == 3 && s[1] == c.num_patches() && s[2] == c.enc_width && s[0] > 0;
        if !ok || batch.is_some_and(|b| b != s[0]) {
            return Err(Error::InputShape {
                what: "encoded images".into(),
                expected: vec![batch.unwrap_or(0), c.num_patches(), c.enc_width],
                found: s,
            });
        }
        Ok(s[0])
    }

    /// Checks caption targets: ids below `vocab_size`, at most `max_len` long.
    pub fn check_targets(&self, targets: &Tokens) -> Result<()> {
        if targets.len() > self.config.max_len {
            return Err(Error::InputShape {
                what: "tokens".into(),
                expected: vec![targets.batch(), self.config.max_len],
                found: vec![targets.batch(), targets.len()],
            });
        }
        targets.check_below(self.config.vocab_size as u32)
    }

    /// The decoder input of one caption in `mode`.
    fn input_row(&self, target: &[u32], mode: Mode) -> Vec<u32> {
        match mode {
            Mode::Cap => core::iter::once(self.config.bos_id)
                .chain(target[..target.len() - 1].iter().copied())
                .collect(),
            Mode::Pa => vec![self.config.mask_token(); target.len()],
        }
    }

    /// Decoder inputs for `targets`, one mode per row (shift right for Cap, all `[MASK]` for Pa).
    pub fn decoder_inputs(&self, targets: &Tokens, modes: &[Mode]) -> Result<Tokens> {
        if modes.contains(&Mode::Pa) && !self.config.has_mask_token() {
            return Err(Error::PaUnavailable);
        }
        let ids = (0..targets.batch())
            .flat_map(|b| self.input_row(targets.row(b), modes[b]))
            .collect();
        Tokens::new(ids, targets.batch(), targets.len())
    }

    /// Teacher-forced logits `[B, L, V]` of `targets [B, L]` in `mode`.
    pub fn logits(&self, encoded: &B::Tensor, targets: &Tokens, mode: Mode) -> Result<B::Tensor> {
        self.logits_per_row(encoded, targets, &vec![mode; targets.batch()])
    }

    /// Logits with a mode per row: Cap rows causal and shifted, Pa rows all `[MASK]` and
    /// unmasked, in one batch (CapPa's task mixing).
    pub fn logits_per_row(
        &self,
        encoded: &B::Tensor,
        targets: &Tokens,
        modes: &[Mode],
    ) -> Result<B::Tensor> {
        self.check_encoded(encoded, Some(targets.batch()))?;
        self.check_targets(targets)?;
        let ids = self.upload_decoder_inputs(targets, modes)?;
        let causal = causal_rows(modes);
        self.decoder.forward(
            &self.backend,
            encoded,
            &ids,
            targets.len(),
            mask_of(&causal),
        )
    }

    /// Checks one mode per caption and uploads the decoder inputs of `targets` in those modes.
    fn upload_decoder_inputs(&self, targets: &Tokens, modes: &[Mode]) -> Result<B::Ids> {
        crate::limits::check_decode(&self.config, targets.batch(), targets.len(), targets.len())?;
        if modes.len() != targets.batch() {
            return Err(Error::InvalidInput(format!(
                "{} modes for {} captions",
                modes.len(),
                targets.batch()
            )));
        }
        let inputs = self.decoder_inputs(targets, modes)?;
        self.backend
            .upload_ids(&[inputs.batch(), inputs.len()], inputs.ids())
    }

    /// Every parameter, in the order of the reference tree as loaded.
    pub fn params(&self) -> Vec<&Param<B>> {
        let mut all = Vec::new();
        self.encoder.visit(&mut |p| all.push(p));
        self.decoder.visit(&mut |p| all.push(p));
        all
    }

    /// Calls `f` with the backend on every parameter, mutably, in the order of
    /// [`Model::params`] (an optimizer's update).
    pub fn update_params(&mut self, f: &mut dyn FnMut(&B, &mut Param<B>)) {
        let be = &self.backend;
        self.encoder.visit_mut(&mut |p| f(be, p));
        self.decoder.visit_mut(&mut |p| f(be, p));
    }

    /// The model file of the current parameters: f32 tensors under their reference names, the
    /// config and the tokenizer in `__metadata__` (loadable by [`Model::new`]).
    pub fn to_file(&self) -> Result<Vec<u8>> {
        let tensors = self
            .params()
            .into_iter()
            .map(|p| Ok(OwnedTensor::f32(&p.name, &p.download(&self.backend)?)))
            .collect::<Result<Vec<_>>>()?;
        let tokenizer = self.tokenizer.as_ref().map(Tokenizer::to_metadata);
        serialize(&tensors, &metadata(&self.config, tokenizer.as_deref()))
    }
}

impl<B: Backend> Model<B> {
    /// The training loss of `targets` with every caption in `mode`.
    pub fn loss(
        &self,
        encoded: &B::Tensor,
        targets: &Tokens,
        mode: Mode,
        label_smoothing: f32,
    ) -> Result<LossOutput> {
        let logits = self.logits(encoded, targets, mode)?;
        caption_loss(
            self.backend(),
            &logits,
            targets,
            self.config().pad_id,
            label_smoothing,
        )
    }

    /// The training loss with a mode per caption (CapPa's mixed batch).
    pub fn loss_per_row(
        &self,
        encoded: &B::Tensor,
        targets: &Tokens,
        modes: &[Mode],
        label_smoothing: f32,
    ) -> Result<LossOutput> {
        let logits = self.logits_per_row(encoded, targets, modes)?;
        caption_loss(
            self.backend(),
            &logits,
            targets,
            self.config().pad_id,
            label_smoothing,
        )
    }
}

impl Model<CpuBackend> {
    /// [`Model::random`] as a model file (made on the CPU): a checkpoint for tests and demos.
    pub fn random_checkpoint(config: &Config, seed: u64) -> Result<Checkpoint<'static>> {
        Model::random(config, seed, CpuBackend::with_gemm(Gemm::Blocked))?.to_checkpoint()
    }

    /// The model file of `ckpt` with every kernel and the token table in `precision` (q8:
    /// quantised per channel, with the file layout of [`crate::formats`]); every other tensor,
    /// the config and the tokenizer as they are. The file is checked as [`Model::new`] checks
    /// it.
    pub fn convert(ckpt: &Checkpoint<'_>, precision: Precision) -> Result<Vec<u8>> {
        let file = ckpt.file()?;
        let params = FileParams::new(&file).with_precision(Some(precision));
        let recording = Recording {
            inner: &params,
            tensors: RefCell::new(Vec::new()),
        };
        Model::from_source(ckpt.config(), &recording, CpuBackend::new())?;
        params.finish()?;
        let mut meta = metadata(ckpt.config(), ckpt.tokenizer());
        if precision == Precision::Q8 {
            meta.push((QUANTIZATION_KEY, Q8_SCHEME.into()));
        }
        serialize(&recording.tensors.into_inner(), &meta)
    }
}

/// A parameter source that hands out another's parameters and keeps each as a model file
/// stores it.
struct Recording<'s> {
    inner: &'s dyn ParamSource,
    tensors: RefCell<Vec<OwnedTensor>>,
}

impl ParamSource for Recording<'_> {
    fn get(&self, path: &str, shape: &[usize], init: Init, role: Role) -> Result<StoredTensor<'_>> {
        let t = self.inner.get(path, shape, init, role)?;
        self.tensors
            .borrow_mut()
            .extend(t.file_tensors(path, shape, role)?);
        Ok(t)
    }
}

/// Which captions of a batch read causally (Cap) rather than all at once (Pa).
fn causal_rows(modes: &[Mode]) -> Vec<bool> {
    modes.iter().map(|m| *m == Mode::Cap).collect()
}

/// The decoder's self-attention mask for captions with these causal flags (one batch may mix
/// Cap and Pa).
fn mask_of(causal: &[bool]) -> Mask<'_> {
    if causal.iter().all(|&c| c) {
        Mask::Causal { offset: 0 }
    } else if causal.iter().all(|&c| !c) {
        Mask::None
    } else {
        Mask::CausalRows(causal)
    }
}

#[cfg(feature = "train")]
pub use self::train::{KeptTokens, Tape};

#[cfg(feature = "train")]
mod train {
    use super::*;
    use crate::backend::TrainBackend;
    use crate::decoder::DecoderTape;
    use crate::encoder::EncoderTape;
    use crate::layers::Grads;

    /// Token dropout for the decoder in training: which of each image's encoded tokens its
    /// caption's cross-attention sees. `index` is `[B, per_example]` row-major, each entry a
    /// token of that example's encoding (`0..tokens`). Not in the paper, whose decoder sees every
    /// token: with some hidden, the decoder can name an object only where the encoder has spread
    /// it beyond the tokens that cover it. Inference always sees every token.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct KeptTokens {
        /// Tokens each example keeps.
        pub per_example: usize,
        /// The kept tokens, `per_example` per example.
        pub index: Vec<u32>,
    }

    impl KeptTokens {
        /// The rows of the flattened encodings `[B * tokens, D]` the decoder sees, after
        /// checking the subset fits a batch of `batch` images of `tokens` tokens each.
        fn rows(&self, batch: usize, tokens: usize) -> Result<Vec<u32>> {
            if self.per_example == 0 || self.per_example > tokens {
                return Err(Error::InvalidInput(format!(
                    "kept tokens: {} per example, but the images have {tokens} tokens",
                    self.per_example
                )));
            }
            if self.index.len() != batch * self.per_example {
                return Err(Error::InputShape {
                    what: "kept tokens".into(),
                    expected: vec![batch * self.per_example],
                    found: vec![self.index.len()],
                });
            }
            if u32::try_from(batch * tokens).is_err() {
                return Err(Error::InvalidInput(format!(
                    "kept tokens: {batch} images of {tokens} tokens are more rows than ids address"
                )));
            }
            if let Some(&t) = self.index.iter().find(|&&t| t as usize >= tokens) {
                return Err(Error::InvalidInput(format!(
                    "kept tokens: token {t} is not below the image's {tokens} tokens"
                )));
            }
            let rows = self.index.iter().enumerate().map(|(i, &t)| {
                let example = (i / self.per_example) as u32;
                example * tokens as u32 + t
            });
            Ok(rows.collect())
        }
    }

    /// The gather that takes the kept tokens out of the encodings, for the reverse pass.
    #[derive(Debug, Clone)]
    struct KeptRows<B: Backend> {
        rows: B::Ids,
        /// The encodings' shape `[B, T, D]`.
        shape: Vec<usize>,
    }

    /// What [`Model::forward_train`] keeps for the reverse pass of one batch.
    #[derive(Debug, Clone)]
    pub struct Tape<B: Backend> {
        encoder: EncoderTape<B>,
        kept: Option<KeptRows<B>>,
        decoder: DecoderTape<B>,
        targets: B::Ids,
        causal: Vec<bool>,
        /// Logits `[B, L, V]`.
        pub logits: B::Tensor,
    }

    impl<B: TrainBackend> Model<B> {
        /// The forward pass of a training batch: images `[B, H, W, C]` (in [-1, 1]) and caption
        /// targets `[B, L]` with a mode per caption (CapPa mixes both in one batch), keeping
        /// what [`Model::backward`] needs. The tape holds the logits. With `kept`, the decoder
        /// sees only those tokens of each image (token dropout).
        pub fn forward_train(
            &self,
            images: &HostTensor,
            targets: &Tokens,
            modes: &[Mode],
            kept: Option<&KeptTokens>,
        ) -> Result<Tape<B>> {
            let be = &self.backend;
            let images = self.upload_images(images)?;
            if targets.batch() != be.shape(&images)[0] {
                return Err(Error::InputShape {
                    what: "tokens".into(),
                    expected: vec![be.shape(&images)[0], targets.len()],
                    found: vec![targets.batch(), targets.len()],
                });
            }
            self.check_targets(targets)?;
            let (encoded, encoder) = self.encoder.forward_train(be, &images)?;
            let (encoded, kept) = match kept {
                None => (encoded, None),
                Some(k) => {
                    let shape = be.shape(&encoded);
                    let (b, t, d) = (shape[0], shape[1], shape[2]);
                    let rows = be.upload_ids(&[b, k.per_example], &k.rows(b, t)?)?;
                    let flat = be.reshape(&encoded, &[b * t, d])?;
                    (be.gather(&flat, &rows)?, Some(KeptRows { rows, shape }))
                }
            };
            let ids = self.upload_decoder_inputs(targets, modes)?;
            let causal = causal_rows(modes);
            let (logits, decoder) =
                self.decoder
                    .forward_train(be, &encoded, &ids, targets.len(), mask_of(&causal))?;
            Ok(Tape {
                encoder,
                kept,
                decoder,
                targets: be.upload_ids(&[targets.batch(), targets.len()], targets.ids())?,
                causal,
                logits,
            })
        }

        /// The reverse pass: the gradient of the reference caption loss (with
        /// `label_smoothing`; see [`crate::loss::caption_loss`]) with respect to every
        /// parameter.
        pub fn backward(&self, tape: &Tape<B>, label_smoothing: f32) -> Result<Grads<B>> {
            let be = &self.backend;
            let mut g = Grads::default();
            let d_logits = be.cross_entropy_backward(
                &tape.logits,
                &tape.targets,
                self.config.pad_id,
                label_smoothing,
            )?;
            let mask = mask_of(&tape.causal);
            let mut d_encoded =
                self.decoder
                    .backward(be, &tape.decoder, &d_logits, mask, &mut g)?;
            if let Some(k) = &tape.kept {
                // Tokens the decoder did not see get no gradient from it.
                let (b, t) = (k.shape[0], k.shape[1]);
                let d = be.gather_backward(&d_encoded, &k.rows, b * t)?;
                d_encoded = be.reshape(&d, &k.shape)?;
            }
            self.encoder
                .backward(be, &tape.encoder, &d_encoded, &mut g)?;
            Ok(g)
        }

        /// The training loss of one batch (see [`Model::forward_train`]) and its gradient with
        /// respect to every parameter.
        pub fn loss_and_grads(
            &self,
            images: &HostTensor,
            targets: &Tokens,
            modes: &[Mode],
            kept: Option<&KeptTokens>,
            label_smoothing: f32,
        ) -> Result<(LossOutput, Grads<B>)> {
            let tape = self.forward_train(images, targets, modes, kept)?;
            // The reverse pass is recorded before the loss is read back, so a device backend
            // submits the whole step at once.
            let grads = self.backward(&tape, label_smoothing)?;
            let loss = caption_loss(
                &self.backend,
                &tape.logits,
                targets,
                self.config.pad_id,
                label_smoothing,
            )?;
            Ok((loss, grads))
        }
    }
}
