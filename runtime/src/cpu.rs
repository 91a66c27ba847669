//! The CPU backend: exact `f32`, `no_std`, the oracle every other backend is tested against.
//! With `std` its matmuls use `matrixmultiply` and all cores; without, a blocked loop.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::backend::{AdamW, Attention, Backend, Matmul, Sampling};
use crate::error::Result;
pub use crate::ops::matmul::Gemm;
use crate::ops::{self, shape_error};
use crate::tensor::{numel, HostTensor};

/// An `f32` tensor of the CPU backend (shared, copy-on-write).
#[derive(Debug, Clone)]
pub struct CpuTensor {
    shape: Vec<usize>,
    data: Arc<Vec<f32>>,
}

impl CpuTensor {
    fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(numel(&shape), data.len());
        CpuTensor {
            shape,
            data: Arc::new(data),
        }
    }

    /// The values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// Token ids of the CPU backend.
#[derive(Debug, Clone)]
pub struct CpuIds {
    shape: Vec<usize>,
    data: Vec<u32>,
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

    fn download(&self, t: &CpuTensor) -> Result<HostTensor> {
        HostTensor::new(&t.shape, t.data.as_ref().clone())
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

    fn shape(&self, t: &CpuTensor) -> Vec<usize> {
        t.shape.clone()
    }

    fn reshape(&self, t: &CpuTensor, shape: &[usize]) -> Result<CpuTensor> {
        if numel(shape) != t.data.len() {
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

    fn matmul(&self, a: &CpuTensor, b: &CpuTensor, op: Matmul<'_, CpuTensor>) -> Result<CpuTensor> {
        let bias_shape = op.bias.map(|t| t.shape.as_slice());
        let d = ops::matmul::dims(
            &a.shape, &b.shape, op.trans_a, op.trans_b, op.batched, bias_shape,
        )?;
        let out = ops::matmul::cpu(
            &a.data,
            &b.data,
            op.bias.map(|t| t.data.as_slice()),
            op.activation,
            &d,
            self.gemm,
        );
        Ok(CpuTensor::new(d.out_shape, out))
    }

    fn layer_norm(
        &self,
        x: &CpuTensor,
        scale: &CpuTensor,
        bias: Option<&CpuTensor>,
        eps: f32,
    ) -> Result<CpuTensor> {
        ops::layer_norm::check(&x.shape, &scale.shape, bias.map(|b| b.shape.as_slice()))?;
        let out = ops::layer_norm::cpu(&x.data, &scale.data, bias.map(|b| b.data.as_slice()), eps);
        Ok(CpuTensor::new(x.shape.clone(), out))
    }

    fn attention(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        op: Attention<'_>,
    ) -> Result<CpuTensor> {
        let d = ops::attention::dims(&q.shape, &k.shape, &v.shape, &op)?;
        let out = ops::attention::cpu(&q.data, &k.data, &v.data, d, &op.mask, self.gemm);
        Ok(CpuTensor::new(q.shape.clone(), out))
    }

    fn gelu(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let mut out = x.data.as_ref().clone();
        ops::gelu::cpu(&mut out);
        Ok(CpuTensor::new(x.shape.clone(), out))
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        let shape = ops::add::check(&a.shape, &b.shape)?;
        Ok(CpuTensor::new(shape, ops::add::cpu(&a.data, &b.data)))
    }

    fn gather(&self, x: &CpuTensor, ids: &CpuIds) -> Result<CpuTensor> {
        let shape = ops::gather::check(&x.shape, &ids.shape)?;
        ops::gather::check_ids(&ids.data, x.shape[0])?;
        let row_len = numel(&x.shape[1..]);
        Ok(CpuTensor::new(
            shape,
            ops::gather::cpu(&x.data, row_len, &ids.data),
        ))
    }

    fn patchify(&self, images: &CpuTensor, patch: usize) -> Result<CpuTensor> {
        let shape = ops::patchify::check(&images.shape, patch)?;
        let out = ops::patchify::cpu(&images.data, &images.shape, patch);
        Ok(CpuTensor::new(shape, out))
    }

    fn mean_rows(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let shape = ops::rows::check_mean(&x.shape)?;
        Ok(CpuTensor::new(
            shape,
            ops::rows::cpu_mean(&x.data, &x.shape),
        ))
    }

    fn slice_rows(&self, x: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        let shape = ops::rows::check_slice(&x.shape, start, len)?;
        let out = ops::rows::cpu_slice(&x.data, &x.shape, start, len);
        Ok(CpuTensor::new(shape, out))
    }

    fn write_rows(&self, dst: &mut CpuTensor, src: &CpuTensor, start: usize) -> Result<()> {
        ops::rows::check_write(&dst.shape, &src.shape, start)?;
        let shape = dst.shape.clone();
        let data = Arc::make_mut(&mut dst.data);
        ops::rows::cpu_write(data, &shape, &src.data, src.shape[1], start);
        Ok(())
    }

    fn log_softmax(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let (_, v) = ops::rows_and_last(&x.shape);
        let out = ops::softmax::cpu_log_softmax(&x.data, v);
        Ok(CpuTensor::new(x.shape.clone(), out))
    }

    fn argmax(&self, x: &CpuTensor) -> Result<CpuIds> {
        let (_, v) = ops::rows_and_last(&x.shape);
        if x.shape.is_empty() || v == 0 {
            return Err(shape_error(
                "argmax",
                alloc::format!("no classes in {:?}", x.shape),
            ));
        }
        Ok(CpuIds {
            shape: x.shape[..x.shape.len() - 1].to_vec(),
            data: ops::softmax::cpu_argmax(&x.data, v),
        })
    }

    fn sample(&self, logits: &CpuTensor, op: Sampling, seed: u64, step: u32) -> Result<CpuIds> {
        let (_, v, shape) = ops::sample::check(&logits.shape)?;
        ops::sample::check_op(&op)?;
        Ok(CpuIds {
            shape,
            data: ops::sample::cpu(&logits.data, v, &op, seed, step),
        })
    }

    fn beam_candidates(
        &self,
        logits: &CpuTensor,
        beam_scores: &CpuTensor,
        groups: usize,
        k: usize,
    ) -> Result<(CpuTensor, CpuIds)> {
        let d = ops::beam::dims(&logits.shape, &beam_scores.shape, groups, k)?;
        let (scores, ids) = ops::beam::cpu(&logits.data, &beam_scores.data, d);
        let shape = alloc::vec![groups, k];
        Ok((
            CpuTensor::new(shape.clone(), scores),
            CpuIds { shape, data: ids },
        ))
    }

    fn cross_entropy(
        &self,
        logits: &CpuTensor,
        targets: &CpuIds,
        label_smoothing: f32,
    ) -> Result<CpuTensor> {
        let shape = ops::cross_entropy::check(&logits.shape, &targets.shape)?;
        let (_, v) = ops::rows_and_last(&logits.shape);
        ops::cross_entropy::check_targets(&targets.data, v)?;
        let out =
            ops::cross_entropy::cpu(&logits.data, &logits.shape, &targets.data, label_smoothing);
        Ok(CpuTensor::new(shape, out))
    }

    fn layer_norm_backward(
        &self,
        x: &CpuTensor,
        scale: &CpuTensor,
        dy: &CpuTensor,
        eps: f32,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        ops::layer_norm_backward::check(&x.shape, &scale.shape, &dy.shape)?;
        let (dx, ds, db) = ops::layer_norm_backward::cpu(&x.data, &scale.data, &dy.data, eps);
        Ok((
            CpuTensor::new(x.shape.clone(), dx),
            CpuTensor::new(scale.shape.clone(), ds),
            CpuTensor::new(scale.shape.clone(), db),
        ))
    }

    fn attention_backward(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        o: &CpuTensor,
        d_o: &CpuTensor,
        op: Attention<'_>,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        let d =
            ops::attention_backward::dims(&q.shape, &k.shape, &v.shape, &o.shape, &d_o.shape, &op)?;
        let (dq, dk, dv) = ops::attention_backward::cpu(
            &q.data, &k.data, &v.data, &o.data, &d_o.data, d, &op.mask,
        );
        Ok((
            CpuTensor::new(q.shape.clone(), dq),
            CpuTensor::new(k.shape.clone(), dk),
            CpuTensor::new(k.shape.clone(), dv),
        ))
    }

    fn gelu_backward(&self, x: &CpuTensor, dy: &CpuTensor) -> Result<CpuTensor> {
        ops::gelu_backward::check(&x.shape, &dy.shape)?;
        Ok(CpuTensor::new(
            x.shape.clone(),
            ops::gelu_backward::cpu(&x.data, &dy.data),
        ))
    }

    fn gather_backward(&self, dy: &CpuTensor, ids: &CpuIds, rows: usize) -> Result<CpuTensor> {
        let shape = ops::gather_backward::check(&dy.shape, &ids.shape, rows)?;
        ops::gather::check_ids(&ids.data, rows)?;
        let out = ops::gather_backward::cpu(&dy.data, numel(&shape[1..]), &ids.data, rows);
        Ok(CpuTensor::new(shape, out))
    }

    fn sum_axis0(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let shape = ops::sums::check_axis0(&x.shape)?;
        let out = ops::sums::cpu_axis0(&x.data, numel(&shape));
        Ok(CpuTensor::new(shape, out))
    }

    fn sum_squares(&self, xs: &[&CpuTensor]) -> Result<CpuTensor> {
        let out = xs.iter().map(|x| ops::sums::cpu_squares(&x.data)).collect();
        Ok(CpuTensor::new(alloc::vec![xs.len()], out))
    }

    fn cross_entropy_backward(
        &self,
        logits: &CpuTensor,
        targets: &CpuIds,
        pad_id: u32,
        label_smoothing: f32,
    ) -> Result<CpuTensor> {
        ops::cross_entropy_backward::check(&logits.shape, &targets.shape)?;
        ops::cross_entropy::check_targets(&targets.data, logits.shape[2])?;
        let out = ops::cross_entropy_backward::cpu(
            &logits.data,
            &logits.shape,
            &targets.data,
            pad_id,
            label_smoothing,
        );
        Ok(CpuTensor::new(logits.shape.clone(), out))
    }

    fn adamw_update(
        &self,
        param: &mut CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
        grad: &CpuTensor,
        op: &AdamW,
    ) -> Result<()> {
        ops::adamw::check(&param.shape, &m.shape, &v.shape, &grad.shape)?;
        ops::adamw::cpu(
            Arc::make_mut(&mut param.data).as_mut_slice(),
            Arc::make_mut(&mut m.data).as_mut_slice(),
            Arc::make_mut(&mut v.data).as_mut_slice(),
            &grad.data,
            op,
        );
        Ok(())
    }
}
