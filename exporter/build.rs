//! Builds the launcher that every image gets, so the exporter can embed its bytes.
//!
//! A nested `cargo build` of `strata-launcher` with its own profile (`launcher`: small, LTO,
//! `panic = "abort"`, stripped), its own target directory (so it never waits on the lock the
//! outer build holds) and flags of its own: whatever the outer build runs with (`cargo fuzz`'s
//! sanitizers, `cargo clippy`'s wrapper, a user's `RUSTFLAGS`) must not reach a binary that
//! ships in images. `+crt-static` on the gnu target links glibc statically, so the binary
//! needs nothing from the run image; `--target` keeps that flag off build scripts and proc
//! macros. Paths are remapped so that the bytes do not depend on where the checkout, the
//! cargo home or the target directory are: the same sources and toolchain give the same
//! launcher, and so the same launcher layer, on any machine.
//!
//! `STRATA_LAUNCHER_BIN` names a launcher built elsewhere to embed instead (a packager's).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: cannot build the launcher: {message}");
            ExitCode::FAILURE
        }
    }
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("{name} is not set"))
}

fn build() -> Result<(), String> {
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let embedded = out_dir.join("launcher");
    println!("cargo:rerun-if-env-changed=STRATA_LAUNCHER_BIN");
    println!("cargo:rerun-if-env-changed=RUSTC_BOOTSTRAP");
    if let Some(prebuilt) = env::var_os("STRATA_LAUNCHER_BIN") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        fs::copy(&prebuilt, &embedded)
            .map_err(|e| format!("cannot copy {}: {e}", Path::new(&prebuilt).display()))?;
        return Ok(());
    }

    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("the exporter is not inside the workspace")?
        .to_owned();
    for path in [
        "launcher/src",
        "launcher/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    let target = launcher_target(&var("TARGET")?, &var("HOST")?);
    let target_dir = nested_target_dir(&out_dir);
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));

    let mut flags = vec!["-Ctarget-feature=+crt-static".to_owned()];
    flags.push(format!(
        "--remap-path-prefix={}=/strata",
        workspace.display()
    ));
    if let Some(home) = &cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    // Last, as the most specific: the target directory may be inside the workspace.
    flags.push(format!(
        "--remap-path-prefix={}=/target",
        target_dir.display()
    ));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "-p", "strata-launcher", "--bin", "launcher"])
        .args(["--profile", "launcher", "--locked", "--offline"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"))
        .env("CARGO_INCREMENTAL", "0");
    for name in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
        // Dependencies' build scripts probe for nightly features, and would find them.
        "RUSTC_BOOTSTRAP",
    ] {
        cmd.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        let per_target = name.starts_with("CARGO_TARGET_") && name.ends_with("_RUSTFLAGS");
        if per_target || name.starts_with("CARGO_PROFILE_") {
            cmd.env_remove(&*name);
        }
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the nested cargo build failed ({status})"));
    }
    let built = target_dir.join(&target).join("launcher").join("launcher");
    fs::copy(&built, &embedded).map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    Ok(())
}

/// The gnu target for the images: the exporter's own target if it is a gnu Linux one, else
/// the host's architecture on gnu Linux.
fn launcher_target(target: &str, host: &str) -> String {
    if target.ends_with("-linux-gnu") {
        return target.to_owned();
    }
    let arch = host.split('-').next().unwrap_or("x86_64");
    format!("{arch}-unknown-linux-gnu")
}

/// `<outer target dir>/strata-launcher`, shared by the outer profiles (`cargo test` and
/// `cargo build --release` build the launcher once), found from
/// `OUT_DIR = <target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`; `OUT_DIR` itself if
/// that layout is not recognized.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir.ancestors().nth(2);
    match (build, out_dir.ancestors().nth(4)) {
        (Some(build), Some(target)) if build.file_name().is_some_and(|n| n == "build") => {
            target.join("strata-launcher")
        }
        _ => out_dir.join("launcher-target"),
    }
}
