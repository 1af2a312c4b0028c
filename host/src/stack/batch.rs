//! Batch shares: which of a phase's tasks one batch-engine task runs (`emwrite task STACK --phase
//! P`, in-process).
//!
//! Batch engines start N copies of one container and tell each its index: Cloud Run Jobs set
//! `CLOUD_RUN_TASK_INDEX` and `CLOUD_RUN_TASK_COUNT`; a Kubernetes Indexed Job sets
//! `JOB_COMPLETION_INDEX` and leaves the count to us (`--task-count` or `EMWRITE_TASK_COUNT`).
//! Task `i` of `n` takes the phase's tasks `i, i + n, i + 2n, …` (in `Stack::tasks` order):
//! shares are disjoint, cover every task, depend on nothing but the stack file, and interleave,
//! so each copy gets blocks from every part of the volume. A copy exits non-zero when one of its
//! tasks failed, so the engine retries it.

use crate::error::HostError;

/// The environment variable of the task index on Cloud Run Jobs.
pub const CLOUD_RUN_TASK_INDEX: &str = "CLOUD_RUN_TASK_INDEX";
/// The environment variable of the task count on Cloud Run Jobs.
pub const CLOUD_RUN_TASK_COUNT: &str = "CLOUD_RUN_TASK_COUNT";
/// The environment variable of the task index in a Kubernetes Indexed Job.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// Ours: the task count where the engine does not set one (Kubernetes: the Job's `completions`).
pub const EMWRITE_TASK_COUNT: &str = "EMWRITE_TASK_COUNT";

/// Which share of a phase this process runs: task `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// 0-based.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

impl Share {
    /// The whole phase.
    pub const ALL: Share = Share { index: 0, count: 1 };

    /// The share from the flags, else from the engine's environment (read through `env`):
    /// index from `--task-index`, `CLOUD_RUN_TASK_INDEX` or `JOB_COMPLETION_INDEX`; count from
    /// `--task-count`, `CLOUD_RUN_TASK_COUNT` or `EMWRITE_TASK_COUNT`. With neither an index nor
    /// a count, the whole phase.
    pub fn resolve(
        index: Option<usize>,
        count: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Share, HostError> {
        let from_env = |names: &[&str]| -> Result<Option<(usize, String)>, HostError> {
            for name in names {
                if let Some(value) = env(name) {
                    let number = value.trim().parse::<usize>().map_err(|_| {
                        HostError::Config(format!("{name}: expected a whole number, got {value:?}"))
                    })?;
                    return Ok(Some((number, (*name).to_owned())));
                }
            }
            Ok(None)
        };
        let index = match index {
            Some(index) => Some((index, "--task-index".to_owned())),
            None => from_env(&[CLOUD_RUN_TASK_INDEX, JOB_COMPLETION_INDEX])?,
        };
        let count = match count {
            Some(count) => Some((count, "--task-count".to_owned())),
            None => from_env(&[CLOUD_RUN_TASK_COUNT, EMWRITE_TASK_COUNT])?,
        };
        match (index, count) {
            (None, None) => Ok(Share::ALL),
            (Some((_, from)), None) => Err(HostError::Config(format!(
                "the task index is set ({from}) but not the task count: set --task-count or \
                 {EMWRITE_TASK_COUNT} (a Kubernetes Indexed Job's completions)"
            ))),
            (None, Some((1, _))) => Ok(Share::ALL),
            (None, Some((_, from))) => Err(HostError::Config(format!(
                "the task count is set ({from}) but not the task index: set --task-index, \
                 {CLOUD_RUN_TASK_INDEX} or {JOB_COMPLETION_INDEX}"
            ))),
            (Some(_), Some((0, from))) => Err(HostError::Config(format!(
                "{from}: the task count must be at least 1"
            ))),
            (Some((index, from)), Some((count, _))) if index >= count => Err(HostError::Config(
                format!("{from}: task index {index} is not below the task count {count}"),
            )),
            (Some((index, _)), Some((count, _))) => Ok(Share { index, count }),
        }
    }

    /// This share's items of `all`: every `count`-th from `index`.
    pub fn pick<T>(self, all: Vec<T>) -> Vec<T> {
        all.into_iter()
            .skip(self.index)
            .step_by(self.count)
            .collect()
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task {} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn shares_are_disjoint_and_cover_every_task() {
        for count in 1..=7 {
            for total in [0, 1, 5, 6, 13] {
                let mut seen: Vec<usize> = (0..count)
                    .flat_map(|index| Share { index, count }.pick((0..total).collect()))
                    .collect();
                let sizes: Vec<usize> = (0..count)
                    .map(|index| {
                        Share { index, count }
                            .pick((0..total).collect::<Vec<_>>())
                            .len()
                    })
                    .collect();
                seen.sort_unstable();
                assert_eq!(
                    seen,
                    (0..total).collect::<Vec<_>>(),
                    "{count} shares of {total}"
                );
                // Even: no share has two tasks more than another.
                let (min, max) = (sizes.iter().min(), sizes.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
            }
        }
        assert_eq!(
            Share { index: 1, count: 3 }.pick((0..8).collect()),
            [1, 4, 7]
        );
    }

    #[test]
    fn the_share_comes_from_flags_then_cloud_run_then_kubernetes() {
        let cloud_run = env(&[("CLOUD_RUN_TASK_INDEX", "2"), ("CLOUD_RUN_TASK_COUNT", "5")]);
        assert_eq!(
            Share::resolve(None, None, &cloud_run).unwrap(),
            Share { index: 2, count: 5 }
        );
        assert_eq!(
            Share::resolve(Some(4), None, &cloud_run).unwrap(),
            Share { index: 4, count: 5 },
            "flags win"
        );
        let kubernetes = env(&[("JOB_COMPLETION_INDEX", "3"), ("EMWRITE_TASK_COUNT", "4")]);
        assert_eq!(
            Share::resolve(None, None, &kubernetes).unwrap(),
            Share { index: 3, count: 4 }
        );
        let index_only = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            Share::resolve(None, Some(8), &index_only).unwrap(),
            Share { index: 3, count: 8 }
        );
        assert_eq!(Share::resolve(None, None, env(&[])).unwrap(), Share::ALL);
    }

    #[test]
    fn incomplete_or_wrong_shares_are_refused_naming_the_source() {
        let error = Share::resolve(None, None, env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("--task-count or EMWRITE_TASK_COUNT"),
            "{error}"
        );
        let error = Share::resolve(Some(5), Some(5), env(&[])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("task index 5 is not below the task count 5"),
            "{error}"
        );
        let error = Share::resolve(Some(0), Some(0), env(&[])).unwrap_err();
        assert!(error.to_string().contains("at least 1"), "{error}");
        let error = Share::resolve(None, None, env(&[("CLOUD_RUN_TASK_INDEX", "x")])).unwrap_err();
        assert!(
            error.to_string().starts_with("CLOUD_RUN_TASK_INDEX: "),
            "{error}"
        );
        let error = Share::resolve(None, Some(3), env(&[])).unwrap_err();
        assert!(error.to_string().contains("not the task index"), "{error}");
    }
}
