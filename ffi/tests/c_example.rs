//! The C example (`examples/c/caption.c`), built with the system C compiler against the
//! committed header and each library kind, prints exactly what the Rust API computes for the
//! same model, image and labels; and it runs clean under valgrind (no invalid access, no leak).

mod common;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use cappa_rt::image::PixelLayout;
use cappa_rt::{
    Backend, Beam, Checkpoint, ClassifyText, Decode, DecodeOptions, Device, Model, Pool, Sample,
    Sampling, TokenEvent,
};
use common::{build_c, c_command, model_path, run_ok, sample_image, Link};

const DEFAULT_LABELS: [&str; 3] = ["a red circle", "a blue square", "a green triangle"];

fn example(link: Link) -> PathBuf {
    let source = common::root().join("examples/c/caption.c");
    build_c(&[source], "caption", link, &[])
}

/// What `caption --device cpu MODEL IMAGE LABELS...` prints, computed with the Rust API.
fn expected(model_file: &Path, image_file: &Path, labels: &[&str]) -> String {
    let bytes = std::fs::read(model_file).unwrap();
    let num_params: usize = Checkpoint::from_bytes(&bytes)
        .unwrap()
        .file()
        .unwrap()
        .entries()
        .map(|(_, e)| e.shape.iter().product::<usize>())
        .sum();
    let model = Model::from_bytes(&bytes, Device::cpu()).unwrap();
    let cfg = model.config().clone();
    let tokenizer = model.tokenizer().unwrap();
    let mut s = String::new();
    let size = cfg.image_size;
    writeln!(
        s,
        "model: {} ({size}x{size} px, vocabulary {}, captions up to {} tokens, {num_params} \
         parameters)",
        cfg.name, cfg.vocab_size, cfg.max_len
    )
    .unwrap();
    writeln!(s, "device: {}", model.backend().name()).unwrap();

    let rgb = image::open(image_file).unwrap().into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    writeln!(s, "image: {w}x{h}").unwrap();
    let pixels = rgb.into_raw();
    let full = model.preprocess_rgb8(&pixels, w, h).unwrap();
    let half_layout = PixelLayout {
        width: (w / 2).max(1),
        ..PixelLayout::rgb(w, h)
    };
    let half = model.preprocess(&pixels, half_layout).unwrap();

    writeln!(s, "greedy, streamed:").unwrap();
    let (mut streamed, mut lines) = (0, String::new());
    let mut on_token = |e: TokenEvent<'_>| {
        streamed += 1;
        let text = tokenizer.decode(e.tokens);
        writeln!(lines, "  image {} +{} \"{text}\"", e.image, e.token).unwrap();
        true
    };
    let greedy = model
        .caption_with(
            std::slice::from_ref(&full),
            &Decode::Greedy,
            &DecodeOptions::default(),
            Some(&mut on_token),
        )
        .unwrap();
    s += &lines;
    writeln!(s, "greedy: \"{}\" ({streamed} tokens)", greedy[0][0].text).unwrap();

    let sample = Sample {
        sampling: Sampling {
            temperature: 0.8,
            ..Sampling::default()
        },
        seed: 7,
    };
    let strategies = [
        ("greedy", Decode::Greedy),
        ("beam", Decode::Beam(Beam::default())),
        ("sample", Decode::Sample(sample)),
        ("parallel", Decode::Parallel),
    ];
    let both = [full.clone(), half];
    for (name, decode) in &strategies {
        if matches!(decode, Decode::Parallel) && !cfg.has_mask_token() {
            continue;
        }
        let captions = model
            .caption_with(&both, decode, &DecodeOptions::default(), None)
            .unwrap();
        for (i, c) in captions.iter().enumerate() {
            let which = if i == 1 { "half" } else { "image" };
            let best = &c[0];
            let lp = best.log_prob as f64;
            writeln!(s, "{name} {which}: \"{}\" (log-prob {lp:.4})", best.text).unwrap();
        }
    }

    let embeddings = model.embed(&both, Pool::Gap).unwrap();
    let dim = cfg.enc_width;
    for (i, e) in embeddings.data().chunks(dim).enumerate() {
        let which = if i == 1 { "half" } else { "image" };
        let [a, b, c, d] = [e[0], e[1], e[2], e[3]].map(f64::from);
        writeln!(
            s,
            "embedding {which}: {dim} floats: {a:.5} {b:.5} {c:.5} {d:.5} ..."
        )
        .unwrap();
    }

    let result = model
        .classify_with(&[full], labels, &ClassifyText::default())
        .unwrap();
    let probabilities = result.probabilities.data();
    writeln!(s, "labels:").unwrap();
    let mut best = 0;
    for (k, label) in labels.iter().enumerate() {
        writeln!(s, "  {:.6} {label}", probabilities[k] as f64).unwrap();
        if probabilities[k] > probabilities[best] {
            best = k;
        }
    }
    writeln!(s, "best: {}", labels[best]).unwrap();
    s
}

#[test]
fn the_c_example_prints_what_the_rust_api_computes() {
    let (model, image) = (model_path(), sample_image());
    let labels = [
        "a red circle",
        "two blue squares",
        "une étoile",
        "the picture",
    ];
    let want_default = expected(&model, &image, &DEFAULT_LABELS);
    let want_labels = expected(&model, &image, &labels);
    for link in [Link::Static, Link::Shared] {
        let exe = example(link);
        let out = run_ok(
            c_command(&exe)
                .args(["--device", "cpu"])
                .arg(&model)
                .arg(&image),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want_default,
            "{link:?}"
        );
        let out = run_ok(
            c_command(&exe)
                .args(["--device", "cpu"])
                .arg(&model)
                .arg(&image)
                .args(labels),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want_labels,
            "{link:?}"
        );
        // Progress went to stderr, ending at 100% for every strategy.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("beam: 100%"), "{stderr}");
    }
}

#[test]
fn the_c_example_runs_clean_under_valgrind() {
    let Some(mut valgrind) = common::valgrind() else {
        return;
    };
    let (model, image) = (model_path(), sample_image());
    for link in [Link::Shared, Link::Static] {
        let exe = example(link);
        let out = run_ok(
            valgrind
                .env("CAPPA_DEVICE", "cpu")
                .arg(&exe)
                .args(["--device", "cpu"])
                .arg(&model)
                .arg(&image),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected(&model, &image, &DEFAULT_LABELS)
        );
        valgrind = common::valgrind().unwrap();
    }
}

/// Issue 18: with CAPPA_DEVICE_AUTO on a headless host (no XDG_RUNTIME_DIR), Mesa's Vulkan
/// drivers printed "XDG_RUNTIME_DIR is invalid" into the host program's stderr while libcappa
/// looked for a GPU. The look is quiet now: the example's stderr holds only its own progress.
#[test]
fn looking_for_a_gpu_prints_nothing_into_the_host() {
    let exe = example(Link::Shared);
    let out = run_ok(
        std::process::Command::new(&exe)
            .env_remove("CAPPA_DEVICE")
            .env_remove("XDG_RUNTIME_DIR")
            .args(["--device", "auto"])
            .arg(model_path())
            .arg(sample_image()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let foreign: Vec<&str> = stderr.lines().filter(|l| !l.contains("%")).collect();
    assert!(foreign.is_empty(), "foreign lines on stderr: {foreign:?}");
}
