//! Every GPU kernel against the CPU oracle, through one harness (as ggml's test-backend-ops):
//! each case runs the same `Backend` calls on both backends with random inputs, including sizes
//! that are no multiple of any tile, and the harness reports the worst element against a named
//! tolerance. Both matmul kernels run; so do 16-bit weights and tensors split over bindings.
//! With the `train` feature (on by default) the trainer's ops ([`cappa::TrainBackend`]) are
//! compared too, in the module `train`.

#![cfg(feature = "gpu")]

use cappa::backend::{Activation, Attention, Mask, Matmul};
use cappa::formats::Channels;
use cappa::gpu::MatmulKernel;
use cappa::rng::Rng;
#[cfg(not(feature = "train"))]
use cappa::Backend as Ops;
#[cfg(feature = "train")]
use cappa::TrainBackend as Ops;
use cappa::{
    Backend, CpuBackend, GpuBackend, GpuOptions, HostTensor, Precision, Result, Sampling,
    StoredTensor,
};
use cappa_tests::{assert_close, gpu, gpu_with, Tol};

/// One op applied to some inputs, written once over any backend (with `train`, one that has the
/// trainer's ops too).
trait Case: std::fmt::Debug {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor>;
    fn tol(&self) -> Tol {
        Tol::KERNEL
    }
}

trait KernelTol {
    const KERNEL: Tol;
}

impl KernelTol for Tol {
    /// One kernel, f32, differing from the CPU only in summation order and library exp/tanh.
    const KERNEL: Tol = Tol {
        abs: 1e-5,
        rel: 1e-5,
    };
}

fn compare(gpu: &GpuBackend, case: &impl Case) {
    let want = case
        .run(&CpuBackend::new())
        .unwrap_or_else(|e| panic!("{case:?} on CPU: {e}"));
    let got = case
        .run(gpu)
        .unwrap_or_else(|e| panic!("{case:?} on GPU: {e}"));
    assert_close(&format!("{case:?}"), &got, &want, case.tol());
}

fn random(shape: &[usize], seed: u64) -> HostTensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    HostTensor::new(shape, (0..n).map(|_| rng.normal()).collect()).unwrap()
}

/// How a case stores a weight: its format and, for q8, which way its scales run.
#[derive(Debug, Clone, Copy)]
struct Stored(Precision, Channels);

const F32: Stored = Stored(Precision::F32, Channels::Columns);

impl Stored {
    /// `t` in this format, so that CPU and GPU multiply the same numbers.
    fn of(self, t: &HostTensor) -> StoredTensor<'static> {
        StoredTensor::from_f32(t.shape(), t.data())
            .and_then(|s| s.convert("weight", self.0, Some(self.1)))
            .unwrap()
    }
}

fn matmul_gpus() -> Vec<GpuBackend> {
    [MatmulKernel::Register, MatmulKernel::Tiled]
        .into_iter()
        .filter_map(|k| {
            gpu_with(GpuOptions {
                matmul: Some(k),
                ..GpuOptions::default()
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
struct MatmulCase {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    bias: bool,
    gelu: bool,
    b: Stored,
}

impl Case for MatmulCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let c = self;
        let a_shape: Vec<usize> = match (c.batch > 1, c.trans_a) {
            (true, false) => vec![c.batch, c.m, c.k],
            (true, true) => vec![c.batch, c.k, c.m],
            (false, false) => vec![c.m, c.k],
            (false, true) => vec![c.k, c.m],
        };
        let b_shape: Vec<usize> = match (c.batch > 1, c.trans_b) {
            (true, false) => vec![c.batch, c.k, c.n],
            (true, true) => vec![c.batch, c.n, c.k],
            (false, false) => vec![c.k, c.n],
            (false, true) => vec![c.n, c.k],
        };
        let a = be.upload(&random(&a_shape, 1))?;
        let b = be.upload_weight(&c.b.of(&random(&b_shape, 2)))?;
        let bias = if c.bias {
            Some(be.upload(&random(&[c.n], 3))?)
        } else {
            None
        };
        let out = be.matmul(
            &a,
            &b,
            Matmul {
                trans_a: c.trans_a,
                trans_b: c.trans_b,
                batched: c.batch > 1,
                bias: bias.as_ref(),
                activation: if c.gelu {
                    Activation::Gelu
                } else {
                    Activation::None
                },
            },
        )?;
        be.download(&out)
    }

    fn tol(&self) -> Tol {
        // A sum of K products of N(0,1) values carries about K unit roundoffs (2⁻²⁴) of error
        // in each of two summation orders; allow 5K of them.
        Tol {
            abs: 5.0 * self.k as f32 * 2f32.powi(-24) + 1e-6,
            rel: 1e-5,
        }
    }
}

fn mm(batch: usize, m: usize, n: usize, k: usize) -> MatmulCase {
    MatmulCase {
        batch,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        bias: false,
        gelu: false,
        b: F32,
    }
}

#[test]
fn matmul_all_layouts_and_odd_sizes() {
    let gpus = matmul_gpus();
    for g in &gpus {
        for &(batch, m, n, k) in &[
            (1, 1, 3, 17),
            (1, 7, 13, 5),
            (2, 33, 65, 129),
            (1, 64, 64, 64),
            (3, 1, 70, 9),
            (1, 130, 67, 1),
            (1, 5, 12, 16),
            (1, 130, 20, 8),
            (2, 17, 24, 36),
            (1, 200, 8, 4),
            (1, 130, 132, 8),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (bias, gelu) in [(false, false), (true, true)] {
                    let case = MatmulCase {
                        trans_a: ta,
                        trans_b: tb,
                        bias,
                        gelu,
                        ..mm(batch, m, n, k)
                    };
                    compare(g, &case);
                }
            }
        }
    }
}

#[test]
fn matmul_vit_b16_qkv_shape() {
    // 197 tokens × 768 by the fused qkv projection 768 × 2304.
    for g in &matmul_gpus() {
        compare(
            g,
            &MatmulCase {
                bias: true,
                ..mm(1, 197, 2304, 768)
            },
        );
    }
}

/// Every stored format of a weight: 16-bit, and q8 with its scales along the columns (a dense
/// kernel) or the rows (a table) of the stored matrix.
const WEIGHT_FORMATS: [Stored; 4] = [
    Stored(Precision::BF16, Channels::Columns),
    Stored(Precision::F16, Channels::Columns),
    Stored(Precision::Q8, Channels::Columns),
    Stored(Precision::Q8, Channels::Rows),
];

#[test]
fn matmul_16bit_and_q8_weights() {
    for g in &matmul_gpus() {
        for b in WEIGHT_FORMATS {
            // K = 33 reads element by element; K a multiple of 4 with N a multiple of 8 takes
            // the vector path (and 150 rows its 16-row blocks; N = 136 their 16-column blocks,
            // the last one half past N). Up to 4 rows is the CPU's
            // few-row product, which keeps the weight as stored; more rows widen it. A
            // transposed B puts q8 scales of columns along K.
            for (n, k, tb) in [
                (13, 33, false),
                (14, 33, true),
                (64, 33, false),
                (64, 32, false),
                (24, 16, false),
                (40, 24, true),
                (136, 32, false),
            ] {
                for m in [1, 3, 150] {
                    let case = MatmulCase {
                        b,
                        trans_b: tb,
                        trans_a: m == 3,
                        bias: true,
                        ..mm(1, m, n, k)
                    };
                    compare(g, &case);
                }
            }
        }
    }
}

#[test]
fn matmul_split_over_small_bindings() {
    // A 16 KiB binding limit forces row windows of A and C and K windows of B (accumulating).
    for kernel in [MatmulKernel::Register, MatmulKernel::Tiled] {
        let Some(g) = gpu_with(GpuOptions {
            max_binding: Some(16 << 10),
            matmul: Some(kernel),
            ..GpuOptions::default()
        }) else {
            return;
        };
        // q8 scales of rows run along K: each K window reads its own.
        let formats = [
            F32,
            Stored(Precision::BF16, Channels::Columns),
            Stored(Precision::Q8, Channels::Columns),
            Stored(Precision::Q8, Channels::Rows),
        ];
        for b in formats {
            compare(
                &g,
                &MatmulCase {
                    bias: true,
                    gelu: true,
                    b,
                    ..mm(1, 50, 90, 300)
                },
            );
            compare(
                &g,
                &MatmulCase {
                    bias: true,
                    b,
                    ..mm(1, 50, 96, 300)
                },
            );
            compare(
                &g,
                &MatmulCase {
                    b,
                    ..mm(1, 1, 96, 300)
                },
            );
            compare(
                &g,
                &MatmulCase {
                    trans_a: true,
                    ..mm(1, 20, 30, 40)
                },
            );
        }
        // Too large for windows (a transposed A over the limit) is a clear error, not a crash.
        let err = MatmulCase {
            trans_a: true,
            ..mm(1, 64, 8, 100)
        }
        .run(&g)
        .unwrap_err();
        assert!(err.to_string().contains("binding limit"), "{err}");
    }
}

#[derive(Debug)]
struct LayerNormCase {
    rows: usize,
    d: usize,
    bias: bool,
}

impl Case for LayerNormCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let x = be.upload(&random(&[self.rows, self.d], 4))?;
        let s = be.upload(&random(&[self.d], 5))?;
        let b = be.upload(&random(&[self.d], 6))?;
        be.download(&be.layer_norm(&x, &s, self.bias.then_some(&b), 1e-6)?)
    }
}

#[test]
fn layer_norm() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for &(rows, d) in &[(1, 1), (3, 7), (17, 64), (5, 768), (2, 1000)] {
        for bias in [false, true] {
            compare(&g, &LayerNormCase { rows, d, bias });
        }
    }
}

/// The mask a case names: `none`, `causal`, `offset` (causal, the queries at the end of the
/// keys) or per-row flags `rows`.
fn mask<'a>(name: &str, lq: usize, lk: usize, rows: &'a [bool]) -> Mask<'a> {
    match name {
        "none" => Mask::None,
        "causal" => Mask::Causal { offset: 0 },
        "offset" => Mask::Causal { offset: lk - lq },
        _ => Mask::CausalRows(rows),
    }
}

#[derive(Debug)]
struct AttentionCase {
    b: usize,
    lq: usize,
    lk: usize,
    heads: usize,
    hd: usize,
    mask: &'static str,
}

impl Case for AttentionCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let f = self.heads * self.hd;
        let q = be.upload(&random(&[self.b, self.lq, f], 7))?;
        let k = be.upload(&random(&[self.b, self.lk, f], 8))?;
        let v = be.upload(&random(&[self.b, self.lk, f], 9))?;
        let rows: Vec<bool> = (0..self.b).map(|i| i % 2 == 1).collect();
        let mask = mask(self.mask, self.lq, self.lk, &rows);
        be.download(&be.attention(
            &q,
            &k,
            &v,
            Attention {
                heads: self.heads,
                mask,
            },
        )?)
    }
}

#[test]
fn attention_every_mask() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for &(b, lq, lk, heads, hd) in &[
        (1, 1, 1, 1, 1),
        (2, 5, 5, 3, 7),
        (3, 10, 10, 4, 16),
        (1, 17, 17, 2, 64),
        (2, 33, 33, 1, 130),
    ] {
        for mask in ["none", "causal", "rows"] {
            compare(
                &g,
                &AttentionCase {
                    b,
                    lq,
                    lk,
                    heads,
                    hd,
                    mask,
                },
            );
        }
    }
    // Decoding: one query at the end of a cache, cross-attention with more keys than queries.
    compare(
        &g,
        &AttentionCase {
            b: 2,
            lq: 1,
            lk: 9,
            heads: 4,
            hd: 16,
            mask: "offset",
        },
    );
    compare(
        &g,
        &AttentionCase {
            b: 2,
            lq: 3,
            lk: 16,
            heads: 4,
            hd: 16,
            mask: "none",
        },
    );
    compare(
        &g,
        &AttentionCase {
            b: 1,
            lq: 197,
            lk: 197,
            heads: 12,
            hd: 64,
            mask: "none",
        },
    );
}

#[derive(Debug)]
struct AddCase {
    a: Vec<usize>,
    b: Vec<usize>,
}

impl Case for AddCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let a = be.upload(&random(&self.a, 10))?;
        let b = be.upload(&random(&self.b, 11))?;
        be.download(&be.add(&a, &b)?)
    }
}

#[test]
fn add_repeats_the_smaller_operand() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for (a, b) in [
        (vec![5], vec![5]),
        (vec![2, 3, 7], vec![1, 3, 7]),
        (vec![4, 9], vec![9]),
        (vec![300, 257], vec![300, 257]),
    ] {
        compare(&g, &AddCase { a, b });
    }
}

#[derive(Debug)]
struct GatherCase {
    x: Vec<usize>,
    ids_shape: Vec<usize>,
    ids: Vec<u32>,
    x_format: Stored,
}

impl Case for GatherCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let x = be.upload_weight(&self.x_format.of(&random(&self.x, 12)))?;
        let ids = be.upload_ids(&self.ids_shape, &self.ids)?;
        be.download(&be.gather(&x, &ids)?)
    }

    fn tol(&self) -> Tol {
        Tol { abs: 0.0, rel: 0.0 }
    }
}

#[test]
fn gather_every_format_shape_and_split_rows() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    let small = gpu_with(GpuOptions {
        max_binding: Some(4 << 10),
        ..GpuOptions::default()
    });
    let case = |x: &[usize], ids_shape: &[usize], ids: &[u32], x_format| GatherCase {
        x: x.to_vec(),
        ids_shape: ids_shape.to_vec(),
        ids: ids.to_vec(),
        x_format,
    };
    let (bf16, f16) = (WEIGHT_FORMATS[0], WEIGHT_FORMATS[1]);
    for format in [F32, bf16, f16] {
        // An embedding table and token ids [1, 7]; rows of a [3, 5, 7] cache by beam; a 1-D x.
        let cases = [
            case(&[51, 63], &[1, 7], &[0, 50, 7, 7, 13, 49, 1], format),
            case(&[3, 5, 7], &[5], &[2, 0, 0, 1, 2], format),
            case(&[1, 4], &[3], &[0, 0, 0], format),
            case(&[6], &[2], &[5, 1], format),
            case(&[40, 3, 11], &[2, 2], &[39, 0, 17, 39], format),
            case(&[4, 9], &[0], &[], format),
        ];
        for case in &cases {
            compare(&g, case);
            if let Some(s) = &small {
                // 51 × 63 and 40 × 33 values do not fit 4 KiB: several row windows.
                compare(s, case);
            }
        }
    }
    // q8 tables (2-D), with scales per row (the token table) or per column; 200 × 63 bytes do
    // not fit 4 KiB.
    for format in [WEIGHT_FORMATS[2], WEIGHT_FORMATS[3]] {
        for case in [
            case(&[51, 63], &[1, 7], &[0, 50, 7, 7, 13, 49, 1], format),
            case(&[200, 63], &[2, 3], &[199, 0, 64, 65, 130, 7], format),
            case(&[1, 4], &[3], &[0, 0, 0], format),
        ] {
            compare(&g, &case);
            if let Some(s) = &small {
                compare(s, &case);
            }
        }
    }
}

#[derive(Debug)]
struct RowsCase {
    op: &'static str,
    shape: [usize; 3],
}

impl Case for RowsCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let x = be.upload(&random(&self.shape, 13))?;
        let [b, l, d] = self.shape;
        match self.op {
            "mean" => be.download(&be.mean_rows(&x)?),
            "slice" => be.download(&be.slice_rows(&x, l / 3, l - l / 3)?),
            "patchify" => {
                let img = be.upload(&random(&[b, 4 * l, 4 * d, 3], 14))?;
                be.download(&be.patchify(&img, 4)?)
            }
            _ => {
                // Write into a cache shared with a reshaped view: the view must not change.
                let mut cache = be.upload(&random(&[b, l + 2, d], 15))?;
                let view = be.reshape(&cache, &[b * (l + 2), d])?;
                be.write_rows(&mut cache, &x, 2)?;
                let before = be.download(&view)?;
                let after = be.download(&cache)?;
                let mut both = before.into_data();
                both.extend(after.into_data());
                HostTensor::new(&[both.len()], both)
            }
        }
    }
}

#[test]
fn row_ops_and_patchify() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for shape in [[1, 1, 1], [2, 5, 3], [3, 16, 64], [1, 197, 20]] {
        for op in ["mean", "slice", "write", "patchify"] {
            compare(&g, &RowsCase { op, shape });
        }
    }
}

#[derive(Debug)]
struct OutputCase {
    op: &'static str,
    rows: usize,
    v: usize,
    ls: f32,
}

impl Case for OutputCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let mut x = random(&[self.rows, self.v], 16);
        // Ties: the first maximum must win.
        if self.v > 3 {
            let d = x.data_mut();
            d[1] = 9.0;
            d[3] = 9.0;
        }
        let x = be.upload(&x)?;
        match self.op {
            "argmax" => {
                let ids = be.download_ids(&be.argmax(&x)?)?;
                HostTensor::new(&[ids.len()], ids.iter().map(|&i| i as f32).collect())
            }
            _ => {
                let t: Vec<u32> = (0..self.rows)
                    .map(|r| ((r * 7 + 3) % self.v) as u32)
                    .collect();
                let t = be.upload_ids(&[self.rows], &t)?;
                be.download(&be.cross_entropy(&x, &t, self.ls)?)
            }
        }
    }
}

#[test]
fn argmax_and_cross_entropy() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for &(rows, v) in &[(1, 1), (3, 2), (4, 50), (2, 1000), (1, 32000)] {
        for (op, ls) in [("argmax", 0.0), ("xent", 0.0), ("xent", 0.1)] {
            compare(&g, &OutputCase { op, rows, v, ls });
        }
    }
}

#[derive(Debug)]
struct SampleCase {
    rows: usize,
    v: usize,
    sampling: cappa::Sampling,
    seed: u64,
}

impl Case for SampleCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let x = be.upload(&random(&[self.rows, self.v], 17))?;
        let mut out = Vec::new();
        for step in 0..8 {
            let ids = be.download_ids(&be.sample(&x, self.sampling, self.seed, step)?)?;
            out.extend(ids.iter().map(|&i| i as f32));
        }
        HostTensor::new(&[out.len()], out)
    }

    fn tol(&self) -> Tol {
        Tol { abs: 0.0, rel: 0.0 }
    }
}

#[test]
fn sampling_draws_the_same_tokens_as_the_cpu() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    let s = |temperature, top_k, top_p| cappa::Sampling {
        temperature,
        top_k,
        top_p,
    };
    for &(rows, v) in &[(1, 1), (3, 12), (4, 50), (2, 256)] {
        for sampling in [
            s(0.0, 0, 1.0),
            s(1.0, 0, 1.0),
            s(0.7, 5, 1.0),
            s(1.3, 0, 0.9),
            s(1.0, 3, 0.5),
            s(2.0, 1, 1.0),
        ] {
            compare(
                &g,
                &SampleCase {
                    rows,
                    v,
                    sampling,
                    seed: 7 + v as u64,
                },
            );
        }
    }
}

#[derive(Debug)]
struct BeamCase {
    groups: usize,
    width: usize,
    v: usize,
    k: usize,
    ids: bool,
}

impl Case for BeamCase {
    fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
        let rows = self.groups * self.width;
        let logits = be.upload(&random(&[rows, self.v], 18))?;
        let scores = be.upload(&random(&[rows], 19))?;
        let (s, ids) = be.beam_candidates(&logits, &scores, self.groups, self.k)?;
        if self.ids {
            let ids = be.download_ids(&ids)?;
            return HostTensor::new(&[ids.len()], ids.iter().map(|&i| i as f32).collect());
        }
        be.download(&s)
    }

    fn tol(&self) -> Tol {
        if self.ids {
            Tol { abs: 0.0, rel: 0.0 }
        } else {
            Tol::KERNEL
        }
    }
}

#[test]
fn beam_candidates_rank_as_the_cpu() {
    let g = match gpu() {
        Some(g) => g,
        None => return,
    };
    for &(groups, width, v, k) in &[(1, 1, 1, 1), (2, 3, 5, 6), (3, 4, 50, 8), (1, 2, 1000, 4)] {
        for ids in [false, true] {
            compare(
                &g,
                &BeamCase {
                    groups,
                    width,
                    v,
                    k,
                    ids,
                },
            );
        }
    }
}

#[test]
fn both_backends_reject_bad_shapes_with_the_same_error() {
    let Some(g) = gpu() else { return };
    fn errors<B: Backend>(be: &B) -> Vec<String> {
        let t = |s: &[usize]| be.upload(&random(s, 1)).unwrap();
        let ids = |s: &[usize]| be.upload_ids(s, &vec![0; s.iter().product()]).unwrap();
        let heads = |heads| Attention {
            heads,
            mask: Mask::None,
        };
        let hot = Sampling {
            temperature: -1.0,
            ..Sampling::default()
        };
        let mut cache = t(&[1, 3, 2]);
        [
            be.matmul(&t(&[2, 3]), &t(&[4, 5]), Matmul::default())
                .map(drop),
            be.layer_norm(&t(&[2, 3]), &t(&[4]), None, 1e-6).map(drop),
            be.attention(&t(&[1, 2, 8]), &t(&[1, 3, 8]), &t(&[1, 3, 8]), heads(3))
                .map(drop),
            be.attention(&t(&[1, 2, 8]), &t(&[1, 3, 8]), &t(&[1, 4, 8]), heads(2))
                .map(drop),
            be.add(&t(&[2, 3]), &t(&[2])).map(drop),
            be.gather(&t(&[0, 2]), &ids(&[1])).map(drop),
            be.patchify(&t(&[1, 5, 4, 3]), 2).map(drop),
            be.mean_rows(&t(&[2, 3])).map(drop),
            be.slice_rows(&t(&[1, 3, 2]), 2, 2).map(drop),
            be.write_rows(&mut cache, &t(&[1, 2, 2]), 2),
            be.argmax(&t(&[3, 0])).map(drop),
            be.sample(&t(&[3, 2, 7]), Sampling::default(), 0, 0)
                .map(drop),
            be.sample(&t(&[3, 7]), hot, 0, 0).map(drop),
            be.beam_candidates(&t(&[6, 5]), &t(&[6]), 4, 1).map(drop),
            be.cross_entropy(&t(&[2, 5]), &ids(&[3]), 0.0).map(drop),
        ]
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect()
    }
    assert_eq!(errors(&CpuBackend::new()), errors(&g));
}

/// The trainer's ops ([`cappa::TrainBackend`]): the backward ops, the standalone GELU, the
/// reductions and the optimizer update.
#[cfg(feature = "train")]
mod train {
    use super::*;

    #[derive(Debug)]
    struct GeluCase {
        shape: Vec<usize>,
    }

    impl Case for GeluCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let x = be.upload(&random(&self.shape, 10))?;
            be.download(&be.gelu(&x)?)
        }
    }

    #[test]
    fn gelu() {
        let Some(g) = gpu() else { return };
        for shape in [vec![5], vec![2, 3, 7], vec![300, 257]] {
            compare(&g, &GeluCase { shape });
        }
    }

    #[derive(Debug)]
    struct LayerNormBackwardCase {
        rows: usize,
        d: usize,
        part: usize,
    }

    impl Case for LayerNormBackwardCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let x = be.upload(&random(&[self.rows, self.d], 30))?;
            let s = be.upload(&random(&[self.d], 31))?;
            let dy = be.upload(&random(&[self.rows, self.d], 32))?;
            let (dx, ds, db) = be.layer_norm_backward(&x, &s, &dy, 1e-6)?;
            be.download([&dx, &ds, &db][self.part])
        }

        fn tol(&self) -> Tol {
            // dscale and dbias sum `rows` products.
            Tol {
                abs: 1e-5 * (1.0 + self.rows as f32).sqrt(),
                rel: 1e-5,
            }
        }
    }

    #[test]
    fn layer_norm_backward() {
        let Some(g) = gpu() else { return };
        for &(rows, d) in &[(1, 1), (3, 7), (17, 64), (5, 130), (65, 33)] {
            for part in 0..3 {
                compare(&g, &LayerNormBackwardCase { rows, d, part });
            }
        }
    }

    #[derive(Debug)]
    struct AttentionBackwardCase {
        b: usize,
        lq: usize,
        lk: usize,
        heads: usize,
        hd: usize,
        mask: &'static str,
        part: usize,
    }

    impl Case for AttentionBackwardCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let f = self.heads * self.hd;
            let q = be.upload(&random(&[self.b, self.lq, f], 33))?;
            let k = be.upload(&random(&[self.b, self.lk, f], 34))?;
            let v = be.upload(&random(&[self.b, self.lk, f], 35))?;
            let d_o = be.upload(&random(&[self.b, self.lq, f], 36))?;
            let rows: Vec<bool> = (0..self.b).map(|i| i % 2 == 0).collect();
            let mask = mask(self.mask, self.lq, self.lk, &rows);
            let op = Attention {
                heads: self.heads,
                mask,
            };
            let o = be.attention(&q, &k, &v, op)?;
            let (dq, dk, dv) = be.attention_backward(&q, &k, &v, &o, &d_o, op)?;
            be.download([&dq, &dk, &dv][self.part])
        }

        fn tol(&self) -> Tol {
            Tol {
                abs: 2e-5 * (self.lq.max(self.lk) as f32).sqrt(),
                rel: 1e-4,
            }
        }
    }

    #[test]
    fn attention_backward_every_mask() {
        let Some(g) = gpu() else { return };
        for &(b, lq, lk, heads, hd) in &[
            (1, 1, 1, 1, 1),
            (2, 5, 5, 3, 7),
            (3, 10, 10, 4, 16),
            (2, 6, 6, 1, 33),
        ] {
            for mask in ["none", "causal", "rows"] {
                for part in 0..3 {
                    let case = AttentionBackwardCase {
                        b,
                        lq,
                        lk,
                        heads,
                        hd,
                        mask,
                        part,
                    };
                    compare(&g, &case);
                }
            }
        }
        // Cross-attention (more keys than queries) and a causal offset.
        for (lq, lk, mask) in [(3, 16, "none"), (2, 7, "offset")] {
            for part in 0..3 {
                let case = AttentionBackwardCase {
                    b: 2,
                    lq,
                    lk,
                    heads: 4,
                    hd: 5,
                    mask,
                    part,
                };
                compare(&g, &case);
            }
        }
    }

    #[derive(Debug)]
    struct GeluBackwardCase {
        shape: Vec<usize>,
    }

    impl Case for GeluBackwardCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let mut x = random(&self.shape, 37);
            // Large arguments, where the tanh saturates.
            for (i, v) in x.data_mut().iter_mut().enumerate().take(4) {
                *v = [12.0, -12.0, 30.0, -30.0][i];
            }
            let x = be.upload(&x)?;
            let dy = be.upload(&random(&self.shape, 38))?;
            be.download(&be.gelu_backward(&x, &dy)?)
        }
    }

    #[test]
    fn gelu_backward() {
        let Some(g) = gpu() else { return };
        for shape in [vec![5], vec![3, 67], vec![300, 257]] {
            compare(&g, &GeluBackwardCase { shape });
        }
    }

    #[derive(Debug)]
    struct GatherBackwardCase {
        rows: usize,
        row: Vec<usize>,
        ids: Vec<u32>,
    }

    impl Case for GatherBackwardCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let mut dy_shape = vec![self.ids.len()];
            dy_shape.extend(&self.row);
            let dy = be.upload(&random(&dy_shape, 39))?;
            let ids = be.upload_ids(&[self.ids.len()], &self.ids)?;
            be.download(&be.gather_backward(&dy, &ids, self.rows)?)
        }

        fn tol(&self) -> Tol {
            // Same additions in the same order.
            Tol { abs: 0.0, rel: 0.0 }
        }
    }

    #[test]
    fn gather_backward_is_exact_and_deterministic() {
        let Some(g) = gpu() else { return };
        let mut rng = Rng::new(40);
        let many: Vec<u32> = (0..300).map(|_| (rng.next_u64() % 13) as u32).collect();
        for (rows, row, ids) in [
            (1, vec![1], vec![0]),
            (51, vec![63], vec![0, 50, 7, 7, 13, 49, 1, 7]),
            (13, vec![5], many),
            (5, vec![2, 3], vec![4, 0, 4, 1]),
            (6, vec![], vec![5, 5, 2]),
        ] {
            let case = GatherBackwardCase { rows, row, ids };
            compare(&g, &case);
            assert_eq!(case.run(&g).unwrap(), case.run(&g).unwrap(), "run to run");
        }
    }

    #[derive(Debug)]
    struct SumsCase {
        shapes: Vec<Vec<usize>>,
        squares: bool,
    }

    impl Case for SumsCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let xs = self
                .shapes
                .iter()
                .enumerate()
                .map(|(i, s)| be.upload(&random(s, 41 + i as u64)))
                .collect::<Result<Vec<_>>>()?;
            if self.squares {
                let refs: Vec<&B::Tensor> = xs.iter().collect();
                return be.download(&be.sum_squares(&refs)?);
            }
            be.download(&be.sum_axis0(&xs[0])?)
        }

        fn tol(&self) -> Tol {
            Tol {
                abs: 1e-4,
                rel: 1e-5,
            }
        }
    }

    #[test]
    fn sum_axis0_and_sum_squares() {
        let Some(g) = gpu() else { return };
        for shape in [vec![1, 1], vec![7, 3], vec![130, 65], vec![2, 10, 64]] {
            compare(
                &g,
                &SumsCase {
                    shapes: vec![shape],
                    squares: false,
                },
            );
        }
        compare(
            &g,
            &SumsCase {
                shapes: vec![vec![1], vec![255], vec![3, 97], vec![70_001]],
                squares: true,
            },
        );
    }

    #[derive(Debug)]
    struct XentBackwardCase {
        b: usize,
        l: usize,
        v: usize,
        ls: f32,
    }

    impl Case for XentBackwardCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let x = be.upload(&random(&[self.b, self.l, self.v], 42))?;
            // Caption b has b + 1 content tokens (so the last ones may be all content), then PAD.
            let t: Vec<u32> = (0..self.b * self.l)
                .map(|r| {
                    let (b, i) = (r / self.l, r % self.l);
                    if i <= b {
                        ((r * 7 + 3) % self.v) as u32
                    } else {
                        0
                    }
                })
                .collect();
            let t = be.upload_ids(&[self.b, self.l], &t)?;
            be.download(&be.cross_entropy_backward(&x, &t, 0, self.ls)?)
        }
    }

    #[test]
    fn cross_entropy_backward() {
        let Some(g) = gpu() else { return };
        for &(b, l, v) in &[(1, 1, 1), (3, 4, 2), (2, 10, 50), (3, 3, 1000)] {
            for ls in [0.0, 0.1] {
                compare(&g, &XentBackwardCase { b, l, v, ls });
            }
        }
    }

    #[derive(Debug)]
    struct AdamWCase {
        shape: Vec<usize>,
        weight_decay: f32,
        steps: u32,
    }

    impl Case for AdamWCase {
        fn run<B: Ops>(&self, be: &B) -> Result<HostTensor> {
            let mut p = be.upload(&random(&self.shape, 43))?;
            // A reshaped view shares the parameter's buffer: the update must not change it.
            let view = be.reshape(&p, &[p_len(&self.shape)])?;
            let mut m = be.zeros(&self.shape)?;
            let mut v = be.zeros(&self.shape)?;
            for t in 1..=self.steps {
                let g = be.upload(&random(&self.shape, 44 + t as u64))?;
                let op = cappa::ops::adamw::AdamW {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: self.weight_decay,
                    schedule: 0.5 + 0.1 * t as f32,
                    clip: 0.7,
                    bias_correction1: 1.0 - 0.9f32.powi(t as i32),
                    bias_correction2: 1.0 - 0.999f32.powi(t as i32),
                };
                be.adamw_update(&mut p, &mut m, &mut v, &g, &op)?;
            }
            let mut out = be.download(&p)?.into_data();
            out.extend(be.download(&m)?.into_data());
            out.extend(be.download(&v)?.into_data());
            out.extend(be.download(&view)?.into_data());
            HostTensor::new(&[out.len()], out)
        }
    }

    fn p_len(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    #[test]
    fn adamw_update_in_place() {
        let Some(g) = gpu() else { return };
        for shape in [vec![1], vec![7, 13], vec![64, 4, 16]] {
            for weight_decay in [0.0, 1e-4] {
                compare(
                    &g,
                    &AdamWCase {
                        shape: shape.clone(),
                        weight_decay,
                        steps: 3,
                    },
                );
            }
        }
    }

    #[test]
    fn both_backends_reject_bad_shapes_with_the_same_error() {
        let Some(g) = gpu() else { return };
        fn errors<B: Ops>(be: &B) -> Vec<String> {
            let t = |s: &[usize]| be.upload(&random(s, 1)).unwrap();
            let ids = |s: &[usize]| be.upload_ids(s, &vec![0; s.iter().product()]).unwrap();
            let causal = Attention {
                heads: 2,
                mask: Mask::Causal { offset: 0 },
            };
            let (mut p, mut m, mut v) = (t(&[3]), t(&[3]), t(&[4]));
            [
                be.gelu_backward(&t(&[2, 3]), &t(&[3, 2])).map(drop),
                be.layer_norm_backward(&t(&[2, 3]), &t(&[3]), &t(&[2, 4]), 1e-6)
                    .map(drop),
                be.attention_backward(
                    &t(&[1, 2, 4]),
                    &t(&[1, 3, 4]),
                    &t(&[1, 3, 4]),
                    &t(&[1, 3, 4]),
                    &t(&[1, 2, 4]),
                    causal,
                )
                .map(drop),
                be.gather_backward(&t(&[3, 2]), &ids(&[2]), 5).map(drop),
                be.gather_backward(&t(&[3, 2]), &ids(&[3]), 0).map(drop),
                be.sum_axis0(&t(&[4])).map(drop),
                be.cross_entropy_backward(&t(&[2, 3, 5]), &ids(&[2, 2]), 0, 0.0)
                    .map(drop),
                be.adamw_update(
                    &mut p,
                    &mut m,
                    &mut v,
                    &t(&[3]),
                    &cappa::ops::adamw::AdamW {
                        lr: 1.0,
                        beta1: 0.9,
                        beta2: 0.9,
                        eps: 1e-8,
                        weight_decay: 0.0,
                        schedule: 1.0,
                        clip: 1.0,
                        bias_correction1: 1.0,
                        bias_correction2: 1.0,
                    },
                ),
            ]
            .into_iter()
            .map(|r| r.unwrap_err().to_string())
            .collect()
        }
        assert_eq!(errors(&CpuBackend::new()), errors(&g));
    }
}
