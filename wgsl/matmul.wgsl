// C = act(op(A) · op(B) + bias), batched, any M, N, K (runtime/src/ops/matmul.rs has the shape
// rules). Two entry points share the loaders:
//   main_reg   — register-blocked, no workgroup memory and no barriers: each invocation
//                computes a 4×4 block straight from memory. Fastest on CPU-like adapters
//                (lavapipe), where barriers are expensive and caches do the tiling.
//   main_tiled — 64×64 output tiles with 16-deep K tiles staged in workgroup memory, 4×4
//                outputs per invocation. The classic design for real GPUs.
// Edges: indices are clamped into range and the value masked, so nothing is read out of
// bounds and the inner loops have no branches. B may be f32, bf16 or f16 (B_FORMAT).
// A K split (B larger than one binding) runs as several dispatches: ACCUMULATE adds to C,
// EPILOGUE (bias, activation) runs on the last one.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    a_bstride: u32,
    b_bstride: u32,
    c_bstride: u32,
    // Row strides of A and B as stored (they differ from K and N when K is split).
    lda: u32,
    ldb: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<u32>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override B_FORMAT: u32 = 0u;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ACCUMULATE: bool = false;
override EPILOGUE: bool = true;

// op(A)[row, col] of batch entry bi; row < M and col < K.
fn a_at(bi: u32, row: u32, col: u32) -> f32 {
    let base = p.a_off + bi * p.a_bstride;
    if TRANS_A {
        return A[base + col * p.lda + row];
    }
    return A[base + row * p.lda + col];
}

// op(B)[row, col] of batch entry bi; row < K and col < N.
fn b_at(bi: u32, row: u32, col: u32) -> f32 {
    let base = p.b_off + bi * p.b_bstride;
    var i: u32;
    if TRANS_B {
        i = base + col * p.ldb + row;
    } else {
        i = base + row * p.ldb + col;
    }
    return unpack_elem(B[word_index(i, B_FORMAT)], i, B_FORMAT);
}

fn store(bi: u32, row: u32, col: u32, acc: f32) {
    let i = p.c_off + bi * p.c_bstride + row * p.n + col;
    var v = acc;
    if ACCUMULATE {
        v += C[i];
    }
    if EPILOGUE {
        if HAS_BIAS {
            v += BIAS[p.bias_off + col];
        }
        if ACT == 1u {
            v = gelu(v);
        }
    }
    C[i] = v;
}

fn store_block(bi: u32, m0: u32, n0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < 4u; i++) {
        if m0 + i < p.m {
            for (var j = 0u; j < 4u; j++) {
                if n0 + j < p.n {
                    store(bi, m0 + i, n0 + j, acc[i][j]);
                }
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn main_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    let bi = gid.z;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    // Clamped rows and columns: edge invocations recompute valid elements and skip the store.
    let r = vec4<u32>(min(m0, p.m - 1u), min(m0 + 1u, p.m - 1u), min(m0 + 2u, p.m - 1u), min(m0 + 3u, p.m - 1u));
    let c = vec4<u32>(min(n0, p.n - 1u), min(n0 + 1u, p.n - 1u), min(n0 + 2u, p.n - 1u), min(n0 + 3u, p.n - 1u));
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k = 0u; k < p.k; k++) {
        let b = vec4<f32>(b_at(bi, k, c.x), b_at(bi, k, c.y), b_at(bi, k, c.z), b_at(bi, k, c.w));
        acc[0] = fma(vec4<f32>(a_at(bi, r.x, k)), b, acc[0]);
        acc[1] = fma(vec4<f32>(a_at(bi, r.y, k)), b, acc[1]);
        acc[2] = fma(vec4<f32>(a_at(bi, r.z, k)), b, acc[2]);
        acc[3] = fma(vec4<f32>(a_at(bi, r.w, k)), b, acc[3]);
    }
    store_block(bi, m0, n0, acc);
}

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> As: array<f32, 1024>; // [TK][TILE], k-major
var<workgroup> Bs: array<f32, 1024>; // [TK][TILE], k-major

@compute @workgroup_size(16, 16)
fn main_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let tm0 = wg.y * TILE;
    let tn0 = wg.x * TILE;
    let bi = wg.z;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let tiles = (p.k + TK - 1u) / TK;
    for (var t = 0u; t < tiles; t++) {
        let k0 = t * TK;
        for (var l = 0u; l < 4u; l++) {
            let e = l * 256u + tid;
            // A tile: e -> (row = e / TK, kk = e % TK); B tile: e -> (kk = e / TILE, col = e % TILE).
            let ar = e / TK;
            let ak = e % TK;
            let a_ok = tm0 + ar < p.m && k0 + ak < p.k;
            let av = a_at(bi, min(tm0 + ar, p.m - 1u), min(k0 + ak, p.k - 1u));
            As[ak * TILE + ar] = select(0.0, av, a_ok);
            let bk = e / TILE;
            let bc = e % TILE;
            let b_ok = k0 + bk < p.k && tn0 + bc < p.n;
            let bv = b_at(bi, min(k0 + bk, p.k - 1u), min(tn0 + bc, p.n - 1u));
            Bs[bk * TILE + bc] = select(0.0, bv, b_ok);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let b = vec4<f32>(Bs[kk * TILE + lid.x * 4u], Bs[kk * TILE + lid.x * 4u + 1u], Bs[kk * TILE + lid.x * 4u + 2u], Bs[kk * TILE + lid.x * 4u + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(As[kk * TILE + lid.y * 4u + i]), b, acc[i]);
            }
        }
        workgroupBarrier();
    }
    store_block(bi, tm0 + lid.y * 4u, tn0 + lid.x * 4u, acc);
}
