//! The host's log: `tracing` events formatted by `tracing-subscriber` onto stderr, above the
//! pipeline's progress bar while one is shown.
//!
//! indicatif redraws its bar on stderr; a line written there meanwhile would be overdrawn, so each
//! event is written inside [`ProgressBar::suspend`], which clears the bar and draws it again after.

use std::io::{self, IsTerminal as _, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;
use tracing_subscriber::fmt::MakeWriter;

/// The bar that log lines must not overwrite, while [`AboveBar`] lives.
static PROGRESS_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sends every `tracing` event of the process to stderr. Called once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_writer(Stderr)
        .with_ansi(io::stderr().is_terminal())
        // The module path says nothing to a user; the message names the request or task.
        .with_target(false)
        .init();
}

/// Log lines are printed above `bar` until this is dropped.
pub struct AboveBar(());

impl AboveBar {
    /// Prints log lines above `bar` from now on.
    pub fn new(bar: &ProgressBar) -> Self {
        *lock_bar() = Some(bar.clone());
        AboveBar(())
    }
}

impl Drop for AboveBar {
    fn drop(&mut self) {
        *lock_bar() = None;
    }
}

fn lock_bar() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // The slot holds a handle and nothing else: one poisoned by a panic is as good as any.
    PROGRESS_BAR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `tracing-subscriber`'s writer: stderr, around the bar if there is one.
struct Stderr;

impl MakeWriter<'_> for Stderr {
    type Writer = Stderr;

    fn make_writer(&self) -> Self::Writer {
        Stderr
    }
}

impl Write for Stderr {
    // The fmt layer formats each event whole and writes it with one `write_all`, so one call is
    // one or more whole lines.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let bar = lock_bar().clone();
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write_all(line))?,
            None => io::stderr().write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
