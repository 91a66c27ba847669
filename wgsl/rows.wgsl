// Row ops on [B, L, D] tensors.
//   main_copy: DST[b, dst_start + i, :] = SRC[b, src_start + i, :] for i < len — slicing rows
//              (the last position, a window of the position table) and writing rows (the KV
//              cache) are both this copy.
//   main_mean: OUT[b, :] = mean over l of SRC[b, l, :] (GAP pooling).

struct Params {
    batch: u32,
    d: u32,
    src_rows: u32,
    dst_rows: u32,
    src_start: u32,
    dst_start: u32,
    len: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> SRC: array<f32>;
@group(0) @binding(2) var<storage, read_write> DST: array<f32>;

@compute @workgroup_size(64)
fn main_copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.batch * p.len * p.d {
        return;
    }
    let c = e % p.d;
    let i = (e / p.d) % p.len;
    let b = e / (p.d * p.len);
    DST[(b * p.dst_rows + p.dst_start + i) * p.d + c] = SRC[(b * p.src_rows + p.src_start + i) * p.d + c];
}

@compute @workgroup_size(64)
fn main_mean(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.batch * p.d {
        return;
    }
    let c = e % p.d;
    let b = e / p.d;
    var s = 0.0;
    for (var l = 0u; l < p.src_rows; l++) {
        s += SRC[(b * p.src_rows + l) * p.d + c];
    }
    DST[e] = s / f32(p.src_rows);
}
