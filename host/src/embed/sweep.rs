//! Removing what killed runs left in the local store: temporary files of puts cut short.
//!
//! A put writes `.<name>.tmp-<token>-<n>` and renames it over `<name>`; a process killed in
//! between (kill -9, `--time-limit`, the end of the SIGTERM grace) leaves the temporary file.
//! Every command sweeps at start, before its first instance, files older than
//! `--stale-temp-age`; the age keeps it away from puts of other processes sharing the directory.

use std::path::Path;
use std::time::Duration;

use emwrite::storage::fs::sweep_stale_temp_files;

use crate::units::{show_bytes, show_duration};

/// Sweeps `data_dir` of temporary files older than `min_age`, and logs what it removed.
pub fn sweep_at_start(data_dir: &Path, min_age: Duration) {
    let swept = sweep_stale_temp_files(data_dir, min_age);
    if swept.files > 0 {
        tracing::info!(
            "removed {} stale temporary file(s) ({}) older than {} from {}",
            swept.files,
            show_bytes(swept.bytes),
            show_duration(min_age),
            data_dir.display()
        );
    }
}
