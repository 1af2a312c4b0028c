//! Guest stdout and stderr: forwarded to the host's log line by line with a tag naming the
//! request or task, with the last lines kept so that a trap can be explained.
//!
//! A Rust guest that panics prints `panicked at …` to stderr and then executes `unreachable`;
//! wasmtime only sees the trap, so the panic message has to come from here.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines kept for [`GuestLog::last_words`].
const TAIL_LINES: usize = 16;

/// Longest line forwarded whole; a guest writing megabytes without a newline is cut into pieces
/// of this size rather than buffered without bound.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// One guest's output stream (stdout and stderr share it); cheap to clone.
#[derive(Clone)]
pub struct GuestLog {
    state: Arc<Mutex<State>>,
}

struct State {
    tag: String,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl GuestLog {
    /// A log whose lines go to the host's log as `[tag] line`.
    pub fn new(tag: impl Into<String>) -> Self {
        GuestLog {
            state: Arc::new(Mutex::new(State {
                tag: tag.into(),
                partial: Vec::new(),
                tail: VecDeque::with_capacity(TAIL_LINES),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only leave a half-appended line behind, which is
        // harmless for a log, so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut state = self.lock();
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            state.partial.extend_from_slice(&bytes[..newline]);
            state.emit_line();
            bytes = &bytes[newline + 1..];
        }
        state.partial.extend_from_slice(bytes);
        while state.partial.len() >= MAX_LINE_BYTES {
            let rest = state.partial.split_off(MAX_LINE_BYTES);
            state.emit_line();
            state.partial = rest;
        }
    }

    /// Forwards a last line that had no newline yet.
    pub fn flush_partial(&self) {
        let mut state = self.lock();
        if !state.partial.is_empty() {
            state.emit_line();
        }
    }

    /// The guest's explanation of its own death: the message of the last Rust panic, or else
    /// the last line it wrote; `None` when it wrote nothing.
    pub fn last_words(&self) -> Option<String> {
        self.flush_partial();
        let state = self.lock();
        let lines: Vec<&str> = state.tail.iter().map(String::as_str).collect();
        let start = lines
            .iter()
            .rposition(|line| line.contains("panicked at"))
            .or_else(|| lines.len().checked_sub(1))?;
        let words: Vec<&str> = lines[start..]
            .iter()
            .map(|line| line.trim())
            // Rust's hint about backtraces says nothing about this failure.
            .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }
}

impl State {
    fn emit_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        if !line.trim().is_empty() {
            tracing::info!("[{}] {line}", self.tag);
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    // A synchronous stream rather than the default adapter over `async_stream`, which copies in
    // a background task: the panic message must be in the tail by the time the trap arrives.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: writing to stderr does not block long enough to need back-pressure.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `write` with a log tagged `test`, and returns the lines it forwarded.
    fn forwarded(write: impl FnOnce(&GuestLog)) -> Vec<String> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = Collect(lines.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || write(&GuestLog::new("test")));
        let text = String::from_utf8(lines.lock().expect("test lock").clone()).expect("UTF-8");
        text.lines().map(str::to_owned).collect()
    }

    #[derive(Clone)]
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Collect {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn last_words_are_the_panic_message() {
        let forwarded = forwarded(|log| {
            log.write_bytes(b"reading raw/s1.png\n");
            log.write_bytes(b"thread '<unnamed>' panicked at src/tilepack.rs:10:5:\nindex out of ");
            log.write_bytes(b"bounds\nnote: run with `RUST_BACKTRACE=1` environment variable\n");
            assert_eq!(
                log.last_words().as_deref(),
                Some("thread '<unnamed>' panicked at src/tilepack.rs:10:5: index out of bounds")
            );
        });
        assert_eq!(forwarded[0].trim(), "[test] reading raw/s1.png");
        assert_eq!(forwarded.len(), 4);
    }

    #[test]
    fn last_words_without_a_panic_are_the_last_line() {
        let log = GuestLog::new("test");
        assert_eq!(log.last_words(), None);
        log.write_bytes(b"first\nsecond without newline");
        assert_eq!(log.last_words().as_deref(), Some("second without newline"));
    }

    #[test]
    fn long_lines_are_cut_rather_than_buffered() {
        let forwarded = forwarded(|log| log.write_bytes(&vec![b'x'; MAX_LINE_BYTES * 2 + 10]));
        assert_eq!(forwarded.len(), 2);
    }
}
