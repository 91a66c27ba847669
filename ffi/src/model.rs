//! Loading and releasing models, and what they report about themselves.

use std::ffi::{c_char, c_void};

use cappa_rt::formats;
use cappa_rt::{Backend, Checkpoint, Device, DeviceKind, DeviceOptions, Model, Precision};

use crate::error::{arg, guard, out, slice, Checked, Fail};
use crate::handles::{self, Loaded};
use crate::types::*;

/// The defaults of cappa_model_params: CAPPA_DEVICE_AUTO, CAPPA_PRECISION_AUTO.
#[no_mangle]
pub extern "C" fn cappa_model_default_params() -> cappa_model_params {
    cappa_model_params {
        device: CAPPA_DEVICE_AUTO,
        precision: CAPPA_PRECISION_AUTO,
    }
}

/// Loads a model from a file: a single `.safetensors` file with its config (and tokenizer) in
/// the metadata, or a folder holding `params.safetensors` and `config.json`.
///
/// * `path`: NUL-terminated; any bytes on Unix, UTF-8 elsewhere. Only read during the call.
/// * `params`: options, or NULL for cappa_model_default_params().
/// * `out_model`: receives the handle, to be released with cappa_model_free(); set to NULL on
///   failure.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`path`, `out_model`), CAPPA_ERR_INVALID_ARGUMENT (unknown
/// device or precision), CAPPA_ERR_INVALID_UTF8 (path, on Windows), CAPPA_ERR_IO (cannot read
/// the file), CAPPA_ERR_MODEL (not a usable model), CAPPA_ERR_DEVICE (no GPU adapter for
/// CAPPA_DEVICE_GPU, or the device failed), CAPPA_ERR_UNSUPPORTED (CAPPA_DEVICE_GPU in a build
/// without GPU support).
#[no_mangle]
pub unsafe extern "C" fn cappa_model_load_file(
    path: *const c_char,
    params: *const cappa_model_params,
    out_model: *mut *mut cappa_model,
) -> cappa_status {
    guard("cappa_model_load_file", || {
        let out_model = out(out_model, "out_model")?;
        *out_model = std::ptr::null_mut();
        let path = path_arg(path)?;
        // The options first: a bad one is reported before the file is read.
        let options = Options::of(&model_params(params)?)?;
        let checkpoint = Checkpoint::load(&path).map_err(model_error)?;
        *out_model = handles::add_model(load(checkpoint, &options)?);
        Ok(())
    })
}

/// Loads a model from a single-file `.safetensors` image in memory.
///
/// * `data`, `size`: the file's bytes (`size` at least 1); only read during the call, so the
///   buffer may be freed as soon as this returns.
/// * `params`: options, or NULL for cappa_model_default_params().
/// * `out_model`: receives the handle, to be released with cappa_model_free(); set to NULL on
///   failure.
///
/// Errors: as cappa_model_load_file(), with CAPPA_ERR_NULL_POINTER for `data` and
/// CAPPA_ERR_INVALID_ARGUMENT for a `size` of 0, and no CAPPA_ERR_IO.
#[no_mangle]
pub unsafe extern "C" fn cappa_model_load_memory(
    data: *const c_void,
    size: usize,
    params: *const cappa_model_params,
    out_model: *mut *mut cappa_model,
) -> cappa_status {
    guard("cappa_model_load_memory", || {
        let out_model = out(out_model, "out_model")?;
        *out_model = std::ptr::null_mut();
        if !data.is_null() && size == 0 {
            return Err(Fail::invalid("`size` is 0"));
        }
        let bytes = slice(data.cast::<u8>(), size, "data")?;
        let options = Options::of(&model_params(params)?)?;
        let checkpoint = Checkpoint::from_bytes(bytes).map_err(model_error)?;
        *out_model = handles::add_model(load(checkpoint, &options)?);
        Ok(())
    })
}

/// Releases a model. Calls running on it in other threads finish first (the memory goes when
/// the last one returns); afterwards the handle is invalid. NULL is accepted and does nothing.
///
/// Errors: CAPPA_ERR_INVALID_HANDLE (freed already, or not a model handle).
#[no_mangle]
pub unsafe extern "C" fn cappa_model_free(model: *mut cappa_model) -> cappa_status {
    guard("cappa_model_free", || {
        if model.is_null() {
            return Ok(());
        }
        handles::remove_model(model)
    })
}

/// Describes a model: sizes, vocabulary, input size, device.
///
/// * `out_info`: receives the description.
///
/// Errors: CAPPA_ERR_NULL_POINTER (`model`, `out_info`), CAPPA_ERR_INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn cappa_model_get_info(
    model: *const cappa_model,
    out_info: *mut cappa_model_info,
) -> cappa_status {
    guard("cappa_model_get_info", || {
        let model = handles::model(model)?;
        *out(out_info, "out_info")? = model.info;
        Ok(())
    })
}

/// The path argument as a path.
pub(crate) unsafe fn path_arg(path: *const c_char) -> Checked<std::path::PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        arg(path, "path")?;
        let bytes = std::ffi::CStr::from_ptr(path).to_bytes();
        Ok(std::ffi::OsStr::from_bytes(bytes).into())
    }
    #[cfg(not(unix))]
    {
        Ok(crate::error::text(path, "path")?.into())
    }
}

unsafe fn model_params(p: *const cappa_model_params) -> Checked<cappa_model_params> {
    if p.is_null() {
        return Ok(cappa_model_default_params());
    }
    Ok(*arg(p, "params")?)
}

/// The loading options of `params`, checked (before the file is read).
struct Options {
    device: DeviceKind,
    /// Convert the kernels and the token table to this format as they load.
    precision: Option<Precision>,
}

impl Options {
    fn of(params: &cappa_model_params) -> Checked<Self> {
        let precision = match params.precision {
            CAPPA_PRECISION_AUTO => None,
            CAPPA_PRECISION_F32 => Some(Precision::F32),
            CAPPA_PRECISION_F16 => Some(Precision::F16),
            CAPPA_PRECISION_BF16 => Some(Precision::BF16),
            CAPPA_PRECISION_Q8 => Some(Precision::Q8),
            other => {
                return Err(Fail::invalid(format!(
                    "unknown precision {other} in `params` (CAPPA_PRECISION_AUTO, _F32, _F16, \
                     _BF16 or _Q8)"
                )))
            }
        };
        let device = match params.device {
            CAPPA_DEVICE_AUTO => DeviceKind::Auto,
            CAPPA_DEVICE_CPU => DeviceKind::Cpu,
            CAPPA_DEVICE_GPU => DeviceKind::Gpu,
            other => {
                return Err(Fail::invalid(format!(
                    "unknown device {other} in `params` (CAPPA_DEVICE_AUTO, _CPU or _GPU)"
                )))
            }
        };
        Ok(Options { device, precision })
    }
}

/// A model that a file describes but that cappa cannot take (a size over a limit, a
/// non-finite weight, ...) is CAPPA_ERR_MODEL, whatever the kind of error.
fn model_error(e: cappa_rt::Error) -> Fail {
    let mut fail = Fail::from(e);
    if fail.status == CAPPA_ERR_INVALID_ARGUMENT {
        fail.status = CAPPA_ERR_MODEL;
    }
    fail
}

/// Builds the model on the device `options` asks for, its weights converted as they load if
/// `options` asks for a precision (the file itself is not rewritten).
fn load(checkpoint: Checkpoint<'_>, options: &Options) -> Checked<Loaded> {
    let device = device(options.device)?;
    let (num_params, file_bytes) = (count_params(&checkpoint)?, checkpoint.byte_len());
    let model = match options.precision {
        Some(p) => Model::new_as(&checkpoint, device, p),
        None => Model::new(&checkpoint, device),
    }
    .map_err(model_error)?;
    let info = info(&model, num_params, file_bytes as u64);
    Ok(Loaded { model, info })
}

/// The model's parameters (a q8 tensor's scales are not counted).
fn count_params(checkpoint: &Checkpoint<'_>) -> Checked<u64> {
    let file = checkpoint.file()?;
    Ok(file
        .entries()
        .filter(|(name, _)| !formats::is_scale(&file, name))
        .map(|(_, e)| e.shape.iter().product::<usize>() as u64)
        .sum())
}

fn info(model: &Model<Device>, num_params: u64, file_bytes: u64) -> cappa_model_info {
    let c = model.config();
    let mut info = cappa_model_info {
        image_size: c.image_size as u32,
        patch_size: c.patch_size as u32,
        vocab_size: c.vocab_size as u32,
        max_len: c.max_len as u32,
        embedding_size: c.enc_width as u32,
        encoder_width: c.enc_width as u32,
        encoder_depth: c.enc_depth as u32,
        decoder_width: c.dec_width as u32,
        decoder_depth: c.dec_depth as u32,
        has_tokenizer: model.tokenizer().is_some() as i32,
        can_parallel: c.has_mask_token() as i32,
        on_gpu: model.backend().is_gpu() as i32,
        num_params,
        file_bytes,
        name: [0; 64],
        device: [0; 128],
    };
    copy_text(&mut info.name, &c.name);
    copy_text(&mut info.device, &model.backend().name());
    info
}

/// Copies UTF-8 text into a fixed C array, cut at a character boundary, NUL-terminated.
fn copy_text(dst: &mut [c_char], s: &str) {
    let mut end = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (d, &b) in dst.iter_mut().zip(&s.as_bytes()[..end]) {
        *d = b as c_char;
    }
    dst[end] = 0;
}

/// The device of `kind`, by the runtime's one policy (`cappa::device`: AUTO follows
/// `CAPPA_DEVICE`, then takes a hardware GPU or the CPU).
fn device(kind: DeviceKind) -> Checked<Device> {
    #[cfg(not(feature = "gpu"))]
    if kind.resolve()? == DeviceKind::Gpu {
        return Err(Fail::new(
            CAPPA_ERR_UNSUPPORTED,
            "this build of libcappa has no GPU backend (cargo feature `gpu`)",
        ));
    }
    Ok(Device::open(kind, &DeviceOptions::default())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        let mut buf = [1 as c_char; 5];
        copy_text(&mut buf, "abé"); // 4 bytes: fits
        assert_eq!(buf.map(|c| c as u8), *b"ab\xc3\xa9\0");
        copy_text(&mut buf, "abcé"); // 5 bytes: é does not fit
        assert_eq!(
            buf[..4].iter().map(|&c| c as u8).collect::<Vec<_>>(),
            b"abc\0"
        );
        copy_text(&mut buf, "");
        assert_eq!(buf[0], 0);
    }
}
