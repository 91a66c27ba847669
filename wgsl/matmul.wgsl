// C = act(op(A) · op(B) + bias), batched, any M, N, K (runtime/src/ops/matmul.rs has the shape
// rules). Two entry points share the loaders:
//   main_reg   — register-blocked, no workgroup memory and no barriers: each invocation
//                computes a ROWS × COLS block straight from memory. Fastest on CPU-like adapters
//                (lavapipe), where each invocation is one SIMD lane, every lane-varying load is
//                a gather, barriers are expensive and caches do the tiling — so the larger the
//                block, the fewer loads per multiply-add. With VEC4 (operands 16-byte aligned,
//                checked by the host) A is read four K values at a time and B eight N values at a
//                time; otherwise element by element.
//   main_tiled — 64×64 output tiles with 16-deep K tiles staged in workgroup memory, 4×4
//                outputs per invocation. The classic design for real GPUs.
// Edges: indices are clamped into range and the value masked, so nothing is read out of
// bounds and the inner loops have no branches. B may be f32, bf16, f16 or q8 (B_FORMAT, see
// common.wgsl): q8 scales along the output column multiply each sum once, at the store; scales
// along K (a transposed kernel, or a table) multiply each element as it is read.
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
    // Index in SCALES of this dispatch's first K (q8 scales along K, when K is split).
    s_off: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Bound as vectors so the VEC4 path can load 16 bytes at once; element i is [i / 4][i % 4].
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
// q8 scales of B (B_FORMAT 3: one per output column; 4: one per K).
@group(0) @binding(5) var<storage, read> SCALES: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override B_FORMAT: u32 = 0u;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;
override ACCUMULATE: bool = false;
override EPILOGUE: bool = true;
override VEC4: bool = false;
override ROWS: u32 = 16u;
// 8 or 16 columns per invocation of main_reg; the accumulators below hold at most 16 × 16.
override COLS: u32 = 8u;
const MAX_ACC: u32 = 64u;

// op(A)[row, col] of batch entry bi; row < M and col < K.
fn a_at(bi: u32, row: u32, col: u32) -> f32 {
    let base = p.a_off + bi * p.a_bstride;
    var i: u32;
    if TRANS_A {
        i = base + col * p.lda + row;
    } else {
        i = base + row * p.lda + col;
    }
    return A[i >> 2u][i & 3u];
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
    let w = word_index(i, B_FORMAT);
    let v = unpack_elem(B[w >> 2u][w & 3u], i, B_FORMAT);
    if B_FORMAT == 4u {
        return v * SCALES[p.s_off + row];
    }
    return v;
}

fn f16x2(w: u32) -> vec2<f32> {
    return vec2<f32>(f16_bits_to_f32(w & 0xffffu), f16_bits_to_f32(w >> 16u));
}

// op(B)[k, n..n+8] (VEC4 path: not transposed; n and the row start aligned to 4 elements for
// f32, 8 for the other formats, and for f32 the second half clamped to stay inside the row).
fn b_row8(bi: u32, k: u32, n: u32) -> array<vec4<f32>, 2> {
    let row = p.b_off + bi * p.b_bstride + k * p.ldb;
    if B_FORMAT == 0u {
        let n1 = min(n + 4u, p.n - 4u);
        return array<vec4<f32>, 2>(bitcast<vec4<f32>>(B[(row + n) >> 2u]), bitcast<vec4<f32>>(B[(row + n1) >> 2u]));
    }
    if B_FORMAT >= 3u {
        // Eight bytes: half of a vec4 of words.
        let e = row + n;
        let w = B[e >> 4u];
        let pair = select(w.xy, w.zw, (e & 8u) != 0u);
        var s = 1.0;
        if B_FORMAT == 4u {
            s = SCALES[p.s_off + k];
        }
        return array<vec4<f32>, 2>(q8x4(pair.x) * s, q8x4(pair.y) * s);
    }
    let w = B[(row + n) >> 3u];
    if B_FORMAT == 1u {
        let m = 0xffff0000u;
        return array<vec4<f32>, 2>(
            bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & m, w.y << 16u, w.y & m)),
            bitcast<vec4<f32>>(vec4<u32>(w.z << 16u, w.z & m, w.w << 16u, w.w & m)),
        );
    }
    return array<vec4<f32>, 2>(vec4<f32>(f16x2(w.x), f16x2(w.y)), vec4<f32>(f16x2(w.z), f16x2(w.w)));
}

fn store(bi: u32, row: u32, col: u32, acc: f32) {
    let i = p.c_off + bi * p.c_bstride + row * p.n + col;
    var v = acc;
    if B_FORMAT == 3u {
        v *= SCALES[col];
    }
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

@compute @workgroup_size(8, 8)
fn main_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * COLS;
    let m0 = gid.y * ROWS;
    let bi = gid.z;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    // acc[V * i + h] holds row m0 + i, columns n0 + 4h .. n0 + 4h + 3 (V vectors per row).
    let V = COLS / 4u;
    var acc: array<vec4<f32>, MAX_ACC>;
    for (var i = 0u; i < V * ROWS; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    if VEC4 {
        let a_base = p.a_off + bi * p.a_bstride;
        // The second group of 8 columns, clamped into the row (past N only where every column it
        // would hold is past N, so the store drops them).
        let n8 = min(n0 + 8u, p.n - select(8u, 4u, B_FORMAT == 0u));
        for (var k = 0u; k < p.k; k += 4u) {
            var b: array<array<vec4<f32>, 4>, 4>; // [K offset][column vector]
            for (var kk = 0u; kk < 4u; kk++) {
                let lo = b_row8(bi, k + kk, n0);
                b[kk][0] = lo[0];
                b[kk][1] = lo[1];
                if COLS == 16u {
                    let hi = b_row8(bi, k + kk, n8);
                    b[kk][2] = hi[0];
                    b[kk][3] = hi[1];
                }
            }
            for (var i = 0u; i < ROWS; i++) {
                let row = min(m0 + i, p.m - 1u);
                let a = A[(a_base + row * p.lda + k) >> 2u];
                for (var h = 0u; h < V; h++) {
                    acc[V * i + h] = fma(vec4<f32>(a.x), b[0][h], fma(vec4<f32>(a.y), b[1][h], fma(vec4<f32>(a.z), b[2][h], fma(vec4<f32>(a.w), b[3][h], acc[V * i + h]))));
                }
            }
        }
    } else {
        for (var k = 0u; k < p.k; k++) {
            var b: array<vec4<f32>, 4>;
            for (var j = 0u; j < COLS; j++) {
                b[j / 4u][j % 4u] = b_at(bi, k, min(n0 + j, p.n - 1u));
            }
            for (var i = 0u; i < ROWS; i++) {
                let a = vec4<f32>(a_at(bi, min(m0 + i, p.m - 1u), k));
                for (var h = 0u; h < V; h++) {
                    acc[V * i + h] = fma(a, b[h], acc[V * i + h]);
                }
            }
        }
    }
    for (var i = 0u; i < ROWS; i++) {
        if m0 + i < p.m {
            for (var j = 0u; j < COLS; j++) {
                if n0 + j < p.n {
                    store(bi, m0 + i, n0 + j, acc[V * i + j / 4u][j % 4u]);
                }
            }
        }
    }
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
