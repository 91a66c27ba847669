//! The shapes world: a seeded generator of small images of one or two coloured shapes on a
//! varied background, with captions that describe them exactly ("a large red circle to the left
//! of a small blue square"). It gives cappa a model that really captions, trained offline, and a
//! testbed for the paper's claims at small scale: the encoder's features separate attributes, and
//! the decoder is sensitive to word order.
//!
//! Example `i` of a split is a pure function of `(seed, split, i)`: nothing is stored, and any
//! split can be regenerated anywhere, at any image size.

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

/// Colours, in vocabulary order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// (220, 40, 40)
    Red,
    /// (40, 170, 60)
    Green,
    /// (40, 80, 220)
    Blue,
    /// (235, 210, 40)
    Yellow,
    /// (150, 60, 190)
    Purple,
    /// (245, 140, 30)
    Orange,
}

/// Sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// A fifth of the image across.
    Small,
    /// A third of the image across.
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
    fn rgb(self) -> [f32; 3] {
        [
            [220., 40., 40.],
            [40., 170., 60.],
            [40., 80., 220.],
            [235., 210., 40.],
            [150., 60., 190.],
            [245., 140., 30.],
        ][self as usize]
    }
}

impl Size {
    /// Every size.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];
    /// Its word.
    pub fn word(self) -> &'static str {
        ["small", "large"][self as usize]
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

/// One object of a scene and where it is (centre, in pixels of a `size`-pixel image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Its size.
    pub size: Size,
    /// Centre x, 0..1 of the image width.
    pub x: f32,
    /// Centre y, 0..1 of the image height.
    pub y: f32,
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

    fn radius(&self) -> f32 {
        match self.size {
            Size::Small => 0.10,
            Size::Large => 0.16,
        }
    }
}

/// A scene: one object, or two and how the first relates to the second; plus its background.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// One or two objects.
    pub objects: Vec<Object>,
    /// For two objects: where the first is relative to the second.
    pub relation: Option<Relation>,
    background: [[f32; 3]; 2],
    noise_seed: u64,
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

    /// Renders the scene as `size × size` RGB8 pixels.
    pub fn render(&self, size: usize) -> Vec<u8> {
        let mut rng = Rng::new(self.noise_seed);
        let [c0, c1] = self.background;
        let mut px = vec![0u8; size * size * 3];
        for y in 0..size {
            for x in 0..size {
                // A diagonal gradient between two muted colours, with a little noise.
                let t = (x + y) as f32 / (2 * size) as f32;
                let n = (rng.uniform() - 0.5) * 16.0;
                let mut c = [0.0f32; 3];
                for k in 0..3 {
                    c[k] = c0[k] * (1.0 - t) + c1[k] * t + n;
                }
                for o in &self.objects {
                    let (u, v) = (
                        (x as f32 + 0.5) / size as f32 - o.x,
                        (y as f32 + 0.5) / size as f32 - o.y,
                    );
                    if inside(o.shape, u / o.radius(), v / o.radius()) {
                        let rgb = o.colour.rgb();
                        for k in 0..3 {
                            c[k] = rgb[k] + n * 0.5;
                        }
                    }
                }
                for k in 0..3 {
                    px[(y * size + x) * 3 + k] = c[k].clamp(0.0, 255.0) as u8;
                }
            }
        }
        px
    }
}

/// Whether the point (u, v), in units of the object's radius from its centre, is inside.
fn inside(shape: Shape, u: f32, v: f32) -> bool {
    match shape {
        Shape::Circle => u * u + v * v <= 1.0,
        Shape::Square => u.abs() <= 0.85 && v.abs() <= 0.85,
        Shape::Triangle => (-0.95..=0.85).contains(&v) && u.abs() <= (v + 0.95) * 0.55,
        Shape::Diamond => u.abs() + v.abs() <= 1.05,
        Shape::Cross => (u.abs() <= 0.32 && v.abs() <= 1.0) || (v.abs() <= 0.32 && u.abs() <= 1.0),
        Shape::Hexagon => {
            let (a, b) = (u.abs(), v.abs());
            b <= 0.87 && a * 0.87 + b * 0.5 <= 0.87
        }
    }
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
}

impl ShapesWorld {
    /// A world with a seed (half the scenes have two objects).
    pub fn new(seed: u64) -> Self {
        ShapesWorld {
            seed,
            two_object_prob: 0.5,
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
                return Object {
                    shape,
                    colour,
                    size,
                    x: 0.5,
                    y: 0.5,
                };
            }
        };
        let mut a = pick_object(&mut rng);
        let relation;
        let objects = if two {
            let mut b = pick_object(&mut rng);
            let r = Relation::ALL[(rng.next_u64() % 4) as usize];
            // Along the relation's axis the two centres are clearly apart; across it they
            // stay close, so the relation is unambiguous.
            let along = 0.26 + 0.12 * rng.uniform() + (a.radius() + b.radius()) * 0.5;
            let across = (rng.uniform() - 0.5) * 0.12;
            let (cx, cy) = (
                0.5 + (rng.uniform() - 0.5) * 0.1,
                0.5 + (rng.uniform() - 0.5) * 0.1,
            );
            let (dx, dy) = match r {
                Relation::LeftOf => (-along, across),
                Relation::RightOf => (along, across),
                Relation::Above => (across, -along),
                Relation::Below => (across, along),
            };
            (a.x, a.y) = (cx + dx / 2.0, cy + dy / 2.0);
            (b.x, b.y) = (cx - dx / 2.0, cy - dy / 2.0);
            relation = Some(r);
            vec![a, b]
        } else {
            let m = 0.5 - a.radius() - 0.05;
            a.x = 0.5 + (rng.uniform() - 0.5) * 2.0 * m;
            a.y = 0.5 + (rng.uniform() - 0.5) * 2.0 * m;
            relation = None;
            vec![a]
        };
        let muted = |rng: &mut Rng| {
            let base = 60.0 + rng.uniform() * 80.0;
            [
                base + (rng.uniform() - 0.5) * 30.0,
                base + (rng.uniform() - 0.5) * 30.0,
                base + (rng.uniform() - 0.5) * 30.0,
            ]
        };
        let background = [muted(&mut rng), muted(&mut rng)];
        Scene {
            objects,
            relation,
            background,
            noise_seed: rng.next_u64(),
        }
    }
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
                    let r = o.radius();
                    assert!(o.x - r > 0.0 && o.x + r < 1.0 && o.y - r > 0.0 && o.y + r < 1.0);
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
                        // The relation holds between the centres, clearly, and the objects do
                        // not overlap.
                        let (dx, dy) = (a.x - b.x, a.y - b.y);
                        let clear = match rel {
                            Relation::LeftOf => dx < 0.0 && dx.abs() > 2.0 * dy.abs(),
                            Relation::RightOf => dx > 0.0 && dx.abs() > 2.0 * dy.abs(),
                            Relation::Above => dy < 0.0 && dy.abs() > 2.0 * dx.abs(),
                            Relation::Below => dy > 0.0 && dy.abs() > 2.0 * dx.abs(),
                        };
                        assert!(clear, "{caption}: {a:?} {b:?}");
                        assert!(dx.hypot(dy) > 1.1 * (a.radius() + b.radius()), "{caption}");
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

    #[test]
    fn rendering_puts_each_object_where_the_scene_says() {
        let w = ShapesWorld::new(5);
        for i in 0..50 {
            let scene = w.scene(Split::Train, i);
            let size = 64;
            let px = scene.render(size);
            for o in &scene.objects {
                let (x, y) = ((o.x * size as f32) as usize, (o.y * size as f32) as usize);
                let got = &px[(y * size + x) * 3..][..3];
                let want = o.colour.rgb();
                for k in 0..3 {
                    assert!(
                        (got[k] as f32 - want[k]).abs() <= 8.0,
                        "{got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}
