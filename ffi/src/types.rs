//! The C types: status codes, option values, parameter structs, images, model information and
//! callbacks. Enumerations are plain `int32_t` typedefs with `#define`d values (not C enums), so
//! that any value a C caller passes is a valid Rust value and can be rejected with a status.

use core::ffi::{c_char, c_int, c_void};

/// What a function returns: `CAPPA_OK` (0) on success, else one of the `CAPPA_ERR_*` codes, with
/// a message for `cappa_last_error()`.
pub type cappa_status = i32;

/// Success.
pub const CAPPA_OK: cappa_status = 0;
/// A pointer argument that must not be NULL was NULL.
pub const CAPPA_ERR_NULL_POINTER: cappa_status = 1;
/// An argument is out of range: a zero or too large size or count, a row stride smaller than a
/// row, an unknown option value, a misaligned buffer, options the decoder rejects (beam width 0,
/// or above CAPPA_MAX_BEAM_WIDTH, negative temperature, top-p outside (0, 1], max_len above the
/// model's), a prompt that leaves no room for labels, images the model cannot take, or a request
/// whose sizes are over one of cappa's limits (the message names it; docs/reliability.md lists
/// them).
pub const CAPPA_ERR_INVALID_ARGUMENT: cappa_status = 2;
/// A string argument (label, prompt, path on Windows) is not valid UTF-8.
pub const CAPPA_ERR_INVALID_UTF8: cappa_status = 3;
/// A model handle, string or image buffer that cappa did not make, or has freed already.
pub const CAPPA_ERR_INVALID_HANDLE: cappa_status = 4;
/// A caller buffer is too small; the size needed has been written where the function says.
pub const CAPPA_ERR_BUFFER_TOO_SMALL: cappa_status = 5;
/// A file could not be read.
pub const CAPPA_ERR_IO: cappa_status = 6;
/// The model file is unusable: not a safetensors file, truncated, without a config, with
/// missing, misshapen or unexpected tensors, unsupported element types, non-finite weights, a
/// bad tokenizer, or sizes over one of cappa's limits (e.g. too many image tokens).
pub const CAPPA_ERR_MODEL: cappa_status = 7;
/// The model or this build of the library cannot do what was asked: text from a model without a
/// tokenizer, parallel decoding with a Cap-only model, the GPU in a build without GPU support.
pub const CAPPA_ERR_UNSUPPORTED: cappa_status = 8;
/// The compute device failed, or no GPU adapter was found for `CAPPA_DEVICE_GPU`.
pub const CAPPA_ERR_DEVICE: cappa_status = 9;
/// An image file is not a PNG or JPEG cappa can decode, or is corrupt.
pub const CAPPA_ERR_IMAGE: cappa_status = 10;
/// The progress callback returned 0: the call stopped early and wrote no outputs.
pub const CAPPA_ERR_ABORTED: cappa_status = 11;
/// An internal error (a bug in cappa, please report it): a Rust panic was caught at the library
/// boundary. The library stays usable.
pub const CAPPA_ERR_PANIC: cappa_status = 12;

/// Where a model runs.
pub type cappa_device = i32;
/// The device the `CAPPA_DEVICE` environment variable names (`cpu`, `gpu` or `auto`); if it is
/// unset or `auto`: a hardware GPU adapter if there is one (Vulkan, Metal or DX12; OpenGL only
/// when `CAPPA_GPU_BACKENDS` asks for it), else the CPU. Software GPU adapters (lavapipe,
/// SwiftShader, WARP) are slower than the CPU backend, so `auto` passes them over. The adapters
/// are looked for once per process, quietly.
pub const CAPPA_DEVICE_AUTO: cappa_device = 0;
/// The CPU backend (exact f32; uses all cores, or `CAPPA_NUM_THREADS`).
pub const CAPPA_DEVICE_CPU: cappa_device = 1;
/// The GPU backend on the best adapter, software adapters included; CAPPA_ERR_DEVICE if there is
/// none.
pub const CAPPA_DEVICE_GPU: cappa_device = 2;

/// How the large weight matrices (every dense kernel and the token table) are held, on the CPU
/// and on a GPU alike; they are converted, if asked, as the model loads. Computation is always
/// f32; LayerNorm parameters, biases and position tables are always f32.
pub type cappa_precision = i32;
/// As stored in the file (f32, f16, bf16 or q8): nothing is converted.
pub const CAPPA_PRECISION_AUTO: cappa_precision = 0;
/// Widened to f32 (the most exact, the most memory).
pub const CAPPA_PRECISION_F32: cappa_precision = 1;
/// Rounded to f16 (half the memory of f32 weights; results move by a few f16 roundings).
pub const CAPPA_PRECISION_F16: cappa_precision = 2;
/// Rounded to bfloat16 (half the memory of f32 weights; greedy decoding about 1.5x as fast on
/// the CPU for a B/16 model, docs/benchmarks.md).
pub const CAPPA_PRECISION_BF16: cappa_precision = 3;
/// Quantised to 8-bit integers with an f32 scale per output channel (a quarter of the memory
/// of f32 weights; the fastest decoding; results move by up to half a quantisation step).
pub const CAPPA_PRECISION_Q8: cappa_precision = 4;

/// How captions are decoded.
pub type cappa_decode = i32;
/// The most likely token at each step (autoregressive, with a key/value cache).
pub const CAPPA_DECODE_GREEDY: cappa_decode = 0;
/// Beam search (`beam_width`, `length_penalty`); the best caption is returned.
pub const CAPPA_DECODE_BEAM: cappa_decode = 1;
/// Random sampling (`temperature`, `top_k`, `top_p`, `seed`): the same seed gives the same
/// caption on every device.
pub const CAPPA_DECODE_SAMPLE: cappa_decode = 2;
/// One parallel (Pa) pass: every position predicted at once. Needs a CapPa model (one trained
/// with parallel prediction); CAPPA_ERR_UNSUPPORTED otherwise.
pub const CAPPA_DECODE_PARALLEL: cappa_decode = 3;

/// Pixel layout of a cappa_image; the value is the number of bytes per pixel.
pub type cappa_pixel_format = i32;
/// 8-bit red, green, blue.
pub const CAPPA_PIXEL_RGB8: cappa_pixel_format = 3;
/// 8-bit red, green, blue, alpha (alpha is ignored, as the reference pipeline drops it).
pub const CAPPA_PIXEL_RGBA8: cappa_pixel_format = 4;

/// Largest image width or height accepted, in pixels.
pub const CAPPA_MAX_IMAGE_SIDE: u32 = 65536;
/// Most images per call.
pub const CAPPA_MAX_IMAGES: usize = 1024;
/// Most labels per cappa_classify call.
pub const CAPPA_MAX_LABELS: usize = 65536;
/// Most beams per image in beam search (`beam_width`).
pub const CAPPA_MAX_BEAM_WIDTH: u32 = 256;

/// The version of this header's ABI; cappa_abi_version() returns the library's. They differ
/// when a program was compiled against another version of cappa.h than the library it loads.
pub const CAPPA_ABI_VERSION: u32 = 1;

/// An opaque model handle, made by cappa_model_load_file() or cappa_model_load_memory() and
/// released by cappa_model_free(). It is a key into the library's table of live models, never
/// dereferenced: a freed or made-up handle is reported as CAPPA_ERR_INVALID_HANDLE (handles are
/// never reused within a process).
pub struct cappa_model {
    _private: [u8; 0],
}

/// An 8-bit RGB or RGBA image in memory, row by row from the top. The pixels are only read
/// during the call that receives the image (except for images from cappa_image_load_file(),
/// whose pixels belong to cappa until cappa_image_free()). Any size is accepted: images are
/// resized to the model's square input as the reference pipeline does (bilinear, half-pixel
/// centres, no antialiasing, aspect ratio not kept) and mapped to [-1, 1].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cappa_image {
    /// The first byte of the top row. At least `stride * (height - 1) + width * channels`
    /// bytes must be readable.
    pub pixels: *const u8,
    /// Width in pixels, 1 to CAPPA_MAX_IMAGE_SIDE.
    pub width: u32,
    /// Height in pixels, 1 to CAPPA_MAX_IMAGE_SIDE.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next, at least `width * channels`;
    /// 0 means tightly packed (`width * channels`).
    pub stride: usize,
    /// CAPPA_PIXEL_RGB8 or CAPPA_PIXEL_RGBA8.
    pub format: cappa_pixel_format,
}

/// Options of cappa_model_load_file() and cappa_model_load_memory(). Start from
/// cappa_model_default_params() and change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cappa_model_params {
    /// CAPPA_DEVICE_AUTO (default), CAPPA_DEVICE_CPU or CAPPA_DEVICE_GPU.
    pub device: cappa_device,
    /// CAPPA_PRECISION_AUTO (default), CAPPA_PRECISION_F32, CAPPA_PRECISION_F16,
    /// CAPPA_PRECISION_BF16 or CAPPA_PRECISION_Q8.
    pub precision: cappa_precision,
}

/// Called during decoding for every token added to an image's caption (EOS is not reported; it
/// ends the caption), in image order within a step, on the thread that made the call.
///
/// * `user_data`: the `on_token_user_data` of the parameters.
/// * `image`: the image's index in the batch (0 for cappa_caption()).
/// * `token`: the new token id.
/// * `text`: the caption so far as UTF-8, ending with the new token. For beam search it is the
///   best live hypothesis after this step, which need not extend the previous one. Owned by
///   cappa and valid only until the callback returns.
///
/// Return nonzero to go on, 0 to stop this image: its caption ends after this token (the other
/// images go on). The callback must return normally (no longjmp, no C++ exception).
pub type cappa_token_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        image: usize,
        token: u32,
        text: *const c_char,
    ) -> c_int,
>;

/// Called on the thread that made the call with the fraction of the work done, in [0, 1],
/// increasing, ending with 1. Return nonzero to go on, 0 to abort: the call stops as soon as
/// it can and returns CAPPA_ERR_ABORTED without writing outputs. The callback must return
/// normally.
pub type cappa_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, progress: f32) -> c_int>;

/// Options of cappa_caption() and cappa_caption_batch(). Start from
/// cappa_caption_default_params() and change what you need; fields that do not concern the
/// chosen strategy are ignored.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cappa_caption_params {
    /// CAPPA_DECODE_GREEDY (default), CAPPA_DECODE_BEAM, CAPPA_DECODE_SAMPLE or
    /// CAPPA_DECODE_PARALLEL.
    pub strategy: cappa_decode,
    /// Tokens per caption at most, EOS included, 1 to the model's max_len; 0 (default) means the
    /// model's max_len.
    pub max_len: u32,
    /// Beam search: hypotheses kept per image, 1 to CAPPA_MAX_BEAM_WIDTH (default 4).
    pub beam_width: u32,
    /// Beam search: GNMT length penalty alpha; a caption of `n` tokens and log-probability `lp`
    /// scores `lp / ((5 + n) / 6)^alpha`. 0 ranks by log-probability alone (favours short
    /// captions). Default 0.6.
    pub length_penalty: f32,
    /// Sampling: divides the logits; 0 picks the most likely token. Finite, at least 0.
    /// Default 1.
    pub temperature: f32,
    /// Sampling: keep only the `top_k` most likely tokens (ties kept); 0 (default) keeps all.
    pub top_k: u32,
    /// Sampling: keep the smallest set of most likely tokens holding at least this probability
    /// mass, in (0, 1]; 1 (default) keeps all.
    pub top_p: f32,
    /// Sampling: seed of the counter-based random numbers (default 0). Image `i` of a batch
    /// draws from its own stream, so its caption does not depend on the other images.
    pub seed: u64,
    /// Streams tokens as they are chosen; NULL (default) for none.
    pub on_token: cappa_token_callback,
    /// Passed to `on_token`.
    pub on_token_user_data: *mut c_void,
    /// Progress and abort: called with 0 once the images are encoded, then each time the
    /// longest caption grows (tokens so far / max_len: captions usually end early, so it may
    /// jump), then with 1. NULL (default) for none.
    pub progress: cappa_progress_callback,
    /// Passed to `progress`.
    pub progress_user_data: *mut c_void,
}

/// Options of cappa_classify(). Start from cappa_classify_default_params().
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cappa_classify_params {
    /// UTF-8 text put before every label (for example "a photo of a"), or NULL (default) for
    /// none. Only read during the call.
    pub prompt: *const c_char,
    /// Nonzero: score each label by its mean log-probability per token instead of the sum
    /// (default 0, as the reference).
    pub normalize: i32,
    /// Progress and abort: called with 0 once the images are encoded, then after each group of
    /// 16 labels is scored (labels done / labels), ending with 1. NULL (default) for none.
    pub progress: cappa_progress_callback,
    /// Passed to `progress`.
    pub progress_user_data: *mut c_void,
}

/// What cappa_model_get_info() reports.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cappa_model_info {
    /// Side of the square input the images are resized to, in pixels.
    pub image_size: u32,
    /// Side of a square patch, in pixels.
    pub patch_size: u32,
    /// Number of token ids the model predicts.
    pub vocab_size: u32,
    /// Tokens per caption at most, EOS included.
    pub max_len: u32,
    /// Floats per image written by cappa_embed().
    pub embedding_size: u32,
    /// Encoder width (equal to embedding_size).
    pub encoder_width: u32,
    /// Number of encoder blocks.
    pub encoder_depth: u32,
    /// Decoder width.
    pub decoder_width: u32,
    /// Number of decoder blocks.
    pub decoder_depth: u32,
    /// 1 if the model carries a tokenizer (needed for captions and labels as text), else 0.
    pub has_tokenizer: i32,
    /// 1 if the model can decode in parallel (CAPPA_DECODE_PARALLEL), else 0.
    pub can_parallel: i32,
    /// 1 if the model runs on a GPU, 0 on the CPU.
    pub on_gpu: i32,
    /// Number of parameters (weights and biases).
    pub num_params: u64,
    /// Size of the model file in bytes.
    pub file_bytes: u64,
    /// The model's name from its config, UTF-8, NUL-terminated (cut to fit).
    pub name: [c_char; 64],
    /// The device in use, for example "cpu (8 threads)" or "NVIDIA GeForce RTX 4070 (Vulkan)",
    /// UTF-8, NUL-terminated (cut to fit).
    pub device: [c_char; 128],
}
