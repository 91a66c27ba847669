//! The `caption`, `classify`, `embed`, `info` and `bench` subcommands, end to end: on a model
//! file made from the reference fixture plus a word vocabulary, on PNG files written here, and
//! against the Rust API's answers for the same inputs.

use std::path::PathBuf;
use std::process::{Command, Output};

use cappa::tokenizer::SpecialIds;
use cappa::{Checkpoint, CpuBackend, Decode, Model, Tokenizer};
use cappa_tests::fixture_dirs;

fn cappa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cappa"))
        .args(args)
        .env("CAPPA_DEVICE", "cpu")
        .output()
        .expect("run cappa")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "cappa failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A scratch folder with a model (the fixture plus a 50-word vocabulary) and two images.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cappa-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Checkpoint::load(&fixture_dirs()[0]).unwrap();
        let cfg = fixture.config().clone();
        let mut words = vec!["<pad>".to_string(), "</s>".to_string(), "<unk>".to_string()];
        words.extend((3..cfg.vocab_size).map(|i| format!("w{i}")));
        let tok = Tokenizer::words(words, SpecialIds::from_config(&cfg), true).unwrap();
        let mut ckpt = fixture.clone();
        ckpt.set_tokenizer(Some(tok.to_metadata()));
        ckpt.save(dir.join("model.safetensors"), None).unwrap();
        for (i, (w, h)) in [(40u32, 30u32), (17, 23)].into_iter().enumerate() {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 6) as u8, (y * 9) as u8, (i * 120) as u8])
            });
            img.save(dir.join(format!("img{i}.png"))).unwrap();
        }
        Scratch { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn model(&self) -> Model {
        let bytes = std::fs::read(self.dir.join("model.safetensors")).unwrap();
        Model::from_bytes(&bytes, CpuBackend::new()).unwrap()
    }

    fn image(&self, m: &Model, name: &str) -> cappa::Image {
        let img = image::open(self.dir.join(name)).unwrap().to_rgb8();
        m.preprocess_rgb8(img.as_raw(), img.width() as usize, img.height() as usize)
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[test]
fn caption_prints_what_the_api_gives() {
    let s = Scratch::new("caption");
    let m = s.model();
    for (mode, decode) in [("greedy", Decode::Greedy), ("parallel", Decode::Parallel)] {
        let out = stdout(&cappa(&[
            "caption",
            &s.path("img0.png"),
            &s.path("img1.png"),
            "--model",
            &s.path("model.safetensors"),
            "--mode",
            mode,
        ]));
        let want = m
            .caption(&[s.image(&m, "img0.png"), s.image(&m, "img1.png")], &decode)
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for (line, (name, text)) in lines.iter().zip(["img0.png", "img1.png"].iter().zip(&want)) {
            assert_eq!(*line, format!("{}: {text}", s.path(name)), "{mode}");
        }
    }
    let json = stdout(&cappa(&[
        "caption",
        &s.path("img0.png"),
        "--model",
        &s.path("model.safetensors"),
        "--json",
        "--mode",
        "beam",
        "--beam",
        "2",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["image"], s.path("img0.png"));
    assert!(v[0]["log_prob"].as_f64().unwrap() < 0.0);
}

#[test]
fn classify_ranks_labels_as_the_api() {
    let s = Scratch::new("classify");
    let m = s.model();
    let labels = ["w3 w4", "w10", "w7 w8 w9"];
    let probs = m.classify(&s.image(&m, "img0.png"), &labels).unwrap();
    let out = stdout(&cappa(&[
        "classify",
        &s.path("img0.png"),
        "--model",
        &s.path("model.safetensors"),
        "--labels",
        &labels.join(","),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["labels"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let best = (0..3)
        .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
        .unwrap();
    assert_eq!(rows[0]["label"], labels[best]);
    let p0 = rows[0]["probability"].as_f64().unwrap() as f32;
    assert!((p0 - probs[best]).abs() < 1e-6);
    std::fs::write(s.dir.join("labels.txt"), "w3 w4\nw10\n\nw7 w8 w9\n").unwrap();
    let table = stdout(&cappa(&[
        "classify",
        &s.path("img0.png"),
        "--model",
        &s.path("model.safetensors"),
        "--labels-file",
        &s.path("labels.txt"),
    ]));
    assert_eq!(table.lines().count(), 4, "{table}");
}

#[test]
fn embed_writes_the_gap_features() {
    let s = Scratch::new("embed");
    let m = s.model();
    let out = s.path("emb.safetensors");
    stdout(&cappa(&[
        "embed",
        &s.path("img0.png"),
        &s.path("img1.png"),
        "--model",
        &s.path("model.safetensors"),
        "--out",
        &out,
    ]));
    let bytes = std::fs::read(&out).unwrap();
    let file = cappa::safetensors_io::SafetensorsFile::parse(&bytes).unwrap();
    let got = file.f32("embeddings").unwrap();
    let want = m
        .embed(
            &[s.image(&m, "img0.png"), s.image(&m, "img1.png")],
            cappa::Pool::Gap,
        )
        .unwrap();
    assert_eq!(got, want);
    assert!(file.metadata("images").unwrap().contains("img1.png"));
    // The same as a .npy file: numpy's header, then the values.
    let npy = s.path("emb.npy");
    stdout(&cappa(&[
        "embed",
        &s.path("img0.png"),
        &s.path("img1.png"),
        "--model",
        &s.path("model.safetensors"),
        "--out",
        &npy,
    ]));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(
        header.contains("'descr': '<f4'")
            && header.contains(&format!("'shape': (2, {})", want.shape()[1])),
        "{header}"
    );
    let values: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, want.data());
}

#[test]
fn info_describes_the_model() {
    let s = Scratch::new("info");
    let out = stdout(&cappa(&["info", &s.path("model.safetensors"), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tensors"], 69);
    assert_eq!(v["tokenizer"]["type"], "words");
    assert_eq!(v["config"]["vocab_size"], 50);
    assert!(v["parameters"].as_u64().unwrap() > 100_000);
    assert!(stdout(&cappa(&["info", &s.path("model.safetensors")])).contains("CapPa"));
}

#[test]
fn bench_reports_positive_numbers_for_the_tiny_preset() {
    let out = stdout(&cappa(&[
        "bench", "--preset", "tiny", "--repeat", "1", "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "encoder_images_per_s",
        "encoder_first_call_ms",
        "greedy_ms_per_token",
        "parallel_caption_ms",
        "scoring_10_candidates_ms",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0);
}

/// The README's first command: `cappa caption examples/images/<sample>.png`, no model given,
/// prints the sample's caption (each sample is named after its caption) with the default model.
#[test]
fn default_model_captions_the_sample_images() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut samples: Vec<PathBuf> = std::fs::read_dir(root.join("examples/images"))
        .expect("examples/images")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    samples.sort();
    assert!(!samples.is_empty(), "no sample images in examples/images");
    let args: Vec<String> = samples.iter().map(|p| p.display().to_string()).collect();
    let mut argv = vec!["caption"];
    argv.extend(args.iter().map(String::as_str));
    let out = stdout(&cappa(&argv));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), samples.len(), "{out}");
    for (path, line) in samples.iter().zip(lines) {
        let want = format!(
            "a {}",
            path.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .replace('-', " ")
        );
        assert_eq!(line, format!("{}: {want}", path.display()));
    }
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_file() {
    let s = Scratch::new("bad");
    let model = s.path("model.safetensors");
    std::fs::write(s.dir.join("broken.png"), b"not a png").unwrap();
    // A model whose config does not match its tensors.
    let ckpt = Checkpoint::load(s.dir.join("model.safetensors")).unwrap();
    let bytes = ckpt.to_single_file(None).unwrap();
    let file = cappa::safetensors_io::SafetensorsFile::parse(&bytes).unwrap();
    let mut cfg = ckpt.config().clone();
    cfg.dec_mlp += 1;
    let tensors: Vec<_> = file
        .entries()
        .map(|(n, e)| cappa::safetensors_io::OwnedTensor::copy_of(n, e))
        .collect();
    let mismatched =
        cappa::safetensors_io::serialize(&tensors, &[("cappa.config", cfg.to_json())]).unwrap();
    std::fs::write(s.dir.join("mismatch.safetensors"), mismatched).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "caption".into(),
                s.path("missing.png"),
                "--model".into(),
                model.clone(),
            ],
            "missing.png",
        ),
        (
            vec![
                "caption".into(),
                s.path("broken.png"),
                "--model".into(),
                model.clone(),
            ],
            "broken.png",
        ),
        (
            vec![
                "caption".into(),
                s.path("img0.png"),
                "--model".into(),
                s.path("nope.safetensors"),
            ],
            "nope.safetensors",
        ),
        (
            vec![
                "classify".into(),
                s.path("img0.png"),
                "--model".into(),
                model.clone(),
                "--labels-file".into(),
                s.path("labels.txt"),
            ],
            "labels.txt",
        ),
        (
            vec![
                "caption".into(),
                s.path("img0.png"),
                "--model".into(),
                s.path("mismatch.safetensors"),
            ],
            "mismatch.safetensors",
        ),
    ];
    for (args, name) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cappa(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(name), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}
