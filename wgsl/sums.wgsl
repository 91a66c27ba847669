// Reductions of the trainer, each in a fixed order (no atomics):
//   main_axis0:   OUT[c] = Σ_r X[r, c] for X [n, m], one invocation per column, rows in order
//                 (bias and position-table gradients).
//   main_squares: OUT[slot] = Σ X[i]², one workgroup of WG invocations: strided partial sums,
//                 then the pairwise tree of reduce.wgsl (global-norm clipping).

struct Params {
    n: u32,
    m: u32,
    slot: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main_axis0(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = flat_index(wg, nwg, lid, 64u);
    if c >= p.m {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.n; r++) {
        s += X[r * p.m + c];
    }
    OUT[c] = s;
}

@compute @workgroup_size(WG)
fn main_squares(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = X[i];
        s += v * v;
    }
    let tot = reduce_sum2(lid, s, 0.0);
    if lid == 0u {
        OUT[p.slot] = tot.x;
    }
}
