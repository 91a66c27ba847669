// Helpers shared by several kernels; the host prepends this file to the shaders that use it.

// Index of this invocation in a 1-D job laid out over a 2-D grid of workgroups of `wg`
// invocations (grids are 2-D because one dimension holds at most 65535 workgroups).
fn flat_index(wg_id: vec3<u32>, num_wg: vec3<u32>, local: u32, wg: u32) -> u32 {
    return (wg_id.y * num_wg.x + wg_id.x) * wg + local;
}

// Index of this workgroup in a 2-D grid (one workgroup per row in row kernels).
fn flat_group(wg_id: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg_id.y * num_wg.x + wg_id.x;
}

// GELU, tanh approximation (jax.nn.gelu(approximate=True)). The tanh argument is clamped
// because some drivers compute tanh through exp and overflow to NaN for large inputs;
// tanh(±15) is ±1 in f32.
fn gelu(x: f32) -> f32 {
    let t = clamp(0.7978846 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(t));
}

// Tensors stored as f32 (fmt 0), bf16 (fmt 1), f16 (fmt 2) or q8 (fmt 3 and 4: signed bytes,
// four to a word; the kernel multiplies by the scales, which it binds separately: 3 when they
// run along the output column, 4 along the reduction or the gathered row) are bound as
// array<u32>. `word_index` gives the word holding element i; `unpack_elem` extracts element i
// from it (q8: the integer value, unscaled). bf16 is the top half of an f32, so it unpacks with
// a shift and needs no f16 support.
fn word_index(i: u32, fmt: u32) -> u32 {
    if fmt == 0u {
        return i;
    }
    if fmt >= 3u {
        return i >> 2u;
    }
    return i >> 1u;
}

fn unpack_elem(word: u32, i: u32, fmt: u32) -> f32 {
    if fmt == 0u {
        return bitcast<f32>(word);
    }
    if fmt >= 3u {
        return f32(bitcast<i32>(word << ((3u - (i & 3u)) * 8u)) >> 24u);
    }
    let half = (word >> ((i & 1u) * 16u)) & 0xffffu;
    if fmt == 1u {
        return bitcast<f32>(half << 16u);
    }
    return f16_bits_to_f32(half);
}

// IEEE half → single by bit manipulation (unpack2x16float needs a capability naga does not
// grant every backend).
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if e == 0u {
        // Zero or subnormal: m · 2⁻²⁴.
        let v = f32(m) * 5.9604645e-8;
        return select(v, -v, sign != 0u);
    }
    if e == 31u {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// The four signed bytes of a word, low byte first.
fn q8x4(w: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    return vec4<f32>(v >> vec4<u32>(24u));
}
