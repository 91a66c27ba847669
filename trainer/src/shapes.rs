//! The shapes world: a seeded generator of small images of one or two coloured shapes on a
//! varied background, with captions that describe them exactly ("a large red circle to the left
//! of a small blue square"). It gives cappa a model that really captions, trained offline, and a
//! testbed for the paper's claims at small scale: the encoder's features separate attributes, and
//! the decoder is sensitive to word order.
//!
//! Example `i` of a split is a pure function of `(seed, split, i)`: nothing is stored, and any
//! split can be regenerated anywhere, at any image size.
//!
//! # What a word means, and how much the drawing varies
//!
//! Each word names a range, and scenes are drawn anywhere in it, so that a model trained here
//! names pictures drawn by other programs. The ranges of different words are apart:
//!
//! | knob | range |
//! |---|---|
//! | colour shade | per colour word an HSV box ([`Colour::range`]); hues: red −10…5°, orange 24…40°, yellow 50…62°, green 95…145°, blue 200…240°, purple 262…300°, with saturation and value floors per word (no dark orange that reads brown, no pale purple that reads grey) |
//! | size | nominal radius (half the unrotated width) as a fraction of the image side: small 0.07…0.115, large 0.14…0.19 ([`Size::radius_range`]) |
//! | position | anywhere, the whole object at least 0.02 of the side inside the image; two objects' bounding boxes at least 0.04 apart along the relation's axis, and their centres offset across it by at most 0.4 of the offset along it |
//! | rotation | square and diamond ±12° (they never meet: 21° stay between them), triangle and cross ±15°, hexagon any, circle none |
//! | proportions | diamond width 0.7…1 of its height, cross arms 0.24…0.40 of their length thick, triangle base 0.85…1 of its height |
//! | background | plain (2/5), a linear gradient between two colours along any direction (1/4), or noise (7/20: per-pixel or blotches, grey or coloured, 12…50 of 255 peak to peak); background colours have saturation at most 0.2 (never a colour word), any brightness: a quarter near white, a tenth near black |
//! | grain | noise over the whole picture, objects included: 0…8 of 255 peak to peak |
//! | edges | hard (a third: each pixel in or out, as a picture drawn without anti-aliasing, or a large one shrunk by the model's resize) or anti-aliased with a ramp of 0.5…1.5 pixels |
//! | picture size | three quarters drawn at the model's size; a quarter at 0.75…3 times it and resized by the model's preprocessing, as a user's picture is ([`Scene::pixels`]) |

use cappa::rng::Rng;

/// Shapes, in vocabulary order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A disc.
    Circle,
    /// An axis-aligned square.
    Square,
    /// An upward triangle.
    Triangle,
    /// A square standing on a corner.
    Diamond,
    /// A plus sign.
    Cross,
    /// A regular hexagon.
    Hexagon,
}

/// Colours, in vocabulary order. Each names a range of shades ([`Colour::range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// Hue −10…5°.
    Red,
    /// Hue 95…145°.
    Green,
    /// Hue 200…240°.
    Blue,
    /// Hue 50…62°, bright.
    Yellow,
    /// Hue 262…300°, not too bright (bright magenta is not purple).
    Purple,
    /// Hue 24…40°, bright (dark orange is brown).
    Orange,
}

/// Sizes ([`Size::radius_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 0.14…0.23 of the image across.
    Small,
    /// 0.28…0.38 of the image across.
    Large,
}

/// Where the first object is relative to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// "to the left of"
    LeftOf,
    /// "to the right of"
    RightOf,
    /// "above"
    Above,
    /// "below"
    Below,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
        Shape::Cross,
        Shape::Hexagon,
    ];
    /// Its word.
    pub fn word(self) -> &'static str {
        [
            "circle", "square", "triangle", "diamond", "cross", "hexagon",
        ][self as usize]
    }
}

impl Colour {
    /// Every colour.
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
    ];
    /// Its word.
    pub fn word(self) -> &'static str {
        ["red", "green", "blue", "yellow", "purple", "orange"][self as usize]
    }
    /// The shades the word names.
    pub fn range(self) -> ColourRange {
        let (hue, saturation, value) = [
            ((-10.0, 5.0), (0.65, 1.0), (0.55, 1.0)),
            ((95.0, 145.0), (0.5, 1.0), (0.4, 1.0)),
            ((200.0, 240.0), (0.6, 1.0), (0.5, 1.0)),
            ((50.0, 62.0), (0.6, 1.0), (0.85, 1.0)),
            ((262.0, 300.0), (0.45, 1.0), (0.4, 0.8)),
            ((24.0, 40.0), (0.75, 1.0), (0.85, 1.0)),
        ][self as usize];
        ColourRange {
            hue,
            saturation,
            value,
        }
    }

    /// The colour word whose range holds `rgb` (0…255 per channel), if any.
    pub fn of_rgb(rgb: [f32; 3]) -> Option<Colour> {
        Colour::ALL.into_iter().find(|c| c.range().contains(rgb))
    }
}

/// The shades a colour word names, in HSV: hue in degrees (a range starting below 0 wraps
/// through red), saturation and value in 0…1. Backgrounds have saturation at most
/// [`BACKGROUND_SATURATION`], below every word's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourRange {
    /// Hue, degrees.
    pub hue: (f32, f32),
    /// Saturation.
    pub saturation: (f32, f32),
    /// Value (brightness).
    pub value: (f32, f32),
}

impl ColourRange {
    /// Whether `rgb` (0…255 per channel) is one of these shades.
    pub fn contains(&self, rgb: [f32; 3]) -> bool {
        let [h, s, v] = rgb_to_hsv(rgb);
        let h = if self.hue.0 < 0.0 && h > 180.0 {
            h - 360.0
        } else {
            h
        };
        let within = |(lo, hi): (f32, f32), x: f32| lo <= x && x <= hi;
        within(self.hue, h) && within(self.saturation, s) && within(self.value, v)
    }

    /// A shade drawn uniformly from the box (RGB, 0…255).
    fn sample(&self, rng: &mut Rng) -> [f32; 3] {
        let mut pick = |(lo, hi): (f32, f32)| lo + (hi - lo) * rng.uniform();
        let h = pick(self.hue);
        let s = pick(self.saturation);
        let v = pick(self.value);
        hsv_to_rgb([h.rem_euclid(360.0), s, v])
    }
}

/// The highest saturation of a background colour.
pub const BACKGROUND_SATURATION: f32 = 0.2;

/// Hue in degrees (0…360), saturation and value (0…1) of `rgb` (0…255).
pub fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    let s = if max <= 0.0 { 0.0 } else { d / max };
    [h, s, max / 255.0]
}

/// RGB (0…255) of hue in degrees, saturation and value (0…1).
pub fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    let c = v * s;
    let hp = h.rem_euclid(360.0) / 60.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

impl Size {
    /// Every size.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];
    /// Its word.
    pub fn word(self) -> &'static str {
        ["small", "large"][self as usize]
    }

    /// The nominal radii it names (half an unrotated object's width), as fractions of the
    /// image side. The largest small object is 0.82 times the smallest large one.
    pub fn radius_range(self) -> (f32, f32) {
        [(0.07, 0.115), (0.14, 0.19)][self as usize]
    }
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];
    /// Its words.
    pub fn words(self) -> &'static str {
        ["to the left of", "to the right of", "above", "below"][self as usize]
    }

    /// The relation seen from the other object.
    pub fn inverse(self) -> Relation {
        [
            Relation::RightOf,
            Relation::LeftOf,
            Relation::Below,
            Relation::Above,
        ][self as usize]
    }
}

/// One object of a scene: its words, and how it is drawn. Positions and sizes are fractions of
/// the image side, so a scene can be drawn at any size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Its size.
    pub size: Size,
    /// Centre x (the point it turns about), 0…1 of the image width.
    pub x: f32,
    /// Centre y, 0…1 of the image height, downwards.
    pub y: f32,
    /// Nominal radius, within its size word's [`Size::radius_range`]: half its width unturned.
    pub radius: f32,
    /// Turned by this many radians (clockwise on the image).
    pub rotation: f32,
    /// Its shape's proportion, 0…1: a diamond's width (0.7…1 of its height), a cross's arm
    /// thickness (0.24…0.40 of the arm's length), a triangle's base (0.85…1 of its height).
    pub form: f32,
    /// Its shade, RGB 0…255, within its colour word's [`Colour::range`].
    pub rgb: [f32; 3],
}

/// An object's outline in image fractions: a disc, or the union of convex polygons.
enum Outline {
    Disc { x: f32, y: f32, r: f32 },
    Polygons(Vec<Vec<[f32; 2]>>),
}

impl Object {
    /// "large red circle"
    pub fn words(&self) -> String {
        self.phrase().words()
    }

    /// Its words.
    pub fn phrase(&self) -> Phrase {
        Phrase {
            size: self.size,
            colour: self.colour,
            shape: self.shape,
        }
    }

    /// The largest rotation either way its shape is drawn with, radians.
    fn max_rotation(shape: Shape) -> f32 {
        let degrees = match shape {
            Shape::Circle => 0.0,
            Shape::Square | Shape::Diamond => 12.0,
            Shape::Triangle | Shape::Cross => 15.0,
            Shape::Hexagon => 30.0,
        };
        f32::to_radians(degrees)
    }

    /// Its outline, unturned, in units of its radius about its centre (y down).
    fn unit_outline(&self) -> Vec<Vec<[f32; 2]>> {
        let f = self.form;
        match self.shape {
            Shape::Circle => Vec::new(),
            Shape::Square => {
                let h = 0.88;
                vec![vec![[-h, -h], [h, -h], [h, h], [-h, h]]]
            }
            Shape::Triangle => {
                let w = 0.85 + 0.15 * f;
                vec![vec![[0.0, -0.95], [w, 0.85], [-w, 0.85]]]
            }
            Shape::Diamond => {
                let (h, w) = (1.05, 1.05 * (0.7 + 0.3 * f));
                vec![vec![[0.0, -h], [w, 0.0], [0.0, h], [-w, 0.0]]]
            }
            Shape::Cross => {
                let t = 0.24 + 0.16 * f;
                vec![
                    vec![[-1.0, -t], [1.0, -t], [1.0, t], [-1.0, t]],
                    vec![[-t, -1.0], [t, -1.0], [t, 1.0], [-t, 1.0]],
                ]
            }
            Shape::Hexagon => vec![(0..6)
                .map(|k| {
                    let a = f32::to_radians(60.0 * k as f32);
                    [a.cos(), a.sin()]
                })
                .collect()],
        }
    }

    fn outline(&self) -> Outline {
        if self.shape == Shape::Circle {
            return Outline::Disc {
                x: self.x,
                y: self.y,
                r: self.radius,
            };
        }
        let (sin, cos) = self.rotation.sin_cos();
        let r = self.radius;
        Outline::Polygons(
            self.unit_outline()
                .into_iter()
                .map(|poly| {
                    poly.into_iter()
                        .map(|[u, v]| {
                            [
                                self.x + r * (u * cos - v * sin),
                                self.y + r * (u * sin + v * cos),
                            ]
                        })
                        .collect()
                })
                .collect(),
        )
    }

    /// Its bounding box `[left, right, top, bottom]`, in image fractions.
    pub fn bounds(&self) -> [f32; 4] {
        match self.outline() {
            Outline::Disc { x, y, r } => [x - r, x + r, y - r, y + r],
            Outline::Polygons(p) => p.iter().flatten().fold(
                [f32::MAX, f32::MIN, f32::MAX, f32::MIN],
                |[l, r, t, b], &[x, y]| [l.min(x), r.max(x), t.min(y), b.max(y)],
            ),
        }
    }

    /// Whether the point `(x, y)` (image fractions) is inside it.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        sdf(&self.outline_edges(1.0), x, y) <= 0.0
    }

    /// Its outline as a distance function in the pixels of a `size`-pixel image.
    fn outline_edges(&self, size: f32) -> Sdf {
        match self.outline() {
            Outline::Disc { x, y, r } => Sdf::Disc {
                x: x * size,
                y: y * size,
                r: r * size,
            },
            Outline::Polygons(polys) => {
                Sdf::Polygons(polys.iter().map(|poly| half_planes(poly, size)).collect())
            }
        }
    }
}

/// A shape's signed distance: negative inside, in pixels.
enum Sdf {
    Disc {
        x: f32,
        y: f32,
        r: f32,
    },
    /// The union of convex polygons, each the intersection of half-planes `n·p ≤ c` (unit `n`).
    Polygons(Vec<Vec<[f32; 3]>>),
}

/// The half-planes `[nx, ny, c]` of a convex polygon (vertices in image fractions), in pixels of
/// a `size`-pixel image, with unit outward normals.
fn half_planes(poly: &[[f32; 2]], size: f32) -> Vec<[f32; 3]> {
    let n = poly.len() as f32;
    let centre = poly
        .iter()
        .fold([0.0, 0.0], |[a, b], [x, y]| [a + x / n, b + y / n]);
    (0..poly.len())
        .map(|i| {
            let ([x0, y0], [x1, y1]) = (poly[i], poly[(i + 1) % poly.len()]);
            let (mut nx, mut ny) = (y1 - y0, x0 - x1);
            let len = nx.hypot(ny);
            (nx, ny) = (nx / len, ny / len);
            let mut c = (nx * x0 + ny * y0) * size;
            // Outward: the centre is inside.
            if nx * centre[0] * size + ny * centre[1] * size > c {
                (nx, ny, c) = (-nx, -ny, -c);
            }
            [nx, ny, c]
        })
        .collect()
}

/// Signed distance of the point `(x, y)` to the outline (exact inside a polygon and for the
/// disc; outside a polygon's corner, the largest distance to an edge's line, a little less).
fn sdf(shape: &Sdf, x: f32, y: f32) -> f32 {
    match shape {
        Sdf::Disc { x: cx, y: cy, r } => (x - cx).hypot(y - cy) - r,
        Sdf::Polygons(polys) => polys
            .iter()
            .map(|planes| {
                planes
                    .iter()
                    .map(|[nx, ny, c]| nx * x + ny * y - c)
                    .fold(f32::MIN, f32::max)
            })
            .fold(f32::MAX, f32::min),
    }
}

/// What is behind the objects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Background {
    /// One colour.
    Plain([f32; 3]),
    /// From one colour to the other along a direction (radians from the x axis), across the
    /// whole image.
    Gradient {
        /// The colour at one side.
        from: [f32; 3],
        /// The colour at the other.
        to: [f32; 3],
        /// The direction.
        angle: f32,
    },
    /// A colour with noise: independent per pixel (`cells` 0) or smooth blotches on a grid of
    /// `cells` across the image; `amplitude` peak to peak (of 255), the same in every channel
    /// (`grey`) or not.
    Noise {
        /// The mean colour.
        base: [f32; 3],
        /// Peak to peak.
        amplitude: f32,
        /// Blotches across the image (0: per pixel).
        cells: u32,
        /// The same noise in every channel.
        grey: bool,
    },
}

impl Background {
    /// Its colours (without noise): every one has saturation at most
    /// [`BACKGROUND_SATURATION`].
    pub fn colours(&self) -> Vec<[f32; 3]> {
        match *self {
            Background::Plain(c) => vec![c],
            Background::Gradient { from, to, .. } => vec![from, to],
            Background::Noise { base, .. } => vec![base],
        }
    }
}

/// How a scene is drawn, besides its objects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// The background.
    pub background: Background,
    /// Noise over the whole picture, objects included: peak to peak, of 255.
    pub grain: f32,
    /// Edge ramp, in pixels of the drawn picture: 0 draws hard edges (each pixel inside or
    /// outside, sampled at its centre), 1 about what area coverage gives.
    pub edge: f32,
    /// Drawn at this multiple of the model's image size, then resized by the model's
    /// preprocessing (1: drawn at the model's size).
    pub scale: f32,
    /// Seed of the noise.
    pub seed: u64,
}

/// A scene: one object, or two and how the first relates to the second; and how it is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// One or two objects.
    pub objects: Vec<Object>,
    /// For two objects: where the first is relative to the second.
    pub relation: Option<Relation>,
    /// Background, grain, edges, picture size.
    pub style: Style,
}

impl Scene {
    /// The caption: "a large red circle", or "a large red circle to the left of a small blue
    /// square".
    pub fn caption(&self) -> String {
        self.description().caption()
    }

    /// What the caption says.
    pub fn description(&self) -> Description {
        Description {
            objects: self.objects.iter().map(Object::phrase).collect(),
            relation: self.relation,
        }
    }

    /// Every caption that describes the scene exactly: [`Scene::caption`], and for two objects
    /// also the same relation seen from the other object ("a Y to the right of a X" for "a X to
    /// the left of a Y"). The generator picks which object comes first at random, so a model
    /// cannot know which of the two phrasings a scene was given; both are right.
    pub fn captions(&self) -> Vec<String> {
        match (self.objects.as_slice(), self.relation) {
            ([a, b], Some(r)) => vec![
                self.caption(),
                format!("a {} {} a {}", b.words(), r.inverse().words(), a.words()),
            ],
            _ => vec![self.caption()],
        }
    }

    /// The same words with the two objects swapped (the word-order probe); `None` for one object.
    pub fn swapped_caption(&self) -> Option<String> {
        match (self.objects.as_slice(), self.relation) {
            ([a, b], Some(r)) => Some(format!("a {} {} a {}", b.words(), r.words(), a.words())),
            _ => None,
        }
    }

    /// The size in pixels to draw the scene at for a model of `image_size` pixels: the scene's
    /// [`Style::scale`] times it (the picture is then resized to `image_size`, as a user's is).
    pub fn pixels(&self, image_size: usize) -> usize {
        if self.style.scale == 1.0 {
            image_size
        } else {
            ((self.style.scale * image_size as f32).round() as usize).max(1)
        }
    }

    /// The scene as the model of `image_size` pixels sees it: drawn at [`Scene::pixels`] and
    /// preprocessed (resized, values in [-1, 1]) as any picture: `[image_size, image_size, 3]`.
    pub fn image(&self, image_size: usize) -> cappa::Result<cappa::HostTensor> {
        let n = self.pixels(image_size);
        let rgb = self.render(n);
        if n == image_size {
            // Resizing to the same size is the identity: only the value range map, which gives
            // the same bits as `preprocess` without its four-tap interpolation.
            let values = rgb.iter().map(|&v| v as f32 / 255.0 * 2.0 - 1.0).collect();
            return cappa::HostTensor::new(&[n, n, 3], values);
        }
        cappa::image::preprocess(&rgb, cappa::image::PixelLayout::rgb(n, n), image_size)
    }

    /// Renders the scene as `size × size` RGB8 pixels.
    pub fn render(&self, size: usize) -> Vec<u8> {
        let st = &self.style;
        let s = size as f32;
        // In passes over a float image: background, each object over its bounding box only,
        // then grain and rounding.
        let mut img = vec![0.0f32; size * size * 3];
        self.background(&mut img, size);
        let pad = st.edge.max(0.0) + 1.0;
        for o in &self.objects {
            let [l, r, t, b] = o.bounds();
            let px = |v: f32, d: f32| ((v * s + d).max(0.0) as usize).min(size);
            let (x0, x1, y0, y1) = (px(l, -pad), px(r, pad + 1.0), px(t, -pad), px(b, pad + 1.0));
            let shape = o.outline_edges(s);
            for y in y0..y1 {
                let row = &mut img[(y * size + x0) * 3..(y * size + x1) * 3];
                for (x, c) in (x0..x1).zip(row.chunks_exact_mut(3)) {
                    let d = sdf(&shape, x as f32 + 0.5, y as f32 + 0.5);
                    let alpha = if st.edge <= 0.0 {
                        f32::from(u8::from(d <= 0.0))
                    } else {
                        (0.5 - d / st.edge).clamp(0.0, 1.0)
                    };
                    if alpha > 0.0 {
                        for (v, want) in c.iter_mut().zip(o.rgb) {
                            *v += (want - *v) * alpha;
                        }
                    }
                }
            }
        }
        if st.grain > 0.0 {
            for (i, c) in img.chunks_exact_mut(3).enumerate() {
                let g = noise3(st.seed ^ 0x6a41, i as u64);
                for k in 0..3 {
                    c[k] += st.grain * g[k];
                }
            }
        }
        // Rounded to the nearest level (`as` truncates; no libm call).
        img.iter()
            .map(|&v| (v.clamp(0.0, 255.0) + 0.5) as u8)
            .collect()
    }

    /// Fills `img` (`size × size × 3` floats) with the background.
    fn background(&self, img: &mut [f32], size: usize) {
        let st = &self.style;
        let s = size as f32;
        match st.background {
            Background::Plain(c) => {
                for p in img.chunks_exact_mut(3) {
                    p.copy_from_slice(&c);
                }
            }
            Background::Gradient { from, to, angle } => {
                let (sin, cos) = angle.sin_cos();
                let norm = cos.abs() + sin.abs();
                let (gx, gy) = (cos / norm, sin / norm);
                for (i, p) in img.chunks_exact_mut(3).enumerate() {
                    let fx = ((i % size) as f32 + 0.5) / s;
                    let fy = ((i / size) as f32 + 0.5) / s;
                    let t = 0.5 + (fx - 0.5) * gx + (fy - 0.5) * gy;
                    for k in 0..3 {
                        p[k] = from[k] + (to[k] - from[k]) * t;
                    }
                }
            }
            Background::Noise {
                base,
                amplitude,
                cells,
                grey,
            } => {
                let cells = cells as usize;
                // Blotches: a (cells + 1)² grid of random values per channel, bilinear between.
                let grid: Vec<[f32; 3]> = (0..(cells + 1) * (cells + 1))
                    .map(|i| noise3(st.seed ^ 0xb107, i as u64))
                    .collect();
                for (i, p) in img.chunks_exact_mut(3).enumerate() {
                    let n = if cells == 0 {
                        noise3(st.seed, i as u64)
                    } else {
                        let u = ((i % size) as f32 + 0.5) / s * cells as f32;
                        let v = ((i / size) as f32 + 0.5) / s * cells as f32;
                        let (x0, y0) = ((u as usize).min(cells - 1), (v as usize).min(cells - 1));
                        let (tx, ty) = (u - x0 as f32, v - y0 as f32);
                        let g = |xx: usize, yy: usize| grid[yy * (cells + 1) + xx];
                        let (a, b) = (g(x0, y0), g(x0 + 1, y0));
                        let (c, d) = (g(x0, y0 + 1), g(x0 + 1, y0 + 1));
                        [0, 1, 2].map(|k| {
                            let top = a[k] + (b[k] - a[k]) * tx;
                            let bottom = c[k] + (d[k] - c[k]) * tx;
                            // Bilinear blending narrows the spread; 1.5 about restores it.
                            1.5 * (top + (bottom - top) * ty)
                        })
                    };
                    let n = if grey { [n[0]; 3] } else { n };
                    for k in 0..3 {
                        p[k] = base[k] + amplitude * n[k];
                    }
                }
            }
        }
    }
}

/// Three values in [-0.5, 0.5), a pure function of `(seed, i)`.
fn noise3(seed: u64, i: u64) -> [f32; 3] {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let unit = |b: u32| ((z >> b) & 0x1f_ffff) as f32 / (1u64 << 21) as f32 - 0.5;
    [unit(0), unit(21), unit(42)]
}

/// One object as a caption names it: "large red circle".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phrase {
    /// Its size word.
    pub size: Size,
    /// Its colour word.
    pub colour: Colour,
    /// Its shape word.
    pub shape: Shape,
}

impl Phrase {
    /// "large red circle"
    pub fn words(&self) -> String {
        format!(
            "{} {} {}",
            self.size.word(),
            self.colour.word(),
            self.shape.word()
        )
    }
}

/// What a caption of the shapes world says: one object, or two and where the first is relative
/// to the second. [`Description::parse`] reads a caption back; [`Description::caption`] writes
/// it, word for word as [`Scene::caption`] does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Description {
    /// One or two objects, in caption order.
    pub objects: Vec<Phrase>,
    /// For two objects: where the first is relative to the second.
    pub relation: Option<Relation>,
}

impl Description {
    /// Parses a caption of the world's grammar — "a SIZE COLOUR SHAPE", optionally followed by
    /// "RELATION a SIZE COLOUR SHAPE" — with words separated by white space, any case; `None`
    /// for anything else (a word out of place or missing, an extra word).
    pub fn parse(caption: &str) -> Option<Description> {
        let lower = caption.to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let find = |all: &[&'static str], w: &str| all.iter().position(|a| *a == w);
        let phrase = |w: &[&str]| -> Option<Phrase> {
            match w {
                ["a", size, colour, shape] => Some(Phrase {
                    size: Size::ALL[find(&Size::ALL.map(Size::word), size)?],
                    colour: Colour::ALL[find(&Colour::ALL.map(Colour::word), colour)?],
                    shape: Shape::ALL[find(&Shape::ALL.map(Shape::word), shape)?],
                }),
                _ => None,
            }
        };
        if words.len() == 4 {
            return Some(Description {
                objects: vec![phrase(&words)?],
                relation: None,
            });
        }
        if words.len() < 9 {
            return None;
        }
        let middle = words[4..words.len() - 4].join(" ");
        let relation = *Relation::ALL.iter().find(|r| r.words() == middle)?;
        Some(Description {
            objects: vec![phrase(&words[..4])?, phrase(&words[words.len() - 4..])?],
            relation: Some(relation),
        })
    }

    /// The caption: "a large red circle", or "a large red circle to the left of a small blue
    /// square".
    pub fn caption(&self) -> String {
        match (self.objects.as_slice(), self.relation) {
            ([a], None) => format!("a {}", a.words()),
            ([a, b], Some(r)) => format!("a {} {} a {}", a.words(), r.words(), b.words()),
            _ => unreachable!("a description has one object, or two and a relation"),
        }
    }

    /// The same scene said from the other object ("a Y to the right of a X" for "a X to the
    /// left of a Y"); the description itself for one object.
    pub fn other_way(&self) -> Description {
        match (self.objects.as_slice(), self.relation) {
            ([a, b], Some(r)) => Description {
                objects: vec![*b, *a],
                relation: Some(r.inverse()),
            },
            _ => self.clone(),
        }
    }
}

/// Which examples a split draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training examples: never a held-out colour+shape pair.
    Train,
    /// Validation examples, drawn like training ones.
    Validation,
    /// Test examples, drawn like training ones.
    Test,
    /// Test examples where every object is a held-out colour+shape pair.
    HeldOut,
}

/// Colour+shape pairs never seen in training (generalisation test).
pub const HELD_OUT: [(Colour, Shape); 3] = [
    (Colour::Purple, Shape::Triangle),
    (Colour::Orange, Shape::Square),
    (Colour::Green, Shape::Hexagon),
];

fn held_out(c: Colour, s: Shape) -> bool {
    HELD_OUT.contains(&(c, s))
}

/// The generator: example `i` of a split is a pure function of (seed, split, i).
#[derive(Debug, Clone, Copy)]
pub struct ShapesWorld {
    /// Seed of the whole dataset.
    pub seed: u64,
    /// Probability that a scene has two objects.
    pub two_object_prob: f32,
    /// Two-object captions name the left object first (left/right relations) or the upper one
    /// (above/below), so they say "to the left of" or "above" and each scene has one caption to
    /// learn; otherwise the first object is drawn at random and both phrasings occur. The
    /// pictures are the same either way; [`Scene::captions`] lists both phrasings.
    pub canonical_order: bool,
}

impl ShapesWorld {
    /// A world with a seed (half the scenes have two objects, captions in canonical order).
    pub fn new(seed: u64) -> Self {
        ShapesWorld {
            seed,
            two_object_prob: 0.5,
            canonical_order: true,
        }
    }

    /// Example `index` of `split`.
    pub fn scene(&self, split: Split, index: u64) -> Scene {
        let stream = match split {
            Split::Train => 0x1000_0000_0000,
            Split::Validation => 0x2000_0000_0000,
            Split::Test => 0x3000_0000_0000,
            Split::HeldOut => 0x4000_0000_0000,
        };
        let mut rng = Rng::new(self.seed ^ stream ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let two = rng.uniform() < self.two_object_prob;
        let pick_object = |rng: &mut Rng| loop {
            let shape = Shape::ALL[(rng.next_u64() % 6) as usize];
            let colour = Colour::ALL[(rng.next_u64() % 6) as usize];
            let size = Size::ALL[(rng.next_u64() % 2) as usize];
            if held_out(colour, shape) == (split == Split::HeldOut) {
                let (lo, hi) = size.radius_range();
                let turn = Object::max_rotation(shape);
                return Object {
                    shape,
                    colour,
                    size,
                    x: 0.5,
                    y: 0.5,
                    radius: lo + (hi - lo) * rng.uniform(),
                    rotation: turn * (2.0 * rng.uniform() - 1.0),
                    form: rng.uniform(),
                    rgb: colour.range().sample(rng),
                };
            }
        };
        let mut a = pick_object(&mut rng);
        let (objects, relation) = if two {
            let mut b = pick_object(&mut rng);
            let r = Relation::ALL[(rng.next_u64() % 4) as usize];
            place_pair(&mut a, &mut b, r, &mut rng);
            if self.canonical_order && matches!(r, Relation::RightOf | Relation::Below) {
                // The same picture, said from the other object.
                (vec![b, a], Some(r.inverse()))
            } else {
                (vec![a, b], Some(r))
            }
        } else {
            // Anywhere, the whole object inside.
            let [l, r, t, b] = offsets(&a);
            a.x = span(MARGIN - l, 1.0 - MARGIN - r, &mut rng);
            a.y = span(MARGIN - t, 1.0 - MARGIN - b, &mut rng);
            (vec![a], None)
        };
        let background = match rng.uniform() {
            u if u < 0.4 => Background::Plain(background_colour(&mut rng)),
            u if u < 0.65 => Background::Gradient {
                from: background_colour(&mut rng),
                to: background_colour(&mut rng),
                angle: std::f32::consts::TAU * rng.uniform(),
            },
            _ => {
                let base = background_colour(&mut rng);
                let grey = rng.uniform() < 0.6;
                let cells = if rng.uniform() < 0.5 {
                    0
                } else {
                    4 + (rng.next_u64() % 13) as u32
                };
                // Coloured noise stays milder: strong per-channel noise is colour.
                let top = if grey { 50.0 } else { 30.0 };
                Background::Noise {
                    base,
                    amplitude: 12.0 + (top - 12.0) * rng.uniform(),
                    cells,
                    grey,
                }
            }
        };
        let grain = 8.0 * rng.uniform();
        let edge = if rng.uniform() < 1.0 / 3.0 {
            0.0
        } else {
            0.5 + rng.uniform()
        };
        let scale = if rng.uniform() < 0.75 {
            1.0
        } else {
            0.75 + 2.25 * rng.uniform()
        };
        Scene {
            objects,
            relation,
            style: Style {
                background,
                grain,
                edge,
                scale,
                seed: rng.next_u64(),
            },
        }
    }
}

/// Space kept free at the image's edges, and between two objects along their relation's axis.
const MARGIN: f32 = 0.02;
const GAP: f32 = 0.04;
/// At most this much offset across the relation's axis per offset along it.
const ACROSS: f32 = 0.4;

/// Uniform in `[lo, hi]` (`lo` if the span is empty).
fn span(lo: f32, hi: f32, rng: &mut Rng) -> f32 {
    lo + (hi - lo).max(0.0) * rng.uniform()
}

/// An object's bounding box relative to its centre: `[left, right, top, bottom]`.
fn offsets(o: &Object) -> [f32; 4] {
    let [l, r, t, b] = o.bounds();
    [l - o.x, r - o.x, t - o.y, b - o.y]
}

/// Places `a` and `b` anywhere in the image such that `a` is clearly `relation` of `b`: inside
/// the image by [`MARGIN`], bounding boxes apart along the relation's axis by at least [`GAP`],
/// centres offset across it by at most [`ACROSS`] times their offset along it.
fn place_pair(a: &mut Object, b: &mut Object, relation: Relation, rng: &mut Rng) {
    let (oa, ob) = (offsets(a), offsets(b));
    // `lo` is the object nearer the origin along the axis (left, or top).
    let (lo, hi, lo_off, hi_off) = match relation {
        Relation::LeftOf | Relation::Above => (a, b, oa, ob),
        Relation::RightOf | Relation::Below => (b, a, ob, oa),
    };
    let horizontal = matches!(relation, Relation::LeftOf | Relation::RightOf);
    // [near side, far side] along the axis, and across it.
    let (al, ah, cl, ch) = if horizontal {
        (
            [lo_off[0], lo_off[1]],
            [hi_off[0], hi_off[1]],
            [lo_off[2], lo_off[3]],
            [hi_off[2], hi_off[3]],
        )
    } else {
        (
            [lo_off[2], lo_off[3]],
            [hi_off[2], hi_off[3]],
            [lo_off[0], lo_off[1]],
            [hi_off[0], hi_off[1]],
        )
    };
    let min_d = al[1] - ah[0] + GAP;
    let max_d = (1.0 - MARGIN - ah[1]) - (MARGIN - al[0]);
    debug_assert!(max_d >= min_d, "two objects always fit: {min_d} > {max_d}");
    let d = span(min_d, max_d, rng);
    let lo_along = span(MARGIN - al[0], 1.0 - MARGIN - ah[1] - d, rng);
    // Across: the offset `e` of `hi` from `lo`, then `lo`'s place given it.
    let (p0, p1) = (MARGIN - cl[0], 1.0 - MARGIN - cl[1]);
    let (q0, q1) = (MARGIN - ch[0], 1.0 - MARGIN - ch[1]);
    let e = span((q0 - p1).max(-ACROSS * d), (q1 - p0).min(ACROSS * d), rng);
    let lo_across = span(p0.max(q0 - e), p1.min(q1 - e), rng);
    let (lo_xy, hi_xy) = ((lo_along, lo_across), (lo_along + d, lo_across + e));
    let put = |o: &mut Object, (along, across): (f32, f32)| {
        if horizontal {
            (o.x, o.y) = (along, across);
        } else {
            (o.x, o.y) = (across, along);
        }
    };
    put(lo, lo_xy);
    put(hi, hi_xy);
}

/// A background colour: any hue, saturation at most [`BACKGROUND_SATURATION`]; a quarter near
/// white, a tenth near black, the rest any brightness between.
fn background_colour(rng: &mut Rng) -> [f32; 3] {
    let h = 360.0 * rng.uniform();
    let (s, v) = match rng.uniform() {
        u if u < 0.25 => (0.04 * rng.uniform(), 0.92 + 0.08 * rng.uniform()),
        u if u < 0.35 => (BACKGROUND_SATURATION * rng.uniform(), 0.12 * rng.uniform()),
        _ => (
            BACKGROUND_SATURATION * rng.uniform(),
            0.12 + 0.8 * rng.uniform(),
        ),
    };
    hsv_to_rgb([h, s, v])
}

/// The word vocabulary of the shapes world: PAD, EOS, UNK, then every word of every caption.
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = [
        "<pad>", "</s>", "<unk>", "a", "to", "the", "of", "left", "right", "above", "below",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    words.extend(Size::ALL.iter().map(|s| s.word().to_string()));
    words.extend(Colour::ALL.iter().map(|c| c.word().to_string()));
    words.extend(Shape::ALL.iter().map(|s| s.word().to_string()));
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses "large red circle" back into an object's attributes.
    fn parse_object(words: &[&str]) -> (Size, Colour, Shape) {
        let size = *Size::ALL.iter().find(|s| s.word() == words[0]).unwrap();
        let colour = *Colour::ALL.iter().find(|c| c.word() == words[1]).unwrap();
        let shape = *Shape::ALL.iter().find(|s| s.word() == words[2]).unwrap();
        (size, colour, shape)
    }

    #[test]
    fn canonical_captions_name_the_left_or_upper_object_first() {
        let canonical = ShapesWorld::new(4);
        let random = ShapesWorld {
            canonical_order: false,
            ..canonical
        };
        let mut seen_other_way = 0;
        for i in 0..400 {
            let (c, r) = (
                canonical.scene(Split::Train, i),
                random.scene(Split::Train, i),
            );
            // The same picture, and the same set of right captions.
            assert_eq!(c.render(24), r.render(24), "scene {i}");
            let mut both = r.captions();
            both.sort();
            let mut same = c.captions();
            same.sort();
            assert_eq!(both, same, "scene {i}");
            if let Some(rel) = c.relation {
                assert!(
                    matches!(rel, Relation::LeftOf | Relation::Above),
                    "{}",
                    c.caption()
                );
                let (a, b) = (c.objects[0], c.objects[1]);
                match rel {
                    Relation::LeftOf => assert!(a.x < b.x, "{}", c.caption()),
                    _ => assert!(a.y < b.y, "{}", c.caption()),
                }
                seen_other_way += usize::from(r.caption() != c.caption());
            }
        }
        assert!(
            seen_other_way > 50,
            "the random order says it the other way often"
        );
    }

    #[test]
    fn scenes_are_a_function_of_seed_split_and_index() {
        let w = ShapesWorld::new(3);
        assert_eq!(w.scene(Split::Train, 7), w.scene(Split::Train, 7));
        assert_eq!(
            w.scene(Split::Train, 7).render(40),
            w.scene(Split::Train, 7).render(40)
        );
        assert_ne!(w.scene(Split::Train, 7), w.scene(Split::Train, 8));
        assert_ne!(w.scene(Split::Train, 7), w.scene(Split::Test, 7));
        assert_ne!(
            w.scene(Split::Train, 7),
            ShapesWorld::new(4).scene(Split::Train, 7)
        );
        let captions: std::collections::BTreeSet<_> = (0..500)
            .map(|i| w.scene(Split::Train, i).caption())
            .collect();
        assert!(
            captions.len() > 300,
            "only {} distinct captions",
            captions.len()
        );
    }

    #[test]
    fn captions_describe_their_scenes() {
        let w = ShapesWorld::new(11);
        let vocab = vocabulary();
        let (mut ones, mut twos) = (0, 0);
        for split in [Split::Train, Split::Validation, Split::Test, Split::HeldOut] {
            for i in 0..300 {
                let scene = w.scene(split, i);
                let caption = scene.caption();
                let words: Vec<&str> = caption.split(' ').collect();
                assert!(
                    words.iter().all(|w| vocab.iter().any(|v| v == w)),
                    "{caption}"
                );
                for o in &scene.objects {
                    assert_eq!(
                        held_out(o.colour, o.shape),
                        split == Split::HeldOut,
                        "{caption}"
                    );
                    // The whole object inside, by the margin.
                    let [l, r, t, b] = o.bounds();
                    let m = MARGIN - 1e-5;
                    assert!(l >= m && r <= 1.0 - m && t >= m && b <= 1.0 - m, "{o:?}");
                    // Its words' ranges.
                    let (lo, hi) = o.size.radius_range();
                    assert!((lo..=hi).contains(&o.radius), "{o:?}");
                    assert!(o.rotation.abs() <= Object::max_rotation(o.shape), "{o:?}");
                    assert!((0.0..=1.0).contains(&o.form), "{o:?}");
                    assert_eq!(Colour::of_rgb(o.rgb), Some(o.colour), "{o:?}");
                }
                for c in scene.style.background.colours() {
                    assert!(rgb_to_hsv(c)[1] <= BACKGROUND_SATURATION + 1e-4, "{c:?}");
                    assert_eq!(Colour::of_rgb(c), None, "{c:?}");
                }
                match scene.objects.as_slice() {
                    [a] => {
                        ones += 1;
                        assert_eq!(words.len(), 4, "{caption}");
                        assert_eq!(words[0], "a");
                        assert_eq!(parse_object(&words[1..4]), (a.size, a.colour, a.shape));
                        assert_eq!(scene.swapped_caption(), None);
                    }
                    [a, b] => {
                        twos += 1;
                        let rel = scene.relation.unwrap();
                        let n = rel.words().split(' ').count();
                        assert_eq!(words.len(), 8 + n, "{caption}");
                        assert_eq!(parse_object(&words[1..4]), (a.size, a.colour, a.shape));
                        assert_eq!(words[4..4 + n].join(" "), rel.words());
                        assert_eq!(words[4 + n], "a");
                        assert_eq!(parse_object(&words[5 + n..]), (b.size, b.colour, b.shape));
                        // The relation holds between the centres, clearly, and the objects are
                        // apart along its axis by the gap.
                        let (dx, dy) = (a.x - b.x, a.y - b.y);
                        let (ba, bb) = (a.bounds(), b.bounds());
                        let (along, across, apart) = match rel {
                            Relation::LeftOf => (-dx, dy, bb[0] - ba[1]),
                            Relation::RightOf => (dx, dy, ba[0] - bb[1]),
                            Relation::Above => (-dy, dx, bb[2] - ba[3]),
                            Relation::Below => (dy, dx, ba[2] - bb[3]),
                        };
                        assert!(along > 0.0, "{caption}: {a:?} {b:?}");
                        assert!(across.abs() <= ACROSS * along + 1e-5, "{caption}");
                        assert!(apart >= GAP - 1e-5, "{caption}: {a:?} {b:?}");
                        let other = &scene.captions()[1];
                        let other_words: Vec<&str> = other.split(' ').collect();
                        let m = rel.inverse().words().split(' ').count();
                        assert_eq!(
                            parse_object(&other_words[1..4]),
                            (b.size, b.colour, b.shape)
                        );
                        assert_eq!(other_words[4..4 + m].join(" "), rel.inverse().words());
                        assert_eq!(
                            parse_object(&other_words[5 + m..]),
                            (a.size, a.colour, a.shape)
                        );
                        let swapped = scene.swapped_caption().unwrap();
                        // Swapping two identical objects says the same thing.
                        let same = (a.shape, a.colour, a.size) == (b.shape, b.colour, b.size);
                        assert_eq!(scene.captions().contains(&swapped), same, "{swapped}");
                        let mut sorted_a: Vec<_> = caption.split(' ').collect();
                        let mut sorted_b: Vec<_> = swapped.split(' ').collect();
                        sorted_a.sort_unstable();
                        sorted_b.sort_unstable();
                        assert_eq!(sorted_a, sorted_b, "same words, other order");
                    }
                    _ => panic!("a scene has one or two objects"),
                }
            }
        }
        assert!(
            ones > 400 && twos > 400,
            "{ones} one-object, {twos} two-object scenes"
        );
    }

    #[test]
    fn captions_parse_back_into_what_they_say() {
        let w = ShapesWorld::new(4);
        for split in [Split::Train, Split::HeldOut] {
            for i in 0..300 {
                let scene = w.scene(split, i);
                let d = scene.description();
                assert_eq!(Description::parse(&scene.caption()).as_ref(), Some(&d));
                let all = scene.captions();
                assert_eq!(Description::parse(&all[all.len() - 1]), Some(d.other_way()));
                for c in &all {
                    assert_eq!(Description::parse(c).unwrap().caption(), *c);
                }
            }
        }
        let other = Description::parse("a small red circle above a large blue square").unwrap();
        assert_eq!(
            other.other_way().caption(),
            "a large blue square below a small red circle"
        );
        assert_eq!(other.other_way().other_way(), other);
        assert_eq!(
            Description::parse("  A Small RED circle\n")
                .unwrap()
                .caption(),
            "a small red circle"
        );
        for bad in [
            "",
            "a",
            "a red circle",
            "small red circle",
            "the small red circle",
            "a huge red circle",
            "a small red circle circle",
            "a small red circle above",
            "a small red circle above a",
            "a small red circle near a small blue square",
            "a small red circle to the left a small blue square",
            "a small red circle above a small blue",
            "a small red circle above a small blue square below a small red circle",
            "a small circle red above a small blue square",
        ] {
            assert_eq!(Description::parse(bad), None, "{bad:?}");
        }
    }

    /// Which pixels of `px` are within `tol` of `rgb` in every channel.
    fn near(px: &[u8], rgb: [f32; 3], tol: f32) -> Vec<bool> {
        px.chunks(3)
            .map(|p| (0..3).all(|k| (p[k] as f32 - rgb[k]).abs() <= tol))
            .collect()
    }

    #[test]
    fn rendering_puts_each_object_where_the_scene_says() {
        let w = ShapesWorld::new(5);
        let size = 96;
        let s = size as f32;
        let (mut hard, mut soft) = (0, 0);
        for i in 0..200 {
            let scene = w.scene(Split::Train, i);
            let px = scene.render(size);
            let tol = scene.style.grain / 2.0 + 1.0;
            for o in &scene.objects {
                // Its colour at its centre (every shape covers its centre).
                let (x, y) = ((o.x * s) as usize, (o.y * s) as usize);
                let got = &px[(y * size + x) * 3..][..3];
                for k in 0..3 {
                    assert!(
                        (got[k] as f32 - o.rgb[k]).abs() <= tol,
                        "scene {i}: {got:?} vs {:?}",
                        o.rgb
                    );
                }
            }
            // One object: the pixels of its colour are the pixels inside its outline, up to
            // the edge ramp — nothing of it elsewhere, and all of it there.
            if let [o] = scene.objects.as_slice() {
                let inside: Vec<bool> = (0..size * size)
                    .map(|i| {
                        let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                        o.contains(x / s, y / s)
                    })
                    .collect();
                let count = inside.iter().filter(|&&b| b).count();
                let coloured = near(&px, o.rgb, tol);
                let ramp = scene.style.edge.max(0.0) + 1.5;
                let [l, r, t, b] = o.bounds();
                for (i, _) in coloured.iter().enumerate().filter(|(_, &c)| c) {
                    let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                    assert!(
                        x >= l * s - ramp
                            && x <= r * s + ramp
                            && y >= t * s - ramp
                            && y <= b * s + ramp,
                        "scene {i}: a pixel of the object's colour at ({x}, {y}), outside {:?}",
                        [l * s, r * s, t * s, b * s]
                    );
                }
                let both = |a: bool, b: bool| {
                    inside
                        .iter()
                        .zip(&coloured)
                        .filter(|&(&i, &c)| i == a && c == b)
                        .count()
                };
                if scene.style.edge == 0.0 {
                    // Hard edges: every pixel whose centre is inside has the colour, and
                    // (up to background pixels that happen to be as close) no other.
                    hard += 1;
                    assert_eq!(both(true, false), 0, "scene {i}");
                    assert!(both(false, true) * 50 <= count, "scene {i}");
                } else {
                    // Anti-aliased: pixels of the full colour are inside, and make up at least
                    // half the outline's interior (the rest is the ramp).
                    soft += 1;
                    assert_eq!(both(false, true), 0, "scene {i}");
                    assert!(both(true, true) * 2 >= count, "scene {i}: of {count}");
                }
            }
        }
        assert!(hard > 10 && soft > 20, "{hard} hard, {soft} anti-aliased");
    }

    #[test]
    fn colour_words_name_apart_ranges_and_shades_stay_in_them() {
        // The ranges do not overlap: no shade has two names. Sample the whole HSV cube.
        let mut named = [0usize; 6];
        for h in 0..360 {
            for s in 0..=20 {
                for v in 0..=20 {
                    let rgb = hsv_to_rgb([h as f32, s as f32 / 20.0, v as f32 / 20.0]);
                    let names: Vec<Colour> = Colour::ALL
                        .into_iter()
                        .filter(|c| c.range().contains(rgb))
                        .collect();
                    assert!(names.len() <= 1, "{rgb:?}: {names:?}");
                    if let [c] = names.as_slice() {
                        named[*c as usize] += 1;
                        // Hues of different words are at least 8° apart.
                        let [hh, ..] = rgb_to_hsv(rgb);
                        for other in Colour::ALL.into_iter().filter(|o| o != c) {
                            let (lo, hi) = other.range().hue;
                            let d = |x: f32| {
                                let d = (hh - x).rem_euclid(360.0);
                                d.min(360.0 - d)
                            };
                            assert!(d(lo) >= 8.0 && d(hi) >= 8.0, "{c:?} at {hh} near {other:?}");
                        }
                    }
                }
            }
        }
        assert!(named.iter().all(|&n| n > 50), "{named:?}");
        // HSV round trip.
        for rgb in [
            [220.0, 40.0, 40.0],
            [40.0, 80.0, 220.0],
            [245.0, 140.0, 30.0],
            [9.0, 9.0, 9.0],
        ] {
            let back = hsv_to_rgb(rgb_to_hsv(rgb));
            assert!(
                (0..3).all(|k| (back[k] - rgb[k]).abs() < 1e-3),
                "{rgb:?} {back:?}"
            );
        }
        // Every shade drawn is in its word's range, and the drawn shades span each range.
        let w = ShapesWorld::new(8);
        for c in Colour::ALL {
            let shades: Vec<[f32; 3]> = (0..3000)
                .flat_map(|i| w.scene(Split::Train, i).objects)
                .filter(|o| o.colour == c)
                .map(|o| o.rgb)
                .collect();
            assert!(shades.iter().all(|&s| Colour::of_rgb(s) == Some(c)));
            let r = c.range();
            let hues: Vec<f32> = shades
                .iter()
                .map(|&s| {
                    let h = rgb_to_hsv(s)[0];
                    if r.hue.0 < 0.0 && h > 180.0 {
                        h - 360.0
                    } else {
                        h
                    }
                })
                .collect();
            let (lo, hi) = hues
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &h| (a.min(h), b.max(h)));
            let width = r.hue.1 - r.hue.0;
            assert!(
                lo < r.hue.0 + 0.1 * width && hi > r.hue.1 - 0.1 * width,
                "{c:?}: {lo}..{hi}"
            );
        }
    }

    #[test]
    fn scenes_vary_in_every_knob() {
        let w = ShapesWorld::new(9);
        let scenes: Vec<Scene> = (0..2000).map(|i| w.scene(Split::Train, i)).collect();
        let frac = |f: &dyn Fn(&Scene) -> bool| {
            scenes.iter().filter(|s| f(s)).count() as f32 / scenes.len() as f32
        };
        let plain = frac(&|s| matches!(s.style.background, Background::Plain(_)));
        let gradient = frac(&|s| matches!(s.style.background, Background::Gradient { .. }));
        let blotches =
            frac(&|s| matches!(s.style.background, Background::Noise { cells, .. } if cells > 0));
        let grain = frac(&|s| matches!(s.style.background, Background::Noise { cells: 0, .. }));
        assert!((0.35..0.45).contains(&plain), "{plain}");
        assert!((0.2..0.3).contains(&gradient), "{gradient}");
        assert!(blotches > 0.12 && grain > 0.12, "{blotches} {grain}");
        let hard = frac(&|s| s.style.edge == 0.0);
        assert!((0.28..0.38).contains(&hard), "{hard}");
        let direct = frac(&|s| s.style.scale == 1.0);
        assert!((0.7..0.8).contains(&direct), "{direct}");
        let big = frac(&|s| s.style.scale > 2.0);
        let small = frac(&|s| s.style.scale < 1.0);
        assert!(big > 0.05 && small > 0.01, "{big} {small}");
        let white = frac(&|s| {
            s.style
                .background
                .colours()
                .iter()
                .any(|c| c.iter().all(|&v| v > 230.0))
        });
        assert!(white > 0.15, "{white}");
        // Positions cover the image: centres of one-object scenes in each quarter.
        let ones: Vec<&Object> = scenes
            .iter()
            .filter(|s| s.objects.len() == 1)
            .map(|s| &s.objects[0])
            .collect();
        for (qx, qy) in [(false, false), (false, true), (true, false), (true, true)] {
            let n = ones
                .iter()
                .filter(|o| (o.x > 0.5) == qx && (o.y > 0.5) == qy)
                .count();
            assert!(n > ones.len() / 6, "{n} of {}", ones.len());
        }
        // Sizes spread over their ranges, and turned shapes both ways.
        for size in Size::ALL {
            let (lo, hi) = size.radius_range();
            let r: Vec<f32> = ones
                .iter()
                .filter(|o| o.size == size)
                .map(|o| o.radius)
                .collect();
            assert!(
                r.iter().any(|&x| x < lo + 0.1 * (hi - lo))
                    && r.iter().any(|&x| x > hi - 0.1 * (hi - lo))
            );
        }
        assert!(ones.iter().any(|o| o.rotation > 0.1) && ones.iter().any(|o| o.rotation < -0.1));
        // Scenes draw the same at any size: a render is a pure function of the scene.
        let s = &scenes[3];
        assert_eq!(s.render(37), s.render(37));
        assert_eq!(
            s.pixels(48),
            if s.style.scale == 1.0 {
                48
            } else {
                (s.style.scale * 48.0).round() as usize
            }
        );
        assert_eq!(s.image(48).unwrap().shape(), &[48, 48, 3]);
        // `image` is the model's preprocessing of the render, bit for bit, also where it skips
        // the identity resize.
        let (mut direct, mut resized) = (0, 0);
        for s in &scenes[..40] {
            let n = s.pixels(24);
            let want =
                cappa::image::preprocess(&s.render(n), cappa::image::PixelLayout::rgb(n, n), 24)
                    .unwrap();
            assert_eq!(s.image(24).unwrap(), want);
            if n == 24 {
                direct += 1;
            } else {
                resized += 1;
            }
        }
        assert!(direct > 0 && resized > 0);
    }
}
