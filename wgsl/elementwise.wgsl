// Elementwise ops over a flat range: OP 0 is `a + b` with b repeated (b_len divides the
// length: residuals, and position tables added to every batch entry); OP 1 is GELU of a.

struct Params {
    n: u32,
    b_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

override OP: u32 = 0u;

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
    if OP == 0u {
        OUT[i] = A[i] + B[i % p.b_len];
    } else {
        OUT[i] = gelu(A[i]);
    }
}
