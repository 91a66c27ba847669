//! C programs against the committed header and both library kinds: every function called with
//! NULL and invalid arguments (and a panic inside the library), under valgrind as well; and
//! eight threads sharing one model.

mod common;

use std::path::PathBuf;

use cappa_rt::{Checkpoint, Model, Tokenizer};
use common::{build_c, c_command, demo, model_path, run_ok, sample_image, scratch, Link};

/// The arguments of `api_errors`: the model, the image, a model without tokenizer (the fixture
/// folder), a Cap-only model (random weights, with the word vocabulary) and a truncated PNG.
fn api_errors_args() -> Vec<PathBuf> {
    let dir = scratch();
    let cap_only = dir.join("cap_only.safetensors");
    let mut config = Checkpoint::load(demo::fixture_dir())
        .unwrap()
        .config()
        .clone();
    config.masked_pred_prob = 0.0;
    config.mask_id = None;
    let mut checkpoint = Model::random_checkpoint(&config, 3).unwrap();
    let words = demo::WORDS.iter().map(|w| w.to_string()).collect();
    let ids = cappa_rt::tokenizer::SpecialIds::from_config(&config);
    let tokenizer = Tokenizer::words(words, ids, true).unwrap();
    checkpoint.set_tokenizer(Some(tokenizer.to_metadata()));
    std::fs::write(&cap_only, checkpoint.to_single_file(None).unwrap()).unwrap();
    let truncated = dir.join("truncated.png");
    let png = std::fs::read(sample_image()).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    vec![
        model_path(),
        sample_image(),
        demo::fixture_dir(),
        cap_only,
        truncated,
    ]
}

fn api_errors(link: Link) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/api_errors.c");
    build_c(&[source], "api_errors", link, &["-lm"])
}

#[test]
fn every_function_rejects_bad_arguments_with_a_status_and_a_message() {
    let args = api_errors_args();
    for link in [Link::Static, Link::Shared] {
        let exe = api_errors(link);
        let out = run_ok(c_command(&exe).args(&args));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("ok: "), "{link:?}: {stdout}");
        // The deliberate panic is caught, not an abort: the program went on to the end, and
        // checked its status and message. Nothing of it reached the host's stderr (issue 18:
        // the default panic hook printed it there).
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("cappa_debug_panic was called"),
            "{link:?}: a caught panic printed to the host's stderr:\n{stderr}"
        );
    }
}

#[test]
fn bad_arguments_touch_no_memory_they_should_not() {
    let Some(mut valgrind) = common::valgrind() else {
        return;
    };
    let exe = api_errors(Link::Shared);
    let out = run_ok(
        valgrind
            .env("CAPPA_DEVICE", "cpu")
            .arg(&exe)
            .args(api_errors_args()),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
}

#[test]
fn valgrind_sees_what_a_program_forgets_to_free() {
    let Some(mut valgrind) = common::valgrind() else {
        return;
    };
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/forgets.c");
    let exe = build_c(&[source], "forgets", Link::Shared, &[]);
    let out = valgrind
        .env("CAPPA_DEVICE", "cpu")
        .arg(&exe)
        .arg(model_path())
        .arg(sample_image())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(99), "{stderr}");
    for what in [
        "cappa_model_load_file",
        "cappa_image_load_file",
        "cappa_caption",
    ] {
        assert!(
            stderr.contains("definitely lost") && stderr.contains(what),
            "valgrind does not report what {what} handed out as lost:\n{stderr}"
        );
    }
}

#[test]
fn eight_threads_share_one_model() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/threads.c");
    let exe = build_c(&[source], "threads", Link::Shared, &["-pthread"]);
    let out = run_ok(
        c_command(&exe)
            .arg(model_path())
            .arg(sample_image())
            .arg("cpu"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\nok: "), "{stdout}");
}
