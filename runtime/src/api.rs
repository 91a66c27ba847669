//! The string-level API: images in as 8-bit pixels, captions out as text, labels in as text.
//! Everything here is a thin layer over the token-level methods of [`Model`]
//! ([`Model::caption_tokens`], [`Model::classify_tokens`], [`Model::gap`]) plus the model's
//! tokenizer and the reference's image preprocessing. The `_async` methods
//! ([`Model::caption_async`], [`Model::classify_async`], ...) give the same results without
//! blocking, for web pages (see `examples/web/`).
//!
//! ```
//! use cappa::{Checkpoint, Config, CpuBackend, Decode, Model, Tokenizer};
//! use cappa::tokenizer::SpecialIds;
//!
//! // A tiny random model with a word vocabulary (real models carry theirs in the file).
//! let config = Config::tiny_for_tests();
//! let words: Vec<String> = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "circle", "square", "on",
//!     "the", "left", "right"].iter().map(|w| w.to_string()).collect();
//! let tokenizer = Tokenizer::words(words, SpecialIds::from_config(&config), true).unwrap();
//! let model = Model::random(&config, 1, CpuBackend::new())
//!     .unwrap()
//!     .with_tokenizer(tokenizer)
//!     .unwrap();
//!
//! let pixels = vec![200u8; 40 * 30 * 3]; // any size; resized as the reference does
//! let image = model.preprocess_rgb8(&pixels, 40, 30).unwrap();
//! let captions = model.caption(&[image.clone()], &Decode::Greedy).unwrap();
//! assert_eq!(captions.len(), 1);
//! let probs = model.classify(&image, &["a red circle", "a blue square"]).unwrap();
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::decoding::{Caption, Decode, DecodeOptions, OnToken};
use crate::error::{Error, Result};
use crate::image::{preprocess, PixelLayout};
use crate::model::Model;
use crate::scoring::{Classification, Classify};
use crate::tensor::{HostTensor, Tokens};
use crate::tokenizer::Tokenizer;

/// An image ready for the model: `[size, size, 3]` values in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Image(HostTensor);

impl Image {
    /// Wraps an already preprocessed `[size, size, 3]` tensor.
    pub fn from_tensor(t: HostTensor) -> Result<Self> {
        match t.shape() {
            [h, w, 3] if h == w && *h > 0 => Ok(Image(t)),
            s => Err(Error::InputShape {
                what: "image".into(),
                expected: alloc::vec![0, 0, 3],
                found: s.to_vec(),
            }),
        }
    }

    /// The tensor.
    pub fn tensor(&self) -> &HostTensor {
        &self.0
    }
}

/// How encoder tokens are pooled into one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pool {
    /// Global average over image tokens — CapPa's representation (its encoder has no class
    /// token and no MAP head).
    #[default]
    Gap,
}

/// Options of [`Model::classify_with`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassifyText {
    /// Text put before every label (e.g. "a photo of a"), tokenized without EOS.
    pub prompt: Option<String>,
    /// Score per token instead of per caption (off by default, as the reference).
    pub normalize: bool,
}

impl<B: Backend> Model<B> {
    /// Loads a single-file model from its bytes (its tokenizer included, if it has one).
    pub fn from_bytes(bytes: &[u8], backend: B) -> Result<Self> {
        Self::new(&Checkpoint::from_bytes(bytes)?, backend)
    }

    /// Resizes tightly packed 8-bit RGB pixels to the model's input (see [`crate::image`]).
    pub fn preprocess_rgb8(&self, pixels: &[u8], width: usize, height: usize) -> Result<Image> {
        self.preprocess(pixels, PixelLayout::rgb(width, height))
    }

    /// Resizes 8-bit RGB or RGBA pixels in any layout to the model's input.
    pub fn preprocess(&self, pixels: &[u8], layout: PixelLayout) -> Result<Image> {
        if self.config().in_channels != 3 {
            return Err(Error::InvalidInput(format!(
                "the model takes {} channels; RGB pixels need 3",
                self.config().in_channels
            )));
        }
        Ok(Image(preprocess(pixels, layout, self.config().image_size)?))
    }

    /// Stacks images into a `[B, size, size, 3]` batch.
    pub fn batch(&self, images: &[Image]) -> Result<HostTensor> {
        let s = self.config().image_size;
        if images.is_empty() {
            return Err(Error::InvalidInput("no images".into()));
        }
        crate::limits::check_images(self.config(), images.len())?;
        let mut data = crate::tensor::try_vec(images.len() * s * s * 3, "a batch of images")?;
        for img in images {
            if img.0.shape() != [s, s, 3] {
                return Err(Error::InputShape {
                    what: "image".into(),
                    expected: alloc::vec![s, s, 3],
                    found: img.0.shape().to_vec(),
                });
            }
            data.extend_from_slice(img.0.data());
        }
        HostTensor::new(&[images.len(), s, s, 3], data)
    }

    fn need_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer().ok_or_else(|| {
            Error::InvalidInput(
                "this model has no tokenizer (use the token-level methods, or add one with \
                 Model::with_tokenizer)"
                    .into(),
            )
        })
    }

    /// One caption per image, as text.
    pub fn caption(&self, images: &[Image], decode: &Decode) -> Result<Vec<String>> {
        let captions = self.caption_with(images, decode, &DecodeOptions::default(), None)?;
        Ok(captions
            .into_iter()
            .map(|mut c| c.swap_remove(0).text)
            .collect())
    }

    /// Captions with their tokens and scores (beam search returns its `width` best per image),
    /// streaming each new token to `on_token`.
    pub fn caption_with(
        &self,
        images: &[Image],
        decode: &Decode,
        opts: &DecodeOptions,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        self.need_tokenizer()?;
        let encoded = self.encode(&self.batch(images)?)?;
        self.caption_tokens(&encoded, decode, opts, on_token)
    }

    /// Zero-shot classification of one image: the probability of each label.
    pub fn classify(&self, image: &Image, labels: &[&str]) -> Result<Vec<f32>> {
        let c = self.classify_with(
            core::slice::from_ref(image),
            labels,
            &ClassifyText::default(),
        )?;
        Ok(c.probabilities.into_data())
    }

    /// Zero-shot classification of several images against text labels (scores `[B, K]` and
    /// probabilities), each image encoded once.
    pub fn classify_with(
        &self,
        images: &[Image],
        labels: &[&str],
        opts: &ClassifyText,
    ) -> Result<Classification> {
        let (candidates, classify) = self.label_candidates(labels, opts)?;
        let encoded = self.encode(&self.batch(images)?)?;
        self.classify_tokens(&encoded, &candidates, &classify)
    }

    /// The labels as candidate captions, and the scoring options.
    fn label_candidates(&self, labels: &[&str], opts: &ClassifyText) -> Result<(Tokens, Classify)> {
        let tok = self.need_tokenizer()?;
        if labels.is_empty() {
            return Err(Error::InvalidInput("no labels to classify against".into()));
        }
        let cfg = self.config();
        let prompt = match &opts.prompt {
            Some(p) => tok.encode(p),
            None => Vec::new(),
        };
        let room = cfg
            .max_len
            .checked_sub(prompt.len())
            .filter(|&r| r > 0)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the prompt takes {} tokens, leaving no room in max_len {}",
                    prompt.len(),
                    cfg.max_len
                ))
            })?;
        let ids: Vec<u32> = labels
            .iter()
            .flat_map(|l| tok.encode_caption(l, room, cfg.eos_id, cfg.pad_id))
            .collect();
        let candidates = Tokens::new(ids, labels.len(), room)?;
        let classify = Classify {
            prompt,
            normalize: opts.normalize,
            ..Classify::default()
        };
        Ok((candidates, classify))
    }

    /// Pooled image features `[B, enc_width]`.
    pub fn embed(&self, images: &[Image], pool: Pool) -> Result<HostTensor> {
        let encoded = self.encode(&self.batch(images)?)?;
        match pool {
            Pool::Gap => self.backend().download(&self.gap(&encoded)?),
        }
    }

    /// [`Model::caption`] without blocking (see [`Model::caption_tokens_async`]).
    pub async fn caption_async(&self, images: &[Image], decode: &Decode) -> Result<Vec<String>> {
        let captions = self
            .caption_with_async(images, decode, &DecodeOptions::default(), None)
            .await?;
        Ok(captions
            .into_iter()
            .map(|mut c| c.swap_remove(0).text)
            .collect())
    }

    /// [`Model::caption_with`] without blocking (see [`Model::caption_tokens_async`]).
    pub async fn caption_with_async(
        &self,
        images: &[Image],
        decode: &Decode,
        opts: &DecodeOptions,
        on_token: Option<OnToken<'_>>,
    ) -> Result<Vec<Vec<Caption>>> {
        self.need_tokenizer()?;
        let encoded = self.encode(&self.batch(images)?)?;
        self.caption_tokens_async(&encoded, decode, opts, on_token)
            .await
    }

    /// [`Model::classify`] without blocking (see [`Model::classify_tokens_async`]).
    pub async fn classify_async(&self, image: &Image, labels: &[&str]) -> Result<Vec<f32>> {
        let images = core::slice::from_ref(image);
        let c = self
            .classify_with_async(images, labels, &ClassifyText::default())
            .await?;
        Ok(c.probabilities.into_data())
    }

    /// [`Model::classify_with`] without blocking (see [`Model::classify_tokens_async`]).
    pub async fn classify_with_async(
        &self,
        images: &[Image],
        labels: &[&str],
        opts: &ClassifyText,
    ) -> Result<Classification> {
        let (candidates, classify) = self.label_candidates(labels, opts)?;
        let encoded = self.encode(&self.batch(images)?)?;
        self.classify_tokens_async(&encoded, &candidates, &classify)
            .await
    }

    /// [`Model::embed`] without blocking (see [`Backend::download_async`]).
    pub async fn embed_async(&self, images: &[Image], pool: Pool) -> Result<HostTensor> {
        let encoded = self.encode(&self.batch(images)?)?;
        match pool {
            Pool::Gap => self.backend().download_async(&self.gap(&encoded)?).await,
        }
    }
}
