//! Weights the CPU backend keeps as stored — bf16, f16 or q8 — and the kernel that widens them
//! to f32 in registers: the product of a few rows of activations with a weight matrix, which is
//! what every matmul of a decoding step is (one row per image and beam). Such a product reads
//! each weight once, so it is bound by memory bandwidth: 16-bit weights halve its bytes and q8
//! quarters them. Activations and accumulation stay f32.
//!
//! The kernel is written once ([`rows_body`]) over an instruction set ([`Isa`]: AVX-512F, AVX2
//! with FMA and F16C, or portable Rust that the compiler vectorises as it can) and an element
//! format ([`Elem`]: f32, bf16, f16, i8), each of which says only how it loads and widens lanes.
//! The instruction set is picked at run time ([`Level::detect`]; without `std`, from the
//! target's compile-time features), so one build runs on any x86-64 and the portable path serves
//! everything else (aarch64, wasm, `no_std`). bf16 widens with a shift, f16 with `vcvtph2ps` (or
//! exact bit arithmetic in the portable path), i8 with a sign extension and a conversion: all
//! exact. Integer or bf16 dot-product instructions (VNNI, AVX512_BF16) would need the activations
//! rounded to 8 or 16 bits, and buy nothing in a memory-bound loop.

use alloc::vec::Vec;

use half::{bf16, f16};

use crate::formats::{Channels, Stored, StoredTensor};
use crate::safetensors_io::DType;

/// A kernel or table the CPU keeps as stored (f32 weights are plain tensors).
#[derive(Debug, Clone, PartialEq)]
pub enum Packed {
    /// bfloat16 elements.
    Bf16(Vec<bf16>),
    /// IEEE half elements.
    F16(Vec<f16>),
    /// A q8 matrix of `cols` columns: int8 values and a scale per channel.
    Q8 {
        /// The values, row-major.
        values: Vec<i8>,
        /// One per channel.
        scales: Vec<f32>,
        /// Which way the channels run.
        channels: Channels,
        /// Columns of the matrix.
        cols: usize,
    },
}

impl Packed {
    /// A stored tensor's elements, copied in their format; `None` for f32.
    pub fn from_stored(t: &StoredTensor<'_>) -> Option<Self> {
        Some(match t.stored() {
            Stored::Float(DType::F32, _) => return None,
            Stored::Float(DType::BF16, b) => Packed::Bf16(
                b.chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            Stored::Float(DType::F16, b) => Packed::F16(
                b.chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            Stored::Q8 {
                values,
                scales,
                channels,
            } => Packed::Q8 {
                values: values.iter().map(|&v| v as i8).collect(),
                scales: scales.clone(),
                channels: *channels,
                cols: t.shape()[1],
            },
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Packed::Bf16(v) => v.len(),
            Packed::F16(v) => v.len(),
            Packed::Q8 { values, .. } => values.len(),
        }
    }

    /// Bytes the elements take (q8: values and scales).
    pub fn byte_len(&self) -> usize {
        match self {
            Packed::Bf16(v) => v.len() * 2,
            Packed::F16(v) => v.len() * 2,
            Packed::Q8 { values, scales, .. } => values.len() + scales.len() * 4,
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `range` (row-major) as f32, appended to `out`: widened, or dequantised. Loops
    /// without branches or divisions per element, which the compiler vectorises (a product of
    /// many rows widens its whole B this way on each call).
    pub fn extend_f32(&self, range: core::ops::Range<usize>, out: &mut Vec<f32>) {
        match self {
            Packed::Bf16(v) => out.extend(v[range].iter().map(|&x| x.widen())),
            Packed::F16(v) => out.extend(v[range].iter().map(|&x| x.widen())),
            Packed::Q8 {
                values,
                scales,
                channels,
                cols,
            } => {
                let cols = (*cols).max(1);
                let mut i = range.start;
                while i < range.end {
                    // The rest of row `i / cols` that lies in the range.
                    let (row, col) = (i / cols, i % cols);
                    let end = range.end.min((row + 1) * cols);
                    let q = &values[i..end];
                    match channels {
                        Channels::Columns => {
                            let s = &scales[col..col + q.len()];
                            out.extend(q.iter().zip(s).map(|(&q, &s)| q as f32 * s));
                        }
                        Channels::Rows => {
                            let s = scales[row];
                            out.extend(q.iter().map(|&q| q as f32 * s));
                        }
                    }
                    i = end;
                }
            }
        }
    }

    /// Every element as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len());
        self.extend_f32(0..self.len(), &mut out);
        out
    }
}

/// An element format of a few-row product's right operand: how one element, or a vector of
/// them, widens to f32.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    /// One element as f32.
    fn widen(self) -> f32;
    /// 16 elements at `p` (AVX-512F).
    ///
    /// # Safety
    /// `p` must point to 16 readable elements, on a CPU with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn widen16(p: *const Self) -> core::arch::x86_64::__m512;
    /// 8 elements at `p` (AVX2, F16C).
    ///
    /// # Safety
    /// `p` must point to 8 readable elements, on a CPU with AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn widen8(p: *const Self) -> core::arch::x86_64::__m256;
}

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

impl Elem for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen16(p: *const Self) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen8(p: *const Self) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_loadu_ps(p) }
    }
}

impl Elem for bf16 {
    /// The top half of an f32: a shift.
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen16(p: *const Self) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe {
            let h = _mm256_loadu_si256(p.cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen8(p: *const Self) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe {
            let h = _mm_loadu_si128(p.cast());
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        }
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f16_bits_to_f32(self.to_bits())
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen16(p: *const Self) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen8(p: *const Self) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
}

impl Elem for i8 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self as f32
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen16(p: *const Self) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast()))) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn widen8(p: *const Self) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))) }
    }
}

/// IEEE half to single, exactly, with integer arithmetic and selects only (so that loops of it
/// vectorise; `half`'s own conversion branches, or calls F16C one element at a time).
#[inline(always)]
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    // Normal: rebias the exponent; infinity and NaN: all-ones exponent; zero and subnormal:
    // mant · 2⁻²⁴, exact in f32.
    let normal = ((exp + 112) << 23) | (mant << 13);
    let special = 0x7f80_0000 | (mant << 13);
    let small = (mant as f32 * f32::from_bits(0x3380_0000)).to_bits();
    let bits = match exp {
        0 => small,
        31 => special,
        _ => normal,
    };
    f32::from_bits(sign | bits)
}

/// Vector operations of one instruction set, for [`rows_body`].
trait Isa: Copy {
    /// A vector of f32 lanes.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` f32 values at `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Stores `LANES` values at `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a · b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `LANES` elements at `p`, widened.
    unsafe fn widen<E: Elem>(p: *const E) -> Self::V;
    /// Asks for the cache line of `p` (any address: nothing is read).
    #[inline(always)]
    fn prefetch<T>(p: *const T) {
        let _ = p;
    }
}

/// Rust without intrinsics: the compiler vectorises the lane loops for the target's baseline
/// (and the `f16` widening, being branch-free, along with them). Multiply and add are separate
/// (a fused `mul_add` is a library call where the hardware has no FMA).
#[derive(Clone, Copy)]
struct Portable;

impl Isa for Portable {
    type V = [f32; 8];
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[f32; 8]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<[f32; 8]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        core::array::from_fn(|l| a[l] * b[l] + c[l])
    }
    #[inline(always)]
    unsafe fn widen<E: Elem>(p: *const E) -> [f32; 8] {
        // SAFETY: the caller's contract.
        core::array::from_fn(|l| unsafe { p.add(l).read_unaligned() }.widen())
    }
}

/// AVX-512F: 16 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Isa for Avx512 {
    #[inline(always)]
    fn prefetch<T>(p: *const T) {
        // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the caller runs with AVX-512F.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller's contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the caller runs with AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn widen<E: Elem>(p: *const E) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { E::widen16(p) }
    }
}

/// AVX2 with FMA and F16C: 8 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    #[inline(always)]
    fn prefetch<T>(p: *const T) {
        // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    type V = __m256;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: the caller runs with AVX.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller's contract.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the caller runs with FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn widen<E: Elem>(p: *const E) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { E::widen8(p) }
    }
}

/// Rows of B per pass over the accumulators in [`rows_body`]: each pass loads and stores every
/// accumulator once, so more rows per pass means fewer of those per multiply-add (4 rather than
/// 1: 1.2× on one core of the Zen 4 host with B in L2, more for 2 to 4 rows of A).
const PASS: usize = 4;

/// A few-row product `acc += A · B`: `A` is `m × k` (rows `lda` apart), `B` `k × n` of
/// elements `E` (rows `ldb` apart).
#[derive(Clone, Copy)]
pub(crate) struct Product<'a, E> {
    /// Rows of A (at most [`MAX_ROWS`]).
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B.
    pub n: usize,
    /// A.
    pub a: &'a [f32],
    /// Row stride of A.
    pub lda: usize,
    /// B.
    pub b: &'a [E],
    /// Row stride of B.
    pub ldb: usize,
}

/// `acc[i, j] += Σ_k a[i, k] · B[k, j]` for `M` rows, `acc` rows `ldc` apart. B is read once,
/// front to back, a pass of [`PASS`] rows at a time, the pass after next prefetched; its elements
/// are widened to f32 in registers.
///
/// # Safety
/// `p.b` must hold `p.k` rows of `p.n` elements `p.ldb` apart, `p.a` `M` rows of `p.k` values
/// `p.lda` apart and `acc` `M` rows of `p.n` values `ldc` apart; the CPU must have `S`'s
/// instructions.
#[inline(always)]
unsafe fn rows_body<S: Isa, E: Elem, const M: usize>(p: Product<'_, E>, acc: *mut f32, ldc: usize) {
    let (n, ldb) = (p.n, p.ldb);
    let vectors = n / S::LANES * S::LANES;
    let a = |i: usize, k: usize| p.a[i * p.lda + k];
    let mut k = 0;
    while k < p.k {
        let rows = PASS.min(p.k - k);
        // SAFETY (whole block): rows k..k + rows of B and columns 0..n are in bounds by the
        // contract, as are acc[i, 0..n] for i < M.
        unsafe {
            // Rows past the last repeat it (and are not used).
            let b = p.b.as_ptr().add(k * ldb);
            let mut brow = [b; PASS];
            let mut av = [[S::splat(0.0); PASS]; M];
            for r in 0..PASS {
                let r_in = r.min(rows - 1);
                brow[r] = b.add(r_in * ldb);
                for (i, av) in av.iter_mut().enumerate() {
                    av[r] = S::splat(*p.a.get_unchecked(i * p.lda + k + r_in));
                }
            }
            let mut j = 0;
            if rows == PASS {
                while j < vectors {
                    let mut bv = [S::splat(0.0); PASS];
                    for r in 0..PASS {
                        bv[r] = S::widen(brow[r].add(j));
                    }
                    // The same columns two passes on (q8 streamed from memory: 1.4× on one
                    // core of the Zen 4 host; 16-bit 1.1×).
                    for b in brow {
                        S::prefetch(b.wrapping_add(j + 2 * PASS * ldb));
                    }
                    for (i, av) in av.iter().enumerate() {
                        let o = acc.add(i * ldc + j);
                        let mut c = S::load(o);
                        for r in 0..PASS {
                            c = S::fma(av[r], bv[r], c);
                        }
                        S::store(o, c);
                    }
                    j += S::LANES;
                }
            } else {
                while j < vectors {
                    for (r, b) in brow.iter().enumerate().take(rows) {
                        let bv = S::widen(b.add(j));
                        for (i, av) in av.iter().enumerate() {
                            let o = acc.add(i * ldc + j);
                            S::store(o, S::fma(av[r], bv, S::load(o)));
                        }
                    }
                    j += S::LANES;
                }
            }
            // The last columns, fewer than a vector.
            for j in vectors..n {
                for (r, b) in brow.iter().enumerate().take(rows) {
                    let bv = b.add(j).read_unaligned().widen();
                    for i in 0..M {
                        *acc.add(i * ldc + j) += a(i, k + r) * bv;
                    }
                }
            }
        }
        k += rows;
    }
}

/// An instruction set the few-row kernel can use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust (any target).
    Portable,
    /// AVX2 + FMA + F16C (x86-64).
    Avx2,
    /// AVX-512F (x86-64).
    Avx512,
}

impl Level {
    /// The best level this CPU has: detected at run time with `std`, from the compile-time
    /// target features without. `CAPPA_SIMD=portable|avx2|avx512` lowers it (benchmarks, tests).
    pub fn detect() -> Level {
        #[cfg(feature = "std")]
        {
            use std::sync::OnceLock;
            static LEVEL: OnceLock<Level> = OnceLock::new();
            *LEVEL.get_or_init(|| {
                let cap = match std::env::var("CAPPA_SIMD").as_deref() {
                    Ok("portable") => Level::Portable,
                    Ok("avx2") => Level::Avx2,
                    _ => Level::Avx512,
                };
                Self::available()
                    .into_iter()
                    .filter(|&l| l <= cap)
                    .max()
                    .unwrap_or(Level::Portable)
            })
        }
        #[cfg(not(feature = "std"))]
        {
            Self::available()
                .into_iter()
                .max()
                .unwrap_or(Level::Portable)
        }
    }

    /// Every level this CPU can run.
    pub fn available() -> Vec<Level> {
        [Level::Portable, Level::Avx2, Level::Avx512]
            .into_iter()
            .filter(|l| l.runs_here())
            .collect()
    }

    /// Whether this CPU has the level's instructions.
    fn runs_here(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Level::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Level::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Level::Avx2 => cfg!(all(
                target_feature = "avx2",
                target_feature = "fma",
                target_feature = "f16c"
            )),
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Level::Avx512 => cfg!(target_feature = "avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 | Level::Avx512 => false,
        }
    }
}

/// Up to this many rows [`rows`] takes at once.
pub(crate) const MAX_ROWS: usize = 4;

/// `acc += p.a · p.b` (`acc` rows `ldc` apart) on `level`'s instructions, which the CPU must
/// have (see [`Level::available`]).
pub(crate) fn rows<E: Elem>(level: Level, p: Product<'_, E>, acc: &mut [f32], ldc: usize) {
    if p.k == 0 || p.n == 0 || p.m == 0 {
        return;
    }
    let last = |rows: usize, ld: usize, len: usize| (rows - 1) * ld + len;
    assert!(p.m <= MAX_ROWS, "{} rows", p.m);
    assert!(p.a.len() >= last(p.m, p.lda, p.k), "A is too short");
    assert!(p.b.len() >= last(p.k, p.ldb, p.n), "B is too short");
    assert!(acc.len() >= last(p.m, ldc, p.n), "acc is too short");
    assert!(level.runs_here(), "{level:?} is not available here");
    let acc = acc.as_mut_ptr();
    // SAFETY: bounds asserted above; the instruction set is available.
    unsafe {
        match level {
            Level::Portable => by_rows::<Portable, E>(p, acc, ldc),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => rows_avx512(p, acc, ldc),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => rows_avx2(p, acc, ldc),
            #[cfg(not(target_arch = "x86_64"))]
            _ => by_rows::<Portable, E>(p, acc, ldc),
        }
    }
}

/// [`rows_body`] for `p.m` rows (1 to 4, each its own instance, so that the rows' broadcasts
/// and accumulators stay in registers).
///
/// # Safety
/// As [`rows_body`].
#[inline(always)]
unsafe fn by_rows<S: Isa, E: Elem>(p: Product<'_, E>, acc: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match p.m {
            1 => rows_body::<S, E, 1>(p, acc, ldc),
            2 => rows_body::<S, E, 2>(p, acc, ldc),
            3 => rows_body::<S, E, 3>(p, acc, ldc),
            _ => rows_body::<S, E, 4>(p, acc, ldc),
        }
    }
}

/// [`by_rows`] compiled for AVX-512F.
///
/// # Safety
/// As [`rows_body`], on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512<E: Elem>(p: Product<'_, E>, acc: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe { by_rows::<Avx512, E>(p, acc, ldc) }
}

/// [`by_rows`] compiled for AVX2 with FMA and F16C.
///
/// # Safety
/// As [`rows_body`], on a CPU with AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2<E: Elem>(p: Product<'_, E>, acc: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe { by_rows::<Avx2, E>(p, acc, ldc) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn f16_widening_is_exact_for_every_value() {
        for bits in 0..=u16::MAX {
            let want = f16::from_bits(bits).to_f32();
            let got = f16_bits_to_f32(bits);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#06x}: {got} vs {want}"
            );
        }
    }

    /// `acc + a · B` in f64, B given as f32 values.
    fn naive(
        m: usize,
        a: &[f32],
        kb: usize,
        b: &[f32],
        ldb: usize,
        n: usize,
        acc: &[f32],
    ) -> Vec<f32> {
        (0..m * n)
            .map(|o| {
                let (i, j) = (o / n, o % n);
                let s: f64 = (0..kb)
                    .map(|k| a[i * kb + k] as f64 * b[k * ldb + j] as f64)
                    .sum();
                (acc[o] as f64 + s) as f32
            })
            .collect()
    }

    fn check<E: Elem>(level: Level, make: impl Fn(f32) -> E) {
        let mut rng = Rng::new(5);
        for &(m, kb, n, ldb) in &[
            (1, 1, 1, 1),
            (4, 9, 37, 40),
            (2, 64, 48, 48),
            (3, 5, 16, 17),
            (1, 70, 130, 130),
        ] {
            let a: Vec<f32> = (0..m * kb).map(|_| rng.normal()).collect();
            let b: Vec<E> = (0..(kb - 1) * ldb + n)
                .map(|_| make(rng.normal()))
                .collect();
            let bf: Vec<f32> = b.iter().map(|x| x.widen()).collect();
            let acc0: Vec<f32> = (0..m * n).map(|_| rng.normal()).collect();
            let mut acc = acc0.clone();
            let p = Product {
                m,
                k: kb,
                n,
                a: &a,
                lda: kb,
                b: &b,
                ldb,
            };
            rows(level, p, &mut acc, n);
            let want = naive(m, &a, kb, &bf, ldb, n, &acc0);
            for (o, (x, y)) in acc.iter().zip(&want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + kb as f32),
                    "{level:?} {m}×{kb}×{n} at {o}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn widening_any_range_gives_the_stored_values() {
        use crate::formats::{Precision, StoredTensor};
        let mut rng = Rng::new(9);
        let w: Vec<f32> = (0..5 * 7).map(|_| rng.normal()).collect();
        let f32_weight = StoredTensor::from_f32(&[5, 7], &w).unwrap();
        for (p, channels) in [
            (Precision::BF16, Channels::Columns),
            (Precision::F16, Channels::Columns),
            (Precision::Q8, Channels::Columns),
            (Precision::Q8, Channels::Rows),
        ] {
            let stored = f32_weight.clone().convert("w", p, Some(channels)).unwrap();
            let packed = Packed::from_stored(&stored).unwrap();
            let want = stored.to_f32();
            assert_eq!(packed.to_f32(), want, "{p} {channels:?}");
            for range in [0..0, 3..4, 5..19, 7..14, 30..35] {
                let mut got = alloc::vec![-1.0];
                packed.extend_f32(range.clone(), &mut got);
                assert_eq!(got[1..], want[range.clone()], "{p} {channels:?} {range:?}");
            }
        }
        assert!(Packed::from_stored(&f32_weight).is_none());
    }

    #[test]
    fn every_level_and_format_matches_a_naive_product() {
        for level in Level::available() {
            check::<f32>(level, |v| v);
            check::<bf16>(level, bf16::from_f32);
            check::<f16>(level, f16::from_f32);
            check::<i8>(level, |v| (v * 40.0).clamp(-127.0, 127.0) as i8);
        }
    }
}
