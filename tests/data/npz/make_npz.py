"""Writes the small big_vision-style .npz files that `cli/tests/convert.rs` loads.

Run from this folder with numpy and ml_dtypes (JAX's bfloat16 for numpy) installed
(`pip install numpy ml_dtypes`): `python3 make_npz.py`.
The outputs are committed, so the tests need no Python.

Each file holds the parameters of a tiny CapPa model under the reference's names (spec §6),
saved the way big_vision saves a checkpoint: `np.savez` / `np.savez_compressed` of the flattened
tree, keys joined with "/". Every value is exactly representable in f16, bf16, f32 and f64, and
follows a formula of the parameter's loop-layout name and flat index that the Rust test
recomputes:

    seed(name) = sum((j + 1) * byte for j, byte in enumerate(name)) % 1000
    value(name, i) = ((seed(name) + 7 * i) % 255 - 127) / 128

Files:
- loop.npz: `np.savez`, loop layout (`encoderblock_{i}`, `EncDecBlock{i}`), float32.
- scan_params.npz: `np.savez`, scan layout (encoder blocks stacked on axis 0 as
  `encoder/Transformer/encoderblock/...`, decoder blocks on axis 1 as `decoder/EncDecBlock/...`),
  float32, the tree under `params/` beside optimizer state under `opt/` (as big_vision saves a
  training checkpoint).
- scan_compressed_bf16.npz: `np.savez_compressed`, scan layout, `ml_dtypes.bfloat16` (the dtype of
  a JAX bf16 array on the host), which numpy stores as the 2-byte void `<V2`; big_vision's
  `recover_dtype` reads it back as bfloat16.
- cap_only_f16_f64.npz: `np.savez`, loop layout, a Cap-only model (no [MASK] row) without decoder
  biases; kernels float16, everything else float64.
"""

import ml_dtypes
import numpy as np

# CapPa (with [MASK] row), decoder biases, decoder wider than the encoder.
CAPPA = dict(image_size=8, patch_size=4, in_channels=3, enc_width=16, enc_depth=2, enc_heads=2,
             enc_mlp=32, dec_width=24, dec_depth=2, dec_heads=4, dec_mlp=40, vocab_size=12,
             max_len=6, decoder_bias=True, mask_row=True)
# Cap-only, no decoder biases, one head.
CAP_ONLY = dict(CAPPA, enc_depth=1, dec_depth=1, dec_width=16, dec_heads=1, dec_mlp=24,
                decoder_bias=False, mask_row=False)


def param_shapes(c):
    """Loop-layout parameter names and shapes of config `c` (spec §6)."""
    p, e, d = c["patch_size"], c["enc_width"], c["dec_width"]
    he, hd = c["enc_heads"], c["dec_heads"]
    n = (c["image_size"] // p) ** 2
    s = {
        "encoder/embedding/kernel": (p, p, c["in_channels"], e),
        "encoder/embedding/bias": (e,),
        "encoder/pos_embedding": (1, n, e),
        "encoder/Transformer/encoder_norm/scale": (e,),
        "encoder/Transformer/encoder_norm/bias": (e,),
        "pos_embedding_decoder": (1, c["max_len"], d),
        "decoder/EmbedTargets/embedding": (c["vocab_size"] + c["mask_row"], d),
        "decoder/LayerNorm/scale": (d,),
        "decoder/LayerNorm/bias": (d,),
        "decoder/LogitsDense/kernel": (d, c["vocab_size"]),
        "decoder/LogitsDense/bias": (c["vocab_size"],),
    }
    for i in range(c["enc_depth"]):
        b = f"encoder/Transformer/encoderblock_{i}"
        for ln in ("LayerNorm_0", "LayerNorm_1"):
            s[f"{b}/{ln}/scale"] = (e,)
            s[f"{b}/{ln}/bias"] = (e,)
        a = f"{b}/MultiHeadDotProductAttention_0"
        for proj in ("query", "key", "value"):
            s[f"{a}/{proj}/kernel"] = (e, he, e // he)
            s[f"{a}/{proj}/bias"] = (he, e // he)
        s[f"{a}/out/kernel"] = (he, e // he, e)
        s[f"{a}/out/bias"] = (e,)
        s[f"{b}/MlpBlock_0/Dense_0/kernel"] = (e, c["enc_mlp"])
        s[f"{b}/MlpBlock_0/Dense_0/bias"] = (c["enc_mlp"],)
        s[f"{b}/MlpBlock_0/Dense_1/kernel"] = (c["enc_mlp"], e)
        s[f"{b}/MlpBlock_0/Dense_1/bias"] = (e,)
    for j in range(c["dec_depth"]):
        b = f"decoder/EncDecBlock{j}"
        for ln in ("LayerNorm1", "LayerNorm2", "LayerNorm3"):
            s[f"{b}/{ln}/scale"] = (d,)
            if c["decoder_bias"]:
                s[f"{b}/{ln}/bias"] = (d,)
        for attn, kv_in in (("SelfAttn", d), ("CrossAttn", e)):
            s[f"{b}/{attn}/query/kernel"] = (d, hd, d // hd)
            s[f"{b}/{attn}/key/kernel"] = (kv_in, hd, d // hd)
            s[f"{b}/{attn}/value/kernel"] = (kv_in, hd, d // hd)
            s[f"{b}/{attn}/out/kernel"] = (hd, d // hd, d)
        s[f"{b}/MLP/Dense_0/kernel"] = (d, c["dec_mlp"])
        s[f"{b}/MLP/Dense_1/kernel"] = (c["dec_mlp"], d)
        if c["decoder_bias"]:
            s[f"{b}/MLP/Dense_0/bias"] = (c["dec_mlp"],)
            s[f"{b}/MLP/Dense_1/bias"] = (d,)
    return s


def values(name, shape):
    seed = sum((j + 1) * b for j, b in enumerate(name.encode())) % 1000
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((seed + 7 * i) % 255 - 127) / 128).astype(np.float32).reshape(shape)


def loop_params(c):
    return {name: values(name, shape) for name, shape in param_shapes(c).items()}


def to_scan(params, c):
    """big_vision's scan layout: encoder blocks stacked on axis 0, decoder blocks on axis 1."""
    out = {}
    groups = (("encoder/Transformer/encoderblock_", "encoder/Transformer/encoderblock/",
               c["enc_depth"], 0),
              ("decoder/EncDecBlock", "decoder/EncDecBlock/", c["dec_depth"], 1))
    for name, v in params.items():
        if not any(name.startswith(loop) for loop, _, _, _ in groups):
            out[name] = v
    for loop, stacked, depth, axis in groups:
        rests = {k[len(f"{loop}0/"):] for k in params if k.startswith(f"{loop}0/")}
        for rest in sorted(rests):
            out[stacked + rest] = np.stack(
                [params[f"{loop}{i}/{rest}"] for i in range(depth)], axis=axis)
    return out


def main():
    cappa = loop_params(CAPPA)
    np.savez("loop.npz", **cappa)

    scan = to_scan(cappa, CAPPA)
    training = {f"params/{k}": v for k, v in scan.items()}
    training["opt/state/count"] = np.array(1234, dtype=np.int64)
    training["opt/state/mu/decoder/LogitsDense/bias"] = np.zeros(12, np.float32)
    np.savez("scan_params.npz", **training)

    np.savez_compressed("scan_compressed_bf16.npz",
                        **{k: v.astype(ml_dtypes.bfloat16) for k, v in scan.items()})

    cap_only = {k: v.astype(np.float16 if k.endswith("kernel") else np.float64)
                for k, v in loop_params(CAP_ONLY).items()}
    np.savez("cap_only_f16_f64.npz", **cap_only)


if __name__ == "__main__":
    main()
