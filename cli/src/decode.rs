//! Decoding image files as the `cappa` command line does: the format is recognised by the
//! content (PNG bytes in a file named `.jpg` decode as PNG), and the decoder may allocate at
//! most [`cappa::limits::MAX_DECODED_IMAGE_BYTES`] and accept at most
//! [`cappa::limits::MAX_IMAGE_SIDE`] pixels on a side. The fuzz harness (`fuzz/`) includes this
//! file, so that it tests exactly this code.

use std::io::Cursor;

use cappa::limits::{MAX_DECODED_IMAGE_BYTES, MAX_IMAGE_SIDE};
use cappa::{Error, Result};
use image::{ImageReader, Limits};

/// Decodes PNG, JPEG, WebP or PPM bytes to tightly packed 8-bit RGB: `(pixels, width, height)`.
pub fn decode_image(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize)> {
    let bad = |e: &dyn std::fmt::Display| Error::InvalidInput(format!("cannot read image: {e}"));
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    if reader.format().is_none() {
        return Err(Error::InvalidInput(
            "cannot read image: not a PNG, JPEG, WebP or PPM file".into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE as u32);
    limits.max_image_height = Some(MAX_IMAGE_SIDE as u32);
    limits.max_alloc = Some(MAX_DECODED_IMAGE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(&e))?;
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        // A PPM (for one) may declare a height of 0 and decode to nothing.
        return Err(Error::InvalidInput(format!(
            "cannot read image: it has no pixels ({w}×{h})"
        )));
    }
    Ok((rgb.into_raw(), w, h))
}
