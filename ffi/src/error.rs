//! Statuses, the per-thread last-error message, the guard every entry point runs in (no panic
//! crosses the boundary), and the checks that turn raw C arguments into Rust values.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use cappa_rt::Error;

use crate::types::*;

/// A failed call: the status to return and the message for `cappa_last_error()`.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: cappa_status,
    pub message: String,
}

impl Fail {
    pub fn new(status: cappa_status, message: impl Into<String>) -> Self {
        Fail {
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Fail::new(CAPPA_ERR_INVALID_ARGUMENT, message)
    }

    /// Prefixes the message with the argument it concerns.
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match e.root() {
            Error::MalformedFile(_)
            | Error::MissingTensor { .. }
            | Error::ShapeMismatch { .. }
            | Error::UnexpectedTensor { .. }
            | Error::UnsupportedDtype { .. }
            | Error::Quantization { .. }
            | Error::NonFiniteWeight { .. }
            | Error::Config(_)
            | Error::Tokenizer(_) => CAPPA_ERR_MODEL,
            // A request over a limit (beam width, images, ...); at loading, a model over one
            // is CAPPA_ERR_MODEL (see model.rs).
            Error::InputShape { .. }
            | Error::TokenOutOfRange { .. }
            | Error::InvalidInput(_)
            | Error::Limit { .. }
            | Error::OutOfMemory { .. } => CAPPA_ERR_INVALID_ARGUMENT,
            Error::PaUnavailable => CAPPA_ERR_UNSUPPORTED,
            Error::Io(_) => CAPPA_ERR_IO,
            Error::Backend(_) => CAPPA_ERR_DEVICE,
            // `Error` is non-exhaustive; a new kind is reported, not lost.
            _ => CAPPA_ERR_INVALID_ARGUMENT,
        };
        Fail::new(status, e.to_string())
    }
}

/// Shorthand for the results of the checks below.
pub(crate) type Checked<T> = Result<T, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replaces this thread's last-error message (interior NULs, impossible in practice, are
/// dropped so that the whole message survives).
fn set_last_error(message: String) {
    let c = CString::new(message.replace('\0', "")).unwrap_or_default();
    // During thread teardown the slot may be gone; there is nobody left to read it then.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// A pointer to this thread's last-error message (valid until the next failing call on it).
pub(crate) fn last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(EMPTY.as_ptr())
}

thread_local! {
    /// How many entry points this thread is inside (callbacks may call back into cappa).
    static IN_GUARD: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic caught on this thread happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that keeps panics caught by [`guard`] out of the host's
/// stderr (their message goes to `cappa_last_error()` instead) and hands every other panic to
/// the hook that was there before.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.try_with(Cell::get).unwrap_or(0) > 0 {
                let at = info.location().map(|l| l.to_string());
                let _ = PANIC_AT.try_with(|slot| *slot.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs an entry point's body: `Ok` becomes `CAPPA_OK`; a `Fail` its status, with the message
/// (prefixed with `function`) stored for `cappa_last_error()`; a panic `CAPPA_ERR_PANIC`,
/// with nothing printed.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Checked<()>) -> cappa_status {
    quiet_panics();
    let _ = IN_GUARD.try_with(|g| g.set(g.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let _ = IN_GUARD.try_with(|g| g.set(g.get().saturating_sub(1)));
    match outcome {
        Ok(Ok(())) => CAPPA_OK,
        Ok(Err(fail)) => {
            set_last_error(format!("{function}: {}", fail.message));
            fail.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            // A payload whose destructor panics must not escape either.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            let at = PANIC_AT
                .try_with(|slot| slot.borrow_mut().take())
                .ok()
                .flatten()
                .map(|l| format!(" (at {l})"))
                .unwrap_or_default();
            set_last_error(format!(
                "{function}: internal error (a bug in cappa, please report it): panic: {what}{at}"
            ));
            CAPPA_ERR_PANIC
        }
    }
}

/// `p` as a reference, or `CAPPA_ERR_NULL_POINTER` naming `what`.
///
/// # Safety
/// A non-NULL `p` must point to a valid `T` for `'a`.
pub(crate) unsafe fn arg<'a, T>(p: *const T, what: &str) -> Checked<&'a T> {
    usable(p, what)?;
    Ok(&*p)
}

/// `CAPPA_ERR_NULL_POINTER` for a NULL `p`, `CAPPA_ERR_INVALID_ARGUMENT` for a misaligned one.
fn usable<T>(p: *const T, what: &str) -> Checked<()> {
    if p.is_null() {
        return Err(Fail::new(
            CAPPA_ERR_NULL_POINTER,
            format!("`{what}` is NULL"),
        ));
    }
    if !p.is_aligned() {
        return Err(Fail::invalid(format!("`{what}` is not aligned")));
    }
    Ok(())
}

/// An out-parameter as a mutable reference, or `CAPPA_ERR_NULL_POINTER` naming `what`.
///
/// # Safety
/// A non-NULL `p` must point to writable memory for a `T` for `'a`.
pub(crate) unsafe fn out<'a, T>(p: *mut T, what: &str) -> Checked<&'a mut T> {
    usable(p.cast_const(), what)?;
    Ok(&mut *p)
}

/// Checks an array length: at least 1 and at most `max`.
pub(crate) fn count(n: usize, max: usize, what: &str) -> Checked<()> {
    if n == 0 {
        return Err(Fail::invalid(format!("`{what}` is 0")));
    }
    if n > max {
        return Err(Fail::invalid(format!(
            "`{what}` is {n}, more than the limit of {max}"
        )));
    }
    Ok(())
}

/// `n` elements at `p`, after checking the pointer and that the slice can exist.
///
/// # Safety
/// A non-NULL `p` must point to `n` valid elements for `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, n: usize, what: &str) -> Checked<&'a [T]> {
    arg(p, what)?;
    let bytes = n.checked_mul(size_of::<T>());
    if bytes.is_none_or(|b| b > isize::MAX as usize) {
        return Err(Fail::invalid(format!(
            "`{what}` would hold {n} elements, more than memory can"
        )));
    }
    Ok(std::slice::from_raw_parts(p, n))
}

/// The same, writable.
///
/// # Safety
/// A non-NULL `p` must point to `n` writable elements for `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, n: usize, what: &str) -> Checked<&'a mut [T]> {
    slice(p.cast_const(), n, what)?;
    Ok(std::slice::from_raw_parts_mut(p, n))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Checked<&'a str> {
    if p.is_null() {
        return Err(Fail::new(
            CAPPA_ERR_NULL_POINTER,
            format!("`{what}` is NULL"),
        ));
    }
    CStr::from_ptr(p).to_str().map_err(|e| {
        Fail::new(
            CAPPA_ERR_INVALID_UTF8,
            format!(
                "`{what}` is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// A C string for text that cappa made (captions hold no NUL; any would be dropped).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}
