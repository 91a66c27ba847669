//! The check set in `examples/checkset/` (pictures drawn by `make_checkset.py`, a renderer that
//! shares no code with the trainer's): its captions have the shapes world's grammar and words,
//! what it says it drew is what its pictures show (each shade within its word's range as the
//! trainer defines it), and `cappa-train eval --checkset` scores a
//! model on every one of its pictures.

use std::path::{Path, PathBuf};
use std::process::Command;

use cappa::tokenizer::SpecialIds;
use cappa::{Config, CpuBackend, Model, Tokenizer};
use cappa_trainer::data::Dataset;
use cappa_trainer::eval::CheckSet;
use cappa_trainer::shapes::{self, Colour, Description, Relation, Size, HELD_OUT};
use serde_json::Value;

fn checkset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/checkset")
}

fn lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(checkset().join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_check_set_speaks_the_worlds_grammar_and_shows_what_it_says() {
    let captions = lines("captions.jsonl");
    let scenes = lines("scenes.jsonl");
    assert_eq!(captions.len(), 200);
    assert_eq!(scenes.len(), 200);
    let vocab = shapes::vocabulary();
    let (mut ones, mut twos) = (0, 0);
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for (c, s) in captions.iter().zip(&scenes) {
        let caption = c["caption"].as_str().unwrap();
        assert_eq!(s["caption"].as_str(), Some(caption));
        assert_eq!(s["image"], c["image"]);
        // The trainer's grammar and words, written exactly as the trainer writes them.
        let d = Description::parse(caption).unwrap_or_else(|| panic!("{caption}"));
        assert_eq!(d.caption(), caption);
        assert!(caption.split(' ').all(|w| vocab.iter().any(|v| v == w)));
        // What scenes.jsonl says was drawn.
        let objects = s["objects"].as_array().unwrap();
        assert_eq!(objects.len(), d.objects.len());
        let relation = s["relation"].as_str();
        assert_eq!(relation, d.relation.map(Relation::words), "{caption}");
        let w = s["size"].as_u64().unwrap() as u32;
        assert!((64..=160).contains(&w), "{caption}: {w} px");
        let img = image::open(checkset().join(c["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (w, w));
        let mut centres = Vec::new();
        for (o, p) in objects.iter().zip(&d.objects) {
            assert_eq!(o["words"].as_str(), Some(p.words().as_str()));
            assert!(!HELD_OUT.contains(&(p.colour, p.shape)), "{caption}");
            let f = |k: &str| o[k].as_f64().unwrap() as f32;
            let (x, y, r) = (f("x"), f("y"), f("radius"));
            assert!(x - r > 0.0 && x + r < 1.0 && y - r > 0.0 && y + r < 1.0);
            match p.size {
                Size::Small => small.push(r),
                Size::Large => large.push(r),
            }
            // The object's colour is at its centre (drawn flat, over any background).
            let rgb: Vec<u8> = o["rgb"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect();
            // Its shade is in its colour word's range, as the trainer's renderer defines it.
            let shade = [0, 1, 2].map(|k| f32::from(rgb[k]));
            assert_eq!(Colour::of_rgb(shade), Some(p.colour), "{caption}: {rgb:?}");
            let px = img
                .get_pixel((x * w as f32) as u32, (y * w as f32) as u32)
                .0;
            assert!(
                px.iter().zip(&rgb).all(|(a, b)| a.abs_diff(*b) <= 2),
                "{caption}: {px:?} at the centre of an object of colour {rgb:?}"
            );
            centres.push((x, y, r));
        }
        match (centres.as_slice(), d.relation) {
            ([_], None) => ones += 1,
            ([(ax, ay, ar), (bx, by, br)], Some(rel)) => {
                twos += 1;
                let (dx, dy) = (ax - bx, ay - by);
                let (along, across) = match rel {
                    Relation::LeftOf => (-dx, dy),
                    Relation::RightOf => (dx, dy),
                    Relation::Above => (-dy, dx),
                    Relation::Below => (dy, dx),
                };
                // Clearly in the relation, and apart along its axis.
                assert!(along > ar + br, "{caption}");
                assert!(across.abs() <= 0.5 * along, "{caption}");
            }
            _ => panic!("{caption}: objects and relation disagree"),
        }
    }
    assert_eq!((ones, twos), (100, 100));
    // The size words do not overlap.
    let max_small = small.iter().fold(0.0f32, |m, &r| m.max(r));
    let min_large = large.iter().fold(1.0f32, |m, &r| m.min(r));
    assert!(max_small < min_large, "{max_small} vs {min_large}");
}

#[test]
fn the_trainer_refuses_to_train_on_the_check_set() {
    for path in [checkset(), checkset().join("captions.jsonl")] {
        let e = Dataset::open(&path).unwrap_err().to_string();
        assert!(e.contains("check set"), "{e}");
    }
    // Evaluation reads it.
    let set = CheckSet::open(&checkset(), 16).unwrap();
    assert_eq!(set.len(), 200);
    assert_eq!(set.images[0].shape(), &[16, 16, 3]);
}

#[test]
fn eval_checkset_scores_every_picture() {
    let config = Config {
        vocab_size: shapes::vocabulary().len(),
        max_len: 12,
        ..Config::tiny_for_tests()
    };
    let tok =
        Tokenizer::words(shapes::vocabulary(), SpecialIds::from_config(&config), true).unwrap();
    let model = Model::random(&config, 3, CpuBackend::new())
        .unwrap()
        .with_tokenizer(tok)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("cappa-checkset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.safetensors");
    std::fs::write(&file, model.to_file().unwrap()).unwrap();
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cappa-train"));
        cmd.args(["eval", "--model"])
            .arg(&file)
            .arg("--checkset")
            .arg(checkset());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let report: Value = serde_json::from_str(&run(true)).unwrap();
    for mode in ["greedy", "parallel"] {
        let r = &report[mode];
        assert_eq!(r["one"]["scenes"], 100, "{report}");
        assert_eq!(r["two"]["scenes"], 100, "{report}");
        for (kind, keys) in [
            (
                "one",
                &["colour", "shape", "colour_and_shape", "size", "exact"][..],
            ),
            (
                "two",
                &[
                    "colours",
                    "shapes",
                    "objects",
                    "objects_and_relation",
                    "exact",
                ][..],
            ),
        ] {
            for k in keys {
                let v = r[kind][k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{mode} {kind} {k}: {v}");
            }
        }
    }
    let table = run(false);
    assert!(table.contains("200 pictures"), "{table}");
    assert!(
        table.contains("greedy") && table.contains("parallel"),
        "{table}"
    );
    // A file that is not a check set is one line naming it, and a failure.
    let out = Command::new(env!("CARGO_BIN_EXE_cappa-train"))
        .args(["eval", "--model"])
        .arg(&file)
        .arg("--checkset")
        .arg(dir.join("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    // A probe without shots, or with more than the probe takes, is refused by name.
    for shots in ["0", "1001"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cappa-train"))
            .args(["eval", "--scenes", "2", "--probe-shots", shots, "--model"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("probe shots must be 1..=1000"),
            "{shots}: {err}"
        );
    }
}
