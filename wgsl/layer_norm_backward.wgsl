// Backward of LayerNorm (layer_norm.wgsl). With x̂ = (x − μ)·r, r = (var + eps)^(-1/2) and
// g = dy·scale per row:
//   main_dx:      one workgroup per row: dx = r·(g − mean(g) − x̂·mean(g·x̂)) (no last term where
//                 the variance was clamped at 0); also stores the row's (μ, r) in STATS.
//   main_dparams: one invocation per feature j, after main_dx: dscale[j] = Σ_rows dy·x̂,
//                 dbias[j] = Σ_rows dy, summed in row order (deterministic, no atomics).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> SCALE: array<f32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<storage, read_write> STATS: array<f32>;
@group(0) @binding(6) var<storage, read_write> DSCALE: array<f32>;
@group(0) @binding(7) var<storage, read_write> DBIAS: array<f32>;

@compute @workgroup_size(WG)
fn main_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    // Uniform over the workgroup, so barriers stay uniform.
    if row >= p.rows {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    var s2 = 0.0;
    for (var j = lid; j < p.d; j += WG) {
        let v = X[base + j];
        s += v;
        s2 += v * v;
    }
    let tot = reduce_sum2(lid, s, s2);
    let n = f32(p.d);
    let mean = tot.x / n;
    let raw = tot.y / n - mean * mean;
    let inv = inverseSqrt(max(raw, 0.0) + p.eps);
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = lid; j < p.d; j += WG) {
        let g = DY[base + j] * SCALE[j];
        sg += g;
        sgx += g * (X[base + j] - mean) * inv;
    }
    let gs = reduce_sum2(lid, sg, sgx);
    let mg = gs.x / n;
    let mgx = select(gs.y / n, 0.0, raw < 0.0);
    for (var j = lid; j < p.d; j += WG) {
        let xh = (X[base + j] - mean) * inv;
        DX[base + j] = inv * (DY[base + j] * SCALE[j] - mg - xh * mgx);
    }
    if lid == 0u {
        STATS[2u * row] = mean;
        STATS[2u * row + 1u] = inv;
    }
}

@compute @workgroup_size(64)
fn main_dparams(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_index(wg, nwg, lid, 64u);
    if j >= p.d {
        return;
    }
    var ds = 0.0;
    var db = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let g = DY[r * p.d + j];
        ds += g * ((X[r * p.d + j] - STATS[2u * r]) * STATS[2u * r + 1u]);
        db += g;
    }
    DSCALE[j] = ds;
    DBIAS[j] = db;
}
