//! Model hyperparameters, named as in the reference configs and `fixtures/*/config.json`.
//!
//! Field names follow the fixture's `config.json`; keys this crate does not use are ignored,
//! so reference config files load as they are. In such files a decoder size that is missing or
//! 0 means "same as the encoder", as in the reference (`decoder_emb_dim or emb_dim`);
//! [`Config::from_json`] fills it in, so a `Config` always holds the real sizes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How position embeddings are made (reference `posemb_type`, shared by encoder and decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosEmb {
    /// A learned table (`encoder/pos_embedding`, `pos_embedding_decoder`).
    Learn,
    /// The fixed 2-D sin-cos table of the reference ViT (no parameter in the checkpoint).
    Sincos2d,
}

/// Every hyperparameter of a CapPa model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Free-form model name.
    #[serde(default = "default_name")]
    pub name: String,
    /// Square input image side in pixels.
    pub image_size: usize,
    /// Square patch side in pixels.
    pub patch_size: usize,
    /// Image channels (3 for RGB).
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    /// Encoder width.
    pub enc_width: usize,
    /// Number of encoder blocks.
    pub enc_depth: usize,
    /// Encoder attention heads.
    pub enc_heads: usize,
    /// Encoder MLP hidden size.
    pub enc_mlp: usize,
    /// Decoder width.
    pub dec_width: usize,
    /// Number of decoder blocks.
    pub dec_depth: usize,
    /// Decoder attention heads.
    pub dec_heads: usize,
    /// Decoder MLP hidden size.
    pub dec_mlp: usize,
    /// Number of output classes (the `[MASK]` id is `vocab_size`, never an output class).
    pub vocab_size: usize,
    /// Maximum caption length in tokens (`seq_len` in the reference).
    pub max_len: usize,
    /// Biases in the decoder blocks' LayerNorms and MLPs (reference default `true`; the CapPa
    /// pretraining config sets `false`).
    #[serde(default = "default_true")]
    pub decoder_bias: bool,
    /// Probability that a training example uses Pa. Any value > 0 adds the `[MASK]` row to
    /// the token embedding.
    #[serde(default)]
    pub masked_pred_prob: f32,
    /// Fraction of positions replaced by `[MASK]` in a Pa example (CapPa: 1.0).
    #[serde(default = "default_one")]
    pub masking_ratio: f32,
    /// Padding id (also excluded from the loss).
    #[serde(default)]
    pub pad_id: u32,
    /// End-of-sequence id.
    #[serde(default = "default_eos")]
    pub eos_id: u32,
    /// Start id fed to the decoder (the reference shifts right with 0).
    #[serde(default)]
    pub bos_id: u32,
    /// The `[MASK]` id; must equal `vocab_size` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_id: Option<u32>,
    /// Unknown-token id for tokenizers.
    #[serde(default = "default_unk")]
    pub unk_id: u32,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layernorm_eps: f32,
    /// Label smoothing of the training loss.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Position embedding type for both encoder and decoder.
    #[serde(default = "default_posemb")]
    pub posemb_type: PosEmb,
}

fn default_name() -> String {
    "cappa".to_string()
}
fn default_channels() -> usize {
    3
}
fn default_true() -> bool {
    true
}
fn default_one() -> f32 {
    1.0
}
fn default_eos() -> u32 {
    1
}
fn default_unk() -> u32 {
    2
}
fn default_eps() -> f32 {
    1e-6
}
fn default_posemb() -> PosEmb {
    PosEmb::Learn
}

impl Config {
    /// Parses a JSON config (reference key names), fills decoder sizes that are missing or 0
    /// with the encoder's (the reference's convention) and checks that the sizes are consistent.
    pub fn from_json(json: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Config(format!("{e}"));
        let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        if let Some(map) = value.as_object_mut() {
            for (dec, enc) in [
                ("dec_width", "enc_width"),
                ("dec_depth", "enc_depth"),
                ("dec_heads", "enc_heads"),
                ("dec_mlp", "enc_mlp"),
            ] {
                let unset = map.get(dec).is_none_or(|v| v.as_u64() == Some(0));
                if let (true, Some(e)) = (unset, map.get(enc).cloned()) {
                    map.insert(dec.to_string(), e);
                }
            }
        }
        let cfg: Config = serde_json::from_value(value).map_err(bad)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Serialises to JSON (decoder sizes written out explicitly).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("config serialises")
    }

    /// Checks that the sizes fit together; the error says which do not.
    pub fn validate(&self) -> Result<()> {
        let mut problems: Vec<String> = Vec::new();
        let positive = [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("enc_width", self.enc_width),
            ("enc_depth", self.enc_depth),
            ("enc_heads", self.enc_heads),
            ("enc_mlp", self.enc_mlp),
            ("dec_width", self.dec_width),
            ("dec_depth", self.dec_depth),
            ("dec_heads", self.dec_heads),
            ("dec_mlp", self.dec_mlp),
            ("vocab_size", self.vocab_size),
            ("max_len", self.max_len),
        ];
        for (name, v) in positive {
            if v == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Config(problems.join("; ")));
        }
        // Sizes no real model reaches; a hostile file must not make us allocate terabytes
        // before any shape check can fail.
        let limits = [
            ("image_size", self.image_size, 1 << 14),
            ("in_channels", self.in_channels, 64),
            ("enc_width", self.enc_width, 1 << 16),
            ("enc_depth", self.enc_depth, 1 << 10),
            ("enc_mlp", self.enc_mlp, 1 << 18),
            ("dec_width", self.dec_width, 1 << 16),
            ("dec_depth", self.dec_depth, 1 << 10),
            ("dec_mlp", self.dec_mlp, 1 << 18),
            ("vocab_size", self.vocab_size, 1 << 24),
        ];
        for (name, v, max) in limits {
            if v > max {
                problems.push(format!("{name} {v} exceeds the supported maximum {max}"));
            }
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            problems.push(format!(
                "image_size {} is not divisible by patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if !self.enc_width.is_multiple_of(self.enc_heads) {
            problems.push(format!(
                "enc_width {} is not divisible by enc_heads {}",
                self.enc_width, self.enc_heads
            ));
        }
        if !self.dec_width.is_multiple_of(self.dec_heads) {
            problems.push(format!(
                "dec_width {} is not divisible by dec_heads {}",
                self.dec_width, self.dec_heads
            ));
        }
        for (name, id) in [
            ("pad_id", self.pad_id),
            ("eos_id", self.eos_id),
            ("bos_id", self.bos_id),
        ] {
            if id as usize >= self.vocab_size {
                problems.push(format!(
                    "{name} {id} is not below vocab_size {}",
                    self.vocab_size
                ));
            }
        }
        if let Some(m) = self.mask_id {
            if m as usize != self.vocab_size {
                problems.push(format!(
                    "mask_id {m} must equal vocab_size {} (the extra embedding row)",
                    self.vocab_size
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.masked_pred_prob) {
            problems.push(format!(
                "masked_pred_prob {} is not in [0, 1]",
                self.masked_pred_prob
            ));
        }
        if !(0.0..=1.0).contains(&self.masking_ratio) {
            problems.push(format!(
                "masking_ratio {} is not in [0, 1]",
                self.masking_ratio
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            problems.push(format!(
                "label_smoothing {} is not in [0, 1)",
                self.label_smoothing
            ));
        }
        // A JSON number beyond f32 (1e300) arrives as infinity, which to_json would write as
        // `null`: refused, like any eps that is not a positive number.
        if !self.layernorm_eps.is_finite() || self.layernorm_eps <= 0.0 {
            problems.push(format!(
                "layernorm_eps {} must be a positive finite number",
                self.layernorm_eps
            ));
        }
        if self.posemb_type == PosEmb::Sincos2d {
            for (name, w) in [("enc_width", self.enc_width), ("dec_width", self.dec_width)] {
                if w % 4 != 0 || w < 8 {
                    problems.push(format!(
                        "{name} {w} must be a multiple of 4 (and at least 8) for sincos2d"
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Config(problems.join("; ")));
        }
        // What the sizes imply for one image and one caption (attention scores, activations,
        // parameter tensors): checked here, so that no model over a limit loads.
        crate::limits::check_config(self)
    }

    /// Patches per image side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Image tokens per image.
    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Values in one flattened patch.
    pub fn patch_dim(&self) -> usize {
        self.patch_size * self.patch_size * self.in_channels
    }

    /// Whether the token embedding has the extra `[MASK]` row (CapPa, `masked_pred_prob > 0`).
    pub fn has_mask_token(&self) -> bool {
        self.masked_pred_prob > 0.0
    }

    /// The `[MASK]` id.
    pub fn mask_token(&self) -> u32 {
        self.vocab_size as u32
    }

    /// Rows of the token embedding table.
    pub fn embed_rows(&self) -> usize {
        self.vocab_size + usize::from(self.has_mask_token())
    }

    /// The paper's public pretraining config (`big_vision/configs/proj/cappa/pretrain.py`):
    /// 224×224 images, patch 16, ViT-B encoder (width 768, 12 blocks, 12 heads, MLP 3072),
    /// 6-block decoder of the same width without biases, vocabulary 32,000, 64 tokens,
    /// Pa probability 0.75.
    pub fn b16() -> Self {
        Config {
            name: "cappa-b16".to_string(),
            image_size: 224,
            patch_size: 16,
            in_channels: 3,
            enc_width: 768,
            enc_depth: 12,
            enc_heads: 12,
            enc_mlp: 3072,
            dec_width: 768,
            dec_depth: 6,
            dec_heads: 12,
            dec_mlp: 3072,
            vocab_size: 32_000,
            max_len: 64,
            decoder_bias: false,
            masked_pred_prob: 0.75,
            ..Self::tiny_for_tests()
        }
    }

    /// [`Config::b16`] with a ViT-S/16-sized encoder and decoder (width 384, 6 heads, MLP 1536).
    pub fn s16() -> Self {
        Config {
            name: "cappa-s16".to_string(),
            enc_width: 384,
            enc_heads: 6,
            enc_mlp: 1536,
            dec_width: 384,
            dec_heads: 6,
            dec_mlp: 1536,
            ..Self::b16()
        }
    }

    /// A named preset: `tiny`, `s16` or `b16`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny_for_tests()),
            "s16" => Ok(Self::s16()),
            "b16" => Ok(Self::b16()),
            _ => Err(Error::Config(format!(
                "unknown preset `{name}` (tiny, s16 or b16)"
            ))),
        }
    }

    /// A small CapPa config for tests and examples (image 16, patch 8, width 16).
    pub fn tiny_for_tests() -> Self {
        Config {
            name: "tiny".to_string(),
            image_size: 16,
            patch_size: 8,
            in_channels: 3,
            enc_width: 16,
            enc_depth: 1,
            enc_heads: 2,
            enc_mlp: 32,
            dec_width: 16,
            dec_depth: 1,
            dec_heads: 2,
            dec_mlp: 32,
            vocab_size: 12,
            max_len: 6,
            decoder_bias: false,
            masked_pred_prob: 0.75,
            masking_ratio: 1.0,
            pad_id: 0,
            eos_id: 1,
            bos_id: 0,
            mask_id: None,
            unk_id: 2,
            layernorm_eps: 1e-6,
            label_smoothing: 0.0,
            posemb_type: PosEmb::Learn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_sizes_default_to_encoder() {
        let cfg = Config::from_json(
            r#"{"image_size":32,"patch_size":8,"enc_width":64,"enc_depth":2,"enc_heads":4,
                "enc_mlp":128,"vocab_size":50,"max_len":10,"unknown_key":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(
            (cfg.dec_width, cfg.dec_depth, cfg.dec_heads, cfg.dec_mlp),
            (64, 2, 4, 128)
        );
        assert!(cfg.decoder_bias);
        assert!(!cfg.has_mask_token());
    }

    #[test]
    fn a_config_never_holds_unresolved_sizes() {
        // Explicit 0s are the reference's "same as the encoder" too.
        let json = r#"{"image_size":32,"patch_size":8,"enc_width":64,"enc_depth":2,"enc_heads":4,
                "enc_mlp":128,"dec_width":0,"dec_depth":1,"vocab_size":50,"max_len":10}"#;
        let cfg = Config::from_json(json).unwrap();
        assert_eq!(
            (cfg.dec_width, cfg.dec_depth, cfg.dec_heads, cfg.dec_mlp),
            (64, 1, 4, 128)
        );
        // Only `from_json` knows that convention: plain deserialisation wants every size.
        let raw = serde_json::from_str::<Config>(json.replace(r#""dec_width":0,"#, "").as_str());
        assert!(raw.unwrap_err().to_string().contains("dec_width"));
        // What is written reads back the same.
        assert_eq!(Config::from_json(&cfg.to_json()).unwrap(), cfg);
    }

    #[test]
    fn inconsistent_sizes_are_named() {
        let err = Config::from_json(
            r#"{"image_size":30,"patch_size":8,"enc_width":64,"enc_depth":2,"enc_heads":5,
                "enc_mlp":128,"vocab_size":50,"max_len":10}"#,
        )
        .unwrap_err();
        let msg = alloc::format!("{err}");
        assert!(matches!(err, Error::Config(_)));
        assert!(
            msg.contains("image_size 30 is not divisible by patch_size 8"),
            "{msg}"
        );
        assert!(
            msg.contains("enc_width 64 is not divisible by enc_heads 5"),
            "{msg}"
        );
    }

    #[test]
    fn every_valid_config_survives_its_json() {
        // Found by the fuzzer (fuzz/corpus/config/regression-eps-1e300.json): 1e300 became an
        // infinite f32 eps, which passed validation and was written back as `null`.
        let mut json: serde_json::Value =
            serde_json::from_str(&Config::tiny_for_tests().to_json()).unwrap();
        json["layernorm_eps"] = serde_json::json!(1e300);
        let err = Config::from_json(&json.to_string()).unwrap_err();
        assert!(alloc::format!("{err}").contains("layernorm_eps"), "{err}");
        let c = Config::tiny_for_tests();
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn missing_key_is_a_config_error() {
        let err = Config::from_json(r#"{"image_size":32}"#).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("patch_size")),
            "{err}"
        );
    }
}
