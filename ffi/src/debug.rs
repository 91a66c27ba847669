//! A way to make the library panic on purpose, to test that no panic crosses the boundary.

use crate::error::guard;
use crate::handles;
use crate::types::cappa_status;

/// Panics inside the library on purpose, for testing that bindings see CAPPA_ERR_PANIC (with a
/// message) and that the library goes on working afterwards. Has no other effect.
#[no_mangle]
pub extern "C" fn cappa_debug_panic() -> cappa_status {
    guard("cappa_debug_panic", || {
        handles::panic_holding_the_model_table()
    })
}
