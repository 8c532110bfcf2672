//! Platform and Buildpack API versions, which decide how arguments are handled.

/// An API version `major.minor`, compared numerically (`0.10` is after `0.9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Api(pub(crate) u32, pub(crate) u32);

impl Api {
    /// Parses `0.10`; a bare `1` is `1.0`, as the lifecycle reads it.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        Some(Self(major.parse().ok()?, minor.parse().ok()?))
    }
}

/// From this Platform API on, `command[1:]` is always passed and user args replace `args`.
pub(crate) const USER_ARGS_REPLACE: Api = Api(0, 10);
/// From this Buildpack API on, processes are direct and user args replace their `args`.
pub(crate) const BUILDPACK_DIRECT: Api = Api(0, 9);
/// From this Platform API on, processes are filtered by `exec-env`.
pub(crate) const EXEC_ENV: Api = Api(0, 15);
/// What the launcher assumes when `CNB_PLATFORM_API` is unset: the newest rules.
pub(crate) const NEWEST: Api = Api(0, 15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(Api::parse("0.10").unwrap() > Api::parse("0.9").unwrap());
        assert_eq!(Api::parse("1"), Some(Api(1, 0)));
        assert_eq!(Api::parse("x.1"), None);
        assert_eq!(Api::parse("0.1.2"), None);
    }
}
