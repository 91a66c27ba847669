//! Scalar math used by the CPU ops: `std` when present, `libm` without it.

#[cfg(feature = "std")]
mod imp {
    pub fn exp(x: f32) -> f32 {
        x.exp()
    }
    pub fn ln(x: f32) -> f32 {
        x.ln()
    }
    #[cfg(feature = "train")] // the GELU backward's
    pub fn tanh(x: f32) -> f32 {
        x.tanh()
    }
    pub fn sqrt(x: f32) -> f32 {
        x.sqrt()
    }
    pub fn sin(x: f64) -> f64 {
        x.sin()
    }
    pub fn cos(x: f64) -> f64 {
        x.cos()
    }
    pub fn powf(x: f64, y: f64) -> f64 {
        x.powf(y)
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    pub fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
    #[cfg(feature = "train")] // the GELU backward's
    pub fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
    pub fn sqrt(x: f32) -> f32 {
        libm::sqrtf(x)
    }
    pub fn sin(x: f64) -> f64 {
        libm::sin(x)
    }
    pub fn cos(x: f64) -> f64 {
        libm::cos(x)
    }
    pub fn powf(x: f64, y: f64) -> f64 {
        libm::pow(x, y)
    }
}

pub use imp::*;

/// `eˣ` in plain arithmetic (Cephes' `expf`: a degree-5 polynomial after reducing by `ln 2`), so
/// that loops over many values vectorise, which calls to the C library's `expf` prevent. Within
/// 2 ulp of the exact value over the normal range; 0 below it (`-inf` included), `inf` above it,
/// NaN for NaN.
#[inline]
pub fn exp_vec(x: f32) -> f32 {
    const LO: f32 = -87.3;
    const HI: f32 = 88.3;
    // Adding 1.5·2²³ rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(LO, HI);
    let t = xc * core::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // 2ⁿ built from its exponent bits (n is within -126..=127 after the clamp).
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let scaled = y * f32::from_bits(((n_int + 127) << 23) as u32);
    // Out of range: 0 below, inf above, by bit masks rather than branches, which keep loops of
    // this function from vectorising (NaN is neither, so it passes through).
    let mask = |b: bool| 0u32.wrapping_sub(u32::from(b));
    let (zero, inf) = (mask(x < LO), mask(x > HI));
    let bits = scaled.to_bits() & !zero;
    f32::from_bits((bits & !inf) | (f32::INFINITY.to_bits() & inf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_vec_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = super::exp_vec(x) as f64;
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((got - want).abs() / ulp as f64);
            x += 0.000_73;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(super::exp_vec(0.0), 1.0);
        assert_eq!(super::exp_vec(f32::NEG_INFINITY), 0.0);
        assert_eq!(super::exp_vec(-200.0), 0.0);
        assert_eq!(super::exp_vec(f32::INFINITY), f32::INFINITY);
        assert!(super::exp_vec(f32::NAN).is_nan());
    }
}
