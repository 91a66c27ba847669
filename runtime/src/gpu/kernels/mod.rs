//! The launchers of the WGSL kernels, one module per shader file of `wgsl/` (`<name>.rs` for
//! `wgsl/<name>.wgsl`). Each module holds, side by side:
//!
//! * the shader's host table, a [`Shader`](super::shaders::Shader) named `SHADER`: its sources,
//!   which storage bindings are read-only, its entry points and specialisations;
//! * its uniform block, a `#[repr(C)]` struct `Params` whose fields are the WGSL `Params`
//!   members in order (declared with [`uniform!`], which also records the layout that
//!   `tests/shaders.rs` checks against the WGSL with naga);
//! * the launchers: they allocate the outputs, bind the tensors and dispatch, for shapes the op's
//!   rules in [`crate::ops`] have already checked.
//!
//! Imports run one way: these modules read the ops' checked sizes; `crate::ops` knows nothing of
//! the GPU.

/// Declares a kernel's uniform block: a `#[repr(C)]`, `bytemuck::Pod` struct of `u32`/`f32`
/// fields named as the WGSL `Params` members, in the same order, with its
/// [`Uniform`](super::shaders::Uniform) layout.
macro_rules! uniform {
    ($(#[$attr:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident: $ty:ident),* $(,)? }) => {
        $(#[$attr])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $crate::gpu::shaders::Uniform for $name {
            const LAYOUT: $crate::gpu::shaders::Layout = $crate::gpu::shaders::Layout {
                size: core::mem::size_of::<$name>(),
                fields: &[$($crate::gpu::shaders::Field {
                    name: stringify!($field),
                    offset: core::mem::offset_of!($name, $field),
                    ty: stringify!($ty),
                },)*],
            };
        }
    };
}

pub(crate) mod attention;
pub(crate) mod beam;
pub(crate) mod elementwise;
pub(crate) mod gather;
pub(crate) mod layer_norm;
pub(crate) mod matmul;
pub(crate) mod patchify;
pub(crate) mod rows;
pub(crate) mod sample;
pub(crate) mod softmax;

// The trainer's kernels (feature `train`): an inference build compiles none of them, so their
// WGSL is not in its binary.
#[cfg(feature = "train")]
pub(crate) mod adamw;
#[cfg(feature = "train")]
pub(crate) mod attention_backward;
#[cfg(feature = "train")]
pub(crate) mod cross_entropy_backward;
#[cfg(feature = "train")]
pub(crate) mod gather_backward;
#[cfg(feature = "train")]
pub(crate) mod gelu_backward;
#[cfg(feature = "train")]
pub(crate) mod layer_norm_backward;
#[cfg(feature = "train")]
pub(crate) mod sums;
