//! Reductions over a row in eight interleaved lanes, so that the compiler vectorises them: one
//! running sum (or maximum) forces one operation at a time, since float operations may not be
//! reordered. Used by the CPU ops' softmaxes, LayerNorm and decoding-step dot products.

/// `Σ f(x)` over a row in eight partial sums.
#[inline]
pub fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest value of a row (NaNs ignored, as by `f32::max`; `-inf` if empty).
#[inline]
pub fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// `Σ x·y` over two rows of equal length in eight partial sums (its one user is the `std` GEMM).
#[cfg(feature = "std")]
#[inline]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(p, q)| p * q)
        .sum();
    for (p, q) in xc.zip(yc) {
        for (a, (&p, &q)) in acc.iter_mut().zip(p.iter().zip(q)) {
            *a += p * q;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn lane_reductions_match_plain_loops_at_every_length() {
        for len in 0..21 {
            let x: alloc::vec::Vec<f32> = (0..len).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(super::max_lanes(&x), max, "len {len}");
            let sum: f32 = x.iter().map(|v| v * v).sum();
            assert_eq!(super::sum_lanes(&x, |v| v * v), sum, "len {len}");
            #[cfg(feature = "std")]
            assert_eq!(super::dot(&x, &x), sum, "len {len}");
        }
        assert_eq!(super::max_lanes(&[1.0, f32::NAN, 2.0]), 2.0);
    }
}
