//! Resource limits: every size that a model file, a config or a request implies is checked
//! against these numbers *before* anything of that size is allocated, so that bad or hostile
//! input is an [`Error::Limit`] naming the limit — never an allocation that aborts the host.
//!
//! | limit | value | checked |
//! |---|---|---|
//! | [`MAX_IMAGE_TOKENS`] | 4,096 image tokens, `(image_size / patch_size)²` | loading |
//! | [`MAX_CAPTION_TOKENS`] | 2,048 tokens (`max_len`) | loading |
//! | [`MAX_ATTENTION_SCORES`] | 2²⁸ = heads × queries × keys of one image and layer | loading |
//! | [`MAX_TENSOR_ELEMENTS`] | 2²⁸ values (1 GiB of `f32`) in any one parameter or activation | loading, every call |
//! | [`MAX_DECODE_STATE`] | 2³⁰ values (4 GiB) in a decoder's key/value caches | every call |
//! | [`MAX_BATCH`] | 1,024 images per call | every call |
//! | [`MAX_BEAM_WIDTH`] | 256 beams per image | every call |
//! | [`MAX_IMAGE_SIDE`] | 65,536 pixels per side of an input image | preprocessing |
//! | [`MAX_DECODED_IMAGE_BYTES`] | 1 GiB of pixels decoded from one image file | decoding (CLI, C API) |
//! | [`MAX_HEADER_BYTES`] | 100 MB of safetensors header | loading |
//! | [`MAX_THREADS`] | 256 CPU threads (`CAPPA_NUM_THREADS` is clamped to it) | first use |
//!
//! Real CapPa models are far inside them (B/16: 196 image tokens, 64 caption tokens, 12 × 196²
//! attention scores); a request over a per-call limit can be split (fewer images per call, a
//! narrower beam). A GPU adds its own limit: a buffer larger than the adapter's
//! `max_buffer_size` is an [`Error::Backend`] before anything is allocated.

use alloc::format;
use alloc::string::String;

use crate::config::Config;
use crate::error::{Error, Result};

/// Image tokens per image, `(image_size / patch_size)²` (ViT at 896 px / patch 14 has 4,096).
pub const MAX_IMAGE_TOKENS: usize = 4096;
/// Tokens per caption (`max_len`; CapPa uses 64).
pub const MAX_CAPTION_TOKENS: usize = 2048;
/// Attention scores of one image in one layer: heads × queries × keys.
pub const MAX_ATTENTION_SCORES: usize = 1 << 28;
/// Values in any one parameter or activation tensor (1 GiB of `f32`).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;
/// Values held by a decoding's key/value caches, all layers together (4 GiB of `f32`).
pub const MAX_DECODE_STATE: usize = 1 << 30;
/// Images per call.
pub const MAX_BATCH: usize = 1024;
/// Beams per image in beam search.
pub const MAX_BEAM_WIDTH: usize = 256;
/// Pixels per side of an input image (before resizing).
pub const MAX_IMAGE_SIDE: usize = 65536;
/// Bytes of pixels one image file may decode to (in the CLI, the C API and the web demo).
pub const MAX_DECODED_IMAGE_BYTES: u64 = 1 << 30;
/// Bytes of a safetensors header (the `safetensors` crate's own limit).
pub const MAX_HEADER_BYTES: usize = 100_000_000;
/// CPU threads; a larger `CAPPA_NUM_THREADS` is clamped to this.
pub const MAX_THREADS: usize = 256;

/// `a × b × ...` without overflow (saturating at `u64::MAX`).
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f as u64))
        .unwrap_or(u64::MAX)
}

/// Fails with [`Error::Limit`] when `value > limit`.
pub fn check(
    what: impl FnOnce() -> String,
    value: u64,
    limit: usize,
    name: &'static str,
) -> Result<()> {
    if value > limit as u64 {
        return Err(Error::Limit {
            what: what(),
            value,
            limit: limit as u64,
            name,
        });
    }
    Ok(())
}

fn tensor(what: impl FnOnce() -> String, dims: &[usize]) -> Result<()> {
    check(
        what,
        product(dims),
        MAX_TENSOR_ELEMENTS,
        "MAX_TENSOR_ELEMENTS",
    )
}

/// The sizes a config implies for one image and one caption: image tokens, caption length,
/// attention scores, and every parameter and activation tensor. Called by
/// [`Config::validate`], so a model file over a limit fails to load.
pub fn check_config(c: &Config) -> Result<()> {
    let n = c.num_patches();
    check(
        || {
            format!(
                "image tokens per image, (image_size {} / patch_size {})²,",
                c.image_size, c.patch_size
            )
        },
        n as u64,
        MAX_IMAGE_TOKENS,
        "MAX_IMAGE_TOKENS",
    )?;
    check(
        || "max_len (tokens per caption)".into(),
        c.max_len as u64,
        MAX_CAPTION_TOKENS,
        "MAX_CAPTION_TOKENS",
    )?;
    check(
        || {
            format!(
                "the encoder's attention scores per image and layer ({} heads × {n}²)",
                c.enc_heads
            )
        },
        product(&[c.enc_heads, n, n]),
        MAX_ATTENTION_SCORES,
        "MAX_ATTENTION_SCORES",
    )?;
    let keys = c.max_len.max(n);
    check(
        || {
            format!(
                "the decoder's attention scores per caption and layer ({} heads × {} × {keys})",
                c.dec_heads, c.max_len
            )
        },
        product(&[c.dec_heads, c.max_len, keys]),
        MAX_ATTENTION_SCORES,
        "MAX_ATTENTION_SCORES",
    )?;
    let rows = c.embed_rows();
    let tensors: [(&str, &[usize]); 12] = [
        ("the patch embedding", &[c.patch_dim(), c.enc_width]),
        ("the encoder position table", &[n, c.enc_width]),
        ("an encoder MLP kernel", &[c.enc_width, c.enc_mlp]),
        ("an encoder attention kernel", &[c.enc_width, c.enc_width]),
        ("a cross-attention kernel", &[c.enc_width, c.dec_width]),
        ("a decoder MLP kernel", &[c.dec_width, c.dec_mlp]),
        ("a decoder attention kernel", &[c.dec_width, c.dec_width]),
        ("the token embedding", &[rows, c.dec_width]),
        ("the output projection", &[c.dec_width, c.vocab_size]),
        ("the patches of one image", &[n, c.patch_dim()]),
        ("the encoder MLP activations of one image", &[n, c.enc_mlp]),
        (
            "the logits of one caption",
            &[c.max_len, rows.max(c.dec_mlp)],
        ),
    ];
    for (what, dims) in tensors {
        tensor(|| format!("{what} ({dims:?} values)"), dims)?;
    }
    Ok(())
}

/// A call on `batch` images: at most [`MAX_BATCH`] of them, and the encoder's largest
/// activation (patches × MLP width, or the pixels) within [`MAX_TENSOR_ELEMENTS`].
pub fn check_images(c: &Config, batch: usize) -> Result<()> {
    check(
        || "images in one call".into(),
        batch as u64,
        MAX_BATCH,
        "MAX_BATCH",
    )?;
    let n = c.num_patches();
    let widest = c.enc_mlp.max(c.patch_dim()).max(c.enc_width);
    tensor(
        || format!("the encoder activations of {batch} images ({batch} × {n} tokens × {widest})"),
        &[batch, n, widest],
    )?;
    tensor(
        || format!("the pixels of {batch} images"),
        &[batch, c.image_size, c.image_size, c.in_channels],
    )
}

/// Decoding or scoring `rows` captions of up to `len` tokens (all images × beams, or
/// candidates), `per_pass` tokens per decoder pass (`len` for a teacher-forced or parallel
/// pass, 1 for autoregressive steps): the logits and MLP activations of a pass within
/// [`MAX_TENSOR_ELEMENTS`], and the key/value caches (self and cross attention, every layer)
/// within [`MAX_DECODE_STATE`].
pub fn check_decode(c: &Config, rows: usize, len: usize, per_pass: usize) -> Result<()> {
    let widest = c.embed_rows().max(c.dec_mlp).max(c.dec_width);
    tensor(
        || {
            format!(
                "the decoder activations of a pass over {rows} captions × {per_pass} tokens × \
                 {widest}"
            )
        },
        &[rows, per_pass, widest],
    )?;
    let n = c.num_patches();
    tensor(
        || {
            format!(
                "a cross-attention key cache ({rows} captions × {n} image tokens × {})",
                c.dec_width
            )
        },
        &[rows, n, c.dec_width],
    )?;
    let state = product(&[2, c.dec_depth, rows, len.saturating_add(n), c.dec_width]);
    check(
        || {
            format!(
                "the decoder's key/value caches ({rows} captions × {} layers × 2 × ({len} + {n}) \
                 tokens × {})",
                c.dec_depth, c.dec_width
            )
        },
        state,
        MAX_DECODE_STATE,
        "MAX_DECODE_STATE",
    )
}

/// A beam width: 1 to [`MAX_BEAM_WIDTH`].
pub fn check_beam_width(width: usize) -> Result<()> {
    check(
        || "the beam width".into(),
        width as u64,
        MAX_BEAM_WIDTH,
        "MAX_BEAM_WIDTH",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PosEmb;

    #[test]
    fn real_models_are_within_the_limits() {
        for c in [Config::b16(), Config::s16(), Config::tiny_for_tests()] {
            check_config(&c).unwrap();
            check_images(&c, 64).unwrap();
            check_decode(&c, 64 * 4, c.max_len, 1).unwrap();
            check_decode(&c, 64, c.max_len, c.max_len).unwrap();
        }
    }

    #[test]
    fn sizes_over_a_limit_name_it() {
        let mut c = Config::tiny_for_tests();
        c.posemb_type = PosEmb::Sincos2d;
        c.image_size = 4096;
        let e = check_config(&c).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Limit {
                    name: "MAX_IMAGE_TOKENS",
                    value: 262_144,
                    ..
                }
            ),
            "{e}"
        );
        let mut c = Config::tiny_for_tests();
        c.max_len = 65536;
        let e = check_config(&c).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Limit {
                    name: "MAX_CAPTION_TOKENS",
                    ..
                }
            ),
            "{e}"
        );
        let c = Config::b16();
        let e = check_images(&c, 100_000).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Limit {
                    name: "MAX_BATCH",
                    ..
                }
            ),
            "{e}"
        );
        let e = check_decode(&c, 100_000, 64, 64).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Limit {
                    name: "MAX_TENSOR_ELEMENTS",
                    ..
                }
            ),
            "{e}"
        );
        assert!(check_beam_width(100_000).is_err());
        // Products that overflow 64 bits are over the limit, not wrapped below it.
        assert_eq!(product(&[usize::MAX, usize::MAX]), u64::MAX);
    }
}
