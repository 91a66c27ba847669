// Embedding gather: OUT[r, :] = TABLE[ids[r], :]. The table may be f32, bf16 or f16 and may be
// bound as a window of rows [row_start, row_start + rows) when it is larger than one binding;
// each window's dispatch writes the rows whose ids fall inside it. Ids past the table (which
// the host never sends) read its last row rather than out of bounds.

struct Params {
    n: u32,
    d: u32,
    row_start: u32,
    rows: u32,
    total_rows: u32,
    table_off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> IDS: array<u32>;
@group(0) @binding(2) var<storage, read> TABLE: array<u32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

override FORMAT: u32 = 0u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.n * p.d {
        return;
    }
    let r = e / p.d;
    let c = e % p.d;
    let id = min(IDS[r], p.total_rows - 1u);
    if id < p.row_start || id >= p.row_start + p.rows {
        return;
    }
    let i = p.table_off + (id - p.row_start) * p.d + c;
    OUT[e] = unpack_elem(TABLE[word_index(i, FORMAT)], i, FORMAT);
}
