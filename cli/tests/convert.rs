//! `cappa convert`: big_vision `.npz` ⇄ cappa `.safetensors`, run as the binary.
//!
//! The `.npz` files under `tests/data/npz/` were written by numpy (`make_npz.py` there); their
//! values follow a formula of each parameter's name that [`value`] recomputes.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use cappa::safetensors_io::DType;
use cappa::{Backend, Checkpoint, Config, CpuBackend, Mode, Model, PosEmb};
use cappa_tests::{assert_close, fixture_dirs, Fixture, Tol};

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cappa-convert-{}-{test}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn npz_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/npz")
        .join(name)
}

fn run(args: &[&OsStr]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cappa"))
        .arg("convert")
        .args(args)
        .output()
        .expect("run cappa");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cappa convert ARGS`, which must succeed; returns what it printed.
fn convert(args: &[&OsStr]) -> String {
    let (code, err) = run(args);
    assert_eq!(code, Some(0), "cappa convert {args:?} failed: {err}");
    err
}

/// Runs `cappa convert ARGS`, which must fail with one line on stderr; returns that line.
fn convert_fails(args: &[&OsStr]) -> String {
    let (code, err) = run(args);
    assert_eq!(code, Some(1), "cappa convert {args:?} should fail: {err}");
    let err = err.trim_end();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("cappa: "), "{err}");
    err.to_string()
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$a)),*] };
}

/// Every tensor of a model file: name → (dtype, shape, bytes).
fn tensors(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let ckpt = Checkpoint::load(path).unwrap();
    let file = ckpt.file().unwrap();
    file.entries()
        .map(|(n, e)| {
            (
                n.to_string(),
                format!("{:?}", e.dtype),
                e.shape.clone(),
                e.bytes.to_vec(),
            )
        })
        .collect()
}

/// Entry name → bytes of every entry of a zip archive.
fn zip_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().unwrap().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// Asserts two archives' entries are the same, naming the first that differs.
fn assert_same_entries(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)]) {
    let names = |e: &[(String, Vec<u8>)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want));
    for ((name, a), (_, b)) in got.iter().zip(want) {
        assert!(
            a == b,
            "entry `{name}` differs: {} vs {} bytes",
            a.len(),
            b.len()
        );
    }
}

fn fixture_config(dir: &Path) -> Config {
    Config::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn config_of(path: &Path) -> Config {
    Checkpoint::load(path).unwrap().config().clone()
}

#[test]
fn fixture_round_trip_is_bit_exact_and_keeps_the_outputs() {
    let tmp = scratch("fixture");
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let want_config = fixture_config(&dir);
        let want_tensors = tensors(&dir);

        // Loop layout, config inferred from the shapes alone.
        // The converted model is named after the input file.
        let npz = tmp.join(format!("{}.npz", want_config.name));
        let json = tmp.join(format!("{name}.json"));
        convert(args![dir, npz, "--config-out", json]);
        let entries = zip_entries(&npz);
        assert_eq!(entries.len(), want_tensors.len());
        assert!(entries
            .iter()
            .any(|(n, _)| n == "encoder/Transformer/encoderblock_1/LayerNorm_0/scale.npy"));
        let back = tmp.join(format!("{name}.safetensors"));
        let said = convert(args![npz, back]);
        assert!(
            said.contains(&format!("max_len {}", want_config.max_len)),
            "{said}"
        );
        assert_eq!(tensors(&back), want_tensors, "{name}: tensors changed");
        // Every size is read off the shapes; training-only values and ids take their defaults.
        let mut inferred = config_of(&back);
        assert_eq!(inferred.has_mask_token(), want_config.has_mask_token());
        inferred.masked_pred_prob = want_config.masked_pred_prob;
        inferred.mask_id = want_config.mask_id;
        assert_eq!(inferred, want_config, "{name}: inferred config");
        assert_eq!(
            Config::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap(),
            want_config
        );

        // The fixture's outputs from the converted file.
        let fix = Fixture::open(&dir);
        let model = Model::new(&Checkpoint::load(&back).unwrap(), CpuBackend::new()).unwrap();
        let be = model.backend();
        let encoded = model.encode(&fix.images()).unwrap();
        let tokens = fix.tokens("tokens");
        assert_close(
            "encoder_out",
            &be.download(&encoded).unwrap(),
            &fix.want("encoder_out"),
            Tol::ACTIVATIONS,
        );
        for (mode, what) in [(Mode::Cap, "logits_cap"), (Mode::Pa, "logits_pa")] {
            let logits = model.logits(&encoded, &tokens, mode).unwrap();
            assert_close(
                what,
                &be.download(&logits).unwrap(),
                &fix.want(what),
                Tol::ACTIVATIONS,
            );
        }

        // Scan layout, deflated, config from the JSON written beside the first .npz.
        let scan = tmp.join(format!("{name}-scan.npz"));
        convert(args![dir, scan, "--scan", "--compress"]);
        let entries = zip_entries(&scan);
        assert!(entries
            .iter()
            .any(|(n, _)| n == "decoder/EncDecBlock/SelfAttn/query/kernel.npy"));
        assert!(!entries.iter().any(|(n, _)| n.contains("encoderblock_")));
        let back = tmp.join(format!("{name}-scan.safetensors"));
        let said = convert(args![scan, back, "--config", json]);
        assert!(said.contains("scan layout"), "{said}");
        assert_eq!(tensors(&back), want_tensors, "{name}: scan round trip");
        assert_eq!(config_of(&back), want_config);
    }
    std::fs::remove_dir_all(&tmp).ok();
}

/// `make_npz.py`'s values: exact in f16, bf16, f32 and f64.
fn value(name: &str, i: usize) -> f32 {
    let seed = name
        .bytes()
        .enumerate()
        .map(|(j, b)| (j + 1) * b as usize)
        .sum::<usize>()
        % 1000;
    (((seed + 7 * i) % 255) as f32 - 127.0) / 128.0
}

/// `make_npz.py`'s configs.
fn numpy_config(name: &str, cap_only: bool) -> Config {
    let mut c = Config::tiny_for_tests();
    c.name = name.into();
    (c.image_size, c.patch_size, c.in_channels) = (8, 4, 3);
    (c.enc_width, c.enc_depth, c.enc_heads, c.enc_mlp) = (16, 2, 2, 32);
    (c.dec_width, c.dec_depth, c.dec_heads, c.dec_mlp) = (24, 2, 4, 40);
    (c.vocab_size, c.max_len, c.decoder_bias, c.masked_pred_prob) = (12, 6, true, 0.75);
    if cap_only {
        (
            c.enc_depth,
            c.dec_depth,
            c.dec_width,
            c.dec_heads,
            c.dec_mlp,
        ) = (1, 1, 16, 1, 24);
        (c.decoder_bias, c.masked_pred_prob) = (false, 0.0);
    }
    c
}

#[test]
fn npz_files_written_by_numpy_load() {
    let tmp = scratch("numpy");
    let cases = [
        ("loop", false, "F32"),
        ("scan_params", false, "F32"),
        ("scan_compressed_bf16", false, "BF16"),
        ("cap_only_f16_f64", true, "F16 kernels, F32 rest"),
    ];
    for (stem, cap_only, dtypes) in cases {
        let out = tmp.join(format!("{stem}.safetensors"));
        let said = convert(args![npz_data(&format!("{stem}.npz")), out]);
        assert_eq!(config_of(&out), numpy_config(stem, cap_only), "{stem}");
        if stem.starts_with("scan") {
            assert!(said.contains("scan layout"), "{said}");
        }
        if stem == "scan_params" {
            assert!(said.contains("under `params/`; skipped 2"), "{said}");
        }
        let ckpt = Checkpoint::load(&out).unwrap();
        let file = ckpt.file().unwrap();
        let mut n = 0;
        for (name, e) in file.entries() {
            let want_dtype = match dtypes {
                "F32" => DType::F32,
                "BF16" => DType::BF16,
                _ if name.ends_with("kernel") => DType::F16,
                _ => DType::F32,
            };
            assert_eq!(e.float_dtype(name).unwrap(), want_dtype, "{stem}: {name}");
            let got = e.to_f32(name).unwrap();
            let want: Vec<f32> = (0..got.len()).map(|i| value(name, i)).collect();
            assert_eq!(got, want, "{stem}: {name}");
            n += 1;
        }
        assert_eq!(n, if cap_only { 40 } else { 79 }, "{stem}");
        // It runs.
        let model = Model::new(&ckpt, CpuBackend::new()).unwrap();
        let images = cappa::HostTensor::zeros(&[1, 8, 8, 3]);
        let encoded = model.backend().download(&model.encode(&images).unwrap());
        assert!(encoded.unwrap().data().iter().all(|v| v.is_finite()));
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn written_npy_entries_are_what_numpy_writes() {
    let tmp = scratch("bytes");
    let st = tmp.join("model.safetensors");
    convert(args![npz_data("loop.npz"), st]);
    let ours = tmp.join("loop.npz");
    convert(args![st, ours]);
    assert_same_entries(&zip_entries(&ours), &zip_entries(&npz_data("loop.npz")));

    let ours = tmp.join("scan.npz");
    convert(args![st, ours, "--scan"]);
    let numpy: Vec<(String, Vec<u8>)> = zip_entries(&npz_data("scan_params.npz"))
        .into_iter()
        .filter_map(|(n, b)| Some((n.strip_prefix("params/")?.to_string(), b)))
        .collect();
    assert_same_entries(&zip_entries(&ours), &numpy);

    // bf16 goes out as f32 (exact) by default, as big_vision's 2-byte void with --dtype bf16.
    let bf = tmp.join("bf16.safetensors");
    convert(args![npz_data("scan_compressed_bf16.npz"), bf]);
    let ours = tmp.join("bf16.npz");
    let said = convert(args![bf, ours, "--scan", "--compress", "--dtype", "bf16"]);
    assert!(!said.contains("written as f32"), "{said}");
    assert_same_entries(
        &zip_entries(&ours),
        &zip_entries(&npz_data("scan_compressed_bf16.npz")),
    );
    let widened = tmp.join("f32.npz");
    let said = convert(args![bf, widened]);
    assert!(
        said.contains("79 bf16 tensors are written as f32"),
        "{said}"
    );
    assert_same_entries(&zip_entries(&widened), &zip_entries(&npz_data("loop.npz")));
    let back = tmp.join("back.safetensors");
    convert(args![widened, back, "--dtype", "bf16"]);
    assert_eq!(tensors(&back), tensors(&bf));
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn dtype_flag_rounds_as_the_runtime_does() {
    let tmp = scratch("dtype");
    let dir = &fixture_dirs()[0];
    let npz = tmp.join("m.npz");
    convert(args![dir, npz]);
    let want = Checkpoint::load(dir).unwrap();
    let want = want.file().unwrap();
    for (flag, dtype) in [
        ("f16", DType::F16),
        ("bf16", DType::BF16),
        ("f32", DType::F32),
    ] {
        let out = tmp.join(format!("m-{flag}.safetensors"));
        let said = convert(args![npz, out, "--dtype", flag]);
        assert!(said.contains(&format!("({flag})")), "{said}");
        let got = Checkpoint::load(&out).unwrap();
        let got = got.file().unwrap();
        for (name, e) in want.entries() {
            let g = got.get(name).unwrap();
            assert_eq!(g.float_dtype(name).unwrap(), dtype);
            let rounded: Vec<f32> = e
                .to_f32(name)
                .unwrap()
                .into_iter()
                .map(|v| dtype.round(v))
                .collect();
            assert_eq!(g.to_f32(name).unwrap(), rounded, "{flag}: {name}");
        }
    }
    // A usage error, reported by the argument parser.
    let (code, err) = run(args![npz, tmp.join("x.safetensors"), "--dtype", "f64"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`f64` is not one of f32, f16, bf16"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn random_models_of_every_shape_round_trip() {
    let tmp = scratch("random");
    for cfg in cappa_tests::random::configs() {
        let st = tmp.join(format!("{}.safetensors", cfg.name));
        Model::random_checkpoint(&cfg, 9)
            .unwrap()
            .save(&st, None)
            .unwrap();
        let npz = tmp.join(format!("{}.npz", cfg.name));
        let json = tmp.join(format!("{}.json", cfg.name));
        convert(args![st, npz, "--scan", "--config-out", json]);
        let back = tmp.join(format!("{}-back.safetensors", cfg.name));
        convert(args![npz, back, "--config", json]);
        assert_eq!(tensors(&back), tensors(&st), "{}", cfg.name);
        assert_eq!(config_of(&back), cfg, "{}", cfg.name);

        let inferred = tmp.join(format!("{}-inferred.safetensors", cfg.name));
        if cfg.posemb_type == PosEmb::Sincos2d {
            // No position tables: image size and caption length must be given.
            let err = convert_fails(args![npz, inferred]);
            assert!(
                err.contains(&format!("{}: cannot infer image_size", npz.display()))
                    && err.contains("--image-size, --max-len"),
                "{err}"
            );
            let size = cfg.image_size.to_string();
            let len = cfg.max_len.to_string();
            convert(args![npz, inferred, "--image-size", size, "--seq-len", len]);
        } else {
            convert(args![npz, inferred]);
        }
        assert_eq!(config_of(&inferred), cfg, "{} inferred", cfg.name);
    }
    std::fs::remove_dir_all(&tmp).ok();
}

/// The `.npy` bytes of a header dict and data.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Writes a zip of `entries` to `path`.
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file() {
    let tmp = scratch("bad");
    let out = tmp.join("out.safetensors");
    let check = |args: &[&OsStr], wants: &[&str]| {
        let err = convert_fails(args);
        for want in wants {
            assert!(err.contains(want), "`{want}` not in: {err}");
        }
        assert!(!out.exists(), "{err}: an output was written");
    };

    let missing = tmp.join("missing.npz");
    check(args![missing, out], &["missing.npz", "No such file"]);
    check(
        args![tmp.join("missing.safetensors"), tmp.join("m.npz")],
        &["missing.safetensors"],
    );

    let not_zip = tmp.join("not-zip.npz");
    std::fs::write(&not_zip, "just text").unwrap();
    check(args![not_zip, out], &["not-zip.npz", "not a zip archive"]);

    let f4 =
        |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // (file, its entries, what the error must say)
    type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "header.npz",
            vec![("a/w.npy", npy("{'descr': '<f4', 'shape': (2,)", &[0; 8]))],
            vec!["entry `a/w.npy`", "bad header"],
        ),
        (
            "fortran.npz",
            vec![(
                "w.npy",
                npy(
                    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }",
                    &[0; 8],
                ),
            )],
            vec!["entry `w.npy`", "Fortran-order"],
        ),
        (
            "big-endian.npz",
            vec![(
                "w.npy",
                npy(
                    "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                    &[0; 8],
                ),
            )],
            vec!["entry `w.npy`", "big-endian dtype `>f4`"],
        ),
        (
            "dtype.npz",
            vec![(
                "w.npy",
                npy(
                    "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                    &[0; 16],
                ),
            )],
            vec!["entry `w.npy`", "unsupported dtype `<c8`"],
        ),
        (
            "short.npz",
            vec![("w.npy", npy(&f4("(3,)"), &[0; 8]))],
            vec!["entry `w.npy`", "holds 8 bytes of data but its header"],
        ),
        (
            "not-npy.npz",
            vec![("w.npy", npy(&f4("(2,)"), &[0; 8])), ("notes.txt", vec![])],
            vec!["entry `notes.txt`", "not a .npy array"],
        ),
        (
            "no-arrays.npz",
            vec![],
            vec!["no-arrays.npz: holds no arrays"],
        ),
    ];
    for (file, entries, wants) in cases {
        let path = tmp.join(file);
        write_zip(&path, &entries);
        let mut wants = wants;
        wants.push(file);
        check(args![path, out], &wants);
    }

    // Shapes that do not fit the config: named tensor, named file.
    let loop_npz = npz_data("loop.npz");
    check(
        args![loop_npz, out, "--enc-mlp", "33"],
        &[
            "loop.npz",
            "`encoder/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel` has shape [16, 32] \
             but the config implies [16, 33]",
        ],
    );
    let fixture_json = fixture_dirs()[0].join("config.json");
    check(
        args![loop_npz, out, "--config", fixture_json],
        &["loop.npz", "encoder/embedding/kernel"],
    );
    check(
        args![loop_npz, out, "--masked-pred-prob", "0"],
        &["decoder/EmbedTargets/embedding", "[13, 24]", "[12, 24]"],
    );
    check(
        args![loop_npz, out, "--heads", "5"],
        &["loop.npz", "enc_width 16 is not divisible by enc_heads 5"],
    );
    let junk_json = tmp.join("junk.json");
    std::fs::write(&junk_json, "[1, 2]").unwrap();
    check(
        args![loop_npz, out, "--config", junk_json],
        &["junk.json", "not a JSON object"],
    );

    // An array no parameter of the config has.
    let extra = tmp.join("extra.npz");
    let mut entries = zip_entries(&loop_npz);
    entries.push(("encoder/head/kernel.npy".into(), npy(&f4("(2,)"), &[0; 8])));
    let entries: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    write_zip(&extra, &entries);
    check(
        args![extra, out],
        &["extra.npz", "unexpected tensor `encoder/head/kernel`"],
    );

    // Mixed scan and loop layouts.
    let mixed = tmp.join("mixed.npz");
    let mut entries = zip_entries(&npz_data("scan_params.npz"));
    entries.push((
        "params/decoder/EncDecBlock0/LayerNorm1/scale.npy".into(),
        npy(&f4("(24,)"), &[0; 96]),
    ));
    let entries: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    write_zip(&mixed, &entries);
    check(args![mixed, out], &["mixed.npz", "both the scan layout"]);

    // A cappa model whose config does not match its tensors is not converted.
    let folder = tmp.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    let dir = &fixture_dirs()[0];
    std::fs::copy(
        dir.join("params.safetensors"),
        folder.join("params.safetensors"),
    )
    .unwrap();
    let mut cfg = fixture_config(dir);
    cfg.dec_mlp = 96;
    std::fs::write(folder.join("config.json"), cfg.to_json()).unwrap();
    let npz_out = tmp.join("model.npz");
    let err = convert_fails(args![folder, npz_out]);
    assert!(
        err.contains("model: tensor `decoder/EncDecBlock0/MLP/Dense_0/kernel`"),
        "{err}"
    );
    assert!(!npz_out.exists());
    let bad_st = tmp.join("bad.safetensors");
    std::fs::write(&bad_st, b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let err = convert_fails(args![bad_st, npz_out]);
    assert!(err.contains("bad.safetensors"), "{err}");

    // Arguments that do not fit the direction.
    check(
        args![loop_npz, tmp.join("x.npz")],
        &["x.npz", "*.safetensors"],
    );
    check(args![loop_npz, out, "--scan"], &["--scan"]);
    check(
        args![tmp.join("x.bin"), out],
        &["x.bin", "cannot tell what to convert"],
    );
    let err = convert_fails(args![dir, npz_out, "--width", "64"]);
    assert!(
        err.contains("a cappa model carries its own config"),
        "{err}"
    );
    std::fs::remove_dir_all(&tmp).ok();
}
