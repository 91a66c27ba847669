// Workgroup reductions for row kernels (one workgroup per row, WG invocations, WG a power of
// two). The host prepends this file to the shaders that use it.

override WG: u32 = 64u;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// Sums of two values over the workgroup.
fn reduce_sum2(lid: u32, a: f32, b: f32) -> vec2<f32> {
    red_a[lid] = a;
    red_b[lid] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            red_a[lid] += red_a[lid + s];
            red_b[lid] += red_b[lid + s];
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(red_a[0], red_b[0]);
    workgroupBarrier();
    return r;
}

// Largest value over the workgroup and the smallest index holding it (NaN never wins).
fn reduce_argmax(lid: u32, v: f32, i: u32) -> vec2<u32> {
    red_a[lid] = v;
    red_i[lid] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            let ov = red_a[lid + s];
            let oi = red_i[lid + s];
            let mv = red_a[lid];
            if ov > mv || (ov == mv && oi < red_i[lid]) || (mv != mv && ov == ov) {
                red_a[lid] = ov;
                red_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    let r = vec2<u32>(bitcast<u32>(red_a[0]), red_i[0]);
    workgroupBarrier();
    return r;
}
