//! Execution environments (`CNB_EXEC_ENV`): what a build is for (`production`, `test`,
//! `development`, …).
//!
//! A build is for one execution environment, `production` unless the user says otherwise. A
//! buildpack (`[buildpack] exec-env`, Buildpack API 0.12) or an order entry (`exec-env` of
//! `[[order.group]]`) that names execution environments is skipped at detect when the build's
//! is not among them, as the lifecycle does; so is a process (`launch.toml`) at export. An empty
//! list, or one with `*`, is for every execution environment.

/// The execution environment of a build unless the user gives another.
pub const DEFAULT_EXEC_ENV: &str = "production";

/// Whether something for the execution environments `list` applies to `exec_env`: `list` is
/// empty, holds `*`, or holds `exec_env`.
pub fn applies(list: &[String], exec_env: &str) -> bool {
    list.is_empty() || list.iter().any(|e| e == "*" || e == exec_env)
}

/// Checks a name given for an execution environment: non-empty, printable, and without `/`
/// (the spec reserves it).
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an execution environment cannot be empty".to_owned());
    }
    if name.contains('/') {
        return Err(format!(
            "execution environment `{name}` contains `/`, which CNB reserves"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '=')
    {
        return Err(format!(
            "execution environment `{name}` must not contain whitespace, control characters or `=`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_apply_when_empty_starred_or_naming_it() {
        let list =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| (*n).to_owned()).collect() };
        assert!(applies(&[], "test"));
        assert!(applies(&list(&["*"]), "test"));
        assert!(applies(&list(&["production", "test"]), "test"));
        assert!(!applies(&list(&["production"]), "test"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("test").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").unwrap_err().contains('/'));
        assert!(check_name("a b").is_err());
    }
}
