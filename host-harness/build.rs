//! Builds the connector component (`plugin/`) for `wasm32-wasip2` so that `cargo run` and
//! `cargo test` work on a fresh clone with nothing else. The nested cargo uses its own target
//! directory (sharing ours would deadlock on its lock) and a clean environment (host flags and
//! wrappers must not leak into the guest build).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for path in [
        "plugin/src",
        "plugin/data",
        "plugin/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // <target>/<profile>/build/host-harness-*/out -> <target>/<profile>/wasm-plugin
    let target_dir = out_dir.ancestors().nth(3).unwrap().join("wasm-plugin");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    ensure_target();
    let status = Command::new(&cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--profile",
            "wasm-release",
            "--target",
            TARGET,
            "-p",
            "m365-connector",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("could not run cargo to build the connector component");
    assert!(
        status.success(),
        "building the connector component (plugin/) for {TARGET} failed; see the errors above"
    );

    let wasm = target_dir
        .join(TARGET)
        .join("wasm-release")
        .join("m365_connector.wasm");
    assert!(
        wasm.exists(),
        "the connector build finished but {} is missing",
        wasm.display()
    );
    println!("cargo:rustc-env=M365_PLUGIN_WASM={}", wasm.display());
}

/// rustup does not add a target listed in rust-toolchain.toml to a toolchain that is already
/// installed, so add it here, or stop with the exact command to run.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| {
            o.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        });
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).exists();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let mut command = Command::new("rustup");
    command.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        command.args(["--toolchain", &toolchain]);
    }
    let added = command.status().map(|s| s.success()).unwrap_or(false);
    if !added || !sysroot.as_deref().is_some_and(installed) {
        panic!(
            "the Rust target {TARGET} is not installed and could not be added automatically; run:\n\n    rustup target add {TARGET}\n"
        );
    }
}
