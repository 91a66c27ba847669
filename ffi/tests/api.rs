//! The C functions called from Rust (through the rlib) and compared with the Rust API: every
//! decoding option, classification with a prompt and many labels, embeddings, precisions,
//! loading from memory, progress and abort, streaming, freeing a model in use, per-thread
//! errors, and the GPU (where an adapter exists) shared by eight threads.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::Barrier;

use cappa::*;
use cappa_rt::image::PixelLayout;
use cappa_rt::{
    Beam, Checkpoint, ClassifyText, Decode, DecodeOptions, Device, Image, Model, Pool, Precision,
    Sample, Sampling,
};
use common::{model_path, sample_image};

/// Decoded pixels and how a C caller would describe them.
struct Pixels {
    data: Vec<u8>,
    layout: PixelLayout,
}

impl Pixels {
    fn c(&self) -> cappa_image {
        cappa_image {
            pixels: self.data.as_ptr(),
            width: self.layout.width as u32,
            height: self.layout.height as u32,
            stride: self.layout.stride,
            format: self.layout.channels as cappa_pixel_format,
        }
    }

    fn rust(&self, model: &Model<Device>) -> Image {
        model.preprocess(&self.data, self.layout).unwrap()
    }
}

/// The sample image, its left half (through the full row stride) and a padded RGBA gradient.
fn images() -> Vec<Pixels> {
    let rgb = image::open(sample_image()).unwrap().into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let data = rgb.into_raw();
    let half = PixelLayout {
        width: w / 2,
        ..PixelLayout::rgb(w, h)
    };
    let (gw, gh, stride) = (23, 41, 23 * 4 + 5);
    let mut gradient = vec![0u8; stride * gh];
    for y in 0..gh {
        for x in 0..gw {
            let p = &mut gradient[y * stride + x * 4..][..4];
            p.copy_from_slice(&[(x * 11) as u8, (y * 6) as u8, ((x + y) * 3) as u8, 7]);
        }
    }
    vec![
        Pixels {
            data: data.clone(),
            layout: PixelLayout::rgb(w, h),
        },
        Pixels { data, layout: half },
        Pixels {
            data: gradient,
            layout: PixelLayout {
                stride,
                ..PixelLayout::rgba(gw, gh)
            },
        },
    ]
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(cappa_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[track_caller]
fn ok(status: cappa_status) {
    assert_eq!(status, CAPPA_OK, "{}", last_error());
}

fn load_with(
    device: cappa_device,
    precision: cappa_precision,
) -> Result<*mut cappa_model, cappa_status> {
    let path = CString::new(model_path().to_str().unwrap()).unwrap();
    let params = cappa_model_params { device, precision };
    let mut model = null_mut();
    match unsafe { cappa_model_load_file(path.as_ptr(), &params, &mut model) } {
        CAPPA_OK => Ok(model),
        status => Err(status),
    }
}

fn load(device: cappa_device) -> *mut cappa_model {
    load_with(device, CAPPA_PRECISION_AUTO).unwrap_or_else(|s| panic!("{s}: {}", last_error()))
}

fn rust_model(bytes: &[u8]) -> Model<Device> {
    Model::from_bytes(bytes, Device::cpu()).unwrap()
}

/// Takes a string from cappa and frees it.
fn take(text: *mut c_char) -> String {
    assert!(!text.is_null());
    let s = unsafe { CStr::from_ptr(text) }
        .to_str()
        .unwrap()
        .to_string();
    ok(unsafe { cappa_string_free(text) });
    s
}

/// Captions and log-probabilities through `cappa_caption_batch`.
fn c_captions(
    model: *const cappa_model,
    images: &[cappa_image],
    params: &cappa_caption_params,
) -> Vec<(String, f32)> {
    let mut texts = vec![null_mut(); images.len()];
    let mut log_probs = vec![0.0f32; images.len()];
    ok(unsafe {
        cappa_caption_batch(
            model,
            images.as_ptr(),
            images.len(),
            params,
            texts.as_mut_ptr(),
            log_probs.as_mut_ptr(),
        )
    });
    texts.into_iter().map(take).zip(log_probs).collect()
}

fn rust_captions(
    model: &Model<Device>,
    images: &[Image],
    decode: &Decode,
    max_len: Option<usize>,
) -> Vec<(String, f32)> {
    let opts = DecodeOptions { max_len };
    model
        .caption_with(images, decode, &opts, None)
        .unwrap()
        .into_iter()
        .map(|c| (c[0].text.clone(), c[0].log_prob))
        .collect()
}

/// Caption parameters and the `Decode` they mean.
fn strategies() -> Vec<(cappa_caption_params, Decode)> {
    let d = cappa_caption_default_params();
    let beam = Beam {
        width: 3,
        length_penalty: 0.0,
    };
    let sampling = Sampling {
        temperature: 0.7,
        top_k: 5,
        top_p: 0.9,
    };
    vec![
        (d, Decode::Greedy),
        (
            cappa_caption_params {
                strategy: CAPPA_DECODE_BEAM,
                ..d
            },
            Decode::Beam(Beam::default()),
        ),
        (
            cappa_caption_params {
                strategy: CAPPA_DECODE_BEAM,
                beam_width: 3,
                length_penalty: 0.0,
                ..d
            },
            Decode::Beam(beam),
        ),
        (
            cappa_caption_params {
                strategy: CAPPA_DECODE_SAMPLE,
                temperature: 0.7,
                top_k: 5,
                top_p: 0.9,
                seed: 3,
                ..d
            },
            Decode::Sample(Sample { sampling, seed: 3 }),
        ),
        (
            cappa_caption_params {
                strategy: CAPPA_DECODE_PARALLEL,
                ..d
            },
            Decode::Parallel,
        ),
    ]
}

fn labels(n: usize) -> Vec<String> {
    let colours = ["red", "green", "blue", "yellow", "white", "black", "gray"];
    let shapes = ["circle", "square", "triangle", "star", "ring", "cross"];
    (0..n)
        .map(|i| {
            let (c, s) = (
                colours[i % colours.len()],
                shapes[i / colours.len() % shapes.len()],
            );
            match i % 3 {
                0 => format!("a {c} {s}"),
                1 => format!("two {c} {s} on the left"),
                _ => format!("the {s}"),
            }
        })
        .collect()
}

#[test]
fn every_option_gives_what_the_rust_api_gives() {
    let bytes = std::fs::read(model_path()).unwrap();
    let rust = rust_model(&bytes);
    let model = load(CAPPA_DEVICE_CPU);
    let pixels = images();
    let c_images: Vec<_> = pixels.iter().map(Pixels::c).collect();
    let images: Vec<_> = pixels.iter().map(|p| p.rust(&rust)).collect();

    for (params, decode) in strategies() {
        for max_len in [None, Some(4)] {
            let params = cappa_caption_params {
                max_len: max_len.unwrap_or(0) as u32,
                ..params
            };
            let got = c_captions(model, &c_images, &params);
            let want = rust_captions(&rust, &images, &decode, max_len);
            assert_eq!(got.len(), want.len());
            for ((gt, gl), (wt, wl)) in got.iter().zip(&want) {
                assert_eq!(gt, wt, "{decode:?} max_len {max_len:?}");
                assert_eq!(gl.to_bits(), wl.to_bits(), "{decode:?} max_len {max_len:?}");
            }
            // One image at a time through cappa_caption.
            let mut text = null_mut();
            ok(unsafe { cappa_caption(model, &c_images[0], &params, &mut text) });
            let single = take(text);
            let want = rust_captions(&rust, &images[..1], &decode, max_len);
            assert_eq!(single, want[0].0);
        }
    }

    // Classification: a prompt, normalised scores, and more labels than one decoder pass takes.
    let labels = labels(37);
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let c_labels: Vec<CString> = labels
        .iter()
        .map(|l| CString::new(l.as_str()).unwrap())
        .collect();
    let label_ptrs: Vec<*const c_char> = c_labels.iter().map(|l| l.as_ptr()).collect();
    let prompt = CString::new("a picture of").unwrap();
    for (prompt_text, normalize) in [(None, false), (Some("a picture of"), true)] {
        let params = cappa_classify_params {
            prompt: if prompt_text.is_some() {
                prompt.as_ptr()
            } else {
                null()
            },
            normalize: normalize as i32,
            ..cappa_classify_default_params()
        };
        let n = c_images.len() * labels.len();
        let (mut scores, mut probs) = (vec![0.0f32; n], vec![0.0f32; n]);
        ok(unsafe {
            cappa_classify(
                model,
                c_images.as_ptr(),
                c_images.len(),
                label_ptrs.as_ptr(),
                label_ptrs.len(),
                &params,
                scores.as_mut_ptr(),
                probs.as_mut_ptr(),
            )
        });
        let opts = ClassifyText {
            prompt: prompt_text.map(str::to_string),
            normalize,
        };
        let want = rust.classify_with(&images, &label_refs, &opts).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&scores), bits(want.scores.data()), "{opts:?}");
        assert_eq!(bits(&probs), bits(want.probabilities.data()), "{opts:?}");
    }

    // Embeddings.
    let mut len = 0usize;
    ok(unsafe {
        cappa_embed(
            model,
            c_images.as_ptr(),
            c_images.len(),
            null_mut(),
            &mut len,
        )
    });
    let mut embeddings = vec![0.0f32; len];
    ok(unsafe {
        cappa_embed(
            model,
            c_images.as_ptr(),
            c_images.len(),
            embeddings.as_mut_ptr(),
            &mut len,
        )
    });
    let want = rust.embed(&images, Pool::Gap).unwrap();
    assert_eq!(embeddings, want.data());
    ok(unsafe { cappa_model_free(model) });
}

#[test]
fn precisions_and_memory_loading_give_what_the_rust_api_gives() {
    let bytes = std::fs::read(model_path()).unwrap();
    let pixels = images();
    let c_images: Vec<_> = pixels.iter().map(Pixels::c).collect();
    let greedy = cappa_caption_default_params();
    // Each precision converts the kernels and the token table as the model loads, as
    // `Model::new_as` does (no file is written again).
    for (precision, as_precision) in [
        (CAPPA_PRECISION_AUTO, None),
        (CAPPA_PRECISION_F32, Some(Precision::F32)),
        (CAPPA_PRECISION_F16, Some(Precision::F16)),
        (CAPPA_PRECISION_BF16, Some(Precision::BF16)),
        (CAPPA_PRECISION_Q8, Some(Precision::Q8)),
    ] {
        let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
        let rust = match as_precision {
            Some(p) => Model::new_as(&ckpt, Device::cpu(), p).unwrap(),
            None => rust_model(&bytes),
        };
        let images: Vec<_> = pixels.iter().map(|p| p.rust(&rust)).collect();
        let want = rust_captions(&rust, &images, &Decode::Greedy, None);
        let model = load_with(CAPPA_DEVICE_CPU, precision).unwrap();
        assert_eq!(
            c_captions(model, &c_images, &greedy),
            want,
            "precision {precision}"
        );
        ok(unsafe { cappa_model_free(model) });
    }

    let params = cappa_model_params {
        device: CAPPA_DEVICE_CPU,
        precision: CAPPA_PRECISION_AUTO,
    };
    let mut from_memory = null_mut();
    ok(unsafe {
        cappa_model_load_memory(
            bytes.as_ptr().cast(),
            bytes.len(),
            &params,
            &mut from_memory,
        )
    });
    let from_file = load(CAPPA_DEVICE_CPU);
    assert_eq!(
        c_captions(from_memory, &c_images, &greedy),
        c_captions(from_file, &c_images, &greedy)
    );
    ok(unsafe { cappa_model_free(from_memory) });
    ok(unsafe { cappa_model_free(from_file) });

    // Automatic device choice loads somewhere and says where.
    let auto = load(CAPPA_DEVICE_AUTO);
    let mut info: cappa_model_info = unsafe { std::mem::zeroed() };
    ok(unsafe { cappa_model_get_info(auto, &mut info) });
    let device = unsafe { CStr::from_ptr(info.device.as_ptr()) }
        .to_str()
        .unwrap();
    assert_eq!(device.starts_with("cpu"), info.on_gpu == 0, "{device}");
    ok(unsafe { cappa_model_free(auto) });
}

unsafe extern "C" fn record_progress(user_data: *mut c_void, progress: f32) -> c_int {
    let seen = &mut *(user_data as *mut Vec<f32>);
    seen.push(progress);
    // Stop at the third call when asked to (a NaN first entry asks).
    (!(seen[0].is_nan() && seen.len() == 4)) as c_int
}

#[test]
fn progress_rises_from_0_to_1_and_can_abort_midway() {
    let model = load(CAPPA_DEVICE_CPU);
    let pixels = images();
    let c_images: Vec<_> = pixels.iter().map(Pixels::c).collect();
    let mut seen: Vec<f32> = Vec::new();
    let params = cappa_caption_params {
        strategy: CAPPA_DECODE_BEAM,
        progress: Some(record_progress),
        progress_user_data: (&mut seen as *mut Vec<f32>).cast(),
        ..cappa_caption_default_params()
    };
    let quiet = cappa_caption_params {
        progress: None,
        ..params
    };
    let with_progress = c_captions(model, &c_images, &params);
    assert_eq!(with_progress, c_captions(model, &c_images, &quiet));
    assert!(seen.len() >= 3, "{seen:?}");
    assert_eq!((seen[0], *seen.last().unwrap()), (0.0, 1.0), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // Abort at the third call: nothing is written, and the callback is not called again.
    seen.clear();
    seen.push(f32::NAN); // asks record_progress to stop at its third call
    let mut texts = vec![std::ptr::dangling_mut::<c_char>(); c_images.len()];
    let status = unsafe {
        cappa_caption_batch(
            model,
            c_images.as_ptr(),
            c_images.len(),
            &params,
            texts.as_mut_ptr(),
            null_mut(),
        )
    };
    assert_eq!(status, CAPPA_ERR_ABORTED, "{}", last_error());
    assert_eq!(seen.len(), 4);
    assert!(texts.iter().all(|t| t.is_null()));

    // Classification reports once per group of 16 labels.
    let labels = labels(37);
    let c_labels: Vec<CString> = labels
        .iter()
        .map(|l| CString::new(l.as_str()).unwrap())
        .collect();
    let ptrs: Vec<*const c_char> = c_labels.iter().map(|l| l.as_ptr()).collect();
    seen.clear();
    let params = cappa_classify_params {
        progress: Some(record_progress),
        progress_user_data: (&mut seen as *mut Vec<f32>).cast(),
        ..cappa_classify_default_params()
    };
    let mut probs = vec![-1.0f32; labels.len()];
    ok(unsafe {
        cappa_classify(
            model,
            c_images.as_ptr(),
            1,
            ptrs.as_ptr(),
            ptrs.len(),
            &params,
            null_mut(),
            probs.as_mut_ptr(),
        )
    });
    assert_eq!(seen, [0.0, 16.0 / 37.0, 32.0 / 37.0, 1.0]);
    seen.clear();
    seen.push(f32::NAN); // asks record_progress to stop at its third call
    probs.fill(-1.0);
    let status = unsafe {
        cappa_classify(
            model,
            c_images.as_ptr(),
            1,
            ptrs.as_ptr(),
            ptrs.len(),
            &params,
            null_mut(),
            probs.as_mut_ptr(),
        )
    };
    assert_eq!(status, CAPPA_ERR_ABORTED);
    assert!(probs.iter().all(|&p| p == -1.0));
    ok(unsafe { cappa_model_free(model) });
}

/// Streamed tokens per image; stops image 1 after two tokens.
#[derive(Default)]
struct Stream {
    events: Vec<(usize, u32, String)>,
}

unsafe extern "C" fn stream(
    user_data: *mut c_void,
    image: usize,
    token: u32,
    text: *const c_char,
) -> c_int {
    let s = &mut *(user_data as *mut Stream);
    let text = CStr::from_ptr(text).to_str().unwrap().to_string();
    s.events.push((image, token, text));
    let count = s.events.iter().filter(|e| e.0 == image).count();
    (image != 1 || count < 2) as c_int
}

#[test]
fn tokens_stream_and_a_callback_stops_one_image() {
    let model = load(CAPPA_DEVICE_CPU);
    let pixels = images();
    let both = [pixels[0].c(), pixels[0].c()];
    let plain = c_captions(model, &both, &cappa_caption_default_params());
    let mut s = Stream::default();
    let params = cappa_caption_params {
        on_token: Some(stream),
        on_token_user_data: (&mut s as *mut Stream).cast(),
        ..cappa_caption_default_params()
    };
    let streamed = c_captions(model, &both, &params);
    let of = |i: usize| -> Vec<&str> {
        s.events
            .iter()
            .filter(|e| e.0 == i)
            .map(|e| e.2.as_str())
            .collect()
    };
    // Image 0 went on to the end: its events build its caption, token by token.
    assert_eq!(streamed[0], plain[0]);
    let first = of(0);
    assert!(
        first.len() >= 3,
        "the test needs a longer caption: {plain:?}"
    );
    assert_eq!(*first.last().unwrap(), plain[0].0);
    // Image 1 stopped after two tokens.
    assert_eq!(of(1), first[..2]);
    assert_eq!(streamed[1].0, first[1]);
    ok(unsafe { cappa_model_free(model) });
}

unsafe extern "C" fn meet_twice(user_data: *mut c_void, progress: f32) -> c_int {
    if progress == 0.0 {
        let barrier = &*(user_data as *const Barrier);
        barrier.wait(); // the main thread frees the model now
        barrier.wait(); // ... and has freed it
    }
    1
}

#[test]
fn a_model_freed_while_in_use_finishes_the_running_call() {
    let model = load(CAPPA_DEVICE_CPU) as usize;
    let barrier = Barrier::new(2);
    let pixels = images();
    let want = c_captions(
        model as *const _,
        &[pixels[0].c()],
        &cappa_caption_default_params(),
    );
    std::thread::scope(|s| {
        let user = &barrier as *const Barrier as usize;
        let sample = &pixels[0];
        let running = s.spawn(move || {
            let params = cappa_caption_params {
                progress: Some(meet_twice),
                progress_user_data: user as *mut c_void,
                ..cappa_caption_default_params()
            };
            let mut text = null_mut();
            let status =
                unsafe { cappa_caption(model as *const _, &sample.c(), &params, &mut text) };
            (
                status,
                if status == CAPPA_OK {
                    take(text)
                } else {
                    last_error()
                },
            )
        });
        barrier.wait();
        ok(unsafe { cappa_model_free(model as *mut _) });
        barrier.wait();
        let (status, text) = running.join().unwrap();
        assert_eq!(status, CAPPA_OK, "{text}");
        assert_eq!(text, want[0].0);
    });
    let mut text = null_mut();
    let status = unsafe { cappa_caption(model as *const _, &pixels[0].c(), null(), &mut text) };
    assert_eq!(status, CAPPA_ERR_INVALID_HANDLE);
}

#[test]
fn the_last_error_belongs_to_its_thread() {
    let status = unsafe { cappa_model_get_info(null(), null_mut()) };
    assert_eq!(status, CAPPA_ERR_NULL_POINTER);
    let mine = last_error();
    assert!(mine.starts_with("cappa_model_get_info: "), "{mine}");
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        assert_eq!(
            unsafe { cappa_string_free(8 as *mut c_char) },
            CAPPA_ERR_INVALID_HANDLE
        );
        assert!(last_error().starts_with("cappa_string_free: "));
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), mine);
}

#[test]
fn misaligned_buffers_are_rejected() {
    let model = load(CAPPA_DEVICE_CPU);
    let pixels = images();
    let image = pixels[0].c();
    let mut buffer = vec![0.0f32; 1024];
    let misaligned = unsafe { buffer.as_mut_ptr().cast::<u8>().add(1) }.cast::<f32>();
    let mut len = 1000usize;
    let status = unsafe { cappa_embed(model, &image, 1, misaligned, &mut len) };
    assert_eq!(status, CAPPA_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("`out` is not aligned"),
        "{}",
        last_error()
    );
    ok(unsafe { cappa_model_free(model) });
}

/// The GPU gives the CPU's captions, and eight threads sharing one GPU model get what one
/// thread gets. Skipped (with the reason printed) where no adapter exists, unless
/// `CAPPA_REQUIRE_GPU=1`.
#[cfg(feature = "gpu")]
#[test]
fn gpu_captions_equal_cpu_captions_and_eight_threads_share_a_gpu_model() {
    let gpu = match load_with(CAPPA_DEVICE_GPU, CAPPA_PRECISION_AUTO) {
        Ok(m) => m as usize,
        Err(status) => {
            let reason = last_error();
            assert_eq!(status, CAPPA_ERR_DEVICE, "{reason}");
            assert!(
                std::env::var("CAPPA_REQUIRE_GPU").map_or(true, |v| v != "1"),
                "CAPPA_REQUIRE_GPU=1 but no GPU adapter: {reason}"
            );
            eprintln!("skipping the GPU test: {reason}");
            return;
        }
    };
    let mut info: cappa_model_info = unsafe { std::mem::zeroed() };
    ok(unsafe { cappa_model_get_info(gpu as *const _, &mut info) });
    assert_eq!(info.on_gpu, 1);
    let cpu = load(CAPPA_DEVICE_CPU);
    let pixels = images();
    let c_images: Vec<_> = pixels.iter().map(Pixels::c).collect();
    let mut single = Vec::new();
    for (params, decode) in strategies() {
        let on_gpu = c_captions(gpu as *const _, &c_images, &params);
        let on_cpu = c_captions(cpu, &c_images, &params);
        for ((gt, gl), (ct, cl)) in on_gpu.iter().zip(&on_cpu) {
            assert_eq!(gt, ct, "{decode:?}");
            assert!(
                (gl - cl).abs() <= 1e-4 + 1e-5 * cl.abs(),
                "{decode:?}: {gl} vs {cl}"
            );
        }
        single.push(on_gpu);
    }
    std::thread::scope(|s| {
        let (single, pixels) = (&single, &pixels);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    let c_images: Vec<_> = pixels.iter().map(Pixels::c).collect();
                    let strategies = strategies();
                    for j in 0..strategies.len() {
                        let k = (t + j) % strategies.len();
                        let got = c_captions(gpu as *const _, &c_images, &strategies[k].0);
                        assert_eq!(got, single[k], "thread {t}, {:?}", strategies[k].1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    ok(unsafe { cappa_model_free(gpu as *mut _) });
    ok(unsafe { cappa_model_free(cpu) });
}
