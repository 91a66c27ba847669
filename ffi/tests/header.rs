//! `include/cappa.h` is generated from the crate by cbindgen and committed. This test generates
//! it again and fails when the committed file differs; `CAPPA_UPDATE_HEADER=1` makes it write
//! the file instead. It also checks that every function is documented and that the header
//! compiles as strict C99 (and as C++, where a C++ compiler exists).

mod common;

use std::path::Path;
use std::process::Command;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

fn committed() -> String {
    std::fs::read_to_string(common::include_dir().join("cappa.h")).unwrap_or_default()
}

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let generated = generate();
    let path = common::include_dir().join("cappa.h");
    if std::env::var("CAPPA_UPDATE_HEADER").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = committed();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is out of date (first difference at line {}: committed {:?}, generated {:?}); \
             regenerate it with `CAPPA_UPDATE_HEADER=1 cargo test -p cappa-ffi --test header` \
             and commit it",
            path.display(),
            line + 1,
            committed.lines().nth(line),
            generated.lines().nth(line)
        );
    }
}

/// The function declarations of the header with the documentation comment above each.
fn functions(header: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = header.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(paren) = line.find('(') else {
            continue;
        };
        if line.starts_with([' ', '#', '}']) || line.starts_with("typedef") {
            continue;
        }
        let name = line[..paren]
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default()
            .to_string();
        if !name.starts_with("cappa_") {
            continue;
        }
        let mut doc = Vec::new();
        for prev in lines[..i].iter().rev() {
            if prev.trim().is_empty() {
                break;
            }
            doc.push(*prev);
        }
        doc.reverse();
        out.push((name, doc.join("\n")));
    }
    out
}

#[test]
fn every_function_is_documented() {
    let header = committed();
    let functions = functions(&header);
    assert!(functions.len() >= 19, "{functions:#?}");
    for (name, doc) in &functions {
        assert!(
            doc.trim_start().starts_with("/**") && doc.len() > 40,
            "{name} has no documentation in cappa.h"
        );
    }
    // Functions returning a status list the codes they return.
    for line in header
        .lines()
        .filter(|l| l.starts_with("cappa_status cappa_"))
    {
        let name = &line["cappa_status ".len()..line.find('(').unwrap()];
        let (_, doc) = functions.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            doc.contains("CAPPA_ERR_"),
            "{name} does not say which errors it returns"
        );
    }
}

#[test]
fn header_compiles_as_strict_c99_and_as_cpp() {
    let dir = common::scratch();
    let source = dir.join("header_only.c");
    std::fs::write(
        &source,
        "#include \"cappa.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    common::run_ok(
        Command::new(common::cc())
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(common::include_dir())
            .arg(&source),
    );
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    if Command::new(&cxx).arg("--version").output().is_err() {
        eprintln!("skipping the C++ check: no C++ compiler (`{cxx}`)");
        return;
    }
    common::run_ok(
        Command::new(&cxx)
            .args([
                "-x",
                "c++",
                "-std=c++11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(common::include_dir())
            .arg(&source),
    );
}
