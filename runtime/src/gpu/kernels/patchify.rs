//! `wgsl/patchify.wgsl`: [`crate::ops::patchify`].

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};
use crate::ops::patchify::Dims;

uniform! {
    /// `Params` of `wgsl/patchify.wgsl`.
    Params {
        batch: u32,
        h: u32,
        w: u32,
        c: u32,
        psize: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// `wgsl/patchify.wgsl`.
pub static SHADER: Shader = Shader {
    name: "patchify",
    parts: &[COMMON, include_str!("../../../../wgsl/patchify.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, false],
    entries: &["main"],
    overrides: &[],
};

/// NHWC `images` as rows of `p × p` patches.
pub(crate) fn patchify(be: &GpuBackend, images: &GpuTensor, d: &Dims) -> Result<GpuTensor> {
    let out = be.alloc(&d.out_shape)?;
    let [b, h, w, c] = d.images;
    let params = Params {
        batch: b as u32,
        h: h as u32,
        w: w as u32,
        c: c as u32,
        psize: d.patch as u32,
        ..Params::default()
    };
    let args = [images.f32("patchify")?.arg(), out.arg()];
    be.ctx().dispatch(
        &Kernel::plain(&SHADER, "main"),
        &params,
        &args,
        grid_1d(images.numel(), 64),
    )?;
    Ok(out)
}
