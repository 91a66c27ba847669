//! `wgsl/patchify.wgsl`: [`crate::ops::patchify`].

use crate::error::Result;
use crate::gpu::shaders::{Shader, Uniform, COMMON};
use crate::gpu::{grid_1d, GpuBackend, GpuTensor, Kernel};

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

/// NHWC `images` as rows of `p × p` patches, a tensor of the checked shape `shape`.
pub(crate) fn patchify(
    be: &GpuBackend,
    images: &GpuTensor,
    p: usize,
    shape: &[usize],
) -> Result<GpuTensor> {
    let out = be.alloc(shape)?;
    let s = &images.shape;
    let params = Params {
        batch: s[0] as u32,
        h: s[1] as u32,
        w: s[2] as u32,
        c: s[3] as u32,
        psize: p as u32,
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
