// LayerNorm over the last axis, one workgroup per row: f32 statistics, variance
// max(0, E[x²] − E[x]²) as Flax computes it, y = (x − μ)·rsqrt(var + eps)·scale (+ bias).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> SCALE: array<f32>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

override HAS_BIAS: bool = true;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = flat_group(wg, nwg);
    // The row index is uniform over the workgroup, so this exit keeps barriers uniform.
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
    let var_ = max(tot.y / n - mean * mean, 0.0);
    let inv = inverseSqrt(var_ + p.eps);
    for (var j = lid; j < p.d; j += WG) {
        var y = (X[base + j] - mean) * inv * SCALE[j];
        if HAS_BIAS {
            y += BIAS[j];
        }
        Y[base + j] = y;
    }
}
