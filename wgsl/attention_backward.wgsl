// Backward of the fused attention (attention.wgsl). Per batch entry b and head h, with
// P = softmax(s·q·kᵀ) over the visible keys (s = 1/√D), forward output o and its gradient do:
//   main_stats: one invocation per (b, query i, h): lse_i = log Σ_j exp(s·q_i·k_j) and
//               δ_i = do_i·o_i, stored after dq in the DQS buffer.
//   main_dq:    one invocation per (b, i, h): dq_i = s·Σ_j P_ij (do_i·v_j − δ_i) k_j.
//   main_dkv:   one invocation per (b, key j, h), over the queries i that see key j:
//               WHICH 0: dk_j = Σ_i P_ij (do_i·v_j − δ_i) (s·q_i);  WHICH 1: dv_j = Σ_i P_ij do_i.
// Every sum runs in a fixed order (no atomics), so results are the same every run.

struct Params {
    batch: u32,
    lq: u32,
    lk: u32,
    heads: u32,
    hd: u32,
    offset: u32,
    scale: f32,
    // Index in DQS of the first statistic (= the number of dq values).
    stats_at: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> O: array<f32>;
@group(0) @binding(5) var<storage, read> DO: array<f32>;
@group(0) @binding(6) var<storage, read> ROW_CAUSAL: array<u32>;
@group(0) @binding(7) var<storage, read_write> DQS: array<f32>;
@group(0) @binding(8) var<storage, read_write> OUT: array<f32>;

// 0: no mask; 1: causal with p.offset; 2: causal where ROW_CAUSAL[b] != 0.
override MASK: u32 = 0u;
// main_dkv: 0 writes dk, 1 writes dv.
override WHICH: u32 = 0u;
const MAX_HD: u32 = 256u;

// Keys 0..visible(b, i) are visible to query i of batch entry b.
fn visible(b: u32, i: u32) -> u32 {
    if MASK == 1u || (MASK == 2u && ROW_CAUSAL[b] != 0u) {
        var off = 0u;
        if MASK == 1u {
            off = p.offset;
        }
        return min(off + i + 1u, p.lk);
    }
    return p.lk;
}

fn stat(b: u32, i: u32, h: u32) -> u32 {
    return p.stats_at + ((b * p.lq + i) * p.heads + h) * 2u;
}

@compute @workgroup_size(64)
fn main_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = flat_index(wg, nwg, lid, 64u);
    if id >= p.batch * p.lq * p.heads {
        return;
    }
    let h = id % p.heads;
    let i = (id / p.heads) % p.lq;
    let b = id / (p.heads * p.lq);
    let f = p.heads * p.hd;
    let qb = (b * p.lq + i) * f + h * p.hd;
    var q: array<f32, MAX_HD>;
    var delta = 0.0;
    for (var d = 0u; d < p.hd; d++) {
        q[d] = Q[qb + d] * p.scale;
        delta += DO[qb + d] * O[qb + d];
    }
    var m = -3.4e38;
    var l = 0.0;
    let n = visible(b, i);
    for (var j = 0u; j < n; j++) {
        let kb = (b * p.lk + j) * f + h * p.hd;
        var s = 0.0;
        for (var d = 0u; d < p.hd; d++) {
            s += q[d] * K[kb + d];
        }
        let m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    let at = stat(b, i, h);
    DQS[at] = m + log(l);
    DQS[at + 1u] = delta;
}

@compute @workgroup_size(64)
fn main_dq(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = flat_index(wg, nwg, lid, 64u);
    if id >= p.batch * p.lq * p.heads {
        return;
    }
    let h = id % p.heads;
    let i = (id / p.heads) % p.lq;
    let b = id / (p.heads * p.lq);
    let f = p.heads * p.hd;
    let qb = (b * p.lq + i) * f + h * p.hd;
    let at = stat(b, i, h);
    let lse = DQS[at];
    let delta = DQS[at + 1u];
    var q: array<f32, MAX_HD>;
    var g: array<f32, MAX_HD>;
    var acc: array<f32, MAX_HD>;
    for (var d = 0u; d < p.hd; d++) {
        q[d] = Q[qb + d] * p.scale;
        g[d] = DO[qb + d];
        acc[d] = 0.0;
    }
    let n = visible(b, i);
    for (var j = 0u; j < n; j++) {
        let kb = (b * p.lk + j) * f + h * p.hd;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < p.hd; d++) {
            s += q[d] * K[kb + d];
            dp += g[d] * V[kb + d];
        }
        let ds = exp(s - lse) * (dp - delta);
        for (var d = 0u; d < p.hd; d++) {
            acc[d] += ds * K[kb + d];
        }
    }
    for (var d = 0u; d < p.hd; d++) {
        DQS[qb + d] = acc[d] * p.scale;
    }
}

@compute @workgroup_size(64)
fn main_dkv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = flat_index(wg, nwg, lid, 64u);
    if id >= p.batch * p.lk * p.heads {
        return;
    }
    let h = id % p.heads;
    let j = (id / p.heads) % p.lk;
    let b = id / (p.heads * p.lk);
    let f = p.heads * p.hd;
    let kb = (b * p.lk + j) * f + h * p.hd;
    var k: array<f32, MAX_HD>;
    var v: array<f32, MAX_HD>;
    var acc: array<f32, MAX_HD>;
    for (var d = 0u; d < p.hd; d++) {
        k[d] = K[kb + d];
        v[d] = V[kb + d];
        acc[d] = 0.0;
    }
    for (var i = 0u; i < p.lq; i++) {
        if j >= visible(b, i) {
            continue;
        }
        let qb = (b * p.lq + i) * f + h * p.hd;
        let at = stat(b, i, h);
        var s = 0.0;
        for (var d = 0u; d < p.hd; d++) {
            s += (Q[qb + d] * p.scale) * k[d];
        }
        let pij = exp(s - DQS[at]);
        if WHICH == 1u {
            for (var d = 0u; d < p.hd; d++) {
                acc[d] += pij * DO[qb + d];
            }
        } else {
            var dp = 0.0;
            for (var d = 0u; d < p.hd; d++) {
                dp += DO[qb + d] * v[d];
            }
            let ds = pij * (dp - DQS[at + 1u]);
            for (var d = 0u; d < p.hd; d++) {
                acc[d] += ds * (Q[qb + d] * p.scale);
            }
        }
    }
    for (var d = 0u; d < p.hd; d++) {
        OUT[kb + d] = acc[d];
    }
}
