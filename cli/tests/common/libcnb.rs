//! The example buildpack written with libcnb (`examples/buildpacks/libcnb-counter`): built
//! with cargo once per test binary, statically so that it runs on any Linux build image, and
//! laid out as `cargo libcnb package` lays one out (`buildpack.toml`, `bin/build` the binary,
//! `bin/detect` a symlink to it: libcnb picks the phase from the name it was run by; the
//! crate's other binaries under `.libcnb-cargo/additional-bin/`, where libcnb's
//! `additional_buildpack_binary_path!` finds them at build time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{examples, stderr};

/// The id of the libcnb example buildpack.
pub const LIBCNB_COUNTER_ID: &str = "examples/libcnb-counter";

/// The libcnb example buildpack, assembled in `dest` (created); returns `dest`.
pub fn libcnb_counter(dest: &Path) -> PathBuf {
    let source = examples().join("buildpacks/libcnb-counter");
    let bin = dest.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(source.join("buildpack.toml"), dest.join("buildpack.toml")).unwrap();
    let release = libcnb_counter_binaries();
    std::fs::copy(release.join("libcnb-counter"), bin.join("build")).unwrap();
    std::os::unix::fs::symlink("build", bin.join("detect")).unwrap();
    let additional = dest.join(".libcnb-cargo/additional-bin");
    std::fs::create_dir_all(&additional).unwrap();
    std::fs::copy(
        release.join("counter-execd"),
        additional.join("counter-execd"),
    )
    .unwrap();
    dest.to_owned()
}

/// The dir with the buildpack's binaries (`libcnb-counter`, `counter-execd`), built once per
/// test binary with its own lockfile into a target dir of its own under `target/` (cargo's
/// lock on that dir orders concurrent test binaries).
fn libcnb_counter_binaries() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = examples().join("buildpacks/libcnb-counter/Cargo.toml");
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libcnb-buildpacks");
        // glibc's static target: the binary needs no libc from the build image.
        let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--target", &triple])
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo build of {} failed:\n{}",
            manifest.display(),
            stderr(&out)
        );
        target_dir.join(triple).join("release")
    })
}
