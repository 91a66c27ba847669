//! Patch extraction (im2col for the stride-`p` patch-embedding convolution): NHWC images
//! `[B, H, W, C]` become `[B, (H/p)·(W/p), p·p·C]`, patches in row-major grid order, values in
//! (row-in-patch, column-in-patch, channel) order, matching the conv kernel `[p, p, C, width]`
//! flattened to `[p·p·C, width]`.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{shape_error, Checked};
use crate::error::Result;

/// The sizes of one patch extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// The images' shape, `[B, H, W, C]`.
    pub images: [usize; 4],
    /// The patch size `p`.
    pub patch: usize,
    /// The output's shape, `[B, (H/p)·(W/p), p·p·C]`.
    pub out_shape: Vec<usize>,
}

/// Checks the layout.
pub fn check(images: &[usize], p: usize) -> Result<Checked<Dims>> {
    match images {
        [b, h, w, c] if p > 0 && h % p == 0 && w % p == 0 => Ok(Checked::new(Dims {
            images: [*b, *h, *w, *c],
            patch: p,
            out_shape: vec![*b, (h / p) * (w / p), p * p * c],
        })),
        _ => Err(shape_error(
            "patchify",
            format!("images must be [B, H, W, C] with H and W multiples of {p}, got {images:?}"),
        )),
    }
}

/// CPU reference.
pub fn cpu(images: &[f32], shape: &[usize], p: usize) -> Vec<f32> {
    let (b, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
    let (gh, gw) = (h / p, w / p);
    let mut out = Vec::with_capacity(images.len());
    for n in 0..b {
        for gy in 0..gh {
            for gx in 0..gw {
                for dy in 0..p {
                    let row = ((n * h + gy * p + dy) * w + gx * p) * c;
                    out.extend_from_slice(&images[row..row + p * c]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_is_row_col_channel() {
        // 1 image 2x4, 1 channel, patch 2: two patches.
        let img: alloc::vec::Vec<f32> = (0..8).map(|v| v as f32).collect();
        let out = super::cpu(&img, &[1, 2, 4, 1], 2);
        assert_eq!(out, [0., 1., 4., 5., 2., 3., 6., 7.]);
    }
}
