// One beam-search step (runtime/src/ops/beam.rs), one workgroup per group of W beams: each
// continuation (w, t) scores beam_scores[w] + log_softmax(logits[w])[t]; the best k of the
// group's W·V continuations are found by k selection rounds, each taking the best candidate
// ranked after the previous winner (score descending, index ascending). NaN ranks as −∞ and
// −0 as +0, as on the CPU.

struct Params {
    groups: u32,
    width: u32,
    v: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> SCORES: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT_S: array<f32>;
@group(0) @binding(4) var<storage, read_write> OUT_I: array<u32>;

const MAX_WIDTH: u32 = 256u;
const NEG_INF: u32 = 0xff800000u;
var<workgroup> lse: array<f32, MAX_WIDTH>;

fn canon(x: f32) -> f32 {
    if (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u {
        return bitcast<f32>(NEG_INF);
    }
    return select(x, 0.0, x == 0.0);
}

fn cand_value(g: u32, c: u32) -> f32 {
    let w = c / p.v;
    let row = g * p.width + w;
    return canon(SCORES[row] + (X[row * p.v + (c % p.v)] - lse[w]));
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = flat_group(wg, nwg);
    if g >= p.groups {
        return;
    }
    // Each beam's log-sum-exp: x − (max + ln Σ exp(x − max)), as the CPU's log-softmax.
    for (var w = 0u; w < p.width; w++) {
        let base = (g * p.width + w) * p.v;
        var m = -3.4e38;
        for (var j = lid; j < p.v; j += WG) {
            m = max(m, X[base + j]);
        }
        let mx = bitcast<f32>(reduce_argmax(lid, m, 0u).x);
        var s = 0.0;
        for (var j = lid; j < p.v; j += WG) {
            s += exp(X[base + j] - mx);
        }
        let tot = reduce_sum2(lid, s, 0.0).x;
        if lid == 0u {
            lse[w] = mx + log(tot);
        }
        workgroupBarrier();
    }
    let n = p.width * p.v;
    var prev_v = 0.0;
    var prev_i = 0u;
    for (var r = 0u; r < p.k; r++) {
        var best = bitcast<f32>(NEG_INF);
        var bi = 0xffffffffu;
        for (var c = lid; c < n; c += WG) {
            let v = cand_value(g, c);
            let after = r == 0u || v < prev_v || (v == prev_v && c > prev_i);
            if after && (bi == 0xffffffffu || v > best) {
                best = v;
                bi = c;
            }
        }
        let win = reduce_argmax(lid, best, bi);
        prev_v = bitcast<f32>(win.x);
        prev_i = win.y;
        if lid == 0u {
            OUT_S[g * p.k + r] = prev_v;
            OUT_I[g * p.k + r] = prev_i;
        }
    }
}
