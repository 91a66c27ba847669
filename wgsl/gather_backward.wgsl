// Backward of the row gather (gather.wgsl): OUT[id, :] = Σ DY[n, :] over the positions n with
// IDS[n] = id, in position order. OUT starts zeroed. One invocation per (position n, feature
// c); only the first position of each id does the work, so every row is written by one
// invocation and summed in a fixed order: the same bits every run, no float atomics.

struct Params {
    n: u32,
    row_len: u32,
    rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> IDS: array<u32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.n * p.row_len {
        return;
    }
    let n = e / p.row_len;
    let c = e % p.row_len;
    let id = IDS[n];
    if id >= p.rows {
        return;
    }
    for (var m = 0u; m < n; m++) {
        if IDS[m] == id {
            return;
        }
    }
    var s = 0.0;
    for (var m = n; m < p.n; m++) {
        if IDS[m] == id {
            s += DY[m * p.row_len + c];
        }
    }
    OUT[id * p.row_len + c] = s;
}
