// Backward of the tanh-GELU: DX = DY · gelu'(X), with t = tanh(c·(x + 0.044715·x³)),
// gelu'(x) = ½(1 + t) + ½·x·(1 − t²)·c·(1 + 3·0.044715·x²). The tanh argument is clamped as in
// common.wgsl's gelu (tanh(±15) is ±1 in f32, so the derivative is unchanged).

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

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
    let x = X[i];
    let c = 0.7978846;
    let t = tanh(clamp(c * (x + 0.044715 * x * x * x), -15.0, 15.0));
    let g = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
    DX[i] = DY[i] * g;
}
