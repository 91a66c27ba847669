//! The CapPa forward pass with the activations its reverse pass needs, and that reverse pass,
//! written once over [`Backend`] by hand (no autograd). Each layer's backward sits right after
//! its forward and names what it saves. Gradient products reuse `Backend::matmul` with
//! transposes: for `y = x·W + b`, `dW = xᵀ·dy`, `dx = dy·Wᵀ`, `db = Σ_rows dy`.
//!
//! The architecture is the runtime's (`cappa::encoder`, `cappa::decoder`, spec §3–4); the
//! fixture tests check both produce the reference's losses, and this one its gradients.

use std::collections::BTreeMap;

use cappa::backend::{Activation, Attention, Mask, Matmul};
use cappa::{Backend, Config, Error, HostTensor, Mode, PosEmb, Result, Tokens, TrainBackend};

use crate::params::Params;

/// Gradients by parameter name.
#[derive(Debug, Clone)]
pub struct Grads<B: Backend> {
    map: BTreeMap<String, B::Tensor>,
}

impl<B: Backend> Default for Grads<B> {
    fn default() -> Self {
        Grads {
            map: BTreeMap::new(),
        }
    }
}

impl<B: Backend> Grads<B> {
    /// The gradient of `name`.
    pub fn get(&self, name: &str) -> Option<&B::Tensor> {
        self.map.get(name)
    }

    /// Every gradient, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &B::Tensor)> {
        self.map.iter()
    }

    /// Number of gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets the gradient of `name` (the reverse pass sets each exactly once).
    pub fn insert(&mut self, name: String, g: B::Tensor) {
        self.map.insert(name, g);
    }

    fn put(&mut self, name: String, g: B::Tensor) {
        self.insert(name, g);
    }
}

/// A parameter as a matrix `[rows, cols]` (its first `in_axes` axes are the rows).
fn matrix<B: TrainBackend>(be: &B, p: &Params<B>, name: &str, in_axes: usize) -> Result<B::Tensor> {
    let t = p.get(name)?;
    let s = be.shape(t);
    let rows: usize = s[..in_axes].iter().product();
    be.reshape(t, &[rows, s[in_axes..].iter().product()])
}

/// `[.., n]` → `[rows, n]`.
fn flat<B: TrainBackend>(be: &B, t: &B::Tensor) -> Result<B::Tensor> {
    let s = be.shape(t);
    let n = *s.last().unwrap_or(&1);
    be.reshape(t, &[s.iter().product::<usize>() / n.max(1), n])
}

/// A dense layer `x·kernel (+ bias)` under `path` whose kernel's first `in_axes` axes are its
/// input. Saves its input.
struct Dense {
    path: String,
    in_axes: usize,
    bias: bool,
}

impl Dense {
    fn new(path: String, in_axes: usize, bias: bool) -> Self {
        Dense {
            path,
            in_axes,
            bias,
        }
    }

    fn kernel<B: TrainBackend>(&self, be: &B, p: &Params<B>) -> Result<B::Tensor> {
        matrix(be, p, &format!("{}/kernel", self.path), self.in_axes)
    }

    fn forward<B: TrainBackend>(&self, be: &B, p: &Params<B>, x: &B::Tensor) -> Result<B::Tensor> {
        // Attention biases are stored `[heads, head_dim]`: use them flat.
        let bias = match self.bias {
            true => {
                let b = p.get(&format!("{}/bias", self.path))?;
                Some(be.reshape(b, &[be.shape(b).iter().product()])?)
            }
            false => None,
        };
        be.matmul(
            x,
            &self.kernel(be, p)?,
            Matmul {
                bias: bias.as_ref(),
                activation: Activation::None,
                ..Matmul::default()
            },
        )
    }

    /// Given the saved input `x` and `dy`, records the parameter gradients and returns `dx`.
    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        x: &B::Tensor,
        dy: &B::Tensor,
        g: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        let w = self.kernel(be, p)?;
        let dy2 = flat(be, dy)?;
        let dw = be.matmul(
            &flat(be, x)?,
            &dy2,
            Matmul {
                trans_a: true,
                ..Matmul::default()
            },
        )?;
        let name = format!("{}/kernel", self.path);
        let shape = be.shape(p.get(&name)?);
        g.put(name, be.reshape(&dw, &shape)?);
        if self.bias {
            let name = format!("{}/bias", self.path);
            let shape = be.shape(p.get(&name)?);
            g.put(name, be.reshape(&be.sum_axis0(&dy2)?, &shape)?);
        }
        be.matmul(
            dy,
            &w,
            Matmul {
                trans_b: true,
                ..Matmul::default()
            },
        )
    }
}

/// LayerNorm under `path`. Saves its input.
struct Norm {
    path: String,
    bias: bool,
    eps: f32,
}

impl Norm {
    fn forward<B: TrainBackend>(&self, be: &B, p: &Params<B>, x: &B::Tensor) -> Result<B::Tensor> {
        let bias = match self.bias {
            true => Some(p.get(&format!("{}/bias", self.path))?),
            false => None,
        };
        be.layer_norm(x, p.get(&format!("{}/scale", self.path))?, bias, self.eps)
    }

    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        x: &B::Tensor,
        dy: &B::Tensor,
        g: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        let scale = p.get(&format!("{}/scale", self.path))?;
        let (dx, ds, db) = be.layer_norm_backward(x, scale, dy, self.eps)?;
        g.put(format!("{}/scale", self.path), ds);
        if self.bias {
            g.put(format!("{}/bias", self.path), db);
        }
        Ok(dx)
    }
}

/// Multi-head attention under `path` (`query`, `key`, `value`, `out`).
struct Mha {
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    heads: usize,
}

/// What [`Mha::forward`] saves: the query and key/value inputs, the projections and the
/// attention output.
struct MhaSaved<B: Backend> {
    xq: B::Tensor,
    xkv: B::Tensor,
    q: B::Tensor,
    k: B::Tensor,
    v: B::Tensor,
    o: B::Tensor,
}

impl Mha {
    fn new(path: &str, heads: usize, bias: bool) -> Self {
        let d = |n: &str, axes| Dense::new(format!("{path}/{n}"), axes, bias);
        Mha {
            q: d("query", 1),
            k: d("key", 1),
            v: d("value", 1),
            o: d("out", 2),
            heads,
        }
    }

    fn forward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        xq: &B::Tensor,
        xkv: &B::Tensor,
        mask: Mask<'_>,
    ) -> Result<(B::Tensor, MhaSaved<B>)> {
        let q = self.q.forward(be, p, xq)?;
        let k = self.k.forward(be, p, xkv)?;
        let v = self.v.forward(be, p, xkv)?;
        let op = Attention {
            heads: self.heads,
            mask,
        };
        let o = be.attention(&q, &k, &v, op)?;
        let y = self.o.forward(be, p, &o)?;
        let saved = MhaSaved {
            xq: xq.clone(),
            xkv: xkv.clone(),
            q,
            k,
            v,
            o,
        };
        Ok((y, saved))
    }

    /// Returns `(dxq, dxkv)`.
    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        s: &MhaSaved<B>,
        dy: &B::Tensor,
        mask: Mask<'_>,
        g: &mut Grads<B>,
    ) -> Result<(B::Tensor, B::Tensor)> {
        let d_o = self.o.backward(be, p, &s.o, dy, g)?;
        let op = Attention {
            heads: self.heads,
            mask,
        };
        let (dq, dk, dv) = be.attention_backward(&s.q, &s.k, &s.v, &s.o, &d_o, op)?;
        let dxq = self.q.backward(be, p, &s.xq, &dq, g)?;
        let dxk = self.k.backward(be, p, &s.xkv, &dk, g)?;
        let dxv = self.v.backward(be, p, &s.xkv, &dv, g)?;
        Ok((dxq, be.add(&dxk, &dxv)?))
    }
}

/// `Dense_1(gelu(Dense_0(x)))` under `path`.
struct Mlp {
    fc0: Dense,
    fc1: Dense,
}

/// What [`Mlp::forward`] saves: the input, the pre-activation and the activation.
struct MlpSaved<B: Backend> {
    x: B::Tensor,
    pre: B::Tensor,
    h: B::Tensor,
}

impl Mlp {
    fn new(path: &str, bias: bool) -> Self {
        Mlp {
            fc0: Dense::new(format!("{path}/Dense_0"), 1, bias),
            fc1: Dense::new(format!("{path}/Dense_1"), 1, bias),
        }
    }

    fn forward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        x: &B::Tensor,
    ) -> Result<(B::Tensor, MlpSaved<B>)> {
        let pre = self.fc0.forward(be, p, x)?;
        let h = be.gelu(&pre)?;
        let y = self.fc1.forward(be, p, &h)?;
        Ok((
            y,
            MlpSaved {
                x: x.clone(),
                pre,
                h,
            },
        ))
    }

    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        s: &MlpSaved<B>,
        dy: &B::Tensor,
        g: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        let dh = self.fc1.backward(be, p, &s.h, dy, g)?;
        let dpre = be.gelu_backward(&s.pre, &dh)?;
        self.fc0.backward(be, p, &s.x, &dpre, g)
    }
}

/// One `encoderblock_i`.
struct EncoderBlock {
    ln0: Norm,
    attn: Mha,
    ln1: Norm,
    mlp: Mlp,
}

/// What [`EncoderBlock::forward`] saves.
struct EncoderBlockSaved<B: Backend> {
    x: B::Tensor,
    attn: MhaSaved<B>,
    x1: B::Tensor,
    mlp: MlpSaved<B>,
}

impl EncoderBlock {
    fn forward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        x: &B::Tensor,
    ) -> Result<(B::Tensor, EncoderBlockSaved<B>)> {
        let y = self.ln0.forward(be, p, x)?;
        let (a, attn) = self.attn.forward(be, p, &y, &y, Mask::None)?;
        let x1 = be.add(x, &a)?;
        let y = self.ln1.forward(be, p, &x1)?;
        let (m, mlp) = self.mlp.forward(be, p, &y)?;
        let x2 = be.add(&x1, &m)?;
        let saved = EncoderBlockSaved {
            x: x.clone(),
            attn,
            x1,
            mlp,
        };
        Ok((x2, saved))
    }

    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        s: &EncoderBlockSaved<B>,
        dx2: &B::Tensor,
        g: &mut Grads<B>,
    ) -> Result<B::Tensor> {
        let dy = self.mlp.backward(be, p, &s.mlp, dx2, g)?;
        let dx1 = be.add(dx2, &self.ln1.backward(be, p, &s.x1, &dy, g)?)?;
        let (dq, dkv) = self.attn.backward(be, p, &s.attn, &dx1, Mask::None, g)?;
        let dy = be.add(&dq, &dkv)?;
        be.add(&dx1, &self.ln0.backward(be, p, &s.x, &dy, g)?)
    }
}

/// One `EncDecBlock{i}`.
struct DecoderBlock {
    ln1: Norm,
    self_attn: Mha,
    ln2: Norm,
    cross_attn: Mha,
    ln3: Norm,
    mlp: Mlp,
}

/// What [`DecoderBlock::forward`] saves.
struct DecoderBlockSaved<B: Backend> {
    x: B::Tensor,
    self_attn: MhaSaved<B>,
    x1: B::Tensor,
    cross_attn: MhaSaved<B>,
    x2: B::Tensor,
    mlp: MlpSaved<B>,
}

impl DecoderBlock {
    fn forward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        x: &B::Tensor,
        encoded: &B::Tensor,
        mask: Mask<'_>,
    ) -> Result<(B::Tensor, DecoderBlockSaved<B>)> {
        let y = self.ln1.forward(be, p, x)?;
        let (a, self_attn) = self.self_attn.forward(be, p, &y, &y, mask)?;
        let x1 = be.add(x, &a)?;
        let y = self.ln2.forward(be, p, &x1)?;
        let (c, cross_attn) = self.cross_attn.forward(be, p, &y, encoded, Mask::None)?;
        let x2 = be.add(&x1, &c)?;
        let y = self.ln3.forward(be, p, &x2)?;
        let (m, mlp) = self.mlp.forward(be, p, &y)?;
        let x3 = be.add(&x2, &m)?;
        let saved = DecoderBlockSaved {
            x: x.clone(),
            self_attn,
            x1,
            cross_attn,
            x2,
            mlp,
        };
        Ok((x3, saved))
    }

    /// Returns `(dx, d_encoded)`.
    fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        s: &DecoderBlockSaved<B>,
        dx3: &B::Tensor,
        mask: Mask<'_>,
        g: &mut Grads<B>,
    ) -> Result<(B::Tensor, B::Tensor)> {
        let dy = self.mlp.backward(be, p, &s.mlp, dx3, g)?;
        let dx2 = be.add(dx3, &self.ln3.backward(be, p, &s.x2, &dy, g)?)?;
        let (dq, d_enc) = self
            .cross_attn
            .backward(be, p, &s.cross_attn, &dx2, Mask::None, g)?;
        let dx1 = be.add(&dx2, &self.ln2.backward(be, p, &s.x1, &dq, g)?)?;
        let (dq, dkv) = self
            .self_attn
            .backward(be, p, &s.self_attn, &dx1, mask, g)?;
        let dy = be.add(&dq, &dkv)?;
        let dx = be.add(&dx1, &self.ln1.backward(be, p, &s.x, &dy, g)?)?;
        Ok((dx, d_enc))
    }
}

/// The CapPa network of one config: encoder and decoder layers naming their parameters.
pub struct Net {
    config: Config,
    enc_blocks: Vec<EncoderBlock>,
    enc_norm: Norm,
    stem: Dense,
    dec_blocks: Vec<DecoderBlock>,
    dec_norm: Norm,
    logits: Dense,
}

/// Everything the reverse pass of one batch needs.
pub struct Tape<B: Backend> {
    patches: B::Tensor,
    enc: Vec<EncoderBlockSaved<B>>,
    enc_last: B::Tensor,
    ids: B::Ids,
    targets: B::Ids,
    causal: Vec<bool>,
    dec: Vec<DecoderBlockSaved<B>>,
    dec_last: B::Tensor,
    dec_normed: B::Tensor,
    /// Logits `[B, L, V]`.
    pub logits: B::Tensor,
    batch: usize,
    len: usize,
}

impl<B: Backend> Tape<B> {
    fn mask(&self) -> Mask<'_> {
        mask_of(&self.causal)
    }
}

/// The self-attention mask of rows with these causal flags (one batch may mix Cap and Pa).
pub fn mask_of(causal: &[bool]) -> Mask<'_> {
    if causal.iter().all(|&c| c) {
        Mask::Causal { offset: 0 }
    } else if causal.iter().all(|&c| !c) {
        Mask::None
    } else {
        Mask::CausalRows(causal)
    }
}

/// The decoder input ids of `targets` with a mode per row, as the reference builds them (spec
/// §4.1, §8): Cap rows are the targets shifted right behind `bos_id`; Pa rows are all `[MASK]`
/// (CapPa's masking ratio 1).
pub fn decoder_inputs(config: &Config, targets: &Tokens, modes: &[Mode]) -> Result<Vec<u32>> {
    if modes.len() != targets.batch() {
        return Err(Error::InvalidInput(format!(
            "{} modes for {} captions",
            modes.len(),
            targets.batch()
        )));
    }
    if modes.contains(&Mode::Pa) && !config.has_mask_token() {
        return Err(Error::PaUnavailable);
    }
    let l = targets.len();
    let mut ids = Vec::with_capacity(targets.batch() * l);
    for (b, mode) in modes.iter().enumerate() {
        match mode {
            Mode::Cap => {
                ids.push(config.bos_id);
                ids.extend_from_slice(&targets.row(b)[..l - 1]);
            }
            Mode::Pa => ids.extend(std::iter::repeat_n(config.mask_token(), l)),
        }
    }
    Ok(ids)
}

impl Net {
    /// The layers of `config`.
    pub fn new(config: &Config) -> Result<Self> {
        let mut config = config.clone();
        config.resolve();
        config.validate()?;
        let eps = config.layernorm_eps;
        let norm = |path: String, bias| Norm { path, bias, eps };
        let enc_blocks = (0..config.enc_depth)
            .map(|i| {
                let s = format!("encoder/Transformer/encoderblock_{i}");
                EncoderBlock {
                    ln0: norm(format!("{s}/LayerNorm_0"), true),
                    attn: Mha::new(
                        &format!("{s}/MultiHeadDotProductAttention_0"),
                        config.enc_heads,
                        true,
                    ),
                    ln1: norm(format!("{s}/LayerNorm_1"), true),
                    mlp: Mlp::new(&format!("{s}/MlpBlock_0"), true),
                }
            })
            .collect();
        let bias = config.decoder_bias;
        let dec_blocks = (0..config.dec_depth)
            .map(|i| {
                let s = format!("decoder/EncDecBlock{i}");
                DecoderBlock {
                    ln1: norm(format!("{s}/LayerNorm1"), bias),
                    self_attn: Mha::new(&format!("{s}/SelfAttn"), config.dec_heads, false),
                    ln2: norm(format!("{s}/LayerNorm2"), bias),
                    cross_attn: Mha::new(&format!("{s}/CrossAttn"), config.dec_heads, false),
                    ln3: norm(format!("{s}/LayerNorm3"), bias),
                    mlp: Mlp::new(&format!("{s}/MLP"), bias),
                }
            })
            .collect();
        Ok(Net {
            enc_blocks,
            enc_norm: norm("encoder/Transformer/encoder_norm".into(), true),
            stem: Dense::new("encoder/embedding".into(), 3, true),
            dec_blocks,
            dec_norm: norm("decoder/LayerNorm".into(), true),
            logits: Dense::new("decoder/LogitsDense".into(), 1, true),
            config,
        })
    }

    /// The (resolved) config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn pos_table<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        name: &str,
        shape: &[usize],
        grid: (usize, usize),
    ) -> Result<B::Tensor> {
        match self.config.posemb_type {
            PosEmb::Learn => Ok(p.get(name)?.clone()),
            PosEmb::Sincos2d => be.upload(&HostTensor::new(
                shape,
                cappa::layers::posemb_sincos_2d(grid.0, grid.1, shape[2]),
            )?),
        }
    }

    /// The forward pass of one batch: images `[B, H, W, C]` (in [-1, 1]) and caption targets
    /// `[B, L]` with a mode per caption. Returns the tape (holding the logits).
    pub fn forward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        images: &B::Tensor,
        targets: &Tokens,
        modes: &[Mode],
    ) -> Result<Tape<B>> {
        let c = &self.config;
        let s = be.shape(images);
        if s.len() != 4 || s[1..] != [c.image_size, c.image_size, c.in_channels] || s[0] == 0 {
            return Err(Error::InputShape {
                what: "images".into(),
                expected: vec![0, c.image_size, c.image_size, c.in_channels],
                found: s,
            });
        }
        if targets.batch() != s[0] || targets.len() > c.max_len {
            return Err(Error::InputShape {
                what: "tokens".into(),
                expected: vec![s[0], c.max_len],
                found: vec![targets.batch(), targets.len()],
            });
        }
        targets.check_below(c.vocab_size as u32)?;
        // Encoder.
        let patches = be.patchify(images, c.patch_size)?;
        let x = self.stem.forward(be, p, &patches)?;
        let pos = self.pos_table(
            be,
            p,
            "encoder/pos_embedding",
            &[1, c.num_patches(), c.enc_width],
            (c.grid(), c.grid()),
        )?;
        let mut x = be.add(&x, &pos)?;
        let mut enc = Vec::with_capacity(self.enc_blocks.len());
        for block in &self.enc_blocks {
            let (y, saved) = block.forward(be, p, &x)?;
            enc.push(saved);
            x = y;
        }
        let encoded = self.enc_norm.forward(be, p, &x)?;
        let enc_last = x;
        // Decoder.
        let (b, l) = (targets.batch(), targets.len());
        let ids = be.upload_ids(&[b, l], &decoder_inputs(c, targets, modes)?)?;
        let causal: Vec<bool> = modes.iter().map(|m| *m == Mode::Cap).collect();
        let mask = mask_of(&causal);
        let table = p.get("decoder/EmbedTargets/embedding")?;
        let pos = self.pos_table(
            be,
            p,
            "pos_embedding_decoder",
            &[1, c.max_len, c.dec_width],
            (1, c.max_len),
        )?;
        let mut x = be.add(&be.gather(table, &ids)?, &be.slice_rows(&pos, 0, l)?)?;
        let mut dec = Vec::with_capacity(self.dec_blocks.len());
        for block in &self.dec_blocks {
            let (y, saved) = block.forward(be, p, &x, &encoded, mask)?;
            dec.push(saved);
            x = y;
        }
        let dec_normed = self.dec_norm.forward(be, p, &x)?;
        let logits = self.logits.forward(be, p, &dec_normed)?;
        Ok(Tape {
            patches,
            enc,
            enc_last,
            ids,
            targets: be.upload_ids(&[b, l], targets.ids())?,
            causal,
            dec,
            dec_last: x,
            dec_normed,
            logits,
            batch: b,
            len: l,
        })
    }

    /// The reverse pass: the gradient of the reference caption loss (with `label_smoothing`)
    /// with respect to every parameter.
    pub fn backward<B: TrainBackend>(
        &self,
        be: &B,
        p: &Params<B>,
        tape: &Tape<B>,
        label_smoothing: f32,
    ) -> Result<Grads<B>> {
        let c = &self.config;
        let mut g = Grads::default();
        let mask = tape.mask();
        let dlogits =
            be.cross_entropy_backward(&tape.logits, &tape.targets, c.pad_id, label_smoothing)?;
        let dy = self
            .logits
            .backward(be, p, &tape.dec_normed, &dlogits, &mut g)?;
        let mut dx = self.dec_norm.backward(be, p, &tape.dec_last, &dy, &mut g)?;
        let mut d_enc: Option<B::Tensor> = None;
        for (block, saved) in self.dec_blocks.iter().zip(&tape.dec).rev() {
            let (d, de) = block.backward(be, p, saved, &dx, mask, &mut g)?;
            dx = d;
            d_enc = Some(match d_enc {
                Some(acc) => be.add(&acc, &de)?,
                None => de,
            });
        }
        // Token and position tables.
        let rows = c.embed_rows();
        g.put(
            "decoder/EmbedTargets/embedding".into(),
            be.gather_backward(&dx, &tape.ids, rows)?,
        );
        if c.posemb_type == PosEmb::Learn {
            let d = be.reshape(&be.sum_axis0(&dx)?, &[1, tape.len, c.dec_width])?;
            let d = if tape.len == c.max_len {
                d
            } else {
                let mut full = be.zeros(&[1, c.max_len, c.dec_width])?;
                be.write_rows(&mut full, &d, 0)?;
                full
            };
            g.put("pos_embedding_decoder".into(), d);
        }
        // Encoder.
        let d_enc = d_enc.ok_or_else(|| Error::Config("the decoder has no blocks".into()))?;
        let mut dx = self
            .enc_norm
            .backward(be, p, &tape.enc_last, &d_enc, &mut g)?;
        for (block, saved) in self.enc_blocks.iter().zip(&tape.enc).rev() {
            dx = block.backward(be, p, saved, &dx, &mut g)?;
        }
        if c.posemb_type == PosEmb::Learn {
            let d = be.reshape(&be.sum_axis0(&dx)?, &[1, c.num_patches(), c.enc_width])?;
            g.put("encoder/pos_embedding".into(), d);
        }
        self.stem.backward(be, p, &tape.patches, &dx, &mut g)?;
        debug_assert_eq!(tape.batch, be.shape(&tape.logits)[0]);
        Ok(g)
    }
}
