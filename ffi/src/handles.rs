//! The tables of what cappa has handed out: models, strings and decoded image buffers.
//!
//! A model handle is a key into a table, never dereferenced. Looking a handle up takes a lock
//! only long enough to take a new reference to the model (an `Arc`), so calls on one model run
//! concurrently, and a model freed by one thread while another uses it lives until that call
//! returns. A freed or made-up handle is not in the table: the call returns
//! `CAPPA_ERR_INVALID_HANDLE` without touching memory. Keys come from a counter and are never
//! reused, and on 64-bit targets they carry a tag that puts them above every user-space address,
//! so no real pointer is mistaken for a handle.
//!
//! Strings and pixel buffers are real allocations (C reads them), recorded by address: freeing
//! one that cappa did not hand out, or one freed already, is reported instead of corrupting the
//! heap (unless the allocator has handed the address out again for another live string or
//! buffer, which cannot be told apart).
//!
//! The tables store the addresses of what they track bit-inverted ([`Hidden`]), so that they do
//! not count as references for leak checkers: a model, string or image that a C program forgets
//! to free shows up in valgrind or LeakSanitizer as lost, as it would with `malloc`.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cappa_rt::{Device, Model};

use crate::error::{Checked, Fail};
use crate::types::*;

/// What a model handle stands for: a loaded model and its precomputed information.
pub(crate) struct Loaded {
    pub model: Model<Device>,
    pub info: cappa_model_info,
}

/// Locks a table; a panic while one was held (only possible through a bug) left consistent
/// data, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An address stored bit-inverted, invisible to leak checkers scanning memory for pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hidden(usize);

impl Hidden {
    fn new<T>(p: *const T) -> Self {
        Hidden(!p.expose_provenance())
    }

    fn get<T>(self) -> *mut T {
        std::ptr::with_exposed_provenance_mut(!self.0)
    }
}

/// Live models by handle.
static MODELS: Mutex<BTreeMap<usize, Hidden>> = Mutex::new(BTreeMap::new());
static NEXT_MODEL: AtomicUsize = AtomicUsize::new(1);

/// The tag of model handles: with it every handle is at least 2^59, above every user-space
/// address of today's 64-bit platforms (at most 57 bits).
#[cfg(target_pointer_width = "64")]
const TAG: usize = 0x0CA9 << 48;
#[cfg(not(target_pointer_width = "64"))]
const TAG: usize = 0;

/// Adds a model to the table and returns its handle.
pub(crate) fn add_model(model: Loaded) -> *mut cappa_model {
    let id = NEXT_MODEL.fetch_add(1, Ordering::Relaxed);
    let key = TAG | (id << 4);
    let model = Hidden::new(Arc::into_raw(Arc::new(model)));
    lock(&MODELS).insert(key, model);
    std::ptr::without_provenance_mut(key)
}

fn missing_model() -> Fail {
    Fail::new(
        CAPPA_ERR_INVALID_HANDLE,
        "`model` is not a live model handle (freed already, or not made by \
         cappa_model_load_file / cappa_model_load_memory)",
    )
}

/// The model behind a handle.
pub(crate) fn model(handle: *const cappa_model) -> Checked<Arc<Loaded>> {
    if handle.is_null() {
        return Err(Fail::new(CAPPA_ERR_NULL_POINTER, "`model` is NULL"));
    }
    let table = lock(&MODELS);
    let raw = table
        .get(&handle.addr())
        .ok_or_else(missing_model)?
        .get::<Loaded>();
    // SAFETY: the table owns one reference to each model it lists (from `Arc::into_raw`), and
    // the lock keeps it from being released meanwhile; this takes one more for the caller.
    unsafe {
        Arc::increment_strong_count(raw);
        Ok(Arc::from_raw(raw))
    }
}

/// Removes a model from the table; it is dropped when its last running call returns.
pub(crate) fn remove_model(handle: *mut cappa_model) -> Checked<()> {
    let removed = lock(&MODELS).remove(&handle.addr());
    let raw = removed.ok_or_else(missing_model)?.get::<Loaded>();
    // SAFETY: the table's reference, taken out of it above, so released exactly once. Dropped
    // outside the lock: releasing a GPU device can take a while.
    drop(unsafe { Arc::from_raw(raw) });
    Ok(())
}

/// Holds the model table's lock while panicking (for `cappa_debug_panic`): the panic poisons
/// it, and the calls after must still work.
pub(crate) fn panic_holding_the_model_table() -> ! {
    let _held = lock(&MODELS);
    panic!("cappa_debug_panic was called");
}

/// Buffers handed to C (strings, pixels): their lengths by address.
type Buffers = Mutex<BTreeMap<Hidden, usize>>;

static STRINGS: Buffers = Mutex::new(BTreeMap::new());
static PIXELS: Buffers = Mutex::new(BTreeMap::new());

fn add_buffer(table: &Buffers, bytes: Box<[u8]>) -> *mut u8 {
    let len = bytes.len();
    let p = Box::into_raw(bytes).cast::<u8>();
    lock(table).insert(Hidden::new(p), len);
    p
}

/// Frees a buffer from `add_buffer`; false if `p` is not one.
fn free_buffer(table: &Buffers, p: *const u8) -> bool {
    let Some(len) = lock(table).remove(&Hidden::new(p)) else {
        return false;
    };
    let p = Hidden::new(p).get::<u8>();
    // SAFETY: `p` and `len` come from `Box::into_raw` in `add_buffer`, removed from the table
    // above, so released exactly once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) });
    true
}

/// Hands a string to C (NUL-terminated); `free_string` takes it back.
pub(crate) fn add_string(s: std::ffi::CString) -> *mut c_char {
    add_buffer(&STRINGS, s.into_bytes_with_nul().into_boxed_slice()).cast()
}

/// Frees a string from `add_string`.
pub(crate) fn free_string(p: *mut c_char) -> Checked<()> {
    match free_buffer(&STRINGS, p.cast()) {
        true => Ok(()),
        false => Err(Fail::new(
            CAPPA_ERR_INVALID_HANDLE,
            "`text` is not a string from cappa (freed already, or allocated elsewhere)",
        )),
    }
}

/// Hands a pixel buffer to C; `free_pixels` takes it back.
pub(crate) fn add_pixels(pixels: Box<[u8]>) -> *const u8 {
    add_buffer(&PIXELS, pixels)
}

/// Frees a buffer from `add_pixels`.
pub(crate) fn free_pixels(p: *const u8) -> Checked<()> {
    match free_buffer(&PIXELS, p) {
        true => Ok(()),
        false => Err(Fail::new(
            CAPPA_ERR_INVALID_HANDLE,
            "`image->pixels` is not a buffer from cappa_image_load_file (freed already, or \
             allocated elsewhere)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_freed_once_and_only_if_handed_out() {
        let p = add_buffer(&STRINGS, b"abc\0".to_vec().into_boxed_slice());
        let other = [0u8; 4];
        assert!(!free_buffer(&STRINGS, other.as_ptr()));
        assert!(!free_buffer(&PIXELS, p));
        assert!(free_buffer(&STRINGS, p));
        assert!(!free_buffer(&STRINGS, p));
    }

    #[test]
    fn handles_never_look_like_user_space_pointers() {
        let key = TAG | (usize::from(u16::MAX) << 4);
        if cfg!(target_pointer_width = "64") {
            assert!(key as u64 >= 1 << 59);
        }
    }
}
