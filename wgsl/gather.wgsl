// Rows of axis 0 picked by index: OUT[i, :] = X[IDX[i], :] (reordering KV caches by parent beam,
// repeating an image's encoding for its beams or candidates). An index past the end reads the
// last row rather than out of bounds (the host cannot check device-made indices).

struct Params {
    m: u32,
    n: u32,
    row_len: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> IDX: array<u32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.m * p.row_len {
        return;
    }
    let i = e / p.row_len;
    let src = min(IDX[i], p.n - 1u);
    OUT[e] = X[src * p.row_len + e % p.row_len];
}
