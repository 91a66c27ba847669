// One AdamW step in place, in the reference's order (big_vision optax.make): clip the
// gradient, Adam direction, × lr, + wd·param (wd is 0 for tensors that are not */kernel),
// × schedule, subtract.

struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    schedule: f32,
    clip: f32,
    bc1: f32,
    bc2: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> V: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 64u);
    if i >= p.n {
        return;
    }
    let g = G[i] * p.clip;
    let m = p.beta1 * M[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * V[i] + (1.0 - p.beta2) * (g * g);
    let dir = (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
    let u = dir * p.lr + p.wd * PARAM[i];
    M[i] = m;
    V[i] = v;
    PARAM[i] = PARAM[i] - p.schedule * u;
}
