// Backward of the reference caption loss, fused: softmax, label smoothing and the per-caption
// normalisation. One workgroup per position (b, i) of logits [B, L, V]:
//   w = [t ≠ PAD] / max(n_b, 2e-38) / B   (n_b: non-PAD targets of caption b)
//   y_c = 1 − ls at the target t, ls / (V − 1) elsewhere
//   OUT[b, i, c] = w · (softmax(X[b, i])_c · Σ y − y_c)

struct Params {
    rows: u32,
    l: u32,
    v: u32,
    pad: u32,
    ls: f32,
    batch: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> TARGETS: array<u32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    // Uniform over the workgroup, so barriers stay uniform.
    if row >= p.rows {
        return;
    }
    let base = row * p.v;
    let t = TARGETS[row];
    let first = (row / p.l) * p.l;
    var n = 0u;
    for (var i = 0u; i < p.l; i++) {
        n += select(0u, 1u, TARGETS[first + i] != p.pad);
    }
    let w = select(0.0, 1.0 / max(f32(n), 2e-38) / f32(p.batch), t != p.pad);
    // max, then Σ exp(x − max): the log-sum-exp of the row.
    var m = -3.4e38;
    for (var j = lid; j < p.v; j += WG) {
        m = max(m, X[base + j]);
    }
    let mx = bitcast<f32>(reduce_argmax(lid, m, 0u).x);
    var s = 0.0;
    for (var j = lid; j < p.v; j += WG) {
        s += exp(X[base + j] - mx);
    }
    let lse = mx + log(reduce_sum2(lid, s, 0.0).x);
    let off = select(0.0, p.ls / f32(p.v - 1u), p.v > 1u);
    let on = 1.0 - p.ls;
    let total = on + off * f32(p.v - 1u);
    let tc = min(t, p.v - 1u);
    for (var j = lid; j < p.v; j += WG) {
        let y = select(off, on, j == tc);
        OUT[base + j] = w * (exp(X[base + j] - lse) * total - y);
    }
}
