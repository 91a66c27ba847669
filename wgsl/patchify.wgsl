// Patch extraction (im2col for the stride-p patch-embedding convolution): NHWC images
// [B, H, W, C] → [B, (H/p)·(W/p), p·p·C], values in (row-in-patch, column, channel) order to
// match the conv kernel [p, p, C, width] flattened to [p·p·C, width].

struct Params {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    psize: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> IMG: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = flat_index(wg, nwg, lid, 64u);
    if e >= p.batch * p.h * p.w * p.c {
        return;
    }
    let pd = p.psize * p.psize * p.c;
    let gw = p.w / p.psize;
    let gh = p.h / p.psize;
    let v = e % pd;
    let pidx = (e / pd) % (gh * gw);
    let b = e / (pd * gh * gw);
    let ch = v % p.c;
    let dx = (v / p.c) % p.psize;
    let dy = v / (p.c * p.psize);
    let y = (pidx / gw) * p.psize + dy;
    let x = (pidx % gw) * p.psize + dx;
    OUT[e] = IMG[((b * p.h + y) * p.w + x) * p.c + ch];
}
