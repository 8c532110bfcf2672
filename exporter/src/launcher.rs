//! The launcher that goes into every image at `/cnb/lifecycle/launcher`: the `launcher`
//! binary of the `strata-launcher` crate, built statically by this crate's build script and
//! embedded here, so an image's launcher layer depends only on the strata version.

/// The launcher executable, a static Linux binary.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/launcher"));

/// The launcher's version, for `io.buildpacks.build.metadata`'s `launcher.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository of the launcher's source, for `launcher.source.git.repository`; empty when
/// the package names none.
pub const SOURCE_REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The commit of the launcher's source, for `launcher.source.git.commit`; strata records
/// none, so that the build metadata does not change with an unreleased checkout's commit.
pub const SOURCE_COMMIT: &str = "";

/// The SHA-256 of [`BINARY`], hashed once per process: the launcher layer's store key and
/// every image's launcher SBOM name it.
pub fn sha256() -> &'static [u8; 32] {
    use sha2::{Digest, Sha256};
    static SHA: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SHA.get_or_init(|| Sha256::digest(BINARY).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The ELF program header types, from the 64-bit little-endian header.
    fn program_header_types(elf: &[u8]) -> Vec<u32> {
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
        let phoff =
            usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        (0..count)
            .map(|i| {
                let at = phoff + i * size;
                u32::from_le_bytes(elf[at..at + 4].try_into().unwrap())
            })
            .collect()
    }

    #[test]
    fn the_launcher_is_a_static_executable() {
        const PT_INTERP: u32 = 3;
        assert_eq!(&BINARY[..5], b"\x7fELF\x02", "a 64-bit ELF file");
        assert!(
            !program_header_types(BINARY).contains(&PT_INTERP),
            "the launcher asks for a dynamic loader"
        );
    }

    #[test]
    fn the_embedded_launcher_runs_and_reports_missing_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launcher");
        std::fs::write(&path, BINARY).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&path)
            .env("CNB_LAYERS_DIR", dir.path().join("layers"))
            .env("CNB_APP_DIR", dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(82));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("config/metadata.toml"), "{stderr}");
    }
}
