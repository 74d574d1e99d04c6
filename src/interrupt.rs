//! Ctrl-C (SIGINT) and SIGTERM without half-written files.
//!
//! A process killed by a signal runs no destructors, so a temp file being written at that
//! moment (`tempfile` deletes its files in `Drop`) would stay behind. [`exit_cleanly`]
//! installs a handler that waits for the output file being written, if any, to be
//! finished and renamed ([`crate::io::write_lock`]), prints [`set_note`]'s message, and
//! ends the process with status 130. Every file is therefore either complete or absent.

use anyhow::{Context, Result};
use std::sync::Mutex;

static NOTE: Mutex<Option<String>> = Mutex::new(None);

/// Installs the handler (once per process; the command line does it in `main`).
pub fn exit_cleanly() -> Result<()> {
    ctrlc::set_handler(|| {
        // Held until the process ends: no new file is started after this point.
        let _no_more_writes = crate::io::write_lock();
        let note = NOTE.lock().map(|n| n.clone()).unwrap_or_default();
        eprintln!(
            "\ninterrupted{}",
            note.map(|n| format!(": {n}")).unwrap_or_default()
        );
        // _exit, not exit: C++ static destructors must not run while libtorch's threads
        // are still computing on the main thread.
        unsafe { libc::_exit(130) }
    })
    .context("cannot install the Ctrl-C handler")
}

/// What the interrupt message tells the user, e.g. where the last checkpoint is.
pub fn set_note(note: impl Into<String>) {
    if let Ok(mut n) = NOTE.lock() {
        *n = Some(note.into());
    }
}
