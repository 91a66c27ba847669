//! The CPU backend: exact `f32`, `no_std`, the oracle every other backend is tested against.
//! With `std` its matmuls use the `gemm` crate's SIMD kernels and all cores; without, a blocked loop.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

#[cfg(feature = "train")]
use crate::backend::TrainBackend;
use crate::backend::{Activation, Backend, Mask, Shaped};
use crate::error::Result;
use crate::formats::{Precision, StoredTensor};
pub use crate::ops::matmul::Gemm;
use crate::ops::matmul::Operand;
use crate::ops::packed::Packed;
use crate::ops::{self, shape_error, Checked};
use crate::tensor::{numel, HostTensor};

/// An `f32` tensor of the CPU backend (shared, copy-on-write). A kernel or table uploaded with
/// [`Backend::upload_weight`] stays in its stored format (bf16, f16, q8): matmuls and gathers
/// widen it in registers, and any other op sees it widened to f32.
#[derive(Debug, Clone)]
pub struct CpuTensor {
    shape: Vec<usize>,
    data: Data,
}

/// How a [`CpuTensor`] holds its elements.
#[derive(Debug, Clone)]
enum Data {
    /// f32 values (every tensor an op makes).
    F32(Arc<Vec<f32>>),
    /// A weight kept as stored.
    Packed(Arc<Packed>),
}

impl CpuTensor {
    fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(numel(&shape), data.len());
        CpuTensor {
            shape,
            data: Data::F32(Arc::new(data)),
        }
    }

    /// The values as f32 (a copy for a weight kept 16-bit or q8, which is widened).
    pub fn values(&self) -> Cow<'_, [f32]> {
        match &self.data {
            Data::F32(v) => Cow::Borrowed(v),
            Data::Packed(p) => Cow::Owned(p.to_f32()),
        }
    }

    /// The format the elements are kept in.
    pub fn precision(&self) -> Precision {
        match &self.data {
            Data::F32(_) => Precision::F32,
            Data::Packed(p) => match **p {
                Packed::Bf16(_) => Precision::BF16,
                Packed::F16(_) => Precision::F16,
                Packed::Q8 { .. } => Precision::Q8,
            },
        }
    }

    /// Bytes its elements take in memory (a q8 weight's scales included).
    pub fn byte_len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len() * 4,
            Data::Packed(p) => p.byte_len(),
        }
    }

    /// As a matmul's right operand.
    fn operand(&self) -> Operand<'_> {
        match &self.data {
            Data::F32(v) => Operand::F32(v),
            Data::Packed(p) => Operand::Packed(p),
        }
    }

    /// The f32 values to change in place: a copy if they are shared (copy-on-write), widened
    /// first if the tensor is a weight kept as stored (it is f32 from then on).
    fn values_mut(&mut self) -> &mut [f32] {
        if let Data::Packed(p) = &self.data {
            self.data = Data::F32(Arc::new(p.to_f32()));
        }
        match &mut self.data {
            Data::F32(v) => Arc::make_mut(v).as_mut_slice(),
            Data::Packed(_) => unreachable!("widened above"),
        }
    }
}

impl Shaped for CpuTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// Token ids of the CPU backend.
#[derive(Debug, Clone)]
pub struct CpuIds {
    shape: Vec<usize>,
    data: Vec<u32>,
}

impl Shaped for CpuIds {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// The CPU backend.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    gemm: Gemm,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// The fastest CPU backend this build has (`Gemm::Fast` with `std`).
    pub fn new() -> Self {
        #[cfg(feature = "std")]
        let gemm = Gemm::Fast;
        #[cfg(not(feature = "std"))]
        let gemm = Gemm::Blocked;
        CpuBackend { gemm }
    }

    /// A CPU backend with the given GEMM.
    pub fn with_gemm(gemm: Gemm) -> Self {
        CpuBackend { gemm }
    }

    /// The GEMM in use.
    pub fn gemm(&self) -> Gemm {
        self.gemm
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Ids = CpuIds;

    fn name(&self) -> String {
        match self.gemm {
            Gemm::Blocked => "cpu (blocked gemm)".to_string(),
            #[cfg(feature = "std")]
            Gemm::Fast => alloc::format!("cpu ({} threads)", crate::threads::num_threads()),
        }
    }

    fn upload(&self, t: &HostTensor) -> Result<CpuTensor> {
        Ok(CpuTensor::new(t.shape().to_vec(), t.data().to_vec()))
    }

    fn upload_weight(&self, t: &StoredTensor<'_>) -> Result<CpuTensor> {
        Ok(match Packed::from_stored(t) {
            Some(p) => CpuTensor {
                shape: t.shape().to_vec(),
                data: Data::Packed(Arc::new(p)),
            },
            None => CpuTensor::new(t.shape().to_vec(), t.to_f32()),
        })
    }

    fn download(&self, t: &CpuTensor) -> Result<HostTensor> {
        HostTensor::new(&t.shape, t.values().into_owned())
    }

    fn upload_ids(&self, shape: &[usize], ids: &[u32]) -> Result<CpuIds> {
        if numel(shape) != ids.len() {
            return Err(shape_error(
                "upload_ids",
                alloc::format!("{} ids for shape {shape:?}", ids.len()),
            ));
        }
        Ok(CpuIds {
            shape: shape.to_vec(),
            data: ids.to_vec(),
        })
    }

    fn download_ids(&self, ids: &CpuIds) -> Result<Vec<u32>> {
        Ok(ids.data.clone())
    }

    fn reshape(&self, t: &CpuTensor, shape: &[usize]) -> Result<CpuTensor> {
        if numel(shape) != numel(&t.shape) {
            return Err(shape_error(
                "reshape",
                alloc::format!("cannot reshape {:?} to {shape:?}", t.shape),
            ));
        }
        Ok(CpuTensor {
            shape: shape.to_vec(),
            data: t.data.clone(),
        })
    }

    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        Ok(CpuTensor::new(
            shape.to_vec(),
            alloc::vec![0.0; numel(shape)],
        ))
    }

    fn matmul_kernel(
        &self,
        a: &CpuTensor,
        b: &CpuTensor,
        bias: Option<&CpuTensor>,
        act: Activation,
        d: &Checked<ops::matmul::Dims>,
    ) -> Result<CpuTensor> {
        let bias = bias.map(CpuTensor::values);
        let out = ops::matmul::cpu(&a.values(), b.operand(), bias.as_deref(), act, d, self.gemm);
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn layer_norm_kernel(
        &self,
        x: &CpuTensor,
        scale: &CpuTensor,
        bias: Option<&CpuTensor>,
        eps: f32,
        _: &Checked<ops::layer_norm::Dims>,
    ) -> Result<CpuTensor> {
        let bias = bias.map(CpuTensor::values);
        let out = ops::layer_norm::cpu(&x.values(), &scale.values(), bias.as_deref(), eps);
        Ok(CpuTensor::new(x.shape.clone(), out))
    }

    fn attention_kernel(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention::Dims>,
    ) -> Result<CpuTensor> {
        let out = ops::attention::cpu(&q.values(), &k.values(), &v.values(), **d, mask, self.gemm);
        Ok(CpuTensor::new(q.shape.clone(), out))
    }

    fn add_kernel(
        &self,
        a: &CpuTensor,
        b: &CpuTensor,
        d: &Checked<ops::add::Dims>,
    ) -> Result<CpuTensor> {
        let out = ops::add::cpu(&a.values(), &b.values());
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn gather_kernel(
        &self,
        x: &CpuTensor,
        ids: &CpuIds,
        d: &Checked<ops::gather::Dims>,
    ) -> Result<CpuTensor> {
        ops::gather::check_ids(&ids.data, d.rows)?;
        let out = match &x.data {
            Data::F32(x) => ops::gather::cpu(x, d.row_len, &ids.data),
            Data::Packed(x) => ops::gather::cpu_packed(x, d.row_len, &ids.data),
        };
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn patchify_kernel(
        &self,
        images: &CpuTensor,
        d: &Checked<ops::patchify::Dims>,
    ) -> Result<CpuTensor> {
        let out = ops::patchify::cpu(&images.values(), &d.images, d.patch);
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn mean_rows_kernel(&self, x: &CpuTensor, d: &Checked<ops::rows::Mean>) -> Result<CpuTensor> {
        let out = ops::rows::cpu_mean(&x.values(), &x.shape);
        Ok(CpuTensor::new(d.out_shape(), out))
    }

    fn slice_rows_kernel(&self, x: &CpuTensor, d: &Checked<ops::rows::Slice>) -> Result<CpuTensor> {
        let out = ops::rows::cpu_slice(&x.values(), &x.shape, d.start, d.len);
        Ok(CpuTensor::new(d.out_shape(), out))
    }

    fn write_rows_kernel(
        &self,
        dst: &mut CpuTensor,
        src: &CpuTensor,
        d: &Checked<ops::rows::Write>,
    ) -> Result<()> {
        let shape = dst.shape.clone();
        let src = src.values();
        ops::rows::cpu_write(dst.values_mut(), &shape, &src, d.src.l, d.start);
        Ok(())
    }

    fn argmax_kernel(&self, x: &CpuTensor, d: &Checked<ops::softmax::Argmax>) -> Result<CpuIds> {
        Ok(CpuIds {
            shape: d.out_shape.clone(),
            data: ops::softmax::cpu_argmax(&x.values(), d.classes),
        })
    }

    fn sample_kernel(
        &self,
        logits: &CpuTensor,
        seed: u64,
        step: u32,
        d: &Checked<ops::sample::Dims>,
    ) -> Result<CpuIds> {
        Ok(CpuIds {
            shape: d.out_shape.clone(),
            data: ops::sample::cpu(&logits.values(), d.vocab, &d.sampling, seed, step),
        })
    }

    fn beam_candidates_kernel(
        &self,
        logits: &CpuTensor,
        beam_scores: &CpuTensor,
        d: &Checked<ops::beam::Dims>,
    ) -> Result<(CpuTensor, CpuIds)> {
        let (scores, ids) = ops::beam::cpu(&logits.values(), &beam_scores.values(), **d);
        let shape = alloc::vec![d.groups, d.k];
        Ok((
            CpuTensor::new(shape.clone(), scores),
            CpuIds { shape, data: ids },
        ))
    }

    fn cross_entropy_kernel(
        &self,
        logits: &CpuTensor,
        targets: &CpuIds,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy::Dims>,
    ) -> Result<CpuTensor> {
        ops::cross_entropy::check_targets(&targets.data, d.classes)?;
        let out = ops::cross_entropy::cpu(
            &logits.values(),
            &logits.shape,
            &targets.data,
            label_smoothing,
        );
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }
}

#[cfg(feature = "train")]
impl TrainBackend for CpuBackend {
    fn gelu_kernel(&self, x: &CpuTensor, _: &Checked<ops::gelu::Dims>) -> Result<CpuTensor> {
        let mut out = x.values().into_owned();
        ops::gelu::cpu(&mut out);
        Ok(CpuTensor::new(x.shape.clone(), out))
    }

    fn layer_norm_backward_kernel(
        &self,
        x: &CpuTensor,
        scale: &CpuTensor,
        dy: &CpuTensor,
        eps: f32,
        _: &Checked<ops::layer_norm_backward::Dims>,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let (dx, ds, db) =
            ops::layer_norm_backward::cpu(&x.values(), &scale.values(), &dy.values(), eps);
        Ok((
            CpuTensor::new(x.shape.clone(), dx),
            CpuTensor::new(scale.shape.clone(), ds),
            CpuTensor::new(scale.shape.clone(), db),
        ))
    }

    fn attention_backward_kernel(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        o: &CpuTensor,
        d_o: &CpuTensor,
        mask: &Mask<'_>,
        d: &Checked<ops::attention_backward::Dims>,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let (dq, dk, dv) = ops::attention_backward::cpu(
            &q.values(),
            &k.values(),
            &v.values(),
            &o.values(),
            &d_o.values(),
            d.forward,
            mask,
            self.gemm,
        );
        Ok((
            CpuTensor::new(q.shape.clone(), dq),
            CpuTensor::new(k.shape.clone(), dk),
            CpuTensor::new(k.shape.clone(), dv),
        ))
    }

    fn gelu_backward_kernel(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        _: &Checked<ops::gelu_backward::Dims>,
    ) -> Result<CpuTensor> {
        Ok(CpuTensor::new(
            x.shape.clone(),
            ops::gelu_backward::cpu(&x.values(), &dy.values(), self.gemm),
        ))
    }

    fn gather_backward_kernel(
        &self,
        dy: &CpuTensor,
        ids: &CpuIds,
        d: &Checked<ops::gather_backward::Dims>,
    ) -> Result<CpuTensor> {
        ops::gather::check_ids(&ids.data, d.rows)?;
        let out = ops::gather_backward::cpu(&dy.values(), d.row_len, &ids.data, d.rows);
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn sum_axis0_kernel(&self, x: &CpuTensor, d: &Checked<ops::sums::Axis0>) -> Result<CpuTensor> {
        let out = ops::sums::cpu_axis0(&x.values(), d.m);
        Ok(CpuTensor::new(d.out_shape.clone(), out))
    }

    fn sum_squares_kernel(
        &self,
        xs: &[&CpuTensor],
        _: &Checked<ops::sums::Squares>,
    ) -> Result<CpuTensor> {
        let out = xs
            .iter()
            .map(|x| ops::sums::cpu_squares(&x.values()))
            .collect();
        Ok(CpuTensor::new(alloc::vec![xs.len()], out))
    }

    fn cross_entropy_backward_kernel(
        &self,
        logits: &CpuTensor,
        targets: &CpuIds,
        pad_id: u32,
        label_smoothing: f32,
        d: &Checked<ops::cross_entropy_backward::Dims>,
    ) -> Result<CpuTensor> {
        ops::cross_entropy::check_targets(&targets.data, d.v)?;
        let out = ops::cross_entropy_backward::cpu(
            &logits.values(),
            &logits.shape,
            &targets.data,
            pad_id,
            label_smoothing,
        );
        Ok(CpuTensor::new(logits.shape.clone(), out))
    }

    fn adamw_update_kernel(
        &self,
        param: &mut CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
        grad: &CpuTensor,
        op: &ops::adamw::AdamW,
        _: &Checked<ops::adamw::Dims>,
    ) -> Result<()> {
        ops::adamw::cpu(
            param.values_mut(),
            m.values_mut(),
            v.values_mut(),
            &grad.values(),
            op,
        );
        Ok(())
    }
}
