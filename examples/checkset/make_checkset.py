#!/usr/bin/env python3
"""An independent check set for cappa's shapes-world models.

Draws pictures of one or two coloured shapes with Pillow and captions them in the shapes
world's words and grammar ("a small red circle", "a large blue square above a small yellow
cross"), but with geometry, colours, backgrounds, sizes, positions and rasterisation of its own:
it shares no code with cappa (it imports none) and was written apart from the trainer's renderer
(trainer/src/shapes.rs). What it shares is the meaning of the words:

* colours: a handful of common named shades per word (web, Tableau, Kelly and Okabe-Ito
  palettes), jittered a little; each stays inside its word's hue / saturation / value range as
  documented in docs/experiments.md (checked below, so a shade that could be read as another
  word is never drawn);
* sizes: "small" is 8-12% of the picture's side from centre to the shape's outermost point,
  "large" 16-21%;
* relations: "X to the left of Y" means X's centre is left of Y's with the shapes' extents
  apart by at least 5% of the side, and the offset across the axis at most 0.4 of the offset
  along it (likewise right of, above, below);
* the three colour + shape pairs the trainer holds out (purple triangle, orange square, green
  hexagon) are not drawn: this set measures new pictures, not new pairs.

Pictures are 64-160 px square PNGs on plain, noisy (fine grain or blotchy) or gradient
backgrounds, drawn either directly (hard, aliased edges) or at 4x and box-filtered down
(anti-aliased).

Usage (the committed set was made with Pillow 13.0.0; other versions may rasterise a few edge
pixels differently):

    pip install pillow==13.0.0
    python3 examples/checkset/make_checkset.py --out examples/checkset --seed 16 --one 100 --two 100

Writes scene-NNN.png, captions.jsonl ({"image": ..., "caption": ...} per line, the format
`cappa-train shapes` writes and `cappa-train eval --checkset` reads), scenes.jsonl (what was
drawn, per picture: size, background, edges, and per object its words, RGB colour, centre and
extent as fractions of the side) and NOT-FOR-TRAINING (the trainer refuses to train on a folder
that has it).
"""

import argparse
import colorsys
import json
import math
import os
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter

SHAPES = ["circle", "square", "triangle", "diamond", "cross", "hexagon"]
RELATIONS = ["to the left of", "to the right of", "above", "below"]
HELD_OUT = {("purple", "triangle"), ("orange", "square"), ("green", "hexagon")}

# Named shades per colour word.
PALETTE = {
    "red": ["#ff0000", "#d62728", "#cc2222", "#b22222", "#e8281e", "#e31a1c"],
    "green": ["#2ca02c", "#008000", "#3cb44b", "#32cd32", "#228b22", "#4daf4a"],
    "blue": ["#1f77b4", "#0000ff", "#4363d8", "#0072b2", "#4169e1", "#1e40c8"],
    "yellow": ["#ffd700", "#ffe119", "#f0e442", "#ffff00", "#fce205", "#ffdd33"],
    "purple": ["#9467bd", "#911eb4", "#800080", "#6a0dad", "#7b2cbf", "#8e44ad"],
    "orange": ["#ff7f0e", "#ff8c00", "#f58231", "#f28e2b", "#ff9505", "#fa7d1e"],
}

# Each word's range: hue in degrees (may wrap below 0), saturation, value (HSV, 0-1).
RANGES = {
    "red": ((-10, 5), (0.65, 1.0), (0.55, 1.0)),
    "orange": ((24, 40), (0.75, 1.0), (0.85, 1.0)),
    "yellow": ((50, 62), (0.6, 1.0), (0.85, 1.0)),
    "green": ((95, 145), (0.5, 1.0), (0.4, 1.0)),
    "blue": ((200, 240), (0.6, 1.0), (0.5, 1.0)),
    "purple": ((262, 300), (0.45, 1.0), (0.4, 0.8)),
}

SMALL = (0.08, 0.12)
LARGE = (0.16, 0.21)
SUPERSAMPLE = 4


def hex_rgb(h):
    return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))


def in_range(word, rgb):
    (h0, h1), (s0, s1), (v0, v1) = RANGES[word]
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    h *= 360
    if h > 180 and h0 < 0:
        h -= 360
    return h0 <= h <= h1 and s0 <= s <= s1 and v0 <= v <= v1


def shade(rng, word):
    """A named shade of `word`, each channel moved by up to 10, kept inside the word's range."""
    base = hex_rgb(rng.choice(PALETTE[word]))
    assert in_range(word, base), (word, base)
    while True:
        rgb = tuple(max(0, min(255, c + rng.randint(-10, 10))) for c in base)
        if in_range(word, rgb):
            return rgb


def grey_tint(rng, lo, hi):
    """A colour of low saturation (at most 0.15) and value in [lo, hi]: never a colour word."""
    h, s, v = rng.random(), rng.uniform(0, 0.15), rng.uniform(lo, hi)
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))


def background(rng, w):
    kind = rng.choice(["plain", "plain", "noisy", "gradient"])
    if kind == "plain":
        choice = rng.random()
        if choice < 0.35:
            colour = (255, 255, 255)
        elif choice < 0.5:
            colour = (0, 0, 0) if rng.random() < 0.3 else grey_tint(rng, 0.05, 0.3)
        else:
            colour = grey_tint(rng, 0.3, 1.0)
        return kind, Image.new("RGB", (w, w), colour)
    if kind == "noisy":
        base = Image.new("RGB", (w, w), grey_tint(rng, 0.25, 0.9))
        sigma = rng.uniform(8, 30)
        blotchy = rng.random() < 0.4
        channels = []
        for _ in range(3):
            n = Image.effect_noise((w, w), sigma)
            if blotchy:
                n = n.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
                # Blurring shrinks the spread; stretch it back around the mean (128).
                n = n.point(lambda p: max(0, min(255, 128 + (p - 128) * 3)))
            channels.append(n)
        if rng.random() < 0.5:  # grey grain: the same noise in every channel
            channels = [channels[0]] * 3
        noise = Image.merge("RGB", channels)
        return kind, ImageChops.add(base, noise, scale=1.0, offset=-128)
    a, b = grey_tint(rng, 0.1, 1.0), grey_tint(rng, 0.1, 1.0)
    # A 256 px ramp turned by any angle; its centre (which the turned ramp covers) is the mask.
    ramp = Image.linear_gradient("L").rotate(rng.uniform(0, 360), resample=Image.BILINEAR, expand=True)
    c = ramp.width // 2
    mask = ramp.crop((c - 88, c - 88, c + 88, c + 88)).resize((w, w), Image.BILINEAR)
    return kind, Image.composite(Image.new("RGB", (w, w), a), Image.new("RGB", (w, w), b), mask)


def rotate(points, cx, cy, degrees):
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def outline(shape, r, rng):
    """The shape's outline, centred on (0, 0), as polygons (None for the circle), y down."""
    if shape == "square":
        h = 0.78 * r  # its corners are 1.1 r out
        return [[(-h, -h), (h, -h), (h, h), (-h, h)]], rng.uniform(-10, 10)
    if shape == "triangle":
        pts = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for a in (-90, 30, 150)]
        # Centred on its bounding box rather than its centroid, so it sits where it is put.
        dy = (r - r * 0.5) / 2
        return [[(x, y - dy) for x, y in pts]], rng.uniform(-15, 15)
    if shape == "diamond":
        hw = r * rng.uniform(0.7, 0.95)
        return [[(0, -r), (hw, 0), (0, r), (-hw, 0)]], rng.uniform(-8, 8)
    if shape == "cross":
        t = r * rng.uniform(0.22, 0.38)
        return [[(-r, -t), (r, -t), (r, t), (-r, t)], [(-t, -r), (t, -r), (t, r), (-t, r)]], rng.uniform(-10, 10)
    if shape == "hexagon":
        pts = [(r * math.cos(math.radians(60 * k)), r * math.sin(math.radians(60 * k))) for k in range(6)]
        return [pts], rng.choice([0, 30]) + rng.uniform(-5, 5)
    return None, 0.0


def geometry(obj, rng):
    """The object's polygons in picture pixels (rotated), or None for a circle."""
    polys, angle = outline(obj["shape"], obj["r"], rng)
    if polys is None:
        return None
    return [rotate(poly, obj["cx"], obj["cy"], angle) for poly in polys]


def draw_object(draw, obj, scale, fill):
    if obj["polys"] is None:
        cx, cy, r = obj["cx"] * scale, obj["cy"] * scale, obj["r"] * scale
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        return
    for poly in obj["polys"]:
        draw.polygon([(x * scale, y * scale) for x, y in poly], fill=fill)


def pick_object(rng):
    while True:
        colour, shape = rng.choice(list(PALETTE)), rng.choice(SHAPES)
        if (colour, shape) not in HELD_OUT:
            size = rng.choice(["small", "large"])
            return {"colour": colour, "shape": shape, "size": size, "rgb": shade(rng, colour), "f": rng.uniform(*(SMALL if size == "small" else LARGE))}


def place(rng, w, objs, relation):
    """Centres, by rejection: inside the picture with a 2 px margin, and for two objects clearly
    in `relation` (first object relative to the second)."""
    for o in objs:
        o["r"] = o["f"] * w
    for _ in range(100000):
        for o in objs:
            lo, hi = o["r"] + 2, w - o["r"] - 2
            o["cx"], o["cy"] = rng.uniform(lo, hi), rng.uniform(lo, hi)
        if relation is None:
            return
        a, b = objs
        along = {"to the left of": b["cx"] - a["cx"], "to the right of": a["cx"] - b["cx"], "above": b["cy"] - a["cy"], "below": a["cy"] - b["cy"]}[relation]
        across = abs(a["cy"] - b["cy"]) if relation in RELATIONS[:2] else abs(a["cx"] - b["cx"])
        if along >= a["r"] + b["r"] + 0.05 * w and across <= 0.4 * along:
            return
    raise RuntimeError(f"cannot place {objs} {relation} in {w} px")


def words(o):
    return f"{o['size']} {o['colour']} {o['shape']}"


def scene(rng, two):
    w = rng.randint(64, 160)
    objs = [pick_object(rng)] + ([pick_object(rng)] if two else [])
    relation = rng.choice(RELATIONS) if two else None
    place(rng, w, objs, relation)
    for o in objs:
        o["polys"] = geometry(o, rng)
    kind, img = background(rng, w)
    anti_aliased = rng.random() < 0.5
    if anti_aliased:
        # Drawn at 4x, colour and coverage apart, reduced, then laid over the background.
        big = (w * SUPERSAMPLE, w * SUPERSAMPLE)
        layer, mask = Image.new("RGB", big), Image.new("L", big, 0)
        for o in objs:
            draw_object(ImageDraw.Draw(layer), o, SUPERSAMPLE, o["rgb"])
            draw_object(ImageDraw.Draw(mask), o, SUPERSAMPLE, 255)
        layer = layer.resize((w, w), Image.BOX)
        mask = mask.resize((w, w), Image.BOX)
        img = Image.composite(layer, img, mask)
    else:
        draw = ImageDraw.Draw(img)
        for o in objs:
            draw_object(draw, o, 1, o["rgb"])
    caption = "a " + words(objs[0]) + ("" if not two else f" {relation} a {words(objs[1])}")
    meta = {
        "size": w,
        "background": kind,
        "edges": "anti-aliased" if anti_aliased else "hard",
        "relation": relation,
        "objects": [
            {"words": words(o), "rgb": list(o["rgb"]), "x": o["cx"] / w, "y": o["cy"] / w, "radius": o["r"] / w}
            for o in objs
        ],
    }
    return img, caption, meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--one", type=int, default=100, help="one-object pictures")
    p.add_argument("--two", type=int, default=100, help="two-object pictures")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    captions, scenes = [], []
    for i in range(args.one + args.two):
        img, caption, meta = scene(rng, two=i >= args.one)
        name = f"scene-{i:03}.png"
        img.save(os.path.join(args.out, name), optimize=True)
        captions.append({"image": name, "caption": caption})
        scenes.append(dict({"image": name, "caption": caption}, **meta))
    with open(os.path.join(args.out, "captions.jsonl"), "w") as f:
        f.writelines(json.dumps(c) + "\n" for c in captions)
    with open(os.path.join(args.out, "scenes.jsonl"), "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in scenes)
    with open(os.path.join(args.out, "NOT-FOR-TRAINING"), "w") as f:
        f.write("A check set: pictures drawn by make_checkset.py to measure models on, never to train on.\n")
    print(f"{len(captions)} pictures written to {args.out}")


if __name__ == "__main__":
    main()
