//! What the subcommands share: finding and loading the model, reading images, progress bars.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cappa::{Checkpoint, Device, Error, Image, Model, Precision, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::DeviceArg;

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
    let ckpt = Checkpoint::load(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let model = match precision {
        Some(p) => Model::new_as(&ckpt, device.open()?, p),
        None => Model::new(&ckpt, device.open()?),
    };
    bar.finish_and_clear();
    model.map_err(|e| with_file(path, e))
}

/// `--dtype`: f32, f16, bf16 or q8.
pub fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|_| format!("`{s}` is not one of f32, f16, bf16, q8"))
}

/// Prefixes an error with the file it concerns.
pub fn with_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Io(m) if m.starts_with(&path.display().to_string()) => Error::Io(m),
        other => Error::InvalidInput(format!("{}: {other}", path.display())),
    }
}

/// Decodes an image file (PNG, JPEG, WebP, PPM) and preprocesses it for the model.
pub fn load_image(model: &Model<Device>, path: &Path) -> Result<Image> {
    let img = image::open(path)
        .map_err(|e| Error::InvalidInput(format!("{}: cannot read image: {e}", path.display())))?;
    let rgb = img.to_rgb8();
    model
        .preprocess_rgb8(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)
        .map_err(|e| with_file(path, e))
}
