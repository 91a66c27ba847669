// Token choice for sampled decoding, one workgroup per row, with exactly the semantics of the
// CPU reference (runtime/src/ops/sample.rs): temperature, top-k (ties kept), top-p nucleus
// (ties kept), then a walk in increasing token order to the first cumulative probability above
// u·Σp, u from a counter-based hash of (seed, row, step). Thresholds are found by bisection on
// order-preserving u32 keys of the floats, so no sort is needed. Sums run in index order inside
// each invocation's contiguous chunk and then over chunks, so for V ≤ WG they add in exactly the
// CPU's order.

struct Params {
    rows: u32,
    v: u32,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> IDS: array<u32>;

var<workgroup> part: array<f32, WG>;
var<workgroup> cnt: array<u32, WG>;
var<workgroup> total: f32;
var<workgroup> first_hit: atomic<u32>;
var<workgroup> last_kept: atomic<u32>;

const NEG_INF: u32 = 0xff800000u;

fn pcg(x: u32) -> u32 {
    let s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

fn uniform01(row: u32) -> f32 {
    let h = pcg(pcg(pcg(pcg(p.seed_lo) ^ p.seed_hi) ^ row) ^ p.step);
    return f32(h >> 8u) / 16777216.0;
}

// Larger float → larger key (NaN is mapped to −∞ before, −0 to +0).
fn okey(f: f32) -> u32 {
    let b = bitcast<u32>(f);
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

// z = x / temperature, NaN as −∞, −0 as +0.
fn zval(base: u32, i: u32) -> f32 {
    let x = X[base + i];
    if (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u {
        return bitcast<f32>(NEG_INF);
    }
    let z = x / p.temperature;
    return select(z, 0.0, z == 0.0);
}

// Σ over the workgroup of per-invocation partial sums, added in invocation order.
fn ordered_sum(lid: u32, mine: f32) -> f32 {
    part[lid] = mine;
    workgroupBarrier();
    if lid == 0u {
        var s = 0.0;
        for (var i = 0u; i < WG; i++) {
            s += part[i];
        }
        total = s;
    }
    workgroupBarrier();
    let t = total;
    workgroupBarrier();
    return t;
}

fn count_sum(lid: u32, mine: u32) -> u32 {
    cnt[lid] = mine;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            cnt[lid] += cnt[lid + s];
        }
        workgroupBarrier();
    }
    let c = cnt[0];
    workgroupBarrier();
    return c;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.v;
    let chunk = (p.v + WG - 1u) / WG;
    let lo = min(lid * chunk, p.v);
    let hi = min(lo + chunk, p.v);

    // The maximum and its first index (also the answer for temperature 0 and degenerate rows).
    var best = bitcast<f32>(NEG_INF);
    var bi = min(lo, p.v - 1u);
    for (var i = lo; i < hi; i++) {
        var z = X[base + i];
        if p.temperature != 0.0 {
            z = zval(base, i);
        } else if (bitcast<u32>(z) & 0x7fffffffu) > 0x7f800000u {
            z = bitcast<f32>(NEG_INF);
        }
        if z > best {
            best = z;
            bi = i;
        }
    }
    let mx = reduce_argmax(lid, best, bi);
    let m = bitcast<f32>(mx.x);
    let finite = (bitcast<u32>(m) & 0x7f800000u) != 0x7f800000u;
    if p.temperature == 0.0 || !finite {
        if lid == 0u {
            IDS[row] = mx.y;
        }
        return;
    }

    // top-k: the largest key t with #{key(z) ≥ t} ≥ k is the key of the k-th largest z.
    var tk = 0u;
    if p.top_k >= 1u && p.top_k < p.v {
        for (var bit = 31i; bit >= 0i; bit--) {
            let cand = tk | (1u << u32(bit));
            var c = 0u;
            for (var i = lo; i < hi; i++) {
                c += u32(okey(zval(base, i)) >= cand);
            }
            if count_sum(lid, c) >= p.top_k {
                tk = cand;
            }
        }
    }

    // top-p: the largest key t of p with Σ_{kept, key(p) ≥ t} p ≥ top_p · Σ_kept p.
    var tp = 0u;
    if p.top_p > 0.0 && p.top_p < 1.0 {
        var s = 0.0;
        for (var i = lo; i < hi; i++) {
            let z = zval(base, i);
            if okey(z) >= tk {
                s += exp(z - m);
            }
        }
        let need = p.top_p * ordered_sum(lid, s);
        for (var bit = 31i; bit >= 0i; bit--) {
            let cand = tp | (1u << u32(bit));
            var ms = 0.0;
            for (var i = lo; i < hi; i++) {
                let z = zval(base, i);
                let pi = exp(z - m);
                if okey(z) >= tk && okey(pi) >= cand {
                    ms += pi;
                }
            }
            if ordered_sum(lid, ms) >= need {
                tp = cand;
            }
        }
    }

    // The walk: first kept token whose cumulative probability exceeds u · Σ_kept p.
    var s = 0.0;
    for (var i = lo; i < hi; i++) {
        let z = zval(base, i);
        let pi = exp(z - m);
        if okey(z) >= tk && okey(pi) >= tp {
            s += pi;
        }
    }
    part[lid] = s;
    if lid == 0u {
        atomicStore(&first_hit, 0xffffffffu);
        atomicStore(&last_kept, 0u);
    }
    workgroupBarrier();
    if lid == 0u {
        var acc = 0.0;
        for (var i = 0u; i < WG; i++) {
            let c = part[i];
            part[i] = acc; // exclusive prefix: the sum of all earlier chunks
            acc += c;
        }
        total = acc;
    }
    workgroupBarrier();
    let goal = uniform01(row) * total;
    var acc = part[lid];
    for (var i = lo; i < hi; i++) {
        let z = zval(base, i);
        let pi = exp(z - m);
        if okey(z) >= tk && okey(pi) >= tp {
            acc += pi;
            atomicMax(&last_kept, i);
            if acc > goal {
                atomicMin(&first_hit, i);
                break;
            }
        }
    }
    workgroupBarrier();
    if lid == 0u {
        let hit = atomicLoad(&first_hit);
        IDS[row] = select(hit, atomicLoad(&last_kept), hit == 0xffffffffu);
    }
}
