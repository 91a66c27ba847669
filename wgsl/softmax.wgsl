// Output-side row kernels over [rows, V], one workgroup per row:
//   main_argmax: IDS[r] = index of the first largest value
//   main_xent:   OUT[r] = −[(1 − ls)·logp[t] + ls/(V − 1)·Σ_{c≠t} logp[c]], t = TARGETS[r],
//                with logp[c] = x[c] − max − ln Σ exp(x − max)

struct Params {
    rows: u32,
    v: u32,
    ls: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> TARGETS: array<u32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(4) var<storage, read_write> IDS: array<u32>;

// max and ln Σ exp(x − max) of row `base`.
fn row_lse(base: u32, lid: u32) -> f32 {
    var m = -3.4e38;
    for (var j = lid; j < p.v; j += WG) {
        m = max(m, X[base + j]);
    }
    // max via the argmax reduction (its index is not needed here)
    let mx = bitcast<f32>(reduce_argmax(lid, m, 0u).x);
    var s = 0.0;
    for (var j = lid; j < p.v; j += WG) {
        s += exp(X[base + j] - mx);
    }
    return mx + log(reduce_sum2(lid, s, 0.0).x);
}

@compute @workgroup_size(WG)
fn main_argmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.v;
    var best = X[base + min(lid, p.v - 1u)];
    var bi = min(lid, p.v - 1u);
    for (var j = lid + WG; j < p.v; j += WG) {
        let x = X[base + j];
        if x > best || (best != best && x == x) {
            best = x;
            bi = j;
        }
    }
    let r = reduce_argmax(lid, best, bi);
    if lid == 0u {
        IDS[row] = r.y;
    }
}

@compute @workgroup_size(WG)
fn main_xent(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.v;
    let lse = row_lse(base, lid);
    var s = 0.0;
    if p.ls != 0.0 {
        for (var j = lid; j < p.v; j += WG) {
            s += X[base + j] - lse;
        }
    }
    let sum_lp = reduce_sum2(lid, s, 0.0).x;
    if lid == 0u {
        let t = min(TARGETS[row], p.v - 1u);
        let lp_t = X[base + t] - lse;
        var loss = -lp_t;
        if p.ls != 0.0 {
            let off = select(0.0, p.ls / f32(p.v - 1u), p.v > 1u);
            loss = -((1.0 - p.ls) * lp_t + off * (sum_lp - lp_t));
        }
        OUT[row] = loss;
    }
}
