//! # libcappa — the C ABI of cappa
//!
//! `libcappa.so` / `libcappa.a` and `include/cappa.h` (generated from this crate by cbindgen
//! and committed; `tests/header.rs` fails when they differ). The header documents every
//! function; this is why it is built the way it is.
//!
//! * **Every fallible function returns a `cappa_status`** and leaves a message for
//!   `cappa_last_error()` in a thread-local slot, as tract's C API does. The infallible ones
//!   (version, last error, status names, default parameters) return their value.
//! * **No panic crosses the boundary**: every entry point runs inside `catch_unwind`
//!   (`error::guard`) and a panic becomes `CAPPA_ERR_PANIC`. The crate refuses to build with
//!   `panic = "abort"`, where that could not work.
//! * **Enumerations are `int32_t` typedefs with `#define`d values**, not C enums: a C caller can
//!   pass any integer, and a Rust enum holding an undeclared value would be undefined behaviour;
//!   an integer is checked and rejected with a status.
//! * **Handles are table keys, never dereferenced** (`handles`): a freed or made-up model
//!   handle is a status, not a crash, and a model freed while another thread uses it lives until
//!   that call returns. Strings and decoded pixels handed to C are tracked the same way, so
//!   double frees and foreign pointers are reported.
//! * **Options are structs with `*_default_params()`** as in whisper.cpp, so callers set only
//!   what they change; callbacks take a `void *user_data`.
//! * **A model is shared between threads without locks of its own**: `cappa::Model` is
//!   `Send + Sync` and read-only once loaded.
//!
//! The Rust library (`rlib`) exists so that Rust tests can call the same functions; Rust
//! programs should use the `cappa` crate itself.
#![deny(missing_docs)]
// The C names are the API.
#![allow(non_camel_case_types)]
// Every function's requirements on its pointers are in its documentation, written for C.
#![allow(clippy::missing_safety_doc)]

#[cfg(not(panic = "unwind"))]
compile_error!("cappa-ffi needs panic = \"unwind\": panics are caught at the C boundary");

// In the header's order: types, then models, running them, image files, and the test hook.
mod debug;
mod error;
mod handles;
mod image;
mod model;
mod run;
mod types;

use std::ffi::c_char;

pub use crate::debug::cappa_debug_panic;
pub use crate::image::{cappa_image_free, cappa_image_load_file};
pub use crate::model::{
    cappa_model_default_params, cappa_model_free, cappa_model_get_info, cappa_model_load_file,
    cappa_model_load_memory,
};
pub use crate::run::{
    cappa_caption, cappa_caption_batch, cappa_caption_default_params, cappa_classify,
    cappa_classify_default_params, cappa_embed, cappa_string_free,
};
pub use crate::types::*;

/// The library's version, for example "0.1.0": a static string, never freed.
#[no_mangle]
pub extern "C" fn cappa_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library's ABI version; compare it with CAPPA_ABI_VERSION to detect a program compiled
/// against another cappa.h than the library it runs with.
#[no_mangle]
pub extern "C" fn cappa_abi_version() -> u32 {
    CAPPA_ABI_VERSION
}

/// The name of a status code, for example "CAPPA_ERR_NULL_POINTER" ("CAPPA_UNKNOWN_STATUS" for
/// a value that is none): a static string, never freed.
#[no_mangle]
pub extern "C" fn cappa_status_string(status: cappa_status) -> *const c_char {
    let name = match status {
        CAPPA_OK => c"CAPPA_OK",
        CAPPA_ERR_NULL_POINTER => c"CAPPA_ERR_NULL_POINTER",
        CAPPA_ERR_INVALID_ARGUMENT => c"CAPPA_ERR_INVALID_ARGUMENT",
        CAPPA_ERR_INVALID_UTF8 => c"CAPPA_ERR_INVALID_UTF8",
        CAPPA_ERR_INVALID_HANDLE => c"CAPPA_ERR_INVALID_HANDLE",
        CAPPA_ERR_BUFFER_TOO_SMALL => c"CAPPA_ERR_BUFFER_TOO_SMALL",
        CAPPA_ERR_IO => c"CAPPA_ERR_IO",
        CAPPA_ERR_MODEL => c"CAPPA_ERR_MODEL",
        CAPPA_ERR_UNSUPPORTED => c"CAPPA_ERR_UNSUPPORTED",
        CAPPA_ERR_DEVICE => c"CAPPA_ERR_DEVICE",
        CAPPA_ERR_IMAGE => c"CAPPA_ERR_IMAGE",
        CAPPA_ERR_ABORTED => c"CAPPA_ERR_ABORTED",
        CAPPA_ERR_PANIC => c"CAPPA_ERR_PANIC",
        _ => c"CAPPA_UNKNOWN_STATUS",
    };
    name.as_ptr()
}

/// The message of the most recent failed call on the calling thread, UTF-8, for example
/// "cappa_caption: image: the stride is 10 bytes, less than a row (4 pixels of 3 bytes)"; ""
/// if no call has failed on this thread. Successful calls leave it as it is. Owned by cappa:
/// valid until the next failing call on this thread, never freed by the caller.
#[no_mangle]
pub extern "C" fn cappa_last_error() -> *const c_char {
    error::last_error()
}
