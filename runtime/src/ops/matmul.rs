//! Matrix multiplication `act(op(a) · op(b) + bias)`.
//!
//! Shape rules (checked by [`check`]):
//! * unbatched: `b` is 2-D; `a` is viewed as a matrix `[rows, cols]` whose rows are all its
//!   leading axes. `op(a)` is `[M, K]` (or `aᵀ` with `trans_a`), `op(b)` is `[K, N]`. The output
//!   keeps `a`'s leading axes (`[.., N]`), or is `[M, N]` with `trans_a`.
//! * batched: `a` `[batch, ·, ·]` and `b` `[batch, ·, ·]`, output `[batch, M, N]`.
//!
//! The CPU reference has two GEMMs that agree within f32 rounding: a plain blocked loop that
//! needs nothing but `core`, and with `std` the `gemm` crate's SIMD kernels split over threads
//! (with a streaming loop for products of a few rows, where packing would dominate).
//!
//! The right operand may be a weight the CPU keeps as stored (bf16, f16 or q8,
//! [`super::packed::Packed`]). A product of a few rows with one (a decoding step) streams it
//! once, widening in registers ([`super::packed`]); q8's per-column scales multiply the sums,
//! its per-row scales (a table) the columns of A. Any other product with such a B widens B to
//! f32 once for the call and runs the f32 GEMM.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::packed::{self, Elem, Packed};
use super::{shape_error, Checked};
use crate::backend::Activation;
use crate::error::Result;
use crate::formats::Channels;

/// The sizes of one matmul, after the shape rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    /// Number of independent products (1 unless batched).
    pub batch: usize,
    /// Output rows.
    pub m: usize,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// `a` is stored `[K, M]`.
    pub trans_a: bool,
    /// `b` is stored `[N, K]`.
    pub trans_b: bool,
    /// Output shape.
    pub out_shape: Vec<usize>,
}

fn as_matrix(s: &[usize]) -> (usize, usize) {
    let (rows, cols) = super::rows_and_last(s);
    (rows, cols)
}

/// Applies the shape rules.
pub fn check(
    a: &[usize],
    b: &[usize],
    trans_a: bool,
    trans_b: bool,
    batched: bool,
    bias: Option<&[usize]>,
) -> Result<Checked<Dims>> {
    let err = |m: &str| shape_error("matmul", format!("{m} (a {a:?}, b {b:?})"));
    let (batch, (ra, ca), (rb, cb)) = if batched {
        match (a, b) {
            ([ba, ra, ca], [bb, rb, cb]) if ba == bb => (*ba, (*ra, *ca), (*rb, *cb)),
            _ => {
                return Err(err(
                    "batched operands must be [batch, ·, ·] with equal batch",
                ))
            }
        }
    } else {
        if b.len() != 2 || a.len() < 2 {
            return Err(err("b must be 2-D and a at least 2-D"));
        }
        (1, as_matrix(a), (b[0], b[1]))
    };
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if k != kb {
        return Err(err(&format!("inner sizes differ: {k} vs {kb}")));
    }
    if let Some(bias) = bias {
        if bias != [n] {
            return Err(err(&format!("bias must be [{n}], got {bias:?}")));
        }
    }
    let out_shape = if batched {
        vec![batch, m, n]
    } else if trans_a {
        vec![m, n]
    } else {
        let mut s = a[..a.len() - 1].to_vec();
        s.push(n);
        s
    };
    Ok(Checked::new(Dims {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        out_shape,
    }))
}

/// Which CPU GEMM to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gemm {
    /// A plain cache-blocked loop; needs only `core`.
    Blocked,
    /// The `gemm` crate's SIMD kernels split over threads, and a streaming product for a few rows
    /// (`std` only).
    #[cfg(feature = "std")]
    Fast,
}

/// A strided matrix view: element `(i, j)` is at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// A matmul's right operand on the CPU: f32 values, or a weight kept as stored.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// A bf16, f16 or q8 weight.
    Packed(&'a Packed),
}

/// CPU reference: `act(op(a) · op(b) + bias)`.
pub fn cpu(
    a: &[f32],
    b: Operand<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    d: &Dims,
    gemm: Gemm,
) -> Vec<f32> {
    let b = match b {
        Operand::F32(b) => b,
        Operand::Packed(p) => {
            let mut out = with_packed(a, p, d, gemm);
            epilogue(&mut out, d.n, bias, act);
            return out;
        }
    };
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![0.0f32; d.batch * m * n];
    let (a_step, b_step) = (m * k, k * n);
    for bt in 0..d.batch {
        // Row-major storage: `a` is [M, K] or [K, M]; `b` is [K, N] or [N, K].
        let av = View {
            data: &a[bt * a_step..(bt + 1) * a_step],
            rs: if d.trans_a { 1 } else { k },
            cs: if d.trans_a { m } else { 1 },
        };
        let bv = View {
            data: &b[bt * b_step..(bt + 1) * b_step],
            rs: if d.trans_b { 1 } else { n },
            cs: if d.trans_b { k } else { 1 },
        };
        let c = &mut out[bt * m * n..(bt + 1) * m * n];
        match gemm {
            Gemm::Blocked => gemm_blocked(m, n, k, av, bv, c),
            #[cfg(feature = "std")]
            Gemm::Fast => gemm_fast(m, n, k, av, bv, c),
        }
    }
    epilogue(&mut out, n, bias, act);
    out
}

/// `C = A·B` (`C` row-major `m × n`) on the calling thread, for callers that split their own
/// work over threads (attention: one head per thread).
pub(crate) fn gemm_serial(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    gemm: Gemm,
) {
    if m == 0 || n == 0 {
        return;
    }
    match gemm {
        Gemm::Blocked => {
            c.fill(0.0);
            gemm_blocked(m, n, k, a, b, c)
        }
        // A decoding step's attention: `sgemm`'s packing would cost more than the product.
        #[cfg(feature = "std")]
        Gemm::Fast if m <= FEW_ROWS && b.cs == 1 => {
            few_rows(m, n, k, a, None, b.data, b.rs, c, false)
        }
        #[cfg(feature = "std")]
        Gemm::Fast if m <= FEW_ROWS && a.cs == 1 && b.rs == 1 => few_rows_dots(m, n, k, a, b, c),
        #[cfg(feature = "std")]
        Gemm::Fast => sgemm(m, n, k, a, b, c),
    }
}

/// Adds the bias and applies the activation, row by row.
fn epilogue(out: &mut [f32], n: usize, bias: Option<&[f32]>, act: Activation) {
    if n == 0 {
        return;
    }
    if let Some(bias) = bias {
        for row in out.chunks_exact_mut(n) {
            for (o, b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
    }
    if act == Activation::Gelu {
        super::gelu::cpu(out);
    }
}

/// Cache-blocked `C = A·B` over strided views; `b` is first made row-major so that the inner
/// loop runs along contiguous memory.
fn gemm_blocked(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    const BM: usize = 32;
    const BN: usize = 256;
    const BK: usize = 128;
    let packed: Vec<f32>;
    let b_rows: &[f32] = if b.cs == 1 && b.rs == n {
        b.data
    } else {
        packed = (0..k * n)
            .map(|idx| b.data[(idx / n) * b.rs + (idx % n) * b.cs])
            .collect();
        &packed
    };
    for i0 in (0..m).step_by(BM) {
        for j0 in (0..n).step_by(BN) {
            let j1 = (j0 + BN).min(n);
            for k0 in (0..k).step_by(BK) {
                for i in i0..(i0 + BM).min(m) {
                    let c_row = &mut c[i * n + j0..i * n + j1];
                    for kk in k0..(k0 + BK).min(k) {
                        let aik = a.data[i * a.rs + kk * a.cs];
                        let b_row = &b_rows[kk * n + j0..kk * n + j1];
                        for (cv, bv) in c_row.iter_mut().zip(b_row) {
                            *cv += aik * bv;
                        }
                    }
                }
            }
        }
    }
}

/// Up to this many rows (greedy decoding: one row per image and step; beam search: one per
/// beam), [`few_rows`] streams B once instead of calling `sgemm`, which packs all of B on every
/// call: for a single row that packing costs more than the product itself.
const FEW_ROWS: usize = packed::MAX_ROWS;

/// A raw output pointer that threads writing disjoint parts of `C` may share.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used by `gemm_fast`, whose threads write disjoint rows or columns of `C`.
#[cfg(feature = "std")]
unsafe impl Send for OutPtr {}
#[cfg(feature = "std")]
unsafe impl Sync for OutPtr {}

#[cfg(feature = "std")]
impl OutPtr {
    /// Element `i` (a method, so that closures capture the whole `Send` wrapper, not its field).
    ///
    /// # Safety
    /// `i` must be inside the allocation.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps `i` inside the allocation.
        unsafe { self.0.add(i) }
    }
}

/// [`sgemm_block`], split over threads along the longer side of `C`: each thread packs
/// its part of the operand along that side and all of the other, so the split that duplicates
/// the smaller operand's packing wins. Every element is computed the same way whatever the
/// split (the kernel blocks only K), so results do not depend on the number of threads.
#[cfg(feature = "std")]
fn gemm_fast(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    if !prepare(m, n, k, a, b, c) {
        return;
    }
    if m <= FEW_ROWS && b.cs == 1 {
        return few_rows(m, n, k, a, None, b.data, b.rs, c, true);
    }
    let split_rows = m >= n;
    let (len, work) = if split_rows { (m, n * k) } else { (n, m * k) };
    let out = OutPtr(c.as_mut_ptr());
    crate::threads::for_ranges(len, work, |r| {
        let (rows, cols, a_at, b_at, c_at) = if split_rows {
            (r.len(), n, r.start * a.rs, 0, r.start * n)
        } else {
            (m, r.len(), 0, r.start * b.cs, r.start)
        };
        // SAFETY: the rows (or columns) `r` of A (or B) are in bounds (`prepare`); `C` is
        // m × n row-major, and this thread writes only its rows (or columns) `r` of it.
        unsafe { sgemm_block(rows, cols, k, a, a_at, b, b_at, out.at(c_at), n) }
    });
}

/// [`sgemm_block`] on the calling thread: `C = A·B`, `C` row-major `m × n`.
#[cfg(feature = "std")]
fn sgemm(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    if prepare(m, n, k, a, b, c) {
        // SAFETY: every element addressed is in bounds (`prepare`), and `c` is borrowed whole.
        unsafe { sgemm_block(m, n, k, a, 0, b, 0, c.as_mut_ptr(), n) }
    }
}

/// The empty cases of `C = A·B`: nothing to do, or (K = 0) zeros. Otherwise asserts that every
/// element the views address lies inside their slices (checked by `dims` through the tensor
/// sizes, asserted again because `sgemm` takes raw pointers) and returns true.
#[cfg(feature = "std")]
fn prepare(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    if k == 0 {
        c.fill(0.0);
        return false;
    }
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len());
    assert!((k - 1) * b.rs + (n - 1) * b.cs < b.data.len());
    assert_eq!(c.len(), m * n);
    true
}

/// `C = A·B` for the `rows × cols` block of `C` at `c` (row stride `ldc`), from A's rows starting
/// at element `a_at` and B's columns starting at element `b_at`, by the `gemm` crate on the
/// calling thread (it picks AVX-512, AVX2/FMA, NEON or SIMD128 kernels at run time; 1.1-2.3×
/// `matrixmultiply` on a training step's products, most on the short inner sizes of a small
/// model).
///
/// # Safety
/// The block's operands and output must be in bounds, and no one else may access the output
/// block meanwhile.
#[cfg(feature = "std")]
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_block(
    rows: usize,
    cols: usize,
    k: usize,
    a: View<'_>,
    a_at: usize,
    b: View<'_>,
    b_at: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller keeps every access in bounds and the output block to itself.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            c,
            1,
            ldc as isize,
            false,
            a.data.as_ptr().add(a_at),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b_at),
            b.cs as isize,
            b.rs as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Bytes of B per block of [`few_rows`] (at least [`MIN_BLOCK_ROWS`] rows): enough work per
/// block to amortise handing it to a thread, and few enough partial products to add up.
const BLOCK_BYTES: usize = 64 << 10;
/// Fewest rows of B per block of [`few_rows`].
const MIN_BLOCK_ROWS: usize = 64;
/// Columns per chunk when [`few_rows`] splits a wide B by columns: each chunk's piece of a row is
/// still a long contiguous stretch (16 KiB of f32).
const COLUMN_CHUNK: usize = 4096;

/// `C = A·B` for a few rows of A (each column `kk` multiplied by `a_scale[kk]`, if given) and a
/// row-major B of elements `E`, rows `ldb` apart, which is read once from front to back and
/// widened to f32 in registers ([`packed::rows`]). With `threads` the work is cut into pieces
/// fixed by the shape alone, so the result does not depend on the number of threads: a B of at
/// least two [`COLUMN_CHUNK`]s of columns (the logits) into column chunks, each over all of K;
/// any other into blocks of whole rows, each one contiguous stretch of memory (which streams at
/// full bandwidth, where a split by columns would read short pieces of every row), whose partial
/// products are added in block order.
#[allow(clippy::too_many_arguments)]
fn few_rows<E: Elem>(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    a_scale: Option<&[f32]>,
    b: &[E],
    ldb: usize,
    c: &mut [f32],
    threads: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(m <= FEW_ROWS && c.len() == m * n);
    let level = packed::Level::detect();
    // A's rows, scaled, contiguous: `m × k`.
    let scale = |kk: usize| a_scale.map_or(1.0, |s| s[kk]);
    let a: Vec<f32> = (0..m)
        .flat_map(|i| (0..k).map(move |kk| a.data[i * a.rs + kk * a.cs] * scale(kk)))
        .collect();
    let product = |k0: usize, k1: usize, j0: usize, j1: usize| packed::Product {
        m,
        k: k1 - k0,
        n: j1 - j0,
        a: &a[k0..],
        lda: k,
        b: &b[k0 * ldb + j0..],
        ldb,
    };
    c.fill(0.0);
    let block_rows = (BLOCK_BYTES / (n * core::mem::size_of::<E>()))
        .next_multiple_of(16)
        .max(MIN_BLOCK_ROWS);
    let blocks = k.div_ceil(block_rows);
    if !threads || (blocks <= 1 && n < 2 * COLUMN_CHUNK) {
        return packed::rows(level, product(0, k, 0, n), c, n);
    }
    if n >= 2 * COLUMN_CHUNK {
        // Chunk after chunk of `m × COLUMN_CHUNK` results, copied into place.
        let chunks = n.div_ceil(COLUMN_CHUNK);
        let mut parts = vec![0.0f32; chunks * m * COLUMN_CHUNK];
        let work = COLUMN_CHUNK * m * k;
        crate::threads::for_row_chunks(&mut parts, m * COLUMN_CHUNK, work, |first, chunk| {
            for (ci, acc) in chunk.chunks_exact_mut(m * COLUMN_CHUNK).enumerate() {
                let j0 = (first + ci) * COLUMN_CHUNK;
                let j1 = (j0 + COLUMN_CHUNK).min(n);
                packed::rows(level, product(0, k, j0, j1), acc, COLUMN_CHUNK);
            }
        });
        for (ci, part) in parts.chunks_exact(m * COLUMN_CHUNK).enumerate() {
            let j0 = ci * COLUMN_CHUNK;
            let j1 = (j0 + COLUMN_CHUNK).min(n);
            for (i, row) in part.chunks_exact(COLUMN_CHUNK).enumerate() {
                c[i * n + j0..i * n + j1].copy_from_slice(&row[..j1 - j0]);
            }
        }
        return;
    }
    let mut partial = vec![0.0f32; blocks * m * n];
    let work = block_rows * m * n;
    crate::threads::for_row_chunks(&mut partial, m * n, work, |first, chunk| {
        for (bi, acc) in chunk.chunks_exact_mut(m * n).enumerate() {
            let k0 = (first + bi) * block_rows;
            let k1 = (k0 + block_rows).min(k);
            packed::rows(level, product(k0, k1, 0, n), acc, n);
        }
    });
    let mut blocks = partial.chunks_exact(m * n);
    c.copy_from_slice(blocks.next().expect("k > 0"));
    for block in blocks {
        for (o, p) in c.iter_mut().zip(block) {
            *o += p;
        }
    }
}

/// `op(A)·op(B)` with B a weight kept as stored: a few rows stream it as stored
/// ([`packed_few_rows`]); more rows widen it a column block at a time on the fast GEMM
/// ([`packed_by_columns`]), or all at once on the blocked one.
fn with_packed(a: &[f32], b: &Packed, d: &Dims, gemm: Gemm) -> Vec<f32> {
    if let Some(out) = packed_few_rows(a, b, d, gemm) {
        return out;
    }
    #[cfg(feature = "std")]
    if gemm == Gemm::Fast && d.batch == 1 {
        return packed_by_columns(a, b, d);
    }
    let widened = b.to_f32();
    cpu(a, Operand::F32(&widened), None, Activation::None, d, gemm)
}

/// f32 elements of B a [`packed_by_columns`] block widens at a time (1 MiB: it stays in L2
/// while `sgemm` packs it).
#[cfg(feature = "std")]
const WIDEN_BLOCK: usize = 1 << 18;

/// `C = op(A)·op(B)` for many rows and a B kept as stored: B's columns are cut into blocks of a
/// width fixed by K alone ([`WIDEN_BLOCK`] elements), threads take blocks in turn, and each
/// widens its block into a buffer of its own and runs [`sgemm_block`] on it. B is never widened
/// whole (no allocation of its f32 size, no page faults on it), and each element is computed
/// the same way whatever the number of threads.
#[cfg(feature = "std")]
fn packed_by_columns(a: &[f32], b: &Packed, d: &Dims) -> Vec<f32> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut c = vec![0.0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    let a = View {
        data: a,
        rs: if d.trans_a { 1 } else { k },
        cs: if d.trans_a { m } else { 1 },
    };
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len());
    let width = (WIDEN_BLOCK / k).next_multiple_of(16).min(n);
    let blocks = n.div_ceil(width);
    let out = OutPtr(c.as_mut_ptr());
    crate::threads::for_ranges(blocks, m * k * width, |r| {
        let mut buf = Vec::with_capacity(k * width);
        for block in r {
            let (j0, j1) = (block * width, ((block + 1) * width).min(n));
            buf.clear();
            // The block as `k × (j1 - j0)`: stored rows j0..j1 of a transposed B, or a stretch
            // of each of its K rows.
            let view = if d.trans_b {
                b.extend_f32(j0 * k..j1 * k, &mut buf);
                View {
                    data: &buf,
                    rs: 1,
                    cs: k,
                }
            } else {
                for kk in 0..k {
                    b.extend_f32(kk * n + j0..kk * n + j1, &mut buf);
                }
                View {
                    data: &buf,
                    rs: j1 - j0,
                    cs: 1,
                }
            };
            // SAFETY: A's view was checked above and the block's view holds `k × (j1 - j0)`
            // elements; columns j0..j1 of the m × n C are this block's alone.
            unsafe { sgemm_block(m, j1 - j0, k, a, 0, view, 0, out.at(j0), n) }
        }
    });
    c
}

/// A product of a few rows with a weight kept as stored, without widening it ([`few_rows`] on
/// its elements; q8 scales per column multiply the sums, per row the columns of A). `None` when
/// the product is not of that kind (many rows, batched, or B transposed).
fn packed_few_rows(a: &[f32], b: &Packed, d: &Dims, gemm: Gemm) -> Option<Vec<f32>> {
    let (m, n, k) = (d.m, d.n, d.k);
    if d.batch != 1 || d.trans_b || m > FEW_ROWS {
        return None;
    }
    let a = View {
        data: a,
        rs: if d.trans_a { 1 } else { k },
        cs: if d.trans_a { m } else { 1 },
    };
    let threads = match gemm {
        Gemm::Blocked => false,
        #[cfg(feature = "std")]
        Gemm::Fast => true,
    };
    let mut c = vec![0.0f32; m * n];
    if k == 0 {
        return Some(c);
    }
    match b {
        Packed::Bf16(v) => few_rows(m, n, k, a, None, v, n, &mut c, threads),
        Packed::F16(v) => few_rows(m, n, k, a, None, v, n, &mut c, threads),
        // A q8 matrix reshaped away from its `[rows, cols]` (whose channels then are not B's
        // rows or columns) is widened instead.
        Packed::Q8 { cols, .. } if *cols != n => return None,
        Packed::Q8 {
            values,
            scales,
            channels: Channels::Rows,
            ..
        } => few_rows(m, n, k, a, Some(scales), values, n, &mut c, threads),
        Packed::Q8 {
            values,
            scales,
            channels: Channels::Columns,
            ..
        } => {
            few_rows(m, n, k, a, None, values, n, &mut c, threads);
            for row in c.chunks_exact_mut(n) {
                for (o, s) in row.iter_mut().zip(scales) {
                    *o *= s;
                }
            }
        }
    }
    Some(c)
}

/// `C = A·B` for a few rows of A whose rows and B's columns are both contiguous (attention
/// scores `q·Kᵀ` in a decoding step): one dot product per element.
#[cfg(feature = "std")]
fn few_rows_dots(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    for i in 0..m {
        let a_row = &a.data[i * a.rs..i * a.rs + k];
        for (j, o) in c[i * n..(i + 1) * n].iter_mut().enumerate() {
            *o = crate::lanes::dot(a_row, &b.data[j * b.cs..j * b.cs + k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(a: &[f32], b: &[f32], d: &Dims) -> Vec<f32> {
        let mut out = vec![0.0; d.batch * d.m * d.n];
        for bt in 0..d.batch {
            for i in 0..d.m {
                for j in 0..d.n {
                    let mut s = 0.0f64;
                    for kk in 0..d.k {
                        let av = if d.trans_a {
                            a[bt * d.m * d.k + kk * d.m + i]
                        } else {
                            a[bt * d.m * d.k + i * d.k + kk]
                        };
                        let bv = if d.trans_b {
                            b[bt * d.k * d.n + j * d.k + kk]
                        } else {
                            b[bt * d.k * d.n + kk * d.n + j]
                        };
                        s += av as f64 * bv as f64;
                    }
                    out[bt * d.m * d.n + i * d.n + j] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn every_layout_and_odd_size_matches_a_naive_product() {
        let mut rng = Rng::new(3);
        let gemms = [
            Gemm::Blocked,
            #[cfg(feature = "std")]
            Gemm::Fast,
        ];
        for &(batch, m, n, k) in &[
            (1, 1, 1, 1),
            (1, 7, 13, 5),
            (2, 33, 65, 129),
            (3, 1, 300, 70),
            // Large enough to be split over threads: few rows (columns split, K not a multiple
            // of 4), then rows split (M ≥ N) and columns split (M < N) in `sgemm`.
            (1, 3, 1000, 301),
            (1, 300, 70, 41),
            (1, 70, 300, 41),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a_shape = if ta { [batch, k, m] } else { [batch, m, k] };
                    let b_shape = if tb { [batch, n, k] } else { [batch, k, n] };
                    let d = check(&a_shape, &b_shape, ta, tb, true, None).unwrap();
                    let a: Vec<f32> = (0..batch * m * k).map(|_| rng.normal()).collect();
                    let b: Vec<f32> = (0..batch * k * n).map(|_| rng.normal()).collect();
                    let want = naive(&a, &b, &d);
                    for &g in &gemms {
                        let got = cpu(&a, Operand::F32(&b), None, Activation::None, &d, g);
                        for (x, y) in got.iter().zip(&want) {
                            assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{g:?} {d:?}");
                        }
                    }
                }
            }
        }
    }

    /// A B kept as stored (every format, q8 with scales along either axis) gives the product
    /// of its widened values, for few rows (streamed as stored) and many (widened by blocks),
    /// transposed or not, on both GEMMs.
    #[test]
    fn weights_kept_as_stored_match_their_widened_values() {
        use crate::formats::{Precision, StoredTensor};
        let mut rng = Rng::new(4);
        let gemms = [
            Gemm::Blocked,
            #[cfg(feature = "std")]
            Gemm::Fast,
        ];
        let formats = [
            (Precision::BF16, Channels::Columns),
            (Precision::F16, Channels::Columns),
            (Precision::Q8, Channels::Columns),
            (Precision::Q8, Channels::Rows),
        ];
        // Several column blocks of `packed_by_columns` (K = 3000: 96 columns a block).
        for &(m, n, k) in &[(1, 37, 19), (4, 130, 70), (5, 33, 17), (40, 300, 3000)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a_shape = if ta { [k, m] } else { [m, k] };
                    let b_shape = if tb { [n, k] } else { [k, n] };
                    let d = check(&a_shape, &b_shape, ta, tb, false, None).unwrap();
                    let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
                    let w: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
                    for (p, channels) in formats {
                        let stored = StoredTensor::from_f32(&b_shape, &w)
                            .and_then(|t| t.convert("b", p, Some(channels)))
                            .unwrap();
                        let packed = Packed::from_stored(&stored).unwrap();
                        let want = naive(&a, &stored.to_f32(), &d);
                        for &g in &gemms {
                            let got =
                                cpu(&a, Operand::Packed(&packed), None, Activation::None, &d, g);
                            // f32 rounding of sums of K products of size ~1.
                            let tol = |y: f32| 1e-4 * (1.0 + y.abs()) + 1e-7 * k as f32;
                            for (x, y) in got.iter().zip(&want) {
                                assert!(
                                    (x - y).abs() < tol(*y),
                                    "{p} {channels:?} {g:?} {d:?}: {x} vs {y}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shape_rules() {
        let d = check(&[2, 3, 4], &[4, 5], false, false, false, Some(&[5])).unwrap();
        assert_eq!(
            (d.m, d.n, d.k, d.out_shape.clone()),
            (6, 5, 4, vec![2, 3, 5])
        );
        let d = check(&[2, 3, 4], &[2, 3, 5], true, false, false, None);
        assert!(d.is_err(), "b must be 2-D when unbatched");
        let d = check(&[6, 4], &[6, 5], true, false, false, None).unwrap();
        assert_eq!(d.out_shape, vec![4, 5]);
        assert!(check(&[2, 4], &[5, 3], false, false, false, None).is_err());
        assert!(check(&[2, 4], &[4, 3], false, false, false, Some(&[4])).is_err());
    }
}
