//! Scalar math used by the CPU ops: `std` when present, `libm` without it.

#[cfg(feature = "std")]
mod imp {
    pub fn exp(x: f32) -> f32 {
        x.exp()
    }
    pub fn ln(x: f32) -> f32 {
        x.ln()
    }
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
