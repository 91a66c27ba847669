//! Running a model: captions, zero-shot classification, embeddings.

use std::ffi::{c_char, c_void};
use std::ptr::null_mut;

use cappa_rt::image::PixelLayout;
use cappa_rt::{
    Beam, Classify, Decode, DecodeOptions, Device, HostTensor, Image, Model, Pool, Sample,
    Sampling, TokenEvent, Tokenizer, Tokens,
};

use crate::error::{arg, c_string, count, guard, out, slice, slice_mut, text, Checked, Fail};
use crate::handles::{self, Loaded};
use crate::types::*;

/// The defaults of cappa_caption_params: greedy, the model's max_len, beam width 4 and length
/// penalty 0.6, temperature 1, no top-k, top-p 1, seed 0, no callbacks.
#[no_mangle]
pub extern "C" fn cappa_caption_default_params() -> cappa_caption_params {
    let (beam, sampling) = (Beam::default(), Sampling::default());
    cappa_caption_params {
        strategy: CAPPA_DECODE_GREEDY,
        max_len: 0,
        beam_width: beam.width as u32,
        length_penalty: beam.length_penalty,
        temperature: sampling.temperature,
        top_k: sampling.top_k as u32,
        top_p: sampling.top_p,
        seed: 0,
        on_token: None,
        on_token_user_data: null_mut(),
        progress: None,
        progress_user_data: null_mut(),
    }
}

/// Captions one image.
///
/// * `image`: the image (only read during the call).
/// * `params`: options, or NULL for cappa_caption_default_params().
/// * `out_text`: receives the caption, UTF-8, NUL-terminated (no BOS or EOS; may be empty),
///   to be freed with cappa_string_free(); set to NULL on failure.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`model`, `image`, `image->pixels`, `out_text`),
/// CAPPA_ERR_INVALID_HANDLE, CAPPA_ERR_INVALID_ARGUMENT (image size, stride or format;
/// decoding options), CAPPA_ERR_UNSUPPORTED (no tokenizer; parallel decoding with a Cap-only
/// model), CAPPA_ERR_ABORTED, CAPPA_ERR_DEVICE.
#[no_mangle]
pub unsafe extern "C" fn cappa_caption(
    model: *const cappa_model,
    image: *const cappa_image,
    params: *const cappa_caption_params,
    out_text: *mut *mut c_char,
) -> cappa_status {
    guard("cappa_caption", || {
        let out_text = out(out_text, "out_text")?;
        *out_text = null_mut();
        let loaded = handles::model(model)?;
        let image =
            to_image(&loaded.model, arg(image, "image")?).map_err(|f| f.context("image"))?;
        let params = caption_params(params)?;
        let (text, _) = captions(&loaded, vec![image], &params)?.remove(0);
        *out_text = handles::add_string(c_string(&text));
        Ok(())
    })
}

/// Captions a batch of images in one pass (faster than one call per image).
///
/// * `images`, `n_images`: the images, 1 to CAPPA_MAX_IMAGES (only read during the call).
/// * `params`: options, or NULL for cappa_caption_default_params(). The callbacks' `image`
///   argument is the index in `images`.
/// * `out_texts`: an array of `n_images` pointers; receives one caption per image (as
///   cappa_caption()), each to be freed with cappa_string_free(). All set to NULL on failure.
/// * `out_log_probs`: NULL, or an array of `n_images` floats receiving each caption's
///   log-probability under the model (natural log, EOS included when the caption has one;
///   for parallel decoding, under the parallel pass).
///
/// Errors: as cappa_caption(), with CAPPA_ERR_NULL_POINTER for `images` and `out_texts`, and
/// CAPPA_ERR_INVALID_ARGUMENT for `n_images` 0 or above CAPPA_MAX_IMAGES.
#[no_mangle]
pub unsafe extern "C" fn cappa_caption_batch(
    model: *const cappa_model,
    images: *const cappa_image,
    n_images: usize,
    params: *const cappa_caption_params,
    out_texts: *mut *mut c_char,
    out_log_probs: *mut f32,
) -> cappa_status {
    guard("cappa_caption_batch", || {
        count(n_images, CAPPA_MAX_IMAGES, "n_images")?;
        let out_texts = slice_mut(out_texts, n_images, "out_texts")?;
        out_texts.fill(null_mut());
        let mut out_log_probs = match out_log_probs.is_null() {
            true => None,
            false => Some(slice_mut(out_log_probs, n_images, "out_log_probs")?),
        };
        let loaded = handles::model(model)?;
        let images = to_images(&loaded.model, images, n_images)?;
        let params = caption_params(params)?;
        let captions = captions(&loaded, images, &params)?;
        for (i, (text, log_prob)) in captions.into_iter().enumerate() {
            out_texts[i] = handles::add_string(c_string(&text));
            if let Some(l) = out_log_probs.as_deref_mut() {
                l[i] = log_prob;
            }
        }
        Ok(())
    })
}

/// Frees a string returned by cappa (a caption). NULL is accepted and does nothing.
///
/// Errors: CAPPA_ERR_INVALID_HANDLE (not a string from cappa, or freed already; nothing is
/// freed).
#[no_mangle]
pub unsafe extern "C" fn cappa_string_free(text: *mut c_char) -> cappa_status {
    guard("cappa_string_free", || match text.is_null() {
        true => Ok(()),
        false => handles::free_string(text),
    })
}

/// The defaults of cappa_classify_params: no prompt, scores not normalised, no callback.
#[no_mangle]
pub extern "C" fn cappa_classify_default_params() -> cappa_classify_params {
    cappa_classify_params {
        prompt: std::ptr::null(),
        normalize: 0,
        progress: None,
        progress_user_data: null_mut(),
    }
}

/// Zero-shot classification: how well each label, as a caption, fits each image. A label's
/// score is the sum of the log-probabilities of its tokens and EOS (natural log; the mean per
/// token with `normalize`), as the reference; the probabilities are the softmax of the scores
/// over the labels of an image.
///
/// * `images`, `n_images`: the images, 1 to CAPPA_MAX_IMAGES (only read during the call).
/// * `labels`, `n_labels`: UTF-8 NUL-terminated strings, 1 to CAPPA_MAX_LABELS (only read
///   during the call). Labels longer than the model's max_len tokens are cut.
/// * `params`: options, or NULL for cappa_classify_default_params().
/// * `out_scores`, `out_probabilities`: each NULL or an array of `n_images * n_labels` floats,
///   image-major (`[i * n_labels + k]` is label `k` for image `i`); at least one non-NULL.
///   Untouched on failure.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`model`, `images`, `labels`, `labels[k]`, both outputs),
/// CAPPA_ERR_INVALID_HANDLE, CAPPA_ERR_INVALID_UTF8 (a label or the prompt),
/// CAPPA_ERR_INVALID_ARGUMENT (counts, images, a prompt leaving no room for labels),
/// CAPPA_ERR_UNSUPPORTED (no tokenizer), CAPPA_ERR_ABORTED, CAPPA_ERR_DEVICE.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cappa_classify(
    model: *const cappa_model,
    images: *const cappa_image,
    n_images: usize,
    labels: *const *const c_char,
    n_labels: usize,
    params: *const cappa_classify_params,
    out_scores: *mut f32,
    out_probabilities: *mut f32,
) -> cappa_status {
    guard("cappa_classify", || {
        if out_scores.is_null() && out_probabilities.is_null() {
            return Err(Fail::new(
                CAPPA_ERR_NULL_POINTER,
                "`out_scores` and `out_probabilities` are both NULL",
            ));
        }
        count(n_images, CAPPA_MAX_IMAGES, "n_images")?;
        count(n_labels, CAPPA_MAX_LABELS, "n_labels")?;
        let total = n_images * n_labels;
        let mut outputs = Vec::new();
        for (p, what) in [
            (out_scores, "out_scores"),
            (out_probabilities, "out_probabilities"),
        ] {
            outputs.push(match p.is_null() {
                true => None,
                false => Some(slice_mut(p, total, what)?),
            });
        }
        let loaded = handles::model(model)?;
        let labels = slice(labels, n_labels, "labels")?
            .iter()
            .enumerate()
            .map(|(k, &l)| text(l, &format!("labels[{k}]")))
            .collect::<Checked<Vec<&str>>>()?;
        let images = to_images(&loaded.model, images, n_images)?;
        let params = match params.is_null() {
            true => cappa_classify_default_params(),
            false => *arg(params, "params")?,
        };
        let prompt = match params.prompt.is_null() {
            true => None,
            false => Some(text(params.prompt, "params->prompt")?),
        };
        let mut progress = Progress::new(params.progress, params.progress_user_data);
        let normalize = params.normalize != 0;
        let (scores, probabilities) =
            classify(&loaded, &images, &labels, prompt, normalize, &mut progress)?;
        for (dst, src) in outputs.into_iter().zip([scores, probabilities]) {
            if let Some(dst) = dst {
                dst.copy_from_slice(&src);
            }
        }
        Ok(())
    })
}

/// Image embeddings: the encoder's output averaged over patches (global average pooling, the
/// reference's image representation), `embedding_size` floats per image (see
/// cappa_model_get_info()).
///
/// * `images`, `n_images`: the images, 1 to CAPPA_MAX_IMAGES (only read during the call; not
///   read at all for a size query).
/// * `out`: NULL for a size query, else an array of `*len` floats receiving the embeddings,
///   image-major (`[i * embedding_size + j]`).
/// * `len`: in: the number of floats `out` holds; out: the number needed,
///   `n_images * embedding_size` (also written with CAPPA_ERR_BUFFER_TOO_SMALL).
///
/// Errors: CAPPA_ERR_NULL_POINTER (`model`, `len`, `images` unless a size query),
/// CAPPA_ERR_INVALID_HANDLE, CAPPA_ERR_BUFFER_TOO_SMALL (`*len` below the size needed),
/// CAPPA_ERR_INVALID_ARGUMENT (counts, images), CAPPA_ERR_DEVICE.
#[no_mangle]
pub unsafe extern "C" fn cappa_embed(
    model: *const cappa_model,
    images: *const cappa_image,
    n_images: usize,
    out: *mut f32,
    len: *mut usize,
) -> cappa_status {
    guard("cappa_embed", || {
        let len = crate::error::out(len, "len")?;
        let loaded = handles::model(model)?;
        count(n_images, CAPPA_MAX_IMAGES, "n_images")?;
        let need = n_images * loaded.info.embedding_size as usize;
        if out.is_null() {
            *len = need;
            return Ok(());
        }
        if *len < need {
            let room = std::mem::replace(len, need);
            return Err(Fail::new(
                CAPPA_ERR_BUFFER_TOO_SMALL,
                format!(
                    "`out` holds {room} floats but {n_images} embeddings need {need} \
                     (`*len` now says so)"
                ),
            ));
        }
        let out = slice_mut(out, need, "out")?;
        let images = to_images(&loaded.model, images, n_images)?;
        let embeddings = loaded.model.embed(&images, Pool::Gap)?;
        out.copy_from_slice(embeddings.data());
        *len = need;
        Ok(())
    })
}

/// The caption options, or the defaults for NULL.
unsafe fn caption_params(p: *const cappa_caption_params) -> Checked<cappa_caption_params> {
    match p.is_null() {
        true => Ok(cappa_caption_default_params()),
        false => Ok(*arg(p, "params")?),
    }
}

/// `n` C images, checked and preprocessed.
unsafe fn to_images(
    model: &Model<Device>,
    images: *const cappa_image,
    n: usize,
) -> Checked<Vec<Image>> {
    count(n, CAPPA_MAX_IMAGES, "n_images")?;
    slice(images, n, "images")?
        .iter()
        .enumerate()
        .map(|(i, image)| to_image(model, image).map_err(|f| f.context(&format!("images[{i}]"))))
        .collect()
}

/// One C image, checked and preprocessed to the model's input.
unsafe fn to_image(model: &Model<Device>, image: &cappa_image) -> Checked<Image> {
    let channels = match image.format {
        CAPPA_PIXEL_RGB8 => 3,
        CAPPA_PIXEL_RGBA8 => 4,
        other => {
            return Err(Fail::invalid(format!(
                "unknown pixel format {other} (CAPPA_PIXEL_RGB8 or CAPPA_PIXEL_RGBA8)"
            )))
        }
    };
    for (side, what) in [(image.width, "width"), (image.height, "height")] {
        if side == 0 || side > CAPPA_MAX_IMAGE_SIDE {
            return Err(Fail::invalid(format!(
                "the {what} is {side} pixels; it must be 1 to {CAPPA_MAX_IMAGE_SIDE}"
            )));
        }
    }
    let (width, height) = (image.width as usize, image.height as usize);
    let row = width * channels;
    let stride = match image.stride {
        0 => row,
        s => s,
    };
    if stride < row {
        return Err(Fail::invalid(format!(
            "the stride is {stride} bytes, less than a row ({width} pixels of {channels} bytes)"
        )));
    }
    let Some(bytes) = stride
        .checked_mul(height - 1)
        .and_then(|b| b.checked_add(row))
    else {
        return Err(Fail::invalid(format!(
            "a stride of {stride} bytes over {height} rows is more than memory can hold"
        )));
    };
    let pixels = slice(image.pixels, bytes, "pixels")?;
    let layout = PixelLayout {
        width,
        height,
        stride,
        channels,
    };
    Ok(model.preprocess(pixels, layout)?)
}

fn tokenizer(model: &Model<Device>) -> Checked<&Tokenizer> {
    model.tokenizer().ok_or_else(|| {
        Fail::new(
            CAPPA_ERR_UNSUPPORTED,
            "the model has no tokenizer, so it cannot turn tokens into text or text into \
             tokens (a model file carries one in its `cappa.tokenizer` metadata)",
        )
    })
}

fn decode(p: &cappa_caption_params) -> Checked<Decode> {
    Ok(match p.strategy {
        CAPPA_DECODE_GREEDY => Decode::Greedy,
        CAPPA_DECODE_BEAM => Decode::Beam(Beam {
            width: p.beam_width as usize,
            length_penalty: p.length_penalty,
        }),
        CAPPA_DECODE_SAMPLE => Decode::Sample(Sample {
            sampling: Sampling {
                temperature: p.temperature,
                top_k: p.top_k as usize,
                top_p: p.top_p,
            },
            seed: p.seed,
        }),
        CAPPA_DECODE_PARALLEL => Decode::Parallel,
        other => {
            return Err(Fail::invalid(format!(
                "unknown strategy {other} in `params` (CAPPA_DECODE_GREEDY, _BEAM, _SAMPLE or \
                 _PARALLEL)"
            )))
        }
    })
}

/// A progress callback that remembers what it was told and whether it asked to stop.
struct Progress {
    callback: cappa_progress_callback,
    user_data: *mut c_void,
    told: Option<f32>,
    aborted: bool,
}

impl Progress {
    fn new(callback: cappa_progress_callback, user_data: *mut c_void) -> Self {
        Progress {
            callback,
            user_data,
            told: None,
            aborted: false,
        }
    }

    /// Tells the callback (kept non-decreasing and in [0, 1], each value once); false once it
    /// asked to stop.
    fn tell(&mut self, done: f32) -> bool {
        let done = done.clamp(self.told.unwrap_or(0.0), 1.0);
        if let (Some(f), false) = (self.callback, self.aborted || self.told == Some(done)) {
            self.told = Some(done);
            // SAFETY: the caller passed this callback and its user data for this call.
            self.aborted = unsafe { f(self.user_data, done) } == 0;
        }
        !self.aborted
    }

    /// [`Progress::tell`], as a result.
    fn report(&mut self, done: f32) -> Checked<()> {
        self.tell(done);
        self.check()
    }

    fn check(&self) -> Checked<()> {
        match self.aborted {
            true => Err(Fail::new(
                CAPPA_ERR_ABORTED,
                "stopped: the progress callback returned 0",
            )),
            false => Ok(()),
        }
    }
}

/// The best caption of each image and its log-probability, streaming tokens and progress to
/// the callbacks of `p`.
fn captions(
    loaded: &Loaded,
    images: Vec<Image>,
    p: &cappa_caption_params,
) -> Checked<Vec<(String, f32)>> {
    let model = &loaded.model;
    let tokenizer = tokenizer(model)?;
    let decode = decode(p)?;
    let opts = DecodeOptions {
        max_len: (p.max_len != 0).then_some(p.max_len as usize),
    };
    let steps = opts.max_len.unwrap_or(model.config().max_len).max(1);
    let encoded = model.encode(&model.batch(&images)?)?;
    let mut progress = Progress::new(p.progress, p.progress_user_data);
    progress.report(0.0)?;
    // The longest caption so far: progress moves when it grows.
    let mut longest = 0;
    let mut on_token = |e: TokenEvent<'_>| -> bool {
        if e.tokens.len() > longest {
            longest = e.tokens.len();
            progress.tell(longest as f32 / steps as f32);
        }
        if progress.aborted {
            return false;
        }
        let Some(f) = p.on_token else {
            return true;
        };
        let text = c_string(&tokenizer.decode(e.tokens));
        // SAFETY: the caller passed this callback and its user data for this call.
        unsafe { f(p.on_token_user_data, e.image, e.token, text.as_ptr()) != 0 }
    };
    let stream = p.on_token.is_some() || p.progress.is_some();
    let captions = model.caption_tokens(
        &encoded,
        &decode,
        &opts,
        match stream {
            true => Some(&mut on_token),
            false => None,
        },
    )?;
    progress.check()?;
    progress.report(1.0)?;
    Ok(captions
        .into_iter()
        .map(|list| match list.into_iter().next() {
            Some(best) => (best.text, best.log_prob),
            // Beam search returns fewer captions only when there are no more finite ones.
            None => (String::new(), f32::NEG_INFINITY),
        })
        .collect())
}

/// Scores `[images, labels]` and their softmax over the labels of each image: what
/// `Model::classify_with` computes, in the groups of labels that `Model::classify_tokens`
/// scores per decoder pass, one call per group, so that progress can be reported between them.
fn classify(
    loaded: &Loaded,
    images: &[Image],
    labels: &[&str],
    prompt: Option<&str>,
    normalize: bool,
    progress: &mut Progress,
) -> Checked<(Vec<f32>, Vec<f32>)> {
    let model = &loaded.model;
    let tokenizer = tokenizer(model)?;
    let cfg = model.config();
    let opts = Classify {
        prompt: prompt.map(|p| tokenizer.encode(p)).unwrap_or_default(),
        normalize,
        ..Classify::default()
    };
    let room = cfg
        .max_len
        .checked_sub(opts.prompt.len())
        .filter(|&r| r > 0)
        .ok_or_else(|| {
            Fail::invalid(format!(
                "the prompt is {} tokens long, leaving no room for a label in the model's \
                 max_len of {}",
                opts.prompt.len(),
                cfg.max_len
            ))
        })?;
    let encoded = model.encode(&model.batch(images)?)?;
    progress.report(0.0)?;
    let (b, k) = (images.len(), labels.len());
    let mut scores = vec![0.0f32; b * k];
    for first in (0..k).step_by(opts.chunk) {
        let group = &labels[first..k.min(first + opts.chunk)];
        let n = group.len();
        let ids = group
            .iter()
            .flat_map(|l| tokenizer.encode_caption(l, room, cfg.eos_id, cfg.pad_id))
            .collect();
        let candidates = Tokens::new(ids, n, room)?;
        let part = model.classify_tokens(&encoded, &candidates, &opts)?;
        for i in 0..b {
            scores[i * k + first..][..n].copy_from_slice(&part.scores.data()[i * n..][..n]);
        }
        progress.report((first + n) as f32 / k as f32)?;
    }
    let probabilities = Model::<Device>::probabilities(&HostTensor::new(&[b, k], scores.clone())?);
    Ok((scores, probabilities))
}
