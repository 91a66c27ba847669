//! Helpers of the FFI tests: the model they run, the library files, and building and running
//! C programs with the system compiler (and valgrind).

#![allow(dead_code)] // each test file uses its own part

pub mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch folder for this test binary's files.
pub fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cappa-ffi-{}",
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The model the tests run: `$CAPPA_TEST_MODEL` (any model file with a tokenizer), else the
/// default model, `examples/models/shapes.safetensors`.
pub fn model_path() -> PathBuf {
    match std::env::var_os("CAPPA_TEST_MODEL") {
        Some(p) => PathBuf::from(p),
        None => root().join("examples/models/shapes.safetensors"),
    }
}

/// The image the C example is tested on: a sample of the default model's world.
pub fn sample_image() -> PathBuf {
    root().join("examples/images/large-red-cross.png")
}

/// The committed header's folder.
pub fn include_dir() -> PathBuf {
    root().join("ffi/include")
}

/// How a C program gets libcappa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `libcappa.so`, found at run time through an rpath.
    Shared,
    /// `libcappa.a`, linked in.
    Static,
}

/// The folder holding the `libcappa.so` and `libcappa.a` that cargo built with this test.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        if dir.join("libcappa.a").is_file() && dir.join(shared_name()).is_file() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "libcappa.a and {} not found beside {}",
        shared_name(),
        exe.display()
    );
}

fn shared_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libcappa.dylib"
    } else {
        "libcappa.so"
    }
}

/// The C compiler: `$CC`, else `cc`.
pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Compiles and links C `sources` against the committed header and libcappa; returns the
/// executable. Warnings are errors. Each program is built once per test binary (the tests of a
/// binary run in parallel and share it).
pub fn build_c(sources: &[PathBuf], name: &str, link: Link, extra: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<(String, Link, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, exe)) = built.iter().find(|(n, l, _)| n == name && *l == link) {
        return exe.clone();
    }
    let exe = scratch().join(format!(
        "{name}-{}",
        if link == Link::Static {
            "static"
        } else {
            "shared"
        }
    ));
    let lib = lib_dir();
    let mut cmd = Command::new(cc());
    cmd.args([
        "-std=c99",
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-pedantic",
        "-Werror",
    ])
    .arg("-I")
    .arg(include_dir())
    .args(sources)
    .args(extra)
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Static => {
            cmd.arg(lib.join("libcappa.a"))
                .args(["-lm", "-lpthread", "-ldl"]);
        }
        Link::Shared => {
            cmd.arg("-L").arg(&lib).arg("-lcappa");
            // An RPATH, not a RUNPATH: cargo's LD_LIBRARY_PATH (which a RUNPATH would yield to)
            // may name a folder with another libcappa.so.
            if cfg!(target_os = "linux") {
                cmd.arg("-Wl,--disable-new-dtags");
            }
            cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{}`: {e}", cc()));
    assert!(
        out.status.success(),
        "compiling {name} failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.push((name.to_string(), link, exe.clone()));
    exe
}

/// Runs a command; panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// valgrind with the leak checker, failing (exit code 99) on any memory error or any definite
/// or indirect leak; `None` (with the reason printed) where valgrind is missing, unless
/// `CAPPA_REQUIRE_VALGRIND=1` (set by `.ci/run`), which makes that a failure.
pub fn valgrind() -> Option<Command> {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CAPPA_REQUIRE_VALGRIND").map_or(true, |v| v != "1"),
            "CAPPA_REQUIRE_VALGRIND=1 but valgrind is not installed"
        );
        eprintln!("skipping the valgrind run: valgrind is not installed");
        return None;
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--quiet",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
    ]);
    Some(cmd)
}

/// The environment of a C program run by the tests: the CPU unless a test asks otherwise, so
/// that results do not depend on the machine.
pub fn c_command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("CAPPA_DEVICE", "cpu");
    cmd
}
