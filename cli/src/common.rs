//! What the subcommands share: finding and loading the model, reading images, progress bars,
//! and printing (a closed stdout or a full disk is an error message, never a panic).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cappa::{Checkpoint, Device, Error, Image, Model, Precision, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::DeviceArg;

/// Prints a line to stdout (a `Result`: see [`print_line`]).
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::common::print_line(format_args!($($t)*))
    };
}

/// Prints a line to stderr; a stderr that cannot be written to is ignored.
macro_rules! note {
    ($($t:tt)*) => {
        $crate::common::note(format_args!($($t)*))
    };
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout. A reader that went away (a broken pipe) is remembered (see
/// [`stdout_closed`]) and ends the command; any other failure (`/dev/full`) is an error.
pub fn print_line(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(stdout_error)
}

/// Flushes stdout, with [`print_line`]'s error handling.
pub fn flush_stdout() -> Result<()> {
    std::io::stdout().flush().map_err(stdout_error)
}

fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    Error::Io(format!("cannot write to stdout: {e}"))
}

/// Whether a write to stdout found the reader gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes one line to stderr, ignoring failures (there is nowhere left to report them).
pub fn note(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A path as printed in text output: as it is when it is UTF-8 without control characters,
/// else quoted with escapes (`"a\nb"`, `"\xff.png"`) so that every name maps back to one file.
pub fn shown(path: &Path) -> String {
    match path.to_str() {
        Some(s) if !s.chars().any(|c| c.is_control()) && !s.starts_with('"') => s.to_string(),
        _ => {
            let mut out = String::from("\"");
            for chunk in os_bytes(path).utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if c.is_control() => out.extend(c.escape_default()),
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out.push('"');
            out
        }
    }
}

/// The bytes of a path (Unix), or its UTF-8 form (elsewhere, where paths are Unicode).
fn os_bytes(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned().into_bytes()
    }
}

/// A path for JSON output: `"image": <the name>` (exact when it is UTF-8), plus
/// `"image_bytes": [..]` with its raw bytes when it is not.
pub fn json_path(path: &Path, key: &str, obj: &mut serde_json::Map<String, serde_json::Value>) {
    obj.insert(key.into(), path.to_string_lossy().into_owned().into());
    if path.to_str().is_none() {
        obj.insert(format!("{key}_bytes"), os_bytes(path).into());
    }
}

/// The default model, committed in the repository.
pub const DEFAULT_MODEL: &str = "examples/models/shapes.safetensors";

/// `--model`, or the default model (looked up from the current folder, then from the repository
/// this binary was built in).
pub fn model_path(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let here = PathBuf::from(DEFAULT_MODEL);
    if here.exists() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEFAULT_MODEL);
    if built.exists() {
        return Ok(built);
    }
    Err(Error::Io(format!(
        "no model given and no default model at {DEFAULT_MODEL}; pass --model PATH"
    )))
}

/// A bar (or spinner when `len` is `None`) shown only on a terminal and only once the work has
/// taken a second.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"),
        ),
    };
    bar.set_message(what.to_string());
    // Draw nothing for quick jobs: the bar appears after a second.
    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let b2 = bar.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        if !b2.is_finished() {
            b2.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b2.enable_steady_tick(Duration::from_millis(120));
        }
    });
    bar
}

/// Loads the model on the device, with a spinner for big files; its kernels and token table
/// converted to `precision` as they load, if given.
pub fn load_model(
    path: &Path,
    device: DeviceArg,
    precision: Option<Precision>,
) -> Result<Model<Device>> {
    let bar = progress(None, &format!("loading {}", path.display()));
    let device = device.open()?;
    let ckpt = Checkpoint::load(path)?;
    let model = match precision {
        Some(p) => Model::new_as(&ckpt, device, p),
        None => Model::new(&ckpt, device),
    };
    bar.finish_and_clear();
    model.map_err(|e| with_file(path, e))
}

/// `--dtype`: f32, f16, bf16 or q8.
pub fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|_| format!("`{s}` is not one of f32, f16, bf16, q8"))
}

/// Prefixes an error with the file it concerns (once).
pub fn with_file(path: &Path, e: Error) -> Error {
    e.in_file(path.display().to_string())
}

/// Decodes an image file (PNG, JPEG, WebP, PPM: recognised by its content, not its name) and
/// preprocesses it for the model.
pub fn load_image(model: &Model<Device>, path: &Path) -> Result<Image> {
    let max = cappa::limits::MAX_DECODED_IMAGE_BYTES;
    let bytes = cappa::files::read_regular(path, max).map_err(|e| with_file(path, e))?;
    let (pixels, width, height) =
        crate::decode::decode_image(&bytes).map_err(|e| with_file(path, e))?;
    model
        .preprocess_rgb8(&pixels, width, height)
        .map_err(|e| with_file(path, e))
}
