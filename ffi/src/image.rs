//! Decoding image files (PNG and JPEG), so that C programs need no image library.

use std::ffi::c_char;
use std::io::Cursor;

use image::{ImageError, ImageReader};

use crate::error::{guard, out, Fail};
use crate::handles;
use crate::model::path_arg;
use crate::types::*;

/// An image with no pixels (what failed loads and freed images hold).
fn empty() -> cappa_image {
    cappa_image {
        pixels: std::ptr::null(),
        width: 0,
        height: 0,
        stride: 0,
        format: CAPPA_PIXEL_RGB8,
    }
}

/// Decodes a PNG or JPEG file (recognised by its content, not its name) to 8-bit RGB: grey
/// levels are replicated, alpha is dropped (as the reference pipeline does), 16-bit samples are
/// rounded to 8 bits, and no colour profile or orientation tag is applied.
///
/// * `path`: NUL-terminated; any bytes on Unix, UTF-8 elsewhere.
/// * `out_image`: receives a tightly packed CAPPA_PIXEL_RGB8 image whose pixels belong to cappa:
///   release them with cappa_image_free(). Set to an empty image (pixels NULL) on failure.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`path`, `out_image`), CAPPA_ERR_IO (cannot read the file),
/// CAPPA_ERR_IMAGE (not a PNG or JPEG, corrupt, or too large to decode),
/// CAPPA_ERR_INVALID_ARGUMENT (a side above CAPPA_MAX_IMAGE_SIDE).
#[no_mangle]
pub unsafe extern "C" fn cappa_image_load_file(
    path: *const c_char,
    out_image: *mut cappa_image,
) -> cappa_status {
    guard("cappa_image_load_file", || {
        let out_image = out(out_image, "out_image")?;
        *out_image = empty();
        let path = path_arg(path)?;
        let shown = path.display();
        // Read first: a failure after this is the file's content, not the file system.
        let max = cappa_rt::limits::MAX_DECODED_IMAGE_BYTES;
        let bytes = cappa_rt::files::read_regular(&path, max).map_err(|e| {
            let e = match e {
                cappa_rt::Error::Io(m) => m,
                other => other.to_string(),
            };
            Fail::new(CAPPA_ERR_IO, format!("{shown}: {e}"))
        })?;
        let bad = |e: ImageError| Fail::new(CAPPA_ERR_IMAGE, format!("{shown}: {e}"));
        let mut reader = ImageReader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| bad(ImageError::IoError(e)))?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(CAPPA_MAX_IMAGE_SIDE);
        limits.max_image_height = Some(CAPPA_MAX_IMAGE_SIDE);
        limits.max_alloc = Some(cappa_rt::limits::MAX_DECODED_IMAGE_BYTES);
        reader.limits(limits);
        let decoded = reader.decode().map_err(bad)?;
        let rgb = decoded.into_rgb8();
        let (width, height) = rgb.dimensions();
        if width > CAPPA_MAX_IMAGE_SIDE || height > CAPPA_MAX_IMAGE_SIDE {
            return Err(Fail::invalid(format!(
                "{shown} is {width}×{height} pixels, more than {CAPPA_MAX_IMAGE_SIDE} on a side"
            )));
        }
        *out_image = cappa_image {
            pixels: handles::add_pixels(rgb.into_raw().into_boxed_slice()),
            width,
            height,
            stride: width as usize * 3,
            format: CAPPA_PIXEL_RGB8,
        };
        Ok(())
    })
}

/// Releases the pixels of an image from cappa_image_load_file() and empties `image` (pixels
/// NULL, sizes 0). An image whose pixels are NULL is accepted and left as it is.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`image`), CAPPA_ERR_INVALID_HANDLE (pixels not from
/// cappa_image_load_file(), or freed already; nothing is freed).
#[no_mangle]
pub unsafe extern "C" fn cappa_image_free(image: *mut cappa_image) -> cappa_status {
    guard("cappa_image_free", || {
        let image = out(image, "image")?;
        if image.pixels.is_null() {
            return Ok(());
        }
        handles::free_pixels(image.pixels)?;
        *image = empty();
        Ok(())
    })
}
