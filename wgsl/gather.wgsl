// Rows of axis 0 picked by ids: OUT[r, :] = X[IDS[r], :] (token embeddings from the embedding
// table, KV caches reordered by parent beam, an image's encoding repeated for its beams). X may
// be f32, bf16, f16 or q8 (FORMAT, see common.wgsl: q8 scales per column, 3, or per row, 4) and
// may be bound as a window of rows [row_start, row_start + rows) when it is larger than one
// binding; each window's dispatch writes the rows whose ids fall inside it.
// An id past the end (the host checks ids it makes; ids made on the device are not seen) reads
// the last row rather than out of bounds.

struct Params {
    n: u32,
    row_len: u32,
    row_start: u32,
    rows: u32,
    total_rows: u32,
    x_off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> IDS: array<u32>;
@group(0) @binding(2) var<storage, read> X: array<u32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;
// q8 scales of X (FORMAT 3: one per column; 4: one per row).
@group(0) @binding(4) var<storage, read> SCALES: array<f32>;

override FORMAT: u32 = 0u;

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
    let r = e / p.row_len;
    let c = e % p.row_len;
    let id = min(IDS[r], p.total_rows - 1u);
    if id < p.row_start || id >= p.row_start + p.rows {
        return;
    }
    let i = p.x_off + (id - p.row_start) * p.row_len + c;
    var v = unpack_elem(X[word_index(i, FORMAT)], i, FORMAT);
    if FORMAT == 3u {
        v *= SCALES[c];
    } else if FORMAT == 4u {
        v *= SCALES[id];
    }
    OUT[e] = v;
}
