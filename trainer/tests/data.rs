//! Data input: JSONL and folder datasets with PNG and JPEG images, decoded and resized as the
//! runtime's preprocessing, tokenized as the reference; bad lines, missing or corrupt images and
//! empty captions reported with their path (and line) and skipped; a seeded, resumable order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cappa::image::{preprocess, PixelLayout};
use cappa::tokenizer::SpecialIds;
use cappa::Tokenizer;
use cappa_trainer::data::{Dataset, Loader, LoaderOptions, Prep};
use cappa_trainer::shapes::{ShapesWorld, Split};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cappa-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `w × h` gradient image.
fn pixels(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 + seed as u32) as u8,
            (y * 5) as u8,
            ((x + y) * 3) as u8,
        ])
    })
}

fn prep() -> Prep {
    let words = ["<pad>", "</s>", "<unk>", "a", "red", "cat", "dog"];
    let tok = Tokenizer::words(
        words.iter().map(|w| w.to_string()).collect(),
        SpecialIds {
            pad: 0,
            eos: 1,
            unk: 2,
        },
        true,
    )
    .unwrap();
    Prep {
        image_size: 8,
        max_len: 4,
        eos_id: 1,
        pad_id: 0,
        tokenizer: Arc::new(tok),
    }
}

fn one_pass(ds: Dataset, batch_size: usize) -> (Vec<f32>, Vec<u32>, Vec<String>) {
    let mut l = Loader::new(
        Arc::new(ds),
        prep(),
        LoaderOptions {
            batch_size,
            seed: 0,
            shuffle: false,
            start: 0,
            one_pass: true,
            workers: 2,
            prefetch: 1,
        },
    )
    .unwrap();
    let (mut images, mut ids, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(b) = l.next_batch() {
        let b = b.unwrap();
        images.extend_from_slice(b.images.data());
        ids.extend_from_slice(b.targets.ids());
        warnings.extend(b.warnings);
    }
    (images, ids, warnings)
}

fn expected(img: &image::RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    preprocess(img.as_raw(), PixelLayout::rgb(w, h), 8)
        .unwrap()
        .into_data()
}

#[test]
fn jsonl_with_bad_lines_images_and_captions() {
    let dir = temp_dir("jsonl");
    let (a, b) = (pixels(13, 9, 1), pixels(20, 20, 2));
    a.save(dir.join("a.png")).unwrap();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    b.save(dir.join("imgs/b.jpg")).unwrap();
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    let lines = [
        r#"{"image": "a.png", "caption": "A red cat"}"#,
        r#"{"image": "imgs/b.jpg", "caption": "a dog a dog a dog"}"#,
        r#"{"image": "a.png", "caption": "#,
        r#"{"image": "a.png"}"#,
        r#"{"image": "a.png", "caption": "  "}"#,
        "",
        r#"{"image": "missing.png", "caption": "a cat"}"#,
        r#"{"image": "broken.png", "caption": "a cat"}"#,
    ];
    let file = dir.join("train.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let ds = Dataset::from_jsonl(&file).unwrap();
    assert_eq!(ds.len(), 4);
    let at = |n: usize| format!("{}:{n}:", file.display());
    assert_eq!(ds.warnings.len(), 3, "{:?}", ds.warnings);
    for (w, line) in ds.warnings.iter().zip([3, 4, 5]) {
        assert!(w.starts_with(&at(line)), "{w}");
    }
    let (images, ids, warnings) = one_pass(ds, 3);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("missing.png") && warnings[1].contains("broken.png"));
    // Two good examples: resized as the runtime does, captions padded / cut with EOS kept.
    let mut want = expected(&a);
    // The JPEG is lossy: compare it with its own decoding.
    let b_decoded = image::open(dir.join("imgs/b.jpg")).unwrap().to_rgb8();
    want.extend(expected(&b_decoded));
    assert_eq!(images, want);
    assert_eq!(ids, [3, 4, 5, 1, 3, 6, 3, 1]);
}

#[test]
fn folder_of_images_with_captions() {
    let dir = temp_dir("folder");
    pixels(8, 8, 1).save(dir.join("one.png")).unwrap();
    std::fs::write(dir.join("one.txt"), "a cat\n").unwrap();
    pixels(9, 7, 2).save(dir.join("two.jpg")).unwrap();
    std::fs::write(dir.join("two.txt"), "a dog").unwrap();
    pixels(8, 8, 3).save(dir.join("three.png")).unwrap();
    std::fs::write(dir.join("notes.md"), "ignored").unwrap();
    let ds = Dataset::open(Path::new(&dir)).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.warnings.len(), 1);
    assert!(ds.warnings[0].contains("three.txt"), "{:?}", ds.warnings);
    assert_eq!(ds.examples[0].caption, "a cat");
    let (images, ids, warnings) = one_pass(ds, 5);
    assert!(warnings.is_empty());
    assert_eq!(images.len(), 2 * 8 * 8 * 3);
    assert_eq!(&images[..192], expected(&pixels(8, 8, 1)).as_slice());
    assert_eq!(ids, [3, 5, 1, 0, 3, 6, 1, 0]);
}

/// Caption ids of the batches of a shuffled loader from cursor `start`.
fn stream(ds: &Arc<Dataset>, start: u64, batches: usize) -> Vec<(Vec<u32>, u64)> {
    let mut l = Loader::new(
        ds.clone(),
        prep(),
        LoaderOptions {
            batch_size: 3,
            seed: 9,
            shuffle: true,
            start,
            one_pass: false,
            workers: 3,
            prefetch: 2,
        },
    )
    .unwrap();
    (0..batches)
        .map(|_| {
            let b = l.next_batch().unwrap().unwrap();
            (b.targets.ids().to_vec(), b.next)
        })
        .collect()
}

#[test]
fn order_is_seeded_shuffled_per_epoch_and_resumable() {
    // Seven examples whose captions identify them.
    let words = ["a", "red", "cat", "dog", "a red", "red cat", "cat dog"];
    let mut ds = Dataset::shapes(&ShapesWorld::new(0), Split::Train, 7, 8);
    for (ex, w) in ds.examples.iter_mut().zip(words) {
        ex.caption = w.to_string();
    }
    let ds = Arc::new(ds);
    let all = stream(&ds, 0, 7); // 21 examples: three epochs
    assert_eq!(all, stream(&ds, 0, 7), "seeded");
    let ids: Vec<Vec<u32>> = all
        .iter()
        .flat_map(|(ids, _)| ids.chunks(4).map(|c| c.to_vec()).collect::<Vec<_>>())
        .collect();
    for epoch in ids.chunks(7) {
        let mut e = epoch.to_vec();
        e.sort();
        e.dedup();
        assert_eq!(e.len(), 7, "each epoch is a permutation");
    }
    assert_ne!(ids[..7], ids[7..14], "epochs are shuffled differently");
    // Resuming at a batch's cursor gives the batches that followed it.
    assert_eq!(stream(&ds, all[2].1, 4), all[3..].to_vec());
}

#[test]
fn shapes_examples_are_their_scenes_as_the_model_sees_them() {
    let world = ShapesWorld::new(4);
    let ds = Dataset::shapes(&world, Split::Validation, 80, 8);
    let p = prep();
    let mut sizes = std::collections::BTreeSet::new();
    for (i, ex) in ds.examples.iter().enumerate() {
        let scene = world.scene(Split::Validation, i as u64);
        assert_eq!(ex.caption, scene.caption());
        let (image, _) = p.prepare(ex).unwrap();
        assert_eq!(image, scene.image(8).unwrap());
        sizes.insert(scene.pixels(8));
    }
    // Most drawn at the model's size, some larger and resized.
    assert!(sizes.contains(&8) && sizes.len() > 2, "{sizes:?}");
}
