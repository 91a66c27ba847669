//! The CapPa model: encoder + decoder over a backend, and the inputs of both decoder modes.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::backend::{Backend, Mask};
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::cpu::CpuBackend;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::layers::Tap;
use crate::tensor::{HostTensor, Tokens};
use crate::tokenizer::Tokenizer;
use crate::weights::{FileParams, ParamSource, Scope};

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
    /// with its shape, and nothing else may be in the file.
    pub fn new(ckpt: &Checkpoint<'_>, backend: B) -> Result<Self> {
        let file = ckpt.file()?;
        let params = FileParams::new(&file);
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
        crate::limits::check_decode(&self.config, targets.batch(), targets.len(), targets.len())?;
        if modes.len() != targets.batch() {
            return Err(Error::InvalidInput(format!(
                "{} modes for {} captions",
                modes.len(),
                targets.batch()
            )));
        }
        let inputs = self.decoder_inputs(targets, modes)?;
        let ids = self
            .backend
            .upload_ids(&[inputs.batch(), inputs.len()], inputs.ids())?;
        let causal: Vec<bool> = modes.iter().map(|m| *m == Mode::Cap).collect();
        let mask = if causal.iter().all(|&c| c) {
            Mask::Causal { offset: 0 }
        } else if causal.iter().all(|&c| !c) {
            Mask::None
        } else {
            Mask::CausalRows(&causal)
        };
        self.decoder
            .forward(&self.backend, encoded, &ids, targets.len(), mask)
    }
}
