//! `cappa dump` on every fixture reproduces the reference's expected.safetensors.

use std::process::Command;

use cappa::safetensors_io::SafetensorsFile;
use cappa_tests::{assert_close, fixture_dirs, Fixture, Tol};

#[test]
fn dump_reproduces_expected_outputs() {
    dump_matches("cpu");
}

/// The whole dump on the GPU; skipped with a note where there is no adapter, failed instead under
/// `CAPPA_REQUIRE_GPU=1`.
#[test]
fn dump_on_the_gpu_reproduces_expected_outputs() {
    if cappa_tests::gpu().is_some() {
        dump_matches("gpu");
    }
}

fn dump_matches(device: &str) {
    for dir in fixture_dirs() {
        let fix = Fixture::open(&dir);
        let out = std::env::temp_dir().join(format!(
            "cappa-dump-{device}-{}.safetensors",
            std::process::id()
        ));
        let status = Command::new(env!("CARGO_BIN_EXE_cappa"))
            .args(["dump", "--device", device, "--model"])
            .arg(&dir)
            .arg("--inputs")
            .arg(dir.join("inputs.safetensors"))
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run cappa");
        assert!(status.success(), "cappa dump failed on {}", dir.display());
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).ok();
        let got = SafetensorsFile::parse(&bytes).unwrap();
        let mut names: Vec<&str> = got.names().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "encoder_gap",
                "encoder_out",
                "greedy_tokens",
                "logits_cap",
                "logits_pa",
                "loss_cap",
                "loss_pa",
                "parallel_tokens",
                "zeroshot_scores"
            ]
        );
        for name in ["encoder_out", "encoder_gap", "logits_cap", "logits_pa"] {
            assert_close(
                name,
                &got.f32(name).unwrap(),
                &fix.want(name),
                Tol::ACTIVATIONS,
            );
        }
        for name in ["loss_cap", "loss_pa", "zeroshot_scores"] {
            assert_close(name, &got.f32(name).unwrap(), &fix.want(name), Tol::LOSSES);
        }
        for name in ["greedy_tokens", "parallel_tokens"] {
            let (shape, ids) = got.i32(name).unwrap();
            let want = fix.expected();
            let (wshape, wids) = want.i32(name).unwrap();
            assert_eq!((shape, ids), (wshape, wids), "{name}");
        }
    }
}

#[test]
fn dump_reports_bad_inputs_without_panicking() {
    let dir = &fixture_dirs()[0];
    let bad = std::env::temp_dir().join(format!("cappa-bad-{}.safetensors", std::process::id()));
    std::fs::write(&bad, b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cappa"))
        .args(["dump", "--model"])
        .arg(dir)
        .arg("--inputs")
        .arg(&bad)
        .args(["--out", "/nonexistent/never.safetensors"])
        .output()
        .unwrap();
    std::fs::remove_file(&bad).ok();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("images"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
