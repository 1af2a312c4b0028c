//! Builds the root crate as the `wasm32-wasip2` component and puts it in `OUT_DIR` for `include_bytes!`.
//!
//! The nested cargo uses its own target directory (`<target>/component-build`): the outer cargo
//! holds the lock on the main one for as long as this script runs, so sharing it would deadlock.
//! `EMWRITE_SKIP_COMPONENT_BUILD=1` embeds an empty placeholder instead (for clippy-only runs); the
//! host then refuses to run without `--component FILE`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target the component is built for (WASI 0.2; rustc emits a component directly).
const WASM_TARGET: &str = "wasm32-wasip2";

/// Name of the embedded file in `OUT_DIR`; `src/engine.rs` includes it.
const EMBEDDED_NAME: &str = "emwrite.wasm";

fn main() {
    if let Err(message) = build().and_then(|()| fingerprint()) {
        // A panic would print a backtrace hint; the message is what the user needs.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("host/ has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let embedded = out_dir.join(EMBEDDED_NAME);

    println!("cargo:rerun-if-env-changed=EMWRITE_SKIP_COMPONENT_BUILD");
    if env::var_os("EMWRITE_SKIP_COMPONENT_BUILD").is_some_and(|v| v == "1") {
        // An empty file, not a missing one: `include_bytes!` needs a file, and the host treats
        // zero bytes as "no embedded component".
        fs::write(&embedded, b"").map_err(|e| format!("{}: {e}", embedded.display()))?;
        return Ok(());
    }

    // `vendor` holds the component's forked dependencies (path dependencies, e.g. jpeg-encoder).
    for watched in ["src", "wit", "vendor", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    // The lead's `.cargo/config.toml` sets the wasm target's rustflags (`+simd128`). Watching a
    // missing path would make cargo rerun this script on every build, so watch it only once it
    // exists.
    let config = workspace.join(".cargo").join("config.toml");
    if config.exists() {
        println!("cargo:rerun-if-changed={}", config.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let cargo = env_var("CARGO")?;
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    check_target_installed(&rustc)?;

    // `CARGO_TARGET_DIR` may move the outer build; keep the nested one beside it.
    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let target_dir = target_root.join("component-build");

    let mut nested = Command::new(&cargo);
    nested
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--lib",
            "-p",
            "emwrite",
            "--target",
            WASM_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads stdout of build scripts as directives; the nested build's output belongs
        // on stderr, which cargo shows when this script fails.
        .stdout(Stdio::from(std::io::stderr()));
    clear_outer_build_env(&mut nested);

    let status = nested
        .status()
        .map_err(|e| format!("could not start `{cargo}` for the component build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the component build failed ({status}): `cargo build --release --lib -p emwrite \
             --target {WASM_TARGET}`; its errors are above. Set EMWRITE_SKIP_COMPONENT_BUILD=1 \
             to build the host without an embedded component (it then needs --component FILE)"
        ));
    }

    let built = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(EMBEDDED_NAME);
    fs::copy(&built, &embedded).map_err(|e| {
        format!(
            "the component build succeeded but {} could not be copied to {}: {e}",
            built.display(),
            embedded.display()
        )
    })?;
    Ok(())
}

/// Gives the host `EMWRITE_COMPONENT_FINGERPRINT`, naming the embedded component's bytes, so
/// that a precompiled artifact is only ever loaded for the component it was compiled from (the
/// host names the file after it). Not a security measure: the file is as trusted as the binary.
fn fingerprint() -> Result<(), String> {
    let embedded = PathBuf::from(env_var("OUT_DIR")?).join(EMBEDDED_NAME);
    let bytes = fs::read(&embedded).map_err(|e| format!("{}: {e}", embedded.display()))?;
    // SipHash with fixed keys: the same bytes give the same name in every build.
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    println!(
        "cargo:rustc-env=EMWRITE_COMPONENT_FINGERPRINT={:x}-{:016x}",
        bytes.len(),
        hasher.finish()
    );
    Ok(())
}

/// Removes what the outer build sets for its own compilation and would mislead the nested one.
fn clear_outer_build_env(command: &mut Command) {
    // `RUSTFLAGS` and its encoded forms override `[target.wasm32-wasip2] rustflags` from
    // `.cargo/config.toml` (cargo uses the first source it finds), so an outer `RUSTFLAGS` would
    // silently drop `+simd128`, and host-only flags (`-C target-cpu=native`) make no sense for
    // wasm. `CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS` is deliberately kept.
    for name in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_BUILD_RUSTDOCFLAGS",
        // `cargo clippy` runs rustc through clippy-driver with these; the component build
        // should compile, not lint (and would lint the wasm target with the host's flags).
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        // The nested build chooses its own target and target directory.
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        command.env_remove(name);
    }
    // Cargo sets these for this script from the *host* target (`CARGO_CFG_UNIX`,
    // `CARGO_CFG_TARGET_FEATURE=sse2,...`) and our features. Nested cargo sets its own for its
    // build scripts but does not remove keys that the wasm target lacks, so they would leak.
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_CFG_") || name.starts_with("CARGO_FEATURE_") {
            command.env_remove(name);
        }
    }
}

/// Fails with the fix when the standard library for the wasm target is not installed.
fn check_target_installed(rustc: &OsString) -> Result<(), String> {
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|e| format!("could not run {}: {e}", Path::new(rustc).display()))?;
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let has_std = output.status.success()
        && fs::read_dir(&libdir).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with("libstd-"))
            })
        });
    if has_std {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {WASM_TARGET} is not installed (no standard library in \
             {libdir:?}): run `rustup target add {WASM_TARGET}`"
        ))
    }
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|e| format!("{name}: {e} (is this running under cargo?)"))
}
