//! `C = A·B` on x86-64 with AVX2 and FMA, for products of up to [`MAX_ROWS`] rows with
//! row-major A and B: a decoder pass (a few dozen rows of activations times a weight matrix),
//! scoring, the encoder of one image.
//!
//! For such products `matrixmultiply` (the general kernel) packs B into blocks larger than the
//! L2 cache and runs an 8×8 micro-kernel. Here blocks of B, [`KC`] rows × [`NB`] columns
//! (128 KiB), are copied into 16-column slivers that stay in the L2 cache while every
//! [`MR`]-row tile of A passes over them, and the 6×16 micro-kernel keeps twelve accumulators
//! in registers. Measured on a 2-core AMD EPYC (AVX2), side by side with `matrixmultiply`:
//! 1.1–1.3× for 64-row products whose B is in the L3 cache (64×768×768, 64×768×3072,
//! 64×3072×768), 1.08× for 64×768×32000 (B streamed from memory); in whole passes, where the
//! weights stream from memory, about 5% (ViT-B/16 encoder, best of 10: 267–285 → 253–264 ms).
//!
//! Every element of C is one chain of fused multiply-adds over K in order (blocks of K carry
//! the running sum through C), whatever the tiling and the number of threads, so results do not
//! depend on the thread count.

use alloc::vec;

use core::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

use super::{OutPtr, View};

/// Rows of a micro-tile: 6 rows × 2 vectors are 12 accumulators, which with B's two vectors
/// and one broadcast fill the 16 vector registers.
const MR: usize = 6;
/// Columns of a micro-tile and of a sliver: two 8-lane vectors.
const NR: usize = 16;
/// Rows of B per block.
const KC: usize = 256;
/// Columns of B per block; threads take whole blocks of columns.
const NB: usize = 128;

/// Up to this many rows of A this kernel is used; above, `matrixmultiply`'s blocking of A too
/// pays for itself.
pub(super) const MAX_ROWS: usize = 256;

/// Whether this CPU has AVX2 and FMA (detected once, then cached by `std`).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// `C = A·B` for row-major A and B (`a.cs == b.cs == 1`); `C` is row-major `m × n`. Callers
/// check [`available`] and skip empty products.
pub(super) fn gemm(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    assert!(available(), "AVX2 and FMA");
    assert!(a.cs == 1 && b.cs == 1 && m > 0 && n > 0 && k > 0);
    assert!((m - 1) * a.rs + k <= a.data.len() && (k - 1) * b.rs + n <= b.data.len());
    assert_eq!(c.len(), m * n);
    let out = OutPtr(c.as_mut_ptr());
    crate::threads::for_ranges(n.div_ceil(NB), m * NB * k, |blocks| {
        let mut packed = vec![0.0f32; KC * NB];
        // The last sliver of a ragged block: its tile is computed here, then its columns copied.
        let mut ragged = vec![0.0f32; m * NR];
        for j0 in blocks.map(|jb| jb * NB) {
            let width = NB.min(n - j0);
            for k0 in (0..k).step_by(KC) {
                let depth = KC.min(k - k0);
                pack(b, k0, depth, j0, width, &mut packed);
                for (s, sliver) in packed[..width.div_ceil(NR) * depth * NR]
                    .chunks_exact(depth * NR)
                    .enumerate()
                {
                    let cols = NR.min(width - s * NR);
                    // SAFETY: this thread alone writes columns j0..j0 + width of C (its blocks),
                    // and j0 + s·NR + NR ≤ n when the sliver is whole.
                    let (c_at, ldc) = match cols {
                        NR => (unsafe { out.at(j0 + s * NR) }, n),
                        _ => (ragged.as_mut_ptr(), NR),
                    };
                    for i0 in (0..m).step_by(MR) {
                        let tile = Tile {
                            depth,
                            a: &a.data[i0 * a.rs + k0..],
                            a_rs: a.rs,
                            b: sliver,
                            // SAFETY: rows i0.. of the tile's output are rows of C (or `ragged`).
                            c: unsafe { c_at.add(i0 * ldc) },
                            ldc,
                            accumulate: k0 > 0,
                        };
                        // SAFETY: the CPU has the features (asserted above); the rows i0..i0 +
                        // rows of A exist and hold `depth` values from k0 (asserted above), the
                        // sliver holds `depth` rows of NR, and the output rows lie in C (or in
                        // `ragged`, m × NR).
                        unsafe {
                            match m - i0 {
                                1 => tile.run::<1>(),
                                2 => tile.run::<2>(),
                                3 => tile.run::<3>(),
                                4 => tile.run::<4>(),
                                5 => tile.run::<5>(),
                                _ => tile.run::<MR>(),
                            }
                        }
                    }
                    if cols < NR && k0 + depth == k {
                        for (i, row) in ragged.chunks_exact(NR).enumerate() {
                            let at = i * n + j0 + s * NR;
                            for (j, &v) in row[..cols].iter().enumerate() {
                                // SAFETY: column at + j < n of row i of C, this thread's block.
                                unsafe { *out.at(at + j) = v };
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Copies rows `k0..k0 + depth`, columns `j0..j0 + width` of B into `packed` as slivers of
/// [`NR`] columns, each `depth × NR` row-major; the last sliver is padded with zeros.
fn pack(b: View<'_>, k0: usize, depth: usize, j0: usize, width: usize, packed: &mut [f32]) {
    let whole = width / NR;
    for p in 0..depth {
        let row = &b.data[(k0 + p) * b.rs + j0..][..width];
        let sliver_row = |s: usize| (s * depth + p) * NR;
        for (s, src) in row.chunks_exact(NR).enumerate() {
            // Copies of a fixed size compile to two vector moves; a `copy_from_slice` of a
            // length known only at run time called `memmove`, a fifth of the whole product.
            let dst: &mut [f32; NR] = (&mut packed[sliver_row(s)..][..NR]).try_into().unwrap();
            *dst = src.try_into().unwrap();
        }
        let rest = &row[whole * NR..];
        if !rest.is_empty() {
            let dst = &mut packed[sliver_row(whole)..][..NR];
            dst[..rest.len()].copy_from_slice(rest);
            dst[rest.len()..].fill(0.0);
        }
    }
}

/// One micro-tile: rows of A from `a` (row stride `a_rs`, `depth` values each), a sliver of B
/// (`depth × NR`), and the tile of C at `c` (row stride `ldc`), overwritten or, when
/// `accumulate`, added to.
struct Tile<'a> {
    depth: usize,
    a: &'a [f32],
    a_rs: usize,
    b: &'a [f32],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

impl Tile<'_> {
    /// `C[R × NR] (+)= A[R × depth] · B[depth × NR]`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` must hold `R` rows of `depth` values at stride
    /// `a_rs`, `b` `depth × NR` values, and `c` `R` rows of `NR` writable values at stride `ldc`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const R: usize>(&self) {
        // SAFETY: the caller guarantees the CPU features and the bounds.
        unsafe {
            let mut acc: [[__m256; 2]; R] = [[_mm256_setzero_ps(); 2]; R];
            if self.accumulate {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let c = self.c.add(r * self.ldc);
                    *acc = [_mm256_loadu_ps(c), _mm256_loadu_ps(c.add(NR / 2))];
                }
            }
            let (a, b) = (self.a.as_ptr(), self.b.as_ptr());
            for p in 0..self.depth {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + NR / 2));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.add(r * self.a_rs + p));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let c = self.c.add(r * self.ldc);
                _mm256_storeu_ps(c, acc[0]);
                _mm256_storeu_ps(c.add(NR / 2), acc[1]);
            }
        }
    }
}
