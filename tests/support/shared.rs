//! One lab for all the tests of a binary, made by the first test that asks
//! and taken down when the test process exits (libtest has no hook after
//! the last test; the C library's `exit` has).

use std::sync::{Arc, Mutex};

use super::Lab;

static LAB: Mutex<Option<Arc<Lab>>> = Mutex::new(None);

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// Dropping the lab runs `scripts/lab down`.
extern "C" fn lab_down() {
    let _ = std::panic::catch_unwind(|| {
        let lab = LAB.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(lab);
    });
}

/// The shared lab; `start` makes it (and sets it up) on the first call.
/// Until it is shared, a panic in `start` drops it, which takes it down.
pub fn shared_lab(start: impl FnOnce() -> Lab) -> Arc<Lab> {
    let mut shared = LAB.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lab) = shared.as_ref() {
        return lab.clone();
    }
    let lab = Arc::new(start());
    // SAFETY: registers a plain function, once (the lab is made once).
    assert_eq!(unsafe { atexit(lab_down) }, 0, "atexit");
    *shared = Some(lab.clone());
    lab
}
