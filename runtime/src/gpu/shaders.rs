//! The WGSL kernels: their sources (from `wgsl/` at the repository root), binding layouts and
//! every specialisation the code may ask for (validated with naga in the tests).

use std::string::String;
use std::vec;
use std::vec::Vec;

const COMMON: &str = include_str!("../../../wgsl/common.wgsl");
const REDUCE: &str = include_str!("../../../wgsl/reduce.wgsl");

/// One shader file.
pub struct Shader {
    /// File name without `.wgsl`.
    pub name: &'static str,
    /// Sources concatenated to make the module (shared helpers first).
    pub parts: &'static [&'static str],
    /// Storage bindings 1, 2, ... in order: read-only or not (binding 0 is the uniform block).
    pub read_only: &'static [bool],
    /// Entry points.
    pub entries: &'static [&'static str],
    /// Override constants and the values the code may give each.
    pub overrides: &'static [(&'static str, &'static [f64])],
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

const BOOL: &[f64] = &[0.0, 1.0];
const FORMATS: &[f64] = &[0.0, 1.0, 2.0];

/// `wgsl/matmul.wgsl`.
pub static MATMUL: Shader = Shader {
    name: "matmul",
    parts: &[COMMON, include_str!("../../../wgsl/matmul.wgsl")],
    read_only: &[true, true, true, false],
    entries: &["main_reg", "main_tiled"],
    overrides: &[
        ("TRANS_A", BOOL),
        ("TRANS_B", BOOL),
        ("B_FORMAT", FORMATS),
        ("HAS_BIAS", BOOL),
        ("ACT", BOOL),
        ("ACCUMULATE", BOOL),
        ("EPILOGUE", BOOL),
        ("VEC4", BOOL),
        ("ROWS", &[1.0, 4.0, 16.0]),
    ],
};

/// `wgsl/layer_norm.wgsl`.
pub static LAYER_NORM: Shader = Shader {
    name: "layer_norm",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../wgsl/layer_norm.wgsl"),
    ],
    read_only: &[true, true, true, false],
    entries: &["main"],
    overrides: &[("WG", &[64.0]), ("HAS_BIAS", BOOL)],
};

/// `wgsl/attention.wgsl`.
pub static ATTENTION: Shader = Shader {
    name: "attention",
    parts: &[COMMON, include_str!("../../../wgsl/attention.wgsl")],
    read_only: &[true, true, true, true, false],
    entries: &["main"],
    overrides: &[("MASK", FORMATS), ("VEC4", BOOL)],
};

/// `wgsl/embed.wgsl`.
pub static EMBED: Shader = Shader {
    name: "embed",
    parts: &[COMMON, include_str!("../../../wgsl/embed.wgsl")],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("FORMAT", FORMATS)],
};

/// `wgsl/patchify.wgsl`.
pub static PATCHIFY: Shader = Shader {
    name: "patchify",
    parts: &[COMMON, include_str!("../../../wgsl/patchify.wgsl")],
    read_only: &[true, false],
    entries: &["main"],
    overrides: &[],
};

/// `wgsl/elementwise.wgsl`.
pub static ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    parts: &[COMMON, include_str!("../../../wgsl/elementwise.wgsl")],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("OP", BOOL)],
};

/// `wgsl/rows.wgsl`.
pub static ROWS: Shader = Shader {
    name: "rows",
    parts: &[COMMON, include_str!("../../../wgsl/rows.wgsl")],
    read_only: &[true, false],
    entries: &["main_copy", "main_mean"],
    overrides: &[],
};

/// `wgsl/softmax.wgsl`.
pub static SOFTMAX: Shader = Shader {
    name: "softmax",
    parts: &[COMMON, REDUCE, include_str!("../../../wgsl/softmax.wgsl")],
    read_only: &[true, true, false, false],
    entries: &["main_log_softmax", "main_argmax", "main_xent"],
    overrides: &[("WG", &[256.0])],
};

/// Every shader.
pub static ALL: &[&Shader] = &[
    &MATMUL,
    &LAYER_NORM,
    &ATTENTION,
    &EMBED,
    &PATCHIFY,
    &ELEMENTWISE,
    &ROWS,
    &SOFTMAX,
    &SAMPLE,
    &BEAM,
    &GATHER,
    &LAYER_NORM_BACKWARD,
    &ATTENTION_BACKWARD,
    &GELU_BACKWARD,
    &EMBED_BACKWARD,
    &SUMS,
    &CROSS_ENTROPY_BACKWARD,
    &ADAMW,
];

/// `wgsl/sample.wgsl`.
pub static SAMPLE: Shader = Shader {
    name: "sample",
    parts: &[COMMON, REDUCE, include_str!("../../../wgsl/sample.wgsl")],
    read_only: &[true, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// `wgsl/beam.wgsl`.
pub static BEAM: Shader = Shader {
    name: "beam",
    parts: &[COMMON, REDUCE, include_str!("../../../wgsl/beam.wgsl")],
    read_only: &[true, true, false, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// `wgsl/gather.wgsl`.
pub static GATHER: Shader = Shader {
    name: "gather",
    parts: &[COMMON, include_str!("../../../wgsl/gather.wgsl")],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// `wgsl/layer_norm_backward.wgsl`.
pub static LAYER_NORM_BACKWARD: Shader = Shader {
    name: "layer_norm_backward",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../wgsl/layer_norm_backward.wgsl"),
    ],
    read_only: &[true, true, true, false, false, false, false],
    entries: &["main_dx", "main_dparams"],
    overrides: &[("WG", &[64.0])],
};

/// `wgsl/attention_backward.wgsl`.
pub static ATTENTION_BACKWARD: Shader = Shader {
    name: "attention_backward",
    parts: &[
        COMMON,
        include_str!("../../../wgsl/attention_backward.wgsl"),
    ],
    read_only: &[true, true, true, true, true, true, false, false],
    entries: &["main_stats", "main_dq", "main_dkv"],
    overrides: &[("MASK", FORMATS), ("WHICH", BOOL)],
};

/// `wgsl/gelu_backward.wgsl`.
pub static GELU_BACKWARD: Shader = Shader {
    name: "gelu_backward",
    parts: &[COMMON, include_str!("../../../wgsl/gelu_backward.wgsl")],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// `wgsl/embed_backward.wgsl`.
pub static EMBED_BACKWARD: Shader = Shader {
    name: "embed_backward",
    parts: &[COMMON, include_str!("../../../wgsl/embed_backward.wgsl")],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[],
};

/// `wgsl/sums.wgsl`.
pub static SUMS: Shader = Shader {
    name: "sums",
    parts: &[COMMON, REDUCE, include_str!("../../../wgsl/sums.wgsl")],
    read_only: &[true, false],
    entries: &["main_axis0", "main_squares"],
    overrides: &[("WG", &[256.0])],
};

/// `wgsl/cross_entropy_backward.wgsl`.
pub static CROSS_ENTROPY_BACKWARD: Shader = Shader {
    name: "cross_entropy_backward",
    parts: &[
        COMMON,
        REDUCE,
        include_str!("../../../wgsl/cross_entropy_backward.wgsl"),
    ],
    read_only: &[true, true, false],
    entries: &["main"],
    overrides: &[("WG", &[256.0])],
};

/// `wgsl/adamw.wgsl`.
pub static ADAMW: Shader = Shader {
    name: "adamw",
    parts: &[COMMON, include_str!("../../../wgsl/adamw.wgsl")],
    read_only: &[false, false, false, true],
    entries: &["main"],
    overrides: &[],
};

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
