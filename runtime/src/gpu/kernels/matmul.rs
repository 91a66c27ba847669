//! `wgsl/matmul.wgsl`: `act(op(a) · op(b) + bias)` for [`crate::ops::matmul`]. Operands larger
//! than one storage binding are bound as windows: A and C by row blocks, B (not transposed) by K
//! blocks whose partial products accumulate in C, with the bias and activation applied by the
//! last.

use std::format;

use crate::backend::Activation;
use crate::error::{Error, Result};
use crate::gpu::shaders::{Shader, Uniform, BOOL, COMMON, WEIGHT_FORMATS};
use crate::gpu::{Arg, Format, GpuBackend, GpuTensor, Kernel, MatmulKernel};
use crate::ops::matmul::Dims;

uniform! {
    /// `Params` of `wgsl/matmul.wgsl`.
    Params {
        m: u32,
        n: u32,
        k: u32,
        batch: u32,
        a_off: u32,
        b_off: u32,
        c_off: u32,
        bias_off: u32,
        a_bstride: u32,
        b_bstride: u32,
        c_bstride: u32,
        /// Row stride of A as stored (differs from K when K is split).
        lda: u32,
        /// Row stride of B as stored.
        ldb: u32,
        /// Index of the window's first K among q8 scales that run along K.
        s_off: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// `wgsl/matmul.wgsl`.
pub static SHADER: Shader = Shader {
    name: "matmul",
    parts: &[COMMON, include_str!("../../../../wgsl/matmul.wgsl")],
    params: &Params::LAYOUT,
    read_only: &[true, true, true, false, true],
    entries: &["main_reg", "main_tiled"],
    overrides: &[
        ("TRANS_A", BOOL),
        ("TRANS_B", BOOL),
        ("B_FORMAT", WEIGHT_FORMATS),
        ("HAS_BIAS", BOOL),
        ("ACT", BOOL),
        ("ACCUMULATE", BOOL),
        ("EPILOGUE", BOOL),
        ("VEC4", BOOL),
        ("ROWS", &[1.0, 4.0, 16.0]),
        ("COLS", &[8.0, 16.0]),
    ],
};

/// `act(op(a) · op(b) + bias)` of the checked sizes `d`.
pub(crate) fn matmul(
    be: &GpuBackend,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    act: Activation,
    d: &Dims,
) -> Result<GpuTensor> {
    a.f32("matmul")?;
    if let Some(bias) = bias {
        bias.f32("matmul bias")?;
    }
    let scales = b.q8_scales("matmul")?;
    if scales.is_some() && d.batch > 1 {
        return Err(Error::Backend(
            "matmul: a q8 right operand in a batched product".into(),
        ));
    }
    let scales_along_k = scales.is_some_and(|s| s.along_k(d.trans_b));
    let ctx = be.ctx();
    let out = be.alloc(&d.out_shape)?;
    let (m, n, k) = (d.m, d.n, d.k);
    if m == 0 || n == 0 || d.batch == 0 {
        return Ok(out);
    }
    // Room in one binding, leaving slack for the 256-byte alignment of window offsets.
    let room = (ctx.max_binding.saturating_sub(256) / 4) as usize;
    let b_room = (ctx.max_binding.saturating_sub(256) / b.format.size()) as usize;
    let too_big = |what: &str| {
        Error::InvalidInput(format!(
            "matmul {what} is larger than the device's storage binding limit ({} bytes)",
            ctx.max_binding
        ))
    };
    let (m_step, k_step) = if d.batch > 1 {
        if d.batch * m * k > room || d.batch * m * n > room || d.batch * k * n > b_room {
            return Err(too_big("batched operand"));
        }
        (m, k.max(1))
    } else {
        let m_step = if m * k <= room && m * n <= room {
            m
        } else if d.trans_a {
            return Err(too_big("operand A (transposed)"));
        } else {
            room / k.max(n).max(1)
        };
        let k_step = if k * n <= b_room {
            k.max(1)
        } else if d.trans_b {
            return Err(too_big("operand B (transposed)"));
        } else {
            // Whole groups of 8 rows keep the K windows aligned for the vector loads.
            let rows = b_room / n;
            if rows >= 8 {
                rows / 8 * 8
            } else {
                rows
            }
        };
        if m_step == 0 || k_step == 0 {
            return Err(too_big("row"));
        }
        (m_step, k_step)
    };
    let register = ctx.matmul == MatmulKernel::Register;
    let entry = if register { "main_reg" } else { "main_tiled" };
    // Rows per invocation of the register kernel: big blocks amortise loads, but a GEMV-like
    // product (a decoding step) would waste most of a big block.
    let rows_per = match m_step.min(m) {
        m if m >= 128 => 16,
        m if m >= 16 => 4,
        _ => 1,
    };
    // Vector loads need K and N rows aligned to whole 16-byte units.
    let align_b = if b.format == Format::F32 { 4 } else { 8 };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    for m0 in (0..m).step_by(m_step) {
        let m1 = (m0 + m_step).min(m);
        let mut k0 = 0;
        loop {
            let k1 = (k0 + k_step).min(k);
            let whole = d.batch > 1;
            let (a_lo, a_hi) = match (whole, d.trans_a) {
                (true, _) => (0, d.batch * m * k),
                (false, false) => (m0 * k + k0, (m1 - 1) * k + k1),
                (false, true) => (k0 * m + m0, (k1.max(k0 + 1) - 1) * m + m1),
            };
            let (b_lo, b_hi) = match (whole, d.trans_b) {
                (true, _) => (0, d.batch * k * n),
                (false, false) => (k0 * n, k1 * n),
                (false, true) => (k0, (n - 1) * k + k1),
            };
            let (c_lo, c_hi) = if whole {
                (0, d.batch * m * n)
            } else {
                (m0 * n, m1 * n)
            };
            let (a_arg, a_off) = a.window(a_lo, a_hi);
            let (b_arg, b_off) = b.window(b_lo, b_hi);
            let (c_arg, c_off) = out.window(c_lo, c_hi);
            let bias_arg = match bias {
                Some(t) => t.arg(),
                None => ctx.dummy(),
            };
            let params = Params {
                m: (m1 - m0) as u32,
                n: n as u32,
                k: (k1 - k0) as u32,
                batch: d.batch as u32,
                a_off,
                b_off,
                c_off,
                a_bstride: (m * k) as u32,
                b_bstride: (k * n) as u32,
                c_bstride: (m * n) as u32,
                lda: if d.trans_a { m as u32 } else { k as u32 },
                ldb: if d.trans_b { k as u32 } else { n as u32 },
                s_off: k0 as u32,
                ..Params::default()
            };
            let vec4 = register
                && !d.trans_a
                && !d.trans_b
                && (k1 - k0).is_multiple_of(4)
                && k.is_multiple_of(4)
                && a_off.is_multiple_of(4)
                && n.is_multiple_of(align_b)
                && (b_off as usize).is_multiple_of(align_b);
            // 16 × 16 blocks for big products on the vector path: half the loads of A per
            // multiply-add again (an S/16 encode on lavapipe 1.26× faster than with 16 × 8,
            // docs/benchmarks.md). Only CPU-like adapters run this kernel, so the 64
            // accumulators cost no GPU occupancy.
            let cols_per = if vec4 && rows_per == 16 && n >= 128 {
                16
            } else {
                8
            };
            let constants = [
                ("TRANS_A", flag(d.trans_a)),
                ("TRANS_B", flag(d.trans_b)),
                ("B_FORMAT", b.format.code(scales_along_k)),
                ("HAS_BIAS", flag(bias.is_some())),
                ("ACT", flag(act == Activation::Gelu)),
                ("ACCUMULATE", flag(k0 > 0)),
                ("EPILOGUE", flag(k1 == k)),
                ("VEC4", flag(vec4)),
                ("ROWS", if register { rows_per as f64 } else { 16.0 }),
                ("COLS", if register { cols_per as f64 } else { 8.0 }),
            ];
            let kernel = Kernel {
                shader: &SHADER,
                entry,
                constants: &constants,
            };
            let tile_rows = if register { 8 * rows_per } else { 64 };
            let groups = [
                n.div_ceil(if register { 8 * cols_per } else { 64 }) as u32,
                (m1 - m0).div_ceil(tile_rows) as u32,
                d.batch as u32,
            ];
            let scales_arg = match scales {
                Some(s) => Arg::window(&s.buf, 0, s.buf.size),
                None => ctx.dummy(),
            };
            let args = [a_arg, b_arg, bias_arg, c_arg, scales_arg];
            ctx.dispatch(&kernel, &params, &args, groups)?;
            k0 = k1;
            if k0 >= k {
                break;
            }
        }
    }
    Ok(out)
}
