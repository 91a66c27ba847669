// Fused multi-head attention: one invocation per (batch, query, head) walks the visible keys
// once with a running maximum (online softmax), so no [Lq × Lk] score matrix ever reaches
// global memory. q is scaled by 1/√D first, as Flax does. Masks: none, causal with an offset
// (query i sees keys 0..=offset+i; the KV-cache step), or causal per batch row (mixed Cap/Pa).

struct Params {
    batch: u32,
    lq: u32,
    lk: u32,
    heads: u32,
    hd: u32,
    offset: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Bound as vectors: with VEC4 (head dimension a multiple of 4) rows are read 16 bytes at a time;
// otherwise element i is [i / 4][i % 4].
@group(0) @binding(1) var<storage, read> Q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> K: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> V: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> ROW_CAUSAL: array<u32>;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;

// 0: no mask; 1: causal with p.offset; 2: causal where ROW_CAUSAL[b] != 0.
override MASK: u32 = 0u;
override VEC4: bool = false;
const MAX_HD: u32 = 256u;

fn elem(x: vec4<f32>, i: u32) -> f32 {
    return x[i & 3u];
}

@compute @workgroup_size(64)
fn main(
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
    var visible = p.lk;
    if MASK == 1u || (MASK == 2u && ROW_CAUSAL[b] != 0u) {
        var off = 0u;
        if MASK == 1u {
            off = p.offset;
        }
        visible = min(off + i + 1u, p.lk);
    }
    let qb = (b * p.lq + i) * f + h * p.hd;
    var m = -3.4e38;
    var l = 0.0;
    if VEC4 {
        let n4 = p.hd / 4u;
        var q: array<vec4<f32>, 64>;
        var acc: array<vec4<f32>, 64>;
        for (var d = 0u; d < n4; d++) {
            q[d] = Q[qb / 4u + d] * p.scale;
            acc[d] = vec4<f32>(0.0);
        }
        for (var j = 0u; j < visible; j++) {
            let kb = ((b * p.lk + j) * f + h * p.hd) / 4u;
            var s = 0.0;
            for (var d = 0u; d < n4; d++) {
                s += dot(q[d], K[kb + d]);
            }
            let m_new = max(m, s);
            let c = exp(m - m_new);
            let e = exp(s - m_new);
            l = l * c + e;
            for (var d = 0u; d < n4; d++) {
                acc[d] = fma(acc[d], vec4<f32>(c), e * V[kb + d]);
            }
            m = m_new;
        }
        let inv = 1.0 / l;
        for (var d = 0u; d < n4; d++) {
            let o = acc[d] * inv;
            for (var t = 0u; t < 4u; t++) {
                O[qb + 4u * d + t] = o[t];
            }
        }
        return;
    }
    var q: array<f32, MAX_HD>;
    var acc: array<f32, MAX_HD>;
    for (var d = 0u; d < p.hd; d++) {
        let qi = qb + d;
        q[d] = elem(Q[qi / 4u], qi) * p.scale;
        acc[d] = 0.0;
    }
    for (var j = 0u; j < visible; j++) {
        let kb = (b * p.lk + j) * f + h * p.hd;
        var s = 0.0;
        for (var d = 0u; d < p.hd; d++) {
            s = fma(q[d], elem(K[(kb + d) / 4u], kb + d), s);
        }
        let m_new = max(m, s);
        let c = exp(m - m_new);
        let e = exp(s - m_new);
        l = l * c + e;
        for (var d = 0u; d < p.hd; d++) {
            acc[d] = fma(acc[d], c, e * elem(V[(kb + d) / 4u], kb + d));
        }
        m = m_new;
    }
    let inv = 1.0 / l;
    for (var d = 0u; d < p.hd; d++) {
        O[qb + d] = acc[d] * inv;
    }
}
