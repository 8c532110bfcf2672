//! The target a build is for, and which buildpacks can build for it.
//!
//! The target is the run image's: its config's `os`, `architecture` and `variant`, and its
//! labels `io.buildpacks.base.distro.name`/`.version`; when the run image names no distro,
//! the build image's os-release gives it ([`TargetEnv::or_distro`]), as in the lifecycle.
//! strata runs buildpacks on the host, so it can only build for Linux on the host's
//! architecture ([`TargetEnv::host`]); any other run image is refused before a buildpack
//! runs, since an image labelled windows/arm64 that holds linux/amd64 binaries would be
//! exported with exit 0 otherwise.
//!
//! A buildpack's `[[targets]]` are matched as the reference lifecycle does: a buildpack with no
//! targets matches every target; a field that either side leaves out, or sets to `*`, matches;
//! the variant is compared only when both give one; when the buildpack lists distros, the
//! target must have one, and one of them must have its name (and its version, when both give
//! one).
//!
//! The deprecated `[[stacks]]` of a buildpack without `[[targets]]` are matched against the run
//! image's `io.buildpacks.stack.id`, as platforms did when stacks were the contract: one of
//! them must be that id or `*`. A run image without a stack id leaves the buildpack to the
//! targets the lifecycle infers from its stacks (see [`crate::BuildpackDescriptor::targets`]).

use std::fmt;

use crate::{BuildpackDescriptor, Target};

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
    /// The run image's `io.buildpacks.stack.id` (deprecated), passed as `CNB_STACK_ID` and
    /// matched against buildpacks' `[[stacks]]`.
    pub stack_id: Option<String>,
}

/// Why a buildpack cannot build for a target, both sides as a report shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What the buildpack supports: its targets (`linux/arm64, */amd64 (ubuntu@22.04)`), or
    /// its stacks (`stacks io.buildpacks.stacks.jammy`) when those decided.
    pub supports: String,
    /// The target: `os/arch[/variant][ distro[@version]]`, or `stack <id>` when the stacks
    /// decided.
    pub target: String,
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
            stack_id: None,
        }
    }

    /// Whether the target names a distro (its name, its version, or both).
    pub fn has_distro(&self) -> bool {
        self.distro_name.is_some() || self.distro_version.is_some()
    }

    /// This target with the distro `name` and `version` (from the build image's os-release)
    /// when it names none itself; a target that names either keeps its own, as in the
    /// lifecycle.
    #[must_use]
    pub fn or_distro(mut self, name: Option<String>, version: Option<String>) -> Self {
        if !self.has_distro() {
            self.distro_name = name;
            self.distro_version = version;
        }
        self
    }

    /// The variables that describe the target to a buildpack: the `CNB_TARGET_*` set, and the
    /// deprecated `CNB_STACK_ID` when the run image has a stack id (older buildpacks, Paketo's
    /// among them, read it).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("CNB_TARGET_OS".to_owned(), self.os.clone()),
            ("CNB_TARGET_ARCH".to_owned(), self.arch.clone()),
        ];
        let optional = [
            ("CNB_TARGET_ARCH_VARIANT", &self.variant),
            ("CNB_TARGET_DISTRO_NAME", &self.distro_name),
            ("CNB_TARGET_DISTRO_VERSION", &self.distro_version),
            ("CNB_STACK_ID", &self.stack_id),
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
            ("stack", self.stack_id.as_ref()),
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

    /// Whether the buildpack `descriptor` can build for this target: by its `[[stacks]]` when
    /// it gives only those and the run image has a stack id, else by its targets.
    ///
    /// # Errors
    /// A [`Mismatch`] saying what the buildpack supports and what the target is.
    pub fn supports(&self, descriptor: &BuildpackDescriptor) -> Result<(), Mismatch> {
        if let (false, Some(id)) = (descriptor.stacks.is_empty(), &self.stack_id) {
            if descriptor.stacks.iter().any(|s| s == "*" || s == id) {
                return Ok(());
            }
            return Err(Mismatch {
                supports: format!("stacks {}", descriptor.stacks.join(", ")),
                target: format!("stack {id}"),
            });
        }
        if self.supported_by(&descriptor.targets) {
            Ok(())
        } else {
            Err(Mismatch {
                supports: describe_targets(&descriptor.targets),
                target: self.to_string(),
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
        if target.distros.is_empty() {
            return true;
        }
        // A buildpack for named distros cannot build for a target whose distro is unknown.
        if !self.has_distro() {
            return false;
        }
        target.distros.iter().any(|(n, v)| {
            field(Some(n), self.distro_name.as_deref())
                && field(v.as_deref(), self.distro_version.as_deref())
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
fn describe_targets(targets: &[Target]) -> String {
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
            stack_id: None,
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
    fn distros_match_as_the_lifecycle_does() {
        let jammy = Target {
            distros: vec![("ubuntu".to_owned(), Some("22.04".to_owned()))],
            ..declared(Some("linux"), None)
        };
        let mut t = target("linux", "amd64");
        assert!(
            !t.supported_by(std::slice::from_ref(&jammy)),
            "a buildpack for named distros needs a target with one"
        );
        assert!(
            t.supported_by(&[declared(Some("linux"), None)]),
            "no distros on the buildpack"
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
        assert!(!t.supported_by(std::slice::from_ref(&jammy)));
        t.distro_name = None;
        assert!(
            t.supported_by(&[jammy]),
            "a version alone, and no name on the image"
        );
    }

    /// A descriptor with `stacks` and (inferred or declared) `targets`.
    fn with_stacks(stacks: &[&str], targets: Vec<Target>) -> BuildpackDescriptor {
        let text = "api = \"0.10\"\n[buildpack]\nid = \"s\"\nversion = \"1\"\n";
        let dir = std::path::Path::new("/nonexistent");
        let mut d = BuildpackDescriptor::parse(&dir.join("buildpack.toml"), text, dir).unwrap();
        d.stacks = stacks.iter().map(|s| (*s).to_owned()).collect();
        d.targets = targets;
        d
    }

    #[test]
    fn stacks_match_the_run_images_stack_id() {
        let linux = vec![declared(Some("linux"), None)];
        let jammy = with_stacks(&["io.buildpacks.stacks.jammy"], linux.clone());
        let any = with_stacks(&["other", "*"], linux.clone());
        let mut t = target("linux", "amd64");
        t.stack_id = Some("io.buildpacks.stacks.jammy".to_owned());
        assert_eq!(t.supports(&jammy), Ok(()));
        assert_eq!(t.supports(&any), Ok(()));
        t.stack_id = Some("examples.busybox".to_owned());
        assert_eq!(
            t.supports(&jammy),
            Err(Mismatch {
                supports: "stacks io.buildpacks.stacks.jammy".to_owned(),
                target: "stack examples.busybox".to_owned(),
            })
        );
        assert_eq!(t.supports(&any), Ok(()), "`*` matches any stack");

        // A run image without a stack id: the targets inferred from the stacks decide.
        t.stack_id = None;
        assert_eq!(t.supports(&jammy), Ok(()));
        let bionic = with_stacks(
            &["io.buildpacks.stacks.bionic"],
            vec![Target {
                distros: vec![("ubuntu".to_owned(), Some("18.04".to_owned()))],
                ..declared(Some("linux"), Some("amd64"))
            }],
        );
        t.distro_name = Some("ubuntu".to_owned());
        t.distro_version = Some("22.04".to_owned());
        assert_eq!(
            t.supports(&bionic),
            Err(Mismatch {
                supports: "linux/amd64 (ubuntu@18.04)".to_owned(),
                target: "linux/amd64 ubuntu@22.04".to_owned(),
            })
        );

        // A buildpack with targets has no stacks left to match: its targets decide.
        t.stack_id = Some("examples.busybox".to_owned());
        let targets = with_stacks(&[], linux);
        assert_eq!(t.supports(&targets), Ok(()));
    }

    #[test]
    fn the_stack_id_is_passed_when_known() {
        let mut t = target("linux", "amd64");
        let names =
            |t: &TargetEnv| -> Vec<String> { t.vars().into_iter().map(|(k, _)| k).collect() };
        assert_eq!(names(&t), ["CNB_TARGET_OS", "CNB_TARGET_ARCH"]);
        t.stack_id = Some("io.buildpacks.stacks.jammy".to_owned());
        t.variant = Some("v8".to_owned());
        assert_eq!(
            t.vars()[2..],
            [
                ("CNB_TARGET_ARCH_VARIANT".to_owned(), "v8".to_owned()),
                (
                    "CNB_STACK_ID".to_owned(),
                    "io.buildpacks.stacks.jammy".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_build_images_distro_fills_in_only_a_missing_one() {
        let debian = || (Some("debian".to_owned()), Some("12".to_owned()));
        let (name, version) = debian();
        let t = target("linux", "amd64").or_distro(name, version);
        assert_eq!(t.to_string(), "linux/amd64 debian@12");
        let mut labelled = target("linux", "amd64");
        labelled.distro_name = Some("busybox".to_owned());
        let (name, version) = debian();
        assert_eq!(
            labelled.or_distro(name, version).to_string(),
            "linux/amd64 busybox",
            "the run image's labels win, even a name alone"
        );
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
        let key = t.key();
        t.stack_id = Some("io.buildpacks.stacks.jammy".to_owned());
        assert_ne!(t.key(), key, "the stack id is part of the key");
    }
}
