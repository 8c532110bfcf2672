//! The target a build is for, and which buildpacks can build for it.
//!
//! The target is the run image's: its config's `os`, `architecture` and `variant`, and its
//! labels `io.buildpacks.base.distro.name`/`.version`. strata runs buildpacks on the host, so
//! it can only build for Linux on the host's architecture ([`TargetEnv::host`]); any other
//! run image is refused before a buildpack runs, since an image labelled windows/arm64 that
//! holds linux/amd64 binaries would be exported with exit 0 otherwise.
//!
//! A buildpack's `[[targets]]` are matched as the reference lifecycle does: a buildpack with no
//! targets matches every target; a field that either side leaves out, or sets to `*`, matches;
//! the variant is compared only when both give one; the distros only when the buildpack lists
//! some and the target has one, and then one of them must have the target's name (and its
//! version, when both give one).

use std::fmt;

use crate::Target;

/// The target an image is built for, passed to buildpacks as `CNB_TARGET_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEnv {
    /// `CNB_TARGET_OS`, e.g. `linux`.
    pub os: String,
    /// `CNB_TARGET_ARCH`, e.g. `amd64`.
    pub arch: String,
    /// `CNB_TARGET_ARCH_VARIANT`.
    pub variant: Option<String>,
    /// `CNB_TARGET_DISTRO_NAME`.
    pub distro_name: Option<String>,
    /// `CNB_TARGET_DISTRO_VERSION`.
    pub distro_version: Option<String>,
}

/// strata cannot build for a target: it is not Linux on the host's architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strata builds on this host for {host}, not for {target}")]
pub struct UnbuildableTarget {
    /// The target asked for, `os/arch[/variant]`.
    pub target: String,
    /// What this host builds for, `os/arch`.
    pub host: String,
}

impl TargetEnv {
    /// Linux on the host's architecture, in OCI naming.
    pub fn host() -> Self {
        Self {
            os: "linux".to_owned(),
            arch: oci_arch(std::env::consts::ARCH).to_owned(),
            variant: None,
            distro_name: None,
            distro_version: None,
        }
    }

    /// The `CNB_TARGET_*` variables.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("CNB_TARGET_OS".to_owned(), self.os.clone()),
            ("CNB_TARGET_ARCH".to_owned(), self.arch.clone()),
        ];
        let optional = [
            ("CNB_TARGET_ARCH_VARIANT", &self.variant),
            ("CNB_TARGET_DISTRO_NAME", &self.distro_name),
            ("CNB_TARGET_DISTRO_VERSION", &self.distro_version),
        ];
        vars.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone()))),
        );
        vars
    }

    /// `os/arch[/variant]`, how errors name the platform.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.arch),
            None => format!("{}/{}", self.os, self.arch),
        }
    }

    /// The whole target as task keys and the detect cache include it: every field with its
    /// length, so no two targets give one string whatever their values hold.
    pub fn key(&self) -> String {
        let fields = [
            ("os", Some(&self.os)),
            ("arch", Some(&self.arch)),
            ("variant", self.variant.as_ref()),
            ("distro", self.distro_name.as_ref()),
            ("distro-version", self.distro_version.as_ref()),
        ];
        let parts: Vec<String> = fields
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={}:{value}", value.len()),
                None => format!("{name}=-"),
            })
            .collect();
        parts.join(" ")
    }

    /// Checks that this host can build for the target: strata runs buildpacks on the host, so
    /// only Linux on the host's architecture (any variant: the host runs what it runs).
    ///
    /// # Errors
    /// [`UnbuildableTarget`] naming both platforms.
    pub fn check_buildable(&self) -> Result<(), UnbuildableTarget> {
        let host = Self::host();
        if self.os == host.os && self.arch == host.arch {
            Ok(())
        } else {
            Err(UnbuildableTarget {
                target: self.platform(),
                host: host.platform(),
            })
        }
    }

    /// Whether a buildpack that declares `targets` can build for this target.
    pub fn supported_by(&self, targets: &[Target]) -> bool {
        targets.is_empty() || targets.iter().any(|t| self.matches(t))
    }

    fn matches(&self, target: &Target) -> bool {
        let field = |theirs: Option<&str>, ours: Option<&str>| match (theirs, ours) {
            (Some(a), Some(b)) => a == "*" || b == "*" || a == b,
            _ => true,
        };
        if !field(target.os.as_deref(), Some(&self.os))
            || !field(target.arch.as_deref(), Some(&self.arch))
            || !field(target.variant.as_deref(), self.variant.as_deref())
        {
            return false;
        }
        let Some(name) = &self.distro_name else {
            return true;
        };
        target.distros.is_empty()
            || target.distros.iter().any(|(n, v)| {
                field(Some(n), Some(name)) && field(v.as_deref(), self.distro_version.as_deref())
            })
    }
}

/// The whole target as a person reads it: `os/arch[/variant][ distro[@version]]`.
impl fmt::Display for TargetEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.platform())?;
        if let Some(name) = &self.distro_name {
            write!(f, " {name}")?;
            if let Some(version) = &self.distro_version {
                write!(f, "@{version}")?;
            }
        }
        Ok(())
    }
}

/// `[[targets]]` as a report shows them: `linux/arm64, */amd64 (ubuntu@22.04)`.
pub(crate) fn describe_targets(targets: &[Target]) -> String {
    if targets.is_empty() {
        return "any".to_owned();
    }
    let describe = |t: &Target| {
        let mut s = format!(
            "{}/{}",
            t.os.as_deref().unwrap_or("*"),
            t.arch.as_deref().unwrap_or("*")
        );
        if let Some(variant) = &t.variant {
            s.push('/');
            s.push_str(variant);
        }
        if !t.distros.is_empty() {
            let distros: Vec<String> = t
                .distros
                .iter()
                .map(|(n, v)| match v {
                    Some(v) => format!("{n}@{v}"),
                    None => n.clone(),
                })
                .collect();
            s.push_str(" (");
            s.push_str(&distros.join(", "));
            s.push(')');
        }
        s
    };
    targets.iter().map(describe).collect::<Vec<_>>().join(", ")
}

/// Rust's name for an architecture in OCI's naming (`x86_64` → `amd64`).
pub fn oci_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(os: &str, arch: &str) -> TargetEnv {
        TargetEnv {
            os: os.to_owned(),
            arch: arch.to_owned(),
            variant: None,
            distro_name: None,
            distro_version: None,
        }
    }

    fn declared(os: Option<&str>, arch: Option<&str>) -> Target {
        Target {
            os: os.map(str::to_owned),
            arch: arch.map(str::to_owned),
            ..Target::default()
        }
    }

    #[test]
    fn targets_match_as_the_lifecycle_does() {
        let amd64 = target("linux", "amd64");
        assert!(amd64.supported_by(&[]), "no targets match everything");
        assert!(amd64.supported_by(&[declared(Some("linux"), None)]));
        assert!(amd64.supported_by(&[declared(Some("*"), Some("*"))]));
        assert!(amd64.supported_by(&[
            declared(Some("linux"), Some("arm64")),
            declared(Some("linux"), Some("amd64")),
        ]));
        assert!(!amd64.supported_by(&[declared(Some("linux"), Some("arm64"))]));
        assert!(!amd64.supported_by(&[declared(Some("windows"), None)]));

        let v8 = Target {
            variant: Some("v8".to_owned()),
            ..declared(Some("linux"), Some("arm64"))
        };
        let mut arm64 = target("linux", "arm64");
        assert!(
            arm64.supported_by(std::slice::from_ref(&v8)),
            "no variant on one side"
        );
        arm64.variant = Some("v7".to_owned());
        assert!(!arm64.supported_by(&[v8]));
    }

    #[test]
    fn distros_match_when_both_sides_give_one() {
        let jammy = Target {
            distros: vec![("ubuntu".to_owned(), Some("22.04".to_owned()))],
            ..declared(Some("linux"), None)
        };
        let mut t = target("linux", "amd64");
        assert!(
            t.supported_by(std::slice::from_ref(&jammy)),
            "the run image names none"
        );
        t.distro_name = Some("ubuntu".to_owned());
        assert!(
            t.supported_by(std::slice::from_ref(&jammy)),
            "no version on the image"
        );
        t.distro_version = Some("24.04".to_owned());
        assert!(!t.supported_by(std::slice::from_ref(&jammy)));
        t.distro_version = Some("22.04".to_owned());
        assert!(t.supported_by(std::slice::from_ref(&jammy)));
        t.distro_name = Some("debian".to_owned());
        assert!(!t.supported_by(&[jammy]));
    }

    #[test]
    fn only_the_hosts_platform_is_buildable() {
        let host = TargetEnv::host();
        assert_eq!(host.check_buildable(), Ok(()));
        let err = target("windows", "arm64").check_buildable().unwrap_err();
        assert_eq!(err.target, "windows/arm64");
        assert_eq!(err.host, host.platform());
        let other_arch = if host.arch == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        assert!(target("linux", other_arch).check_buildable().is_err());
    }

    #[test]
    fn the_key_holds_the_whole_target() {
        let mut t = target("linux", "arm64");
        assert_eq!(t.to_string(), "linux/arm64");
        t.variant = Some("v8".to_owned());
        t.distro_name = Some("ubuntu".to_owned());
        t.distro_version = Some("22.04".to_owned());
        assert_eq!(t.to_string(), "linux/arm64/v8 ubuntu@22.04");
        let key = t.key();
        t.distro_name = Some("ubuntu@22.04".to_owned());
        t.distro_version = None;
        assert_eq!(t.to_string(), "linux/arm64/v8 ubuntu@22.04");
        assert_ne!(t.key(), key, "keys never collide");
    }
}
