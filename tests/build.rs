//! Builds the guest components the tests load: the example connector (examples/hello-connector),
//! its deliberately broken feature variants, and the guests under tests/guests. One nested
//! cargo per workspace, all sharing one target directory so wit-bindgen and serde_json compile
//! once; each variant is copied to its own file because they share an output name. The .wasm
//! paths reach the tests as `env!` constants.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// The broken builds of the example, by cargo feature.
const VARIANTS: [&str; 5] = [
    "bad-manifest",
    "bad-record",
    "leak-secret",
    "forbidden-host",
    "hidden-state",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let example = root.join("examples/hello-connector");
    let guests = manifest_dir.join("guests");
    for path in [
        example.join("src"),
        example.join("Cargo.toml"),
        example.join("Cargo.lock"),
        guests.join("Cargo.toml"),
        guests.join("Cargo.lock"),
        guests.join("hostile"),
        guests.join("foreign-import"),
        root.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // <target>/<profile>/build/conformance-*/out -> <target>/<profile>/wasm-guests
    let target_dir = out_dir.ancestors().nth(3).unwrap().join("wasm-guests");
    let built = target_dir.join(TARGET).join("release");
    let copies = target_dir.join("components");
    std::fs::create_dir_all(&copies).unwrap();

    ensure_target();
    build(&guests, &target_dir, None);
    for (variable, file) in [
        ("HOSTILE_GUEST_WASM", "hostile_guest.wasm"),
        ("FOREIGN_IMPORT_WASM", "foreign_import.wasm"),
    ] {
        export(variable, &built.join(file), &copies.join(file));
    }
    build(&example, &target_dir, None);
    export(
        "HELLO_CONNECTOR_WASM",
        &built.join("hello_connector.wasm"),
        &copies.join("hello_connector.wasm"),
    );
    for feature in VARIANTS {
        build(&example, &target_dir, Some(feature));
        let name = feature.replace('-', "_");
        export(
            &format!("HELLO_CONNECTOR_{}_WASM", name.to_uppercase()),
            &built.join("hello_connector.wasm"),
            &copies.join(format!("hello_connector_{name}.wasm")),
        );
    }
}

fn build(workspace: &Path, target_dir: &Path, feature: Option<&str>) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_MAKEFLAGS");
    if let Some(feature) = feature {
        command.args(["--features", feature]);
    }
    let status = command
        .status()
        .expect("could not run cargo to build a test guest");
    assert!(
        status.success(),
        "building {} (features: {}) for {TARGET} failed; see the errors above",
        workspace.display(),
        feature.unwrap_or("default")
    );
}

/// Copies a fresh build to its own name (variants overwrite one output) and exports its path.
fn export(variable: &str, built: &Path, copy: &Path) {
    std::fs::copy(built, copy).unwrap_or_else(|e| {
        panic!(
            "the guest build finished but {} cannot be copied: {e}",
            built.display()
        )
    });
    println!("cargo:rustc-env={variable}={}", copy.display());
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
