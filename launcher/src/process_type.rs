//! Which names a process type may have.

/// Whether `name` is a valid process type: letters, digits, `.`, `-` and `_`, and not `.` or
/// `..` alone, so that it can name a directory (`env.launch/<type>/`) and a file
/// (`/cnb/process/<type>`) without escaping.
pub fn is_valid_process_type(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_types_cannot_escape_a_directory() {
        for ok in ["web", "sys-info", "a.b_c"] {
            assert!(is_valid_process_type(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "we b", "é"] {
            assert!(!is_valid_process_type(bad), "{bad}");
        }
    }
}
