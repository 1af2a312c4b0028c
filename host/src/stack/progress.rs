//! Progress a person can read, for every executor: on a terminal a bar per phase (slices, info,
//! blocks) with counts, rate and ETA, the log printed above the bars (`log.rs`); elsewhere (a
//! batch engine's log, a CI job) a plain line every few seconds with the same figures; and a
//! summary at the end: tasks, skipped, retries, failures, bytes written, wall time, throughput.

use std::io::IsTerminal as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::log::AboveBar;
use crate::stack::tasks::Phase;
use crate::units::{show_bytes, show_duration};

/// How often a plain progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// What one finished task reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    /// Objects it wrote.
    pub objects: usize,
    /// Bytes it wrote.
    pub bytes: u64,
    /// Storage requests the task itself repeated (the component's retries).
    pub storage_retries: u32,
}

/// The counts of a whole run, over every phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Tasks run to success.
    pub tasks: u64,
    /// Tasks not run because their outputs were already whole (resume).
    pub skipped: u64,
    /// Tasks sent again after a failed attempt (remote executor).
    pub task_retries: u64,
    /// Storage requests repeated inside tasks.
    pub storage_retries: u64,
    /// Tasks that failed for good.
    pub failures: u64,
    /// Objects written.
    pub objects: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The phase running now.
#[derive(Debug, Clone, Copy)]
struct PhaseCounts {
    phase: Phase,
    total: u64,
    done: u64,
    skipped: u64,
    failed: u64,
    bytes: u64,
    started: Instant,
}

impl PhaseCounts {
    /// `align: 12/40 slices (1 skipped), 1.3/s, eta 21s`.
    fn line(&self) -> String {
        let elapsed = self.started.elapsed();
        let rate = self.done as f64 / elapsed.as_secs_f64().max(1e-3);
        let left = self
            .total
            .saturating_sub(self.done + self.skipped + self.failed);
        let eta = if self.done == 0 {
            "unknown".to_owned()
        } else {
            show_duration(Duration::from_secs_f64(left as f64 / rate))
        };
        let mut line = format!(
            "{}: {}/{} {}",
            self.phase,
            self.done + self.skipped,
            self.total,
            self.phase.unit()
        );
        if self.skipped > 0 {
            line.push_str(&format!(" ({} already done)", self.skipped));
        }
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        line.push_str(&format!(
            ", {rate:.2}/s, {} written, elapsed {}, eta {eta}",
            show_bytes(self.bytes),
            show_duration(elapsed)
        ));
        line
    }
}

struct State {
    phase: Option<PhaseCounts>,
    totals: Totals,
    /// The current phase's bar and the log's place above it (terminal only).
    bar: Option<(ProgressBar, AboveBar)>,
}

struct Shared {
    state: Mutex<State>,
    /// Set when the run ends; wakes the line printer.
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Counters only: a poisoned lock's counts are still the best there are.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The run's progress; shared by the tasks of an executor.
pub struct Progress {
    shared: Arc<Shared>,
    /// The bars on a terminal; `None` prints lines instead.
    bars: Option<MultiProgress>,
    /// Prints a line every [`LINE_EVERY`] when there are no bars.
    printer: Option<JoinHandle<()>>,
    started: Instant,
}

impl Progress {
    /// Bars when stderr is a terminal, else a line every [`LINE_EVERY`].
    pub fn new() -> Self {
        let on_terminal = std::io::stderr().is_terminal();
        Self::with(on_terminal, LINE_EVERY)
    }

    fn with(bars: bool, line_every: Duration) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: None,
                totals: Totals::default(),
                bar: None,
            }),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let (bars, printer) = if bars {
            (
                Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
                None,
            )
        } else {
            let shared = Arc::clone(&shared);
            let printer = std::thread::Builder::new()
                .name("progress".to_owned())
                .spawn(move || print_lines(&shared, line_every))
                .ok();
            (None, printer)
        };
        Progress {
            shared,
            bars,
            printer,
            started: Instant::now(),
        }
    }

    /// A phase of `total` tasks starts.
    pub fn start_phase(&self, phase: Phase, total: usize) {
        let mut state = self.shared.state();
        state.phase = Some(PhaseCounts {
            phase,
            total: total as u64,
            done: 0,
            skipped: 0,
            failed: 0,
            bytes: 0,
            started: Instant::now(),
        });
        if let Some(multi) = &self.bars {
            let bar = multi.add(ProgressBar::new(total as u64));
            // The template is a constant; should it ever fail to parse, the default bar is fine.
            let style = ProgressStyle::with_template(
                "{prefix:>5} {wide_bar} {pos}/{len} {msg} {per_sec:.dim} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(phase.name());
            bar.set_message(phase.unit());
            // The old bar stops taking the log before the new one does (`AboveBar` is a slot).
            state.bar = None;
            state.bar = Some((bar.clone(), AboveBar::new(&bar)));
        }
    }

    /// `count` tasks of the phase need not run: their outputs are already whole.
    pub fn skipped(&self, count: usize) {
        let mut state = self.shared.state();
        state.totals.skipped += count as u64;
        if let Some(phase) = &mut state.phase {
            phase.skipped += count as u64;
        }
        if let Some((bar, _)) = &state.bar {
            bar.inc(count as u64);
        }
    }

    /// A task succeeded.
    pub fn done(&self, done: Done) {
        let mut state = self.shared.state();
        let totals = &mut state.totals;
        totals.tasks += 1;
        totals.objects += done.objects as u64;
        totals.bytes += done.bytes;
        totals.storage_retries += u64::from(done.storage_retries);
        if let Some(phase) = &mut state.phase {
            phase.done += 1;
            phase.bytes += done.bytes;
        }
        if let Some((bar, _)) = &state.bar {
            bar.inc(1);
        }
    }

    /// A task is sent again after a failed attempt.
    pub fn retried(&self) {
        self.shared.state().totals.task_retries += 1;
    }

    /// A task failed for good.
    pub fn failed(&self) {
        let mut state = self.shared.state();
        state.totals.failures += 1;
        if let Some(phase) = &mut state.phase {
            phase.failed += 1;
        }
    }

    /// The phase ended (well or not): its line is logged above the bars and its bar stays,
    /// finished, taking the log above it until the next phase's bar or the end of the run.
    pub fn finish_phase(&self) {
        let mut state = self.shared.state();
        let line = state.phase.take().map(|phase| phase.line());
        if let Some((bar, _)) = &state.bar {
            bar.finish();
        }
        drop(state);
        if let Some(line) = line {
            tracing::info!("{line}");
        }
    }

    /// The counts so far.
    pub fn totals(&self) -> Totals {
        self.shared.state().totals
    }

    /// The summary of the run so far: tasks, retries, failures, bytes, wall time, throughput.
    pub fn summary(&self) -> String {
        summary_line(&self.totals(), self.started.elapsed())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        *self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(printer) = self.printer.take() {
            // The printer only sleeps and logs; a panic there has nothing to hand on.
            let _ = printer.join();
        }
        // The log goes straight to stderr again, and the bars go: their lines and the summary
        // were logged above them.
        self.shared.state().bar = None;
        if let Some(multi) = &self.bars {
            // A terminal that cannot be redrawn keeps the bars; nothing else to do about it.
            let _ = multi.clear();
        }
    }
}

/// Logs the phase's line every `every` until the run stops.
fn print_lines(shared: &Shared, every: Duration) {
    let mut stopped = shared
        .stopped
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Checked before each wait too: the run may have ended before this thread first waited.
    while !*stopped {
        let (guard, _) = shared
            .wake
            .wait_timeout(stopped, every)
            .unwrap_or_else(PoisonError::into_inner);
        stopped = guard;
        if *stopped {
            return;
        }
        let line = shared.state().phase.map(|p| p.line());
        if let Some(line) = line {
            tracing::info!("{line}");
        }
    }
}

/// `summary: 46 tasks (3 already done), 2 task retries, 0 storage retries, 0 failed; 120
/// objects, 5.2 MiB written in 12s (436.0 KiB/s, 3.83 tasks/s)`.
fn summary_line(t: &Totals, wall: Duration) -> String {
    let seconds = wall.as_secs_f64().max(1e-3);
    format!(
        "summary: {} tasks ({} already done), {} task retries, {} storage retries, {} failed; \
         {} objects, {} written in {} ({}/s, {:.2} tasks/s)",
        t.tasks,
        t.skipped,
        t.task_retries,
        t.storage_retries,
        t.failures,
        t.objects,
        show_bytes(t.bytes),
        show_duration(wall),
        show_bytes((t.bytes as f64 / seconds) as u64),
        t.tasks as f64 / seconds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_phases() {
        let progress = Progress::with(false, Duration::from_secs(3600));
        progress.start_phase(Phase::Align, 4);
        progress.skipped(1);
        progress.done(Done {
            objects: 2,
            bytes: 1000,
            storage_retries: 1,
        });
        progress.retried();
        progress.failed();
        let line = progress.shared.state().phase.map(|p| p.line());
        let line = line.expect("a phase runs");
        assert!(
            line.starts_with("align: 2/4 slices (1 already done), 1 failed, "),
            "{line}"
        );
        progress.finish_phase();
        progress.start_phase(Phase::Shard, 1);
        progress.done(Done {
            objects: 8,
            bytes: 24,
            storage_retries: 0,
        });
        progress.finish_phase();
        assert_eq!(
            progress.totals(),
            Totals {
                tasks: 2,
                skipped: 1,
                task_retries: 1,
                storage_retries: 1,
                failures: 1,
                objects: 10,
                bytes: 1024,
            }
        );
    }

    #[test]
    fn summary_names_every_count() {
        let totals = Totals {
            tasks: 4,
            skipped: 1,
            task_retries: 2,
            storage_retries: 3,
            failures: 0,
            objects: 9,
            bytes: 2048,
        };
        assert_eq!(
            summary_line(&totals, Duration::from_secs(2)),
            "summary: 4 tasks (1 already done), 2 task retries, 3 storage retries, 0 failed; \
             9 objects, 2.0 KiB written in 2s (1.0 KiB/s, 2.00 tasks/s)"
        );
    }
}
