//! Image preprocessing as the reference pipeline (`decode | resize(S) | value_range(-1, 1)`):
//! 8-bit RGB(A) pixels of any size are resized to the model's square size with TensorFlow's
//! bilinear resize (`tf.image.resize`, half-pixel centres, no antialiasing, aspect ratio not
//! kept), then mapped to `x / 255 · 2 − 1`.

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::tensor::HostTensor;

/// How 8-bit pixels are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Bytes per row (at least `width × channels`; rows may be padded).
    pub stride: usize,
    /// 3 (RGB) or 4 (RGBA; alpha is ignored).
    pub channels: usize,
}

impl PixelLayout {
    /// Tightly packed RGB.
    pub fn rgb(width: usize, height: usize) -> Self {
        PixelLayout {
            width,
            height,
            stride: width * 3,
            channels: 3,
        }
    }

    /// Tightly packed RGBA.
    pub fn rgba(width: usize, height: usize) -> Self {
        PixelLayout {
            width,
            height,
            stride: width * 4,
            channels: 4,
        }
    }

    fn check(&self, len: usize) -> Result<()> {
        let bad = |m: &str| {
            Err(Error::InvalidInput(format!(
                "image: {m} ({self:?}, {len} bytes)"
            )))
        };
        if self.width == 0 || self.height == 0 {
            return bad("width and height must be positive");
        }
        let max = crate::limits::MAX_IMAGE_SIDE;
        if self.width > max || self.height > max {
            return Err(Error::Limit {
                what: format!("the image side ({} × {} pixels)", self.width, self.height),
                value: self.width.max(self.height) as u64,
                limit: max as u64,
                name: "MAX_IMAGE_SIDE",
            });
        }
        if self.channels != 3 && self.channels != 4 {
            return bad("channels must be 3 (RGB) or 4 (RGBA)");
        }
        let row = self.width.checked_mul(self.channels);
        if row.is_none_or(|r| self.stride < r) {
            return bad("the stride is smaller than a row");
        }
        let need = self
            .stride
            .checked_mul(self.height - 1)
            .and_then(|s| s.checked_add(self.width * self.channels));
        match need {
            Some(n) if n <= len => Ok(()),
            _ => bad("the buffer is smaller than the image"),
        }
    }
}

/// Source coordinates and weight of output index `out` when resizing `in_size` to `out_size`
/// (TensorFlow's `compute_interpolation_weights` with half-pixel centres).
fn weights(out: usize, in_size: usize, out_size: usize) -> (usize, usize, f32) {
    let scale = in_size as f32 / out_size as f32;
    let x = (out as f32 + 0.5) * scale - 0.5;
    let floor = libm::floorf(x);
    let lower = (floor.max(0.0)) as usize;
    let upper = (libm::ceilf(x) as isize).clamp(0, in_size as isize - 1) as usize;
    (lower.min(in_size - 1), upper, x - floor)
}

/// Resizes 8-bit RGB(A) pixels to `size × size` RGB and maps them to [-1, 1]: `[size, size, 3]`.
pub fn preprocess(pixels: &[u8], layout: PixelLayout, size: usize) -> Result<HostTensor> {
    layout.check(pixels.len())?;
    if size == 0 {
        return Err(Error::InvalidInput(
            "image: the target size must be positive".into(),
        ));
    }
    let px =
        |y: usize, x: usize, c: usize| pixels[y * layout.stride + x * layout.channels + c] as f32;
    crate::limits::check(
        || format!("the preprocessed image ({size} × {size} × 3 values)"),
        (size as u64).saturating_mul(size as u64).saturating_mul(3),
        crate::limits::MAX_TENSOR_ELEMENTS,
        "MAX_TENSOR_ELEMENTS",
    )?;
    let xs: Vec<_> = (0..size).map(|o| weights(o, layout.width, size)).collect();
    let mut out = crate::tensor::try_vec(size * size * 3, "a preprocessed image")?;
    for oy in 0..size {
        let (y0, y1, fy) = weights(oy, layout.height, size);
        for &(x0, x1, fx) in &xs {
            for c in 0..3 {
                let top = px(y0, x0, c) + (px(y0, x1, c) - px(y0, x0, c)) * fx;
                let bottom = px(y1, x0, c) + (px(y1, x1, c) - px(y1, x0, c)) * fx;
                let v = top + (bottom - top) * fy;
                out.push(v / 255.0 * 2.0 - 1.0);
            }
        }
    }
    HostTensor::new(&[size, size, 3], out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn same_size_is_the_value_range_map() {
        let pixels = [0u8, 255, 51, 102, 153, 204];
        let t = preprocess(&pixels, PixelLayout::rgb(2, 1), 1).unwrap();
        // 2×1 → 1×1: the half-pixel centre falls exactly between the two pixels.
        let want: Vec<f32> = [
            (0.0 + 102.0) / 2.0,
            (255.0 + 153.0) / 2.0,
            (51.0 + 204.0) / 2.0,
        ]
        .iter()
        .map(|v| v / 255.0 * 2.0 - 1.0)
        .collect();
        for (g, w) in t.data().iter().zip(&want) {
            assert!((g - w).abs() < 1e-6);
        }
        let one = preprocess(&[0, 128, 255], PixelLayout::rgb(1, 1), 3).unwrap();
        assert_eq!(one.shape(), &[3, 3, 3]);
        assert_eq!(one.data()[..3], [-1.0, 128.0 / 255.0 * 2.0 - 1.0, 1.0]);
    }

    #[test]
    fn upscaling_matches_tensorflow_weights() {
        // tf.image.resize([[0, 100]], [1, 4], 'bilinear') = [0, 25, 75, 100] (half-pixel).
        let pixels = [0u8, 0, 0, 100, 100, 100];
        let t = preprocess(&pixels, PixelLayout::rgb(2, 1), 4).unwrap();
        let row: Vec<f32> = (0..4)
            .map(|x| (t.data()[x * 3] + 1.0) / 2.0 * 255.0)
            .collect();
        for (g, w) in row.iter().zip([0.0, 25.0, 75.0, 100.0]) {
            assert!((g - w).abs() < 1e-3, "{row:?}");
        }
    }

    #[test]
    fn rgba_and_padded_rows_are_read_correctly() {
        let rgba = [10u8, 20, 30, 255, 40, 50, 60, 0];
        let a = preprocess(&rgba, PixelLayout::rgba(2, 1), 2).unwrap();
        let mut padded = vec![10u8, 20, 30, 40, 50, 60, 9, 9];
        padded.truncate(8);
        let b = preprocess(
            &padded,
            PixelLayout {
                stride: 8,
                ..PixelLayout::rgb(2, 1)
            },
            2,
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_layouts_are_errors() {
        let p = [0u8; 12];
        for l in [
            PixelLayout::rgb(0, 1),
            PixelLayout {
                channels: 2,
                ..PixelLayout::rgb(2, 2)
            },
            PixelLayout {
                stride: 2,
                ..PixelLayout::rgb(2, 2)
            },
            PixelLayout::rgb(3, 2),
            PixelLayout {
                stride: usize::MAX,
                ..PixelLayout::rgb(2, 2)
            },
        ] {
            assert!(
                matches!(preprocess(&p, l, 4), Err(Error::InvalidInput(_))),
                "{l:?}"
            );
        }
        assert!(preprocess(&p, PixelLayout::rgb(2, 2), 0).is_err());
    }
}
