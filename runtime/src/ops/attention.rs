//! Multi-head scaled dot-product attention, as Flax's `dot_product_attention`:
//! `q ← q / √D`; scores `q·k` per head; masked keys excluded (the reference fills them with
//! the most negative float, which softmax turns into exact zeros); softmax over keys with a
//! running maximum; weighted sum of values.
//!
//! `q` is `[B, Lq, H·D]`, `k` and `v` are `[B, Lk, H·D]`; the output has `q`'s shape.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::shape_error;
use crate::backend::{Attention, Mask};
use crate::error::Result;
use crate::math;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub b: usize,
    /// Queries per batch entry.
    pub lq: usize,
    /// Keys per batch entry.
    pub lk: usize,
    /// Heads.
    pub heads: usize,
    /// Features per head.
    pub head_dim: usize,
}

/// Checks the operands and the mask.
pub fn dims(q: &[usize], k: &[usize], v: &[usize], op: &Attention<'_>) -> Result<Dims> {
    let err = |m: &str| shape_error("attention", format!("{m} (q {q:?}, k {k:?}, v {v:?})"));
    let ([b, lq, f], [bk, lk, fk]) = (q, k) else {
        return Err(err("q, k and v must be [B, L, H·D]"));
    };
    if k != v || b != bk || f != fk || *lk == 0 {
        return Err(err(
            "k and v must be equal-shaped [B, Lk, F] matching q's B and F",
        ));
    }
    if op.heads == 0 || f % op.heads != 0 {
        return Err(err(&format!("{} heads do not divide width {f}", op.heads)));
    }
    if let Mask::CausalRows(rows) = op.mask {
        if rows.len() != *b {
            return Err(err(&format!("mask has {} rows for batch {b}", rows.len())));
        }
    }
    Ok(Dims {
        b: *b,
        lq: *lq,
        lk: *lk,
        heads: op.heads,
        head_dim: f / op.heads,
    })
}

/// Number of keys query `i` of batch entry `b` may see (keys `0..visible`).
pub fn visible_keys(mask: &Mask<'_>, b: usize, i: usize, lk: usize) -> usize {
    match mask {
        Mask::None => lk,
        Mask::Causal { offset } => (offset + i + 1).min(lk),
        Mask::CausalRows(rows) if rows[b] => (i + 1).min(lk),
        Mask::CausalRows(_) => lk,
    }
}

/// `Σ a·b` in eight interleaved partial sums, so the compiler can use SIMD (a single running
/// sum would force one add at a time).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// CPU reference.
pub fn cpu(q: &[f32], k: &[f32], v: &[f32], d: Dims, mask: &Mask<'_>) -> Vec<f32> {
    let f = d.heads * d.head_dim;
    let scale = 1.0 / math::sqrt(d.head_dim as f32);
    let mut out = vec![0.0f32; d.b * d.lq * f];
    let work_per_row = 2 * d.lk * f;
    crate::threads::for_row_chunks(&mut out, f, work_per_row, |row0, chunk| {
        let mut scores = vec![0.0f32; d.lk];
        let mut qs = vec![0.0f32; d.head_dim];
        for (r, o_row) in chunk.chunks_exact_mut(f).enumerate() {
            let row = row0 + r;
            let (b, i) = (row / d.lq, row % d.lq);
            let n = visible_keys(mask, b, i, d.lk);
            for h in 0..d.heads {
                let hd = h * d.head_dim..(h + 1) * d.head_dim;
                for (s, &x) in qs.iter_mut().zip(&q[row * f..][hd.clone()]) {
                    *s = x * scale;
                }
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores[..n].iter_mut().enumerate() {
                    let kr = &k[(b * d.lk + j) * f..][hd.clone()];
                    *s = dot(&qs, kr);
                    max = max.max(*s);
                }
                let mut total = 0.0f32;
                for s in &mut scores[..n] {
                    *s = math::exp(*s - max);
                    total += *s;
                }
                let o = &mut o_row[hd.clone()];
                for (j, &w) in scores[..n].iter().enumerate() {
                    let w = w / total;
                    let vr = &v[(b * d.lk + j) * f..][hd.clone()];
                    for (ov, &vv) in o.iter_mut().zip(vr) {
                        *ov += w * vv;
                    }
                }
            }
        }
    });
    out
}

/// GPU dispatch (`wgsl/attention.wgsl`): one invocation per (batch, query, head).
#[cfg(feature = "gpu")]
pub(crate) fn gpu(
    be: &crate::gpu::GpuBackend,
    q: &crate::gpu::GpuTensor,
    k: &crate::gpu::GpuTensor,
    v: &crate::gpu::GpuTensor,
    d: Dims,
    mask: &Mask<'_>,
) -> Result<crate::gpu::GpuTensor> {
    use crate::gpu::{grid_1d, shaders, Kernel};
    const MAX_HEAD_DIM: usize = 256;
    if d.head_dim > MAX_HEAD_DIM {
        return Err(shape_error(
            "attention",
            format!(
                "head dimension {} exceeds the GPU kernel's {MAX_HEAD_DIM}",
                d.head_dim
            ),
        ));
    }
    let out = be.alloc(&q.shape)?;
    let ctx = be.ctx();
    let (code, offset, flags) = match mask {
        Mask::None => (0.0, 0, None),
        Mask::Causal { offset } => (1.0, *offset, None),
        Mask::CausalRows(rows) => {
            let words: Vec<u32> = rows.iter().map(|&c| u32::from(c)).collect();
            (2.0, 0, Some(be.upload_words(&words)?))
        }
    };
    let flags_arg = match &flags {
        Some(buf) => crate::gpu::Arg::whole(buf),
        None => ctx.dummy(),
    };
    let vec4 = if d.head_dim.is_multiple_of(4) {
        1.0
    } else {
        0.0
    };
    let constants = [("MASK", code), ("VEC4", vec4)];
    let kernel = Kernel {
        shader: &shaders::ATTENTION,
        entry: "main",
        constants: &constants,
    };
    let scale = 1.0 / math::sqrt(d.head_dim as f32);
    let params = [
        d.b as u32,
        d.lq as u32,
        d.lk as u32,
        d.heads as u32,
        d.head_dim as u32,
        offset as u32,
        scale.to_bits(),
        0,
    ];
    let args = [
        q.f32("attention")?.arg(),
        k.f32("attention")?.arg(),
        v.f32("attention")?.arg(),
        flags_arg,
        out.arg(),
    ];
    ctx.dispatch(&kernel, &params, &args, grid_1d(d.b * d.lq * d.heads, 64))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_offset_limits_keys() {
        assert_eq!(visible_keys(&Mask::Causal { offset: 0 }, 0, 0, 5), 1);
        assert_eq!(visible_keys(&Mask::Causal { offset: 3 }, 0, 0, 5), 4);
        assert_eq!(visible_keys(&Mask::Causal { offset: 3 }, 0, 4, 5), 5);
        assert_eq!(visible_keys(&Mask::CausalRows(&[false, true]), 1, 2, 5), 3);
        assert_eq!(visible_keys(&Mask::CausalRows(&[false, true]), 0, 2, 5), 5);
    }

    #[test]
    fn one_key_returns_its_value() {
        let d = dims(
            &[1, 2, 4],
            &[1, 1, 4],
            &[1, 1, 4],
            &Attention {
                heads: 2,
                mask: Mask::None,
            },
        )
        .unwrap();
        let out = cpu(&[1.0; 8], &[0.5; 4], &[1.0, 2.0, 3.0, 4.0], d, &Mask::None);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    }
}
