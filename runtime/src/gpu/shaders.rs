//! The host side of the WGSL contract: for every shader file of `wgsl/`, its sources, the layout
//! of its uniform `Params` block (binding 0), whether each storage binding (1, 2, ...) is
//! read-only, its entry points, and every specialisation the code may ask for. Each kernel module
//! of `super::kernels` declares its own [`Shader`] beside its launcher and its `Params` struct;
//! [`ALL`] lists them. The tests validate every specialisation with naga and check these tables
//! against what naga reads from the WGSL (`tests/shaders.rs`).

use std::string::String;
use std::vec;
use std::vec::Vec;

use super::kernels;

/// Helpers every shader starts with (`wgsl/common.wgsl`).
pub(crate) const COMMON: &str = include_str!("../../../wgsl/common.wgsl");
/// Workgroup reductions (`wgsl/reduce.wgsl`), for the row kernels.
pub(crate) const REDUCE: &str = include_str!("../../../wgsl/reduce.wgsl");

/// One shader file.
#[derive(Debug)]
pub struct Shader {
    /// File name without `.wgsl`.
    pub name: &'static str,
    /// Sources concatenated to make the module (shared helpers first).
    pub parts: &'static [&'static str],
    /// The uniform block (binding 0): the layout of the host's `Params` struct.
    pub params: &'static Layout,
    /// Storage bindings 1, 2, ... in order: read-only or not.
    pub read_only: &'static [bool],
    /// Entry points.
    pub entries: &'static [&'static str],
    /// Override constants and the values the code may give each.
    pub overrides: &'static [(&'static str, &'static [f64])],
}

/// The layout of a uniform block as the host writes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// Size in bytes.
    pub size: usize,
    /// The fields, in order.
    pub fields: &'static [Field],
}

/// One field of a uniform block.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    /// Name (the WGSL member's).
    pub name: &'static str,
    /// Offset in bytes.
    pub offset: usize,
    /// Rust type (`u32` or `f32`, the WGSL member's).
    pub ty: &'static str,
}

/// A kernel's uniform block: a `#[repr(C)]` plain-old-data struct whose layout is known (made
/// by the `uniform!` macro of the kernel modules).
pub trait Uniform: bytemuck::Pod {
    /// Its layout.
    const LAYOUT: Layout;
}

impl Shader {
    /// The module source.
    pub fn source(&self) -> String {
        self.parts.concat()
    }

    /// Every combination of override values (each one a full, ordered constants list).
    pub fn specialisations(&self) -> Vec<Vec<(&'static str, f64)>> {
        let mut all = vec![Vec::new()];
        for (name, values) in self.overrides {
            all = all
                .into_iter()
                .flat_map(|c: Vec<(&'static str, f64)>| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((*name, *v));
                        c
                    })
                })
                .collect();
        }
        all
    }
}

/// Override values of a boolean.
pub(crate) const BOOL: &[f64] = &[0.0, 1.0];
/// Override values of a three-way mask.
pub(crate) const FORMATS: &[f64] = &[0.0, 1.0, 2.0];
/// Override values of a weight's storage format: f32, bf16, f16, and q8 with its scales along
/// the output column (3) or along the reduction or gathered row (4); see `wgsl/common.wgsl`.
pub(crate) const WEIGHT_FORMATS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0];

/// Every shader of this build: the inference kernels, and with the feature `train` the
/// trainer's (backward ops, reductions, optimizer).
pub static ALL: &[&Shader] = &[
    &kernels::matmul::SHADER,
    &kernels::layer_norm::SHADER,
    &kernels::attention::SHADER,
    &kernels::gather::SHADER,
    &kernels::patchify::SHADER,
    &kernels::elementwise::SHADER,
    &kernels::rows::SHADER,
    &kernels::softmax::SHADER,
    &kernels::sample::SHADER,
    &kernels::beam::SHADER,
    #[cfg(feature = "train")]
    &kernels::layer_norm_backward::SHADER,
    #[cfg(feature = "train")]
    &kernels::attention_backward::SHADER,
    #[cfg(feature = "train")]
    &kernels::gelu_backward::SHADER,
    #[cfg(feature = "train")]
    &kernels::gather_backward::SHADER,
    #[cfg(feature = "train")]
    &kernels::sums::SHADER,
    #[cfg(feature = "train")]
    &kernels::cross_entropy_backward::SHADER,
    #[cfg(feature = "train")]
    &kernels::adamw::SHADER,
];

/// Whether `constants` is one of `shader`'s declared specialisations for `entry`.
pub fn is_declared(shader: &Shader, entry: &str, constants: &[(&str, f64)]) -> bool {
    shader.entries.contains(&entry)
        && shader.overrides.len() == constants.len()
        && shader
            .overrides
            .iter()
            .zip(constants)
            .all(|((n, vals), (cn, v))| n == cn && vals.contains(v))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::string::ToString;

    use super::*;

    /// Whether a file of `wgsl/` holds kernels only the trainer's ops use.
    fn trainer_only(file: &str) -> bool {
        file.ends_with("_backward.wgsl") || file == "adamw.wgsl" || file == "sums.wgsl"
    }

    /// Every WGSL file is a part of this build's shaders — except, without `train`, the
    /// trainer's: an inference build (the C library, the web demo) carries no backward or
    /// optimizer kernel. `cargo test --workspace` runs this with `train` on (the trainer enables
    /// it); `.ci/run` runs it without too (`cargo test -p cappa --features gpu --lib`).
    #[test]
    fn the_trainers_kernels_are_in_the_table_exactly_with_train() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wgsl");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".wgsl") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let used = ALL.iter().any(|s| s.parts.contains(&text.as_str()));
            let want = cfg!(feature = "train") || !trainer_only(&name);
            assert_eq!(used, want, "{name}: in this build's shaders: {used}");
        }
        assert!(files > 10, "only {files} WGSL files in {}", dir.display());
        // The standalone GELU (elementwise.wgsl's OP = 1) is the trainer's too.
        let elementwise = &kernels::elementwise::SHADER;
        let (_, ops) = elementwise
            .overrides
            .iter()
            .find(|(n, _)| *n == "OP")
            .unwrap();
        assert_eq!(ops.contains(&1.0), cfg!(feature = "train"));
    }
}
