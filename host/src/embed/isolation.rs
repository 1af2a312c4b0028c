//! The guest never sees the host's secrets: an instance's environment holds the contract's
//! variables (docs/design.md §2) and nothing else, whatever the host's environment holds.
//!
//! The check runs in a child process of the test binary that is given a credentials variable:
//! a test cannot change its own process's environment safely while other tests run.

use std::path::PathBuf;
use std::process::Command;

use emwrite::guest_env::{DATA_DIR_ENV, DEFAULT_STORE_ENV};
use emwrite::storage::router::DefaultStore;
use wasmtime_wasi::cli::WasiCliView;
use wasmtime_wasi::p2::bindings::cli::environment::Host as _;

use crate::embed::engine::{Emwrite, Settings};

/// Set in the child process: it is the one that checks.
const CHILD_MARK: &str = "EMWRITE_ISOLATION_CHILD";

/// Host secrets the child gets, none of which may reach the guest.
const HOST_SECRETS: [(&str, &str); 2] = [
    (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "/tmp/emwrite-fake-key.json",
    ),
    ("AWS_SECRET_ACCESS_KEY", "not-for-the-guest"),
];

#[test]
fn the_guest_environment_holds_only_the_contract_variables() {
    if std::env::var_os(CHILD_MARK).is_none() {
        let test_binary = std::env::current_exe().expect("the test binary knows its path");
        let status = Command::new(test_binary)
            .args([
                "--exact",
                "isolation::the_guest_environment_holds_only_the_contract_variables",
            ])
            .env(CHILD_MARK, "1")
            .envs(HOST_SECRETS)
            // The contract passes these through when set; unset, the guest must not have them.
            .env_remove("STORAGE_EMULATOR_HOST")
            .env_remove("EMWRITE_RETRY_BASE_MS")
            .status()
            .expect("the test binary runs again");
        assert!(status.success(), "the child's check failed: {status}");
        return;
    }
    let data_dir: PathBuf =
        std::env::temp_dir().join(format!("emwrite-isolation-{}", std::process::id()));
    let emwrite = Emwrite::load(&Settings {
        store: DefaultStore::Local,
        data_dir: data_dir.clone(),
        allow_hosts: Vec::new(),
        component: None,
        memory_limit_bytes: 1 << 30,
        time_limit: None,
    })
    .expect("the embedded component loads");
    let mut store = emwrite.new_store("isolation").expect("a store");
    let environment = store
        .data_mut()
        .cli()
        .get_environment()
        .expect("the guest environment reads");
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut names: Vec<&str> = environment.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, [DATA_DIR_ENV, DEFAULT_STORE_ENV], "{environment:?}");
}
