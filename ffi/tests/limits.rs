//! Issue 18 through the C API: a model over cappa's limits is CAPPA_ERR_MODEL at load, a
//! request over them CAPPA_ERR_INVALID_ARGUMENT, device files are refused instead of read
//! without end, and bad options are reported before the file is read. Each test reproduces a
//! defect that aborted or hung the host process.

use std::ffi::{CStr, CString};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use cappa::*;
use cappa_tests::hostile;

fn last_error() -> String {
    unsafe { CStr::from_ptr(cappa_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn cpu() -> cappa_model_params {
    cappa_model_params {
        device: CAPPA_DEVICE_CPU,
        precision: CAPPA_PRECISION_AUTO,
    }
}

fn load_memory(bytes: &[u8]) -> Result<*mut cappa_model, (cappa_status, String)> {
    let mut model = null_mut();
    match unsafe { cappa_model_load_memory(bytes.as_ptr().cast(), bytes.len(), &cpu(), &mut model) }
    {
        CAPPA_OK => Ok(model),
        s => Err((s, last_error())),
    }
}

fn load_file(path: &str, params: &cappa_model_params) -> (cappa_status, String) {
    let path = CString::new(path).unwrap();
    let mut model = null_mut();
    let status = unsafe { cappa_model_load_file(path.as_ptr(), params, &mut model) };
    if status == CAPPA_OK {
        unsafe { cappa_model_free(model) };
    }
    (status, last_error())
}

#[test]
fn a_sincos_model_claiming_4096_pixels_is_a_model_error() {
    // It loaded (CAPPA_OK) and the first caption aborted the host on a 256 GiB allocation.
    let bytes = hostile::sincos_claiming("image_size", 4096);
    let (status, msg) = load_memory(&bytes).expect_err("refused");
    assert_eq!(status, CAPPA_ERR_MODEL, "{msg}");
    assert!(msg.contains("MAX_IMAGE_TOKENS"), "{msg}");
    let dir = std::env::temp_dir().join(format!("cappa-ffi-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sincos-4096.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let (status, msg) = load_file(path.to_str().unwrap(), &cpu());
    assert_eq!(status, CAPPA_ERR_MODEL, "{msg}");
    assert!(
        msg.contains("sincos-4096.safetensors") && msg.contains("4096"),
        "{msg}"
    );
    let (status, msg) = load_memory(&hostile::sincos_claiming("max_len", 65536))
        .err()
        .unwrap();
    assert_eq!(status, CAPPA_ERR_MODEL, "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_beam_width_of_a_million_is_an_invalid_argument() {
    let model = load_memory(&hostile::model_file(
        &cappa_rt::Config::tiny_for_tests(),
        |_| {},
        |_| {},
    ))
    .unwrap();
    let pixels = vec![128u8; 20 * 10 * 3];
    let image = cappa_image {
        pixels: pixels.as_ptr(),
        width: 20,
        height: 10,
        stride: 0,
        format: CAPPA_PIXEL_RGB8,
    };
    for width in [1_000_000u32, CAPPA_MAX_BEAM_WIDTH + 1, u32::MAX] {
        let mut params = cappa_caption_default_params();
        params.strategy = CAPPA_DECODE_BEAM;
        params.beam_width = width;
        let mut text = null_mut();
        let status = unsafe { cappa_caption(model, &image, &params, &mut text) };
        assert_eq!(
            status,
            CAPPA_ERR_INVALID_ARGUMENT,
            "{width}: {}",
            last_error()
        );
        assert!(last_error().contains("MAX_BEAM_WIDTH"), "{}", last_error());
        assert!(text.is_null());
    }
    let mut params = cappa_caption_default_params();
    params.strategy = CAPPA_DECODE_BEAM;
    params.beam_width = CAPPA_MAX_BEAM_WIDTH;
    let mut text = null_mut();
    let status = unsafe { cappa_caption(model, &image, &params, &mut text) };
    assert_eq!(status, CAPPA_OK, "{}", last_error());
    unsafe { cappa_string_free(text) };
    unsafe { cappa_model_free(model) };
}

#[test]
fn non_finite_weights_are_a_model_error() {
    let (status, msg) = load_memory(&hostile::with_weight(f32::NAN)).err().unwrap();
    assert_eq!(status, CAPPA_ERR_MODEL, "{msg}");
    assert!(msg.contains("decoder/LogitsDense/kernel"), "{msg}");
}

#[test]
fn bad_options_are_reported_before_the_file_is_read() {
    // The enum arguments used to be checked only after the whole file was read: a file that
    // cannot be read hid them, and a huge one was read for nothing.
    for params in [
        cappa_model_params {
            device: 99,
            precision: CAPPA_PRECISION_AUTO,
        },
        cappa_model_params {
            device: CAPPA_DEVICE_CPU,
            precision: -1,
        },
    ] {
        for path in ["/nonexistent/model.safetensors", "/dev/zero"] {
            let (status, msg) = load_file(path, &params);
            assert_eq!(status, CAPPA_ERR_INVALID_ARGUMENT, "{path}: {msg}");
            assert!(msg.contains("unknown"), "{msg}");
        }
    }
}

#[cfg(unix)]
#[test]
fn device_files_are_refused_not_read() {
    let start = Instant::now();
    let (status, msg) = load_file("/dev/zero", &cpu());
    assert_eq!(status, CAPPA_ERR_IO, "{msg}");
    assert!(msg.contains("not a regular file"), "{msg}");
    let path = CString::new("/dev/zero").unwrap();
    let mut image = cappa_image {
        pixels: std::ptr::null(),
        width: 0,
        height: 0,
        stride: 0,
        format: CAPPA_PIXEL_RGB8,
    };
    let status = unsafe { cappa_image_load_file(path.as_ptr(), &mut image) };
    assert_eq!(status, CAPPA_ERR_IO, "{}", last_error());
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn the_header_limits_are_the_runtime_limits() {
    use cappa_rt::limits;
    assert_eq!(CAPPA_MAX_BEAM_WIDTH as usize, limits::MAX_BEAM_WIDTH);
    assert_eq!(CAPPA_MAX_IMAGE_SIDE as usize, limits::MAX_IMAGE_SIDE);
    assert_eq!(CAPPA_MAX_IMAGES, limits::MAX_BATCH);
}
